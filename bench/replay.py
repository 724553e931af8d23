"""Replay throughput: tickvault vs cryptofeed's parsers on the same messages, per exchange.

Run: ``.venv/bin/python -m bench.replay [--messages 20000] [--rounds 3] [--cryptofeed PY]
[--exchanges kraken,...]``.

Messages: ``bench/replay_streams.py`` builds a larger realistic stream per exchange from the
real fixtures (see its docstring), written as capture files to a temporary folder. Both sides
then process exactly those WebSocket messages, timed from raw text to an up-to-date book:

* tickvault: ``FeedState.on_message`` (decode, events, book maintenance, sequence, crossed-book
  and checksum checks, always on) in a subprocess of the project venv; the whole
  ``tickvault.exchanges.replay`` engine (reading the file, routing, counting) is timed as well.
* cryptofeed: its exchange classes' ``message_handler`` with crossed-book checks and Kraken
  checksums on (``bench/replay_cryptofeed.py``), in a subprocess of a separate venv, because
  cryptofeed is no dependency of tickvault. Create it once::

      python3 -m venv /tmp/cfv && /tmp/cfv/bin/pip install uv
      /tmp/cfv/bin/uv pip install --python /tmp/cfv/bin/python cryptofeed

Same process settings on both sides (CPython 3.11, one fresh process per exchange, best of
``--rounds`` on a fresh feed), timed in CPU time of the process (``time.process_time``), so a
busy shared machine slows both sides' figures less than wall time would. The final best bid/ask of every book must agree between the two
sides, which shows that both did the same work. The goal is tickvault >= 5x cryptofeed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import msgspec

from tickvault.exchanges.base import get_adapter
from tickvault.exchanges.capture import read_capture
from tickvault.exchanges.replay import Replay

ROOT = Path(__file__).parents[1]
EXCHANGES = ("binance", "coinbase", "kraken")


def measure_tickvault(exchange: str, path: Path, rounds: int) -> dict[str, Any]:
    """Feed-level timing on preloaded messages, plus the replay engine on the file."""
    adapter = get_adapter(exchange)
    records = list(read_capture(path))
    instruments = adapter.parse_instruments(records[0].raw)
    body = records[1:]

    def feed_once(fast_path: bool, digest: Any = None) -> tuple[Any, dict[str, int], float]:
        feed = adapter.new_feed(instruments, 10)
        feed.fast_path = fast_path
        on_message, on_rest = feed.on_message, feed.on_rest_snapshot
        counts: dict[str, int] = {}
        start = time.process_time()
        for record in body:
            if record.kind == "ws":
                out = on_message(record.raw, record.ts_ns)
            else:  # Binance REST depth snapshot
                symbol = record.url.split("symbol=")[1].split("&")[0]
                out = on_rest(symbol, record.raw, record.ts_ns)
            for event in out.events:
                name = type(event).__name__
                counts[name] = counts.get(name, 0) + 1
            if digest is not None:
                digest.update(msgspec.json.encode([out.events, out.errors, out.gaps]))
        return feed, counts, time.process_time() - start

    best = float("inf")
    for _ in range(rounds):
        feed, counts, seconds = feed_once(True)
        best = min(best, seconds)
    # The general decoders (fast paths off), timed once: what the fast paths gain. Then both
    # paths again, hashing everything they emit: they must be byte-identical.
    general_seconds = feed_once(False)[2]
    fast_digest, general_digest = hashlib.sha256(), hashlib.sha256()
    feed_once(True, fast_digest)
    feed_once(False, general_digest)
    assert fast_digest.digest() == general_digest.digest(), "fast path and decoder differ"
    counters = feed.counters
    assert counters.decode_errors == counters.sequence_gaps == counters.checksum_failures == 0
    assert counters.crossed_books == 0, "the stream must keep every book valid"
    top = {
        symbol: [list(level) for level in (*bids[:1], *asks[:1])]
        for symbol, (bids, asks) in feed.books().items()
    }
    engine_best = float("inf")
    for _ in range(rounds):
        start = time.process_time()
        Replay(book_depth=10).run([path])
        engine_best = min(engine_best, time.process_time() - start)
    messages = sum(1 for r in body if r.kind == "ws")
    return {"messages": messages, "seconds": best, "engine_seconds": engine_best,
            "general_seconds": general_seconds, "counts": counts, "top": top}  # fmt: skip


def _subprocess(argv: list[str]) -> dict[str, Any]:
    done = subprocess.run(argv, capture_output=True, text=True, check=False, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"{argv[0]} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cryptofeed", default="/tmp/cfv/bin/python", help="its venv's python")
    parser.add_argument("--exchanges", default=",".join(EXCHANGES), help="comma-separated subset")
    parser.add_argument("--side", choices=["tickvault"], help=argparse.SUPPRESS)
    parser.add_argument("--exchange", help=argparse.SUPPRESS)
    parser.add_argument("--file", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side == "tickvault":  # the child process
        print(json.dumps(measure_tickvault(args.exchange, args.file, args.rounds)))
        return

    from bench.replay_streams import write_streams

    print(f"{args.messages} messages per exchange, best of {args.rounds}")
    header = (f"{'exchange':<9} {'tickvault msg/s':>16} {'(engine)':>10} {'(general)':>10} "
              f"{'cryptofeed msg/s':>17} {'ratio':>6}")  # fmt: skip
    print(header)
    ratios = []
    with tempfile.TemporaryDirectory(prefix="tv-replay-bench-") as folder:
        paths = write_streams(Path(folder), args.messages)
        for exchange in args.exchanges.split(","):
            path = paths[exchange]
            tv = _subprocess([sys.executable, "-m", "bench.replay", "--side", "tickvault",
                              "--exchange", exchange, "--file", str(path),
                              "--rounds", str(args.rounds)])  # fmt: skip
            cf = _subprocess([args.cryptofeed, str(ROOT / "bench" / "replay_cryptofeed.py"),
                              exchange, str(path), str(args.rounds)])  # fmt: skip
            if tv["top"] != cf["top"]:
                raise SystemExit(f"{exchange}: final books differ:\n{tv['top']}\n{cf['top']}")
            assert tv["messages"] == cf["messages"]
            tv_rate = tv["messages"] / tv["seconds"]
            engine_rate = tv["messages"] / tv["engine_seconds"]
            general_rate = tv["messages"] / tv["general_seconds"]
            cf_rate = cf["messages"] / cf["seconds"]
            ratios.append(tv_rate / cf_rate)
            print(f"{exchange:<9} {tv_rate:>16,.0f} {engine_rate:>10,.0f} {general_rate:>10,.0f} "
                  f"{cf_rate:>17,.0f} "
                  f"{tv_rate / cf_rate:>5.2f}x")  # fmt: skip
            print(f"  events tickvault {tv['counts']}; cryptofeed callbacks {cf['counts']}")
    print(
        f"cryptofeed {cf['version']}; goal >= 5x on every exchange: "
        f"{'met' if min(ratios) >= 5 else 'NOT met'} (lowest {min(ratios):.2f}x)"
    )


if __name__ == "__main__":
    main()
