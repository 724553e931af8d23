"""CPU per message and per event of each runner step, on a capture of the simulator.

Used by ``python -m bench.stages --capture DIR``. The capture (``bench.sim_capture``) is replayed
in receive order through fresh feeds (one per exchange, as the collectors hold them), the
feeds' output goes through :class:`Stages` in batches (as the runner's stage loop takes them),
and the stages' output through the PostgreSQL COPY text encoders and the Redis queuing of the
live writers (into a pipeline that only counts commands). Each step is timed with
``time.process_time`` (CPU of this process), the best of ``rounds``; sub-steps of
:meth:`Stages.process` are timed by wrapping the stage objects' methods.

Only public names that exist on main are used, so the same file A/B-tests a branch against main
(``PYTHONPATH=/path/to/main/src``).
"""

from __future__ import annotations

import argparse
import functools
import os
import pickle
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from tickvault.config import CacheSettings
from tickvault.exchanges.base import FeedOutput, get_adapter
from tickvault.exchanges.capture import CaptureRecord, read_capture
from tickvault.exchanges.io.instruments import pick
from tickvault.model import DecodeError, Gap, Instrument, MarketEvent
from tickvault.runner.feeds import FULL_BOOK_DEPTH, FULL_BOOK_VENUES
from tickvault.runner.stages import StageConfig, Stages
from tickvault.storage import redis_cache
from tickvault.storage.postgres.rows import EVENT_TABLES, SPECS
from tickvault.storage.redis_keys import Keys

BATCH_EVENTS = 500  # events per Stages.process call (the collectors hand over up to 500)


def _instruments(exchange: str, records: list[CaptureRecord]) -> list[Instrument]:
    adapter = get_adapter(exchange)
    for record in records:
        if record.kind == "rest":
            try:
                listed = adapter.parse_instruments(record.raw)
            except Exception:
                continue
            if listed:
                return listed
    raise SystemExit(f"no instrument list in the {exchange} capture")


def load(folder: Path) -> dict[str, tuple[list[Instrument], list[CaptureRecord]]]:
    out: dict[str, tuple[list[Instrument], list[CaptureRecord]]] = {}
    for path in sorted(folder.glob("*.jsonl*")):
        exchange = path.name.split("-", 1)[0]
        records = list(read_capture(path, strict=False))
        out.setdefault(exchange, ([], []))[1].extend(records)
    for exchange, (instruments, records) in out.items():
        instruments.extend(_instruments(exchange, records))
    return out


def _rest_symbol(exchange: str, listed: list[Instrument], url: str) -> str | None:
    query = parse_qs(urlparse(url).query)
    names = query.get("symbol") or query.get("pair")
    if not names:
        return None
    return pick(exchange, listed, names[:1])[0].symbol


def replay_feed(
    exchange: str, instruments: list[Instrument], records: list[CaptureRecord]
) -> tuple[float, int, list[tuple[int, FeedOutput]]]:
    """CPU seconds of the feed over the WebSocket messages, their count, and the outputs."""
    feed = get_adapter(exchange).new_feed(
        instruments, FULL_BOOK_DEPTH if exchange in FULL_BOOK_VENUES else 10
    )
    outputs: list[tuple[int, FeedOutput]] = []
    cpu = 0.0
    messages = 0
    clock = time.process_time
    for record in records:
        if record.kind == "ws":
            start = clock()
            out = feed.on_message(record.raw, record.ts_ns)
            cpu += clock() - start
            messages += 1
        else:
            symbol = _rest_symbol(exchange, instruments, record.url)
            if symbol is None:
                continue
            out = feed.on_rest_snapshot(symbol, record.raw, record.ts_ns)
        outputs.append((record.ts_ns, out))
    return cpu, messages, outputs


@dataclass
class Batch:
    now_ns: int
    events: list[MarketEvent] = field(default_factory=list)
    errors: list[DecodeError] = field(default_factory=list)
    gaps: list[Gap] = field(default_factory=list)


