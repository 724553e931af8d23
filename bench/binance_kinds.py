"""The Binance feed's decode cost per message kind, on a simulator capture (``bench.sim_capture``).

    python -m bench.binance_kinds CAPTURE_DIR [--rounds 3]

Replays the capture's Binance WebSocket messages in receive order through
``BinanceFeed.on_message`` (the entry point the runner's WebSocket loop calls, with the same
``str`` frames and REST snapshots in between) and prints µs per message by stream kind
(``aggTrade``, ``bookTicker``, ``depth@100ms``, ``kline_1m``...), with how many of each left the
fast path for the general decoder, for three feed modes (compiled fast path, Python fast path,
general decoder only), interleaved round by round.

Each mode is timed four ways, to separate decode from measurement: ``decode`` (``perf_counter``
around each call, GC off, outputs dropped), ``gc`` (GC on, outputs dropped, as the runner drops
them after handing over), ``kept`` (GC on, outputs kept) and ``stage_replay`` (``process_time``
around each call, GC on, outputs kept, as ``bench.stage_replay`` measures the feeds).
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from bench.stage_replay import _rest_symbol, load
from tickvault.exchanges.base import FeedOutput
from tickvault.exchanges.binance.feed import BinanceFeed
from tickvault.exchanges.capture import CaptureRecord
from tickvault.model import Instrument

MODES = ("compiled", "python-fast", "general")
TIMINGS = ("decode", "gc", "kept", "stage_replay")


def stream_kind(raw: str) -> str:
    """The combined-stream name's part after ``@`` (``-`` for a message without a stream)."""
    at = raw.find('"stream":"')
    if at < 0:
        return "-"
    end = raw.find('"', at + 10)
    return raw[at + 10 : end].partition("@")[2]


def _process_ns() -> int:
    return int(time.process_time() * 1e9)


class Round:
    """One pass over the capture: ns and message count by kind, general-path calls by kind."""

    def __init__(self) -> None:
        self.ns: dict[str, int] = {}
        self.count: dict[str, int] = {}
        self.general: dict[str, int] = {}


def run(
    instruments: list[Instrument], records: list[CaptureRecord], mode: str, timing: str
) -> Round:
    feed = BinanceFeed(instruments, 10)
    feed.fast_path = mode != "general"
    feed.compiled = feed.compiled and mode == "compiled"
    result = Round()
    general = feed._general_message
    current = ["-"]

    def counted(raw: bytes | str, recv_ns: int) -> FeedOutput:
        result.general[current[0]] = result.general.get(current[0], 0) + 1
        return general(raw, recv_ns)

    feed._general_message = counted  # type: ignore[method-assign]
    clock: Callable[[], int] = _process_ns if timing == "stage_replay" else time.perf_counter_ns
    keep = timing in ("kept", "stage_replay")
    kept: list[FeedOutput] = []
    kinds = [stream_kind(r.raw) if r.kind == "ws" else "" for r in records]
    if timing == "decode":
        gc.disable()
    try:
        for record, kind in zip(records, kinds, strict=True):
            if record.kind != "ws":
                symbol = _rest_symbol("binance", instruments, record.url)
                if symbol is not None:
                    feed.on_rest_snapshot(symbol, record.raw, record.ts_ns)
                continue
            current[0] = kind
            start = clock()
            out = feed.on_message(record.raw, record.ts_ns)
            elapsed = clock() - start
            if keep:
                kept.append(out)
            result.ns[kind] = result.ns.get(kind, 0) + elapsed
            result.count[kind] = result.count.get(kind, 0) + 1
    finally:
        gc.enable()
    return result


def report(folder: Path, rounds: int) -> str:
    instruments, records = load(folder)["binance"]
    per: dict[tuple[str, str], list[Round]] = {}
    for _ in range(rounds):
        for timing in TIMINGS:
            for mode in MODES:
                per.setdefault((mode, timing), []).append(run(instruments, records, mode, timing))
                gc.collect()
    first = per[(MODES[0], TIMINGS[0])][0]
    kinds = sorted(first.count, key=lambda k: -first.count[k])
    lines = [
        f"capture {folder}: {sum(first.count.values()):,} Binance messages, µs per message,"
        f" best [median, worst] of {rounds} rounds",
        "messages: " + ", ".join(f"{k} {first.count[k]:,}" for k in kinds),
    ]
    for mode in MODES:
        general = per[(mode, TIMINGS[0])][0].general
        lines.append(
            f"{mode}: to the general decoder: "
            + (", ".join(f"{k} {general.get(k, 0):,}" for k in kinds))
        )
        for timing in TIMINGS:
            runs = per[(mode, timing)]
            cells = []
            for kind in [*kinds, "all"]:
                if kind == "all":
                    values = [sum(r.ns.values()) / sum(r.count.values()) / 1e3 for r in runs]
                else:
                    values = [r.ns[kind] / r.count[kind] / 1e3 for r in runs]
                cells.append(
                    f"{kind} {min(values):.2f} [{statistics.median(values):.2f}, {max(values):.2f}]"
                )
            lines.append(f"  {timing:<12} " + "  ".join(cells))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("capture", type=Path)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(report(args.capture, args.rounds))


if __name__ == "__main__":
    main()