def batches(outputs: list[tuple[int, FeedOutput]], size: int = BATCH_EVENTS) -> Iterator[Batch]:
    current = Batch(0)
    for recv_ns, out in sorted(outputs, key=lambda item: item[0]):
        current.now_ns = recv_ns
        current.events.extend(out.events)
        current.errors.extend(out.errors)
        current.gaps.extend(out.gaps)
        if len(current.events) >= size:
            yield current
            current = Batch(recv_ns)
    if current.events or current.errors or current.gaps:
        yield current


class _Timed:
    """Wraps a bound method; adds its CPU time to ``totals[name]``."""

    def __init__(self, totals: dict[str, float], name: str, method: Callable[..., Any]) -> None:
        self.totals, self.name, self.method = totals, name, method
        totals.setdefault(name, 0.0)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        start = time.process_time()
        try:
            return self.method(*args, **kwargs)
        finally:
            self.totals[self.name] += time.process_time() - start


def _instrument(stages: Stages, totals: dict[str, float]) -> None:
    targets: list[tuple[Any, str, str]] = [
        (stages.validator, "validate", "validate"),
        (stages.quality, "observe_validation", "quality.observe_validation"),
        (stages, "_transform", "transform (all)"),
        (stages.deriver, "add_trades", "  candles.add_trades"),
        (stages.books, "update", "  books.update"),
        (stages.reconciler, "add", "  reconcile.add"),
        (stages.indicators, "update", "  indicators.update"),
    ]
    for owner, attr, name in targets:
        setattr(owner, attr, _Timed(totals, name, getattr(owner, attr)))


class _CountingPipe:
    """Takes every queued command and drops it (what a Redis pipeline does before execute)."""

    def __init__(self) -> None:
        self.commands = 0

    def __getattr__(self, name: str) -> Callable[..., None]:
        def queue(*args: Any, **kwargs: Any) -> None:
            self.commands += 1

        return queue


@dataclass
class StageRun:
    events: int = 0
    market: int = 0
    cpu: dict[str, float] = field(default_factory=dict)


def run_stages(stage_batches: list[Batch]) -> StageRun:
    stages = Stages(StageConfig())
    run = StageRun()
    _instrument(stages, run.cpu)
    clock = time.process_time
    cpu = run.cpu
    for name in ("Stages.process", "postgres COPY text", "redis queue"):
        cpu[name] = 0.0
    keys, settings = Keys("tv"), CacheSettings()
    pipe = _CountingPipe()
    for batch in stage_batches:
        start = clock()
        out, _ = stages.process(batch.events, batch.errors, batch.gaps, batch.now_ns)
        cpu["Stages.process"] += clock() - start
        run.events += len(batch.events)
        run.market += len(out.market)
        start = clock()
        tables: dict[str, list[Any]] = {}
        for event in out.market:
            table = EVENT_TABLES.get(type(event))
            if table is not None:
                tables.setdefault(table, []).append(event)
        for table, rows in tables.items():
            SPECS[table].encode(rows)
        cpu["postgres COPY text"] += clock() - start
        start = clock()
        redis_cache._queue_events(pipe, keys, settings, out.market)
        cpu["redis queue"] += clock() - start
    return run


def replay_report(folder: Path, rounds: int = 3) -> str:
    captured = load(folder)
    lines = [f"capture {folder}: best of {rounds} rounds, CPU µs (process_time)"]
    outputs: list[tuple[int, FeedOutput]] = []
    total_messages = 0
    total_feed_cpu = 0.0
    for exchange, (instruments, records) in sorted(captured.items()):
        best = None
        for _ in range(rounds):
            cpu, messages, outs = replay_feed(exchange, instruments, records)
            best = cpu if best is None else min(best, cpu)
        assert best is not None
        events = sum(len(o.events) for _, o in outs)
        errors = sum(len(o.errors) for _, o in outs)
        outputs.extend(outs)
        total_messages += messages
        total_feed_cpu += best
        lines.append(
            f"feed {exchange:<9} {messages:>7,} msgs {events:>8,} events {errors:>4} errors"
            f"  {best / max(messages, 1) * 1e6:8.2f} µs/msg  {best / max(events, 1) * 1e6:7.2f} µs/event"
        )
    stage_batches = list(batches(outputs))
    runs = [run_stages(stage_batches) for _ in range(rounds)]
    best_run = min(runs, key=lambda r: r.cpu["Stages.process"])
    events = best_run.events
    lines.append(
        f"stages: {events:,} events in {len(stage_batches)} batches -> {best_run.market:,} to store"
    )
    for name in best_run.cpu:
        value = min(r.cpu[name] for r in runs)
        lines.append(f"  {name:<28} {value / max(events, 1) * 1e6:8.3f} µs/event")
    per_msg = (
        total_feed_cpu
        + min(r.cpu["Stages.process"] for r in runs)
        + min(r.cpu["postgres COPY text"] for r in runs)
        + min(r.cpu["redis queue"] for r in runs)
    ) / max(total_messages, 1)
    lines.append(f"feeds + stages + encoders: {per_msg * 1e6:.2f} µs per WebSocket message")
    return "\n".join(lines)


# --- output identity ----------------------------------------------------------------------
#
# ``python -m bench.stage_replay DIR --digest [--broken SEED]`` runs the stages over the capture
# (every batch, as run_stages does) and prints a SHA-256 of everything they hand on: the stored
# market events, features, signals, quarantine records, gaps, findings, the batch counters, the
# COPY text of every table and the Redis commands queued. Run it with main's source
# (``PYTHONPATH=/path/to/main/src:.``) and a branch's: equal digests mean equal output. With
# ``--broken SEED`` a seeded share of the trades is spoiled first (bad prices and sizes, NaN,
# duplicates, regressing ids, outliers, future and stale times, missing fields) so that the
# rejection paths and their quarantine records are covered too.


class _RecordingPipe:
    """Keeps every queued command (name, arguments) in order."""

    def __init__(self) -> None:
        self.commands: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []

    def __getattr__(self, name: str) -> Callable[..., None]:
        def queue(*args: Any, **kwargs: Any) -> None:
            self.commands.append((name, args, kwargs))

        return queue


def spoil(stage_batches: list[Batch], seed: int, share: float = 0.02) -> list[Batch]:
    """A copy of the batches with ``share`` of the trades spoiled, reproducibly."""
    import random
    from decimal import Decimal

    import msgspec

    from tickvault.model import Trade

    rng = random.Random(seed)
    spoiled: list[Batch] = []
    for batch in stage_batches:
        events: list[Any] = []
        for event in batch.events:
            if type(event) is not Trade or rng.random() >= share:
                events.append(event)
                continue
            replace = msgspec.structs.replace
            how = rng.randrange(12)
            if how == 0:
                events.append(replace(event, price=-event.price))
            elif how == 1:
                events.append(replace(event, size=Decimal(0)))
            elif how == 2:
                events.append(replace(event, price=Decimal("NaN")))
            elif how == 3:
                events.append(replace(event, size=Decimal("Infinity")))
            elif how == 4:
                events.extend((event, event))  # duplicate
            elif how == 5 and event.trade_id.isdigit():
                events.append(replace(event, trade_id=str(max(int(event.trade_id) - 50, 0))))
            elif how == 6:
                events.append(replace(event, price=event.price * Decimal("1.3")))
            elif how == 7:
                events.append(replace(event, ts_ns=event.ts_ns + 3600 * 10**9))
            elif how == 8:
                events.append(replace(event, ts_ns=10**15))
            elif how == 9:
                events.append(replace(event, trade_id=""))
            elif how == 10:
                events.append(replace(event, price=float(event.price)))
            else:
                events.append(replace(event, trade_id=f"x{event.trade_id}"))
        spoiled.append(Batch(batch.now_ns, events, list(batch.errors), list(batch.gaps)))
    return spoiled


def output_digest(stage_batches: list[Batch]) -> tuple[str, dict[str, int]]:
    """SHA-256 of the stages' and encoders' whole output over the batches, and a few totals."""
    import hashlib

    import msgspec

    encode = msgspec.json.Encoder(decimal_format="string").encode
    digest = hashlib.sha256()
    stages = Stages(StageConfig())
    keys, settings = Keys("tv"), CacheSettings()
    totals = {"events": 0, "market": 0, "quarantine": 0, "features": 0, "signals": 0,
              "redis commands": 0}  # fmt: skip

    def put(value: object) -> None:
        try:
            digest.update(encode(value))
        except (TypeError, msgspec.EncodeError):
            digest.update(repr(value).encode())
        digest.update(b"\x00")

    batches_then_finish = [*stage_batches, None]
    for batch in batches_then_finish:
        if batch is None:
            out, counts = stages.finish(stage_batches[-1].now_ns if stage_batches else 0)
        else:
            out, counts = stages.process(batch.events, batch.errors, batch.gaps, batch.now_ns)
            totals["events"] += len(batch.events)
        for name in ("market", "features", "signals", "quarantine", "gaps", "findings"):
            put(getattr(out, name))
        for name in ("collected", "validated", "transformed", "rejects", "gaps"):
            put(sorted((repr(k), v) for k, v in getattr(counts, name).items()))
        tables: dict[str, list[Any]] = {}
        for event in out.market:
            table = EVENT_TABLES.get(type(event))
            if table is not None:
                tables.setdefault(table, []).append(event)
        for table, rows in sorted(tables.items()):
            digest.update(table.encode())
            digest.update(SPECS[table].encode(rows))
        pipe = _RecordingPipe()
        redis_cache._queue_events(pipe, keys, settings, out.market)  # type: ignore[arg-type]
        put([repr(command) for command in pipe.commands])
        totals["market"] += len(out.market)
        totals["quarantine"] += len(out.quarantine)
        totals["features"] += len(out.features)
        totals["signals"] += len(out.signals)
        totals["redis commands"] += len(pipe.commands)
    put(sorted(stages.validator.totals.items()))
    put([repr(score) for score in stages.quality_scores(stage_batches[-1].now_ns)])
    return digest.hexdigest(), totals


# --- instruction counts (callgrind) -----------------------------------------------------------
#
# CPU time on a shared machine varies by tens of percent from run to run; instruction counts do
# not. ``python -m bench.stage_replay DIR --callgrind`` runs each step in its own process under
# ``valgrind --tool=callgrind``, collecting only inside ``functools.reduce`` (the measured step
# is called through it, nothing else is), and prints instructions per message or event. Give
# ``--ab OTHER_SRC`` to run the same steps on another source tree (e.g. main's) in the same go.

STEPS = ("feed:binance", "feed:coinbase", "feed:kraken", "validate", "quality", "stages",
         "postgres", "redis")  # fmt: skip


def _measured(work: Callable[[], object]) -> None:
    functools.reduce(lambda _, __: work(), [0], None)


def _stage_batches(folder: Path, limit: int) -> list[Batch]:
    """The stages' input batches (the first ``limit`` events), decoded once and kept beside the
    capture in ``stage-batches-<limit>.pickle``: valgrind then need not run the feeds too."""
    cached = folder / f"stage-batches-{limit}.pickle"
    if cached.exists():
        loaded: list[Batch] = pickle.loads(cached.read_bytes())
        return loaded
    outputs: list[tuple[int, FeedOutput]] = []
    for exchange, (instruments, records) in sorted(load(folder).items()):
        outputs.extend(replay_feed(exchange, instruments, records)[2])
    stage_batches: list[Batch] = []
    events = 0
    for batch in batches(outputs):
        if events >= limit:
            break
        stage_batches.append(batch)
        events += len(batch.events)
    cached.write_bytes(pickle.dumps(stage_batches))
    return stage_batches


def run_step(folder: Path, step: str, limit: int) -> int:
    """Run one step (collected under callgrind); returns how many messages or events it took."""
    if step.startswith("feed:"):
        captured = load(folder)
        exchange = step[5:]
        instruments, records = captured[exchange]
        ws = [r for r in records if r.kind == "ws"][:limit]
        rest = [r for r in records if r.kind == "rest"]
        feed = get_adapter(exchange).new_feed(
            instruments, FULL_BOOK_DEPTH if exchange in FULL_BOOK_VENUES else 10
        )
        for record in rest:
            symbol = _rest_symbol(exchange, instruments, record.url)
            if symbol is not None:
                feed.on_rest_snapshot(symbol, record.raw, record.ts_ns)

        def feed_all() -> None:
            on_message = feed.on_message
            for record in ws:
                on_message(record.raw, record.ts_ns)

        _measured(feed_all)
        return len(ws)
    stage_batches = _stage_batches(folder, limit)
    events = sum(len(b.events) for b in stage_batches)
    stages = Stages(StageConfig())
    if step == "validate":
        validator = stages.validator
        _measured(lambda: [validator.validate(b.events, b.now_ns) for b in stage_batches])
        return events
    if step == "quality":
        results = [stages.validator.validate(b.events, b.now_ns) for b in stage_batches]
        quality = stages.quality

        def observe_all() -> None:
            for result, batch in zip(results, stage_batches, strict=True):
                quality.observe_validation(result, batch.now_ns)

        _measured(observe_all)
        return events
    if step == "stages":
        _measured(
            lambda: [stages.process(b.events, b.errors, b.gaps, b.now_ns) for b in stage_batches]
        )
        return events
    markets = [
        stages.process(b.events, b.errors, b.gaps, b.now_ns)[0].market for b in stage_batches
    ]
    if step == "postgres":

        def encode_all() -> None:
            for market in markets:
                tables: dict[str, list[Any]] = {}
                for event in market:
                    table = EVENT_TABLES.get(type(event))
                    if table is not None:
                        tables.setdefault(table, []).append(event)
                for table, rows in tables.items():
                    SPECS[table].encode(rows)

        _measured(encode_all)
        return events
    if step == "redis":
        keys, settings, pipe = Keys("tv"), CacheSettings(), _CountingPipe()
        _measured(lambda: [redis_cache._queue_events(pipe, keys, settings, m) for m in markets])
        return events
    raise SystemExit(f"unknown step {step!r}; steps: {', '.join(STEPS)}")


def _callgrind(src: str, folder: Path, step: str, limit: int) -> tuple[int, int]:
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "PYTHONPATH": f"{src}{os.pathsep}{Path(__file__).parents[1]}"}
        done = subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={tmp}/cg.out",
             "--toggle-collect=functools_reduce", sys.executable, "-m", "bench.stage_replay",
             str(folder), "--step", step, "--limit", str(limit)],
            env=env, capture_output=True, text=True, check=True,
        )  # fmt: skip
    collected = re.search(r"Collected : (\d+)", done.stderr)
    count = re.search(r"^count (\d+)$", done.stdout, re.MULTILINE)
    if collected is None or count is None:
        raise SystemExit(f"{step}: no callgrind result\n{done.stdout}\n{done.stderr[-2000:]}")
    return int(collected.group(1)), int(count.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description="instructions per step (see module docstring)")
    parser.add_argument("capture", type=Path)
    parser.add_argument("--step", help="run one step (what --callgrind runs under valgrind)")
    parser.add_argument("--limit", type=int, default=20_000, help="messages / events per step")
    parser.add_argument("--callgrind", action="store_true")
    parser.add_argument("--steps", default=",".join(STEPS))
    parser.add_argument("--ab", help="another source tree to measure alongside (e.g. main/src)")
    parser.add_argument("--digest", action="store_true", help="SHA-256 of the stages' output")
    parser.add_argument("--broken", type=int, help="with --digest: spoil trades with this seed")
    args = parser.parse_args()
    if args.digest:
        stage_batches = _stage_batches(args.capture, args.limit)
        if args.broken is not None:
            stage_batches = spoil(stage_batches, args.broken)
        hexdigest, totals = output_digest(stage_batches)
        print(hexdigest, " ".join(f"{k}={v}" for k, v in totals.items()))
        return
    if args.step:
        print(f"count {run_step(args.capture, args.step, args.limit)}")
        return
    if not args.callgrind:
        print(replay_report(args.capture))
        return
    _stage_batches(args.capture, args.limit)  # decoded here, not under valgrind
    trees = [("this", str(Path(__file__).parents[1] / "src"))]
    if args.ab:
        trees.insert(0, ("other", args.ab))
    for step in args.steps.split(","):
        cells = []
        for name, src in trees:
            instructions, count = _callgrind(src, args.capture, step, args.limit)
            cells.append(f"{name} {instructions / max(count, 1):>9,.0f}")
        unit = "msg" if step.startswith("feed:") else "event"
        print(f"{step:<14} Ir/{unit:<5} " + "   ".join(cells), flush=True)


if __name__ == "__main__":
    main()
