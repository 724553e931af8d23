"""Backfill: paging, checkpoints after every page, resume == uninterrupted run."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from io_testkit import MS, ToyAdapter, ToyHistoryServer, instrument

from conftest import Serve
from tickvault.errors import ExchangeError, UsageError
from tickvault.exchanges.io.backfill import Backfiller, TaskProgress, closed_until_ns, validate_kind
from tickvault.exchanges.io.counters import IoCounters
from tickvault.exchanges.io.instruments import fetch_instruments
from tickvault.exchanges.io.policy import RestPolicy
from tickvault.exchanges.io.ratelimit import LocalBudget
from tickvault.exchanges.io.rest import RestClient
from tickvault.exchanges.io.sinks import CheckpointStore
from tickvault.exchanges.io.stores import MemoryCheckpoints, MemorySink, RedisCheckpoints
from tickvault.model import MarketEvent

SINCE_NS = int(datetime(2024, 1, 1, tzinfo=UTC).timestamp()) * 1_000_000_000
UNTIL_NS = SINCE_NS + 60 * 60 * 1_000_000_000  # one hour: 60 candles, 180 trades per symbol
SYMBOLS = ["AAA-USD", "BBB-USD"]
KINDS = ["candles:1m", "trades"]
POLICY = RestPolicy(
    limit=10_000, window_s=1.0, max_retries=1, backoff_base_s=0.01, backoff_cap_s=0.02
)


def rest(url: str) -> RestClient:
    return RestClient("toy", url, LocalBudget("toy", 10_000, 1.0), POLICY, counters=IoCounters())


def content(events: dict[object, MarketEvent]) -> list[tuple[object, ...]]:
    """Rows without their receive time (which differs between runs), sorted."""
    return sorted(
        tuple(getattr(e, name) for name in e.__struct_fields__ if name != "recv_ns")
        for e in events.values()
    )


async def backfill(
    url: str,
    sink: MemorySink,
    checkpoints: CheckpointStore,
    until_ns: int = UNTIL_NS,
    progress: list[TaskProgress] | None = None,
) -> list[TaskProgress]:
    reports = progress if progress is not None else []
    async with rest(url) as client:
        adapter = ToyAdapter(page_rows=10)
        instruments = await fetch_instruments(adapter, client, SYMBOLS)
        runner = Backfiller(
            adapter,
            client,
            sink,
            checkpoints,
            progress=lambda p: reports.append(_copy(p)),
            concurrency=2,
        )
        return await runner.run(instruments, KINDS, SINCE_NS, until_ns)


def _copy(progress: TaskProgress) -> TaskProgress:
    return TaskProgress(**{name: getattr(progress, name) for name in TaskProgress.__slots__})  # type: ignore[attr-defined]


async def test_uninterrupted_run_pages_through_everything(serve_app: Serve) -> None:
    server = ToyHistoryServer()
    url = await serve_app(server.app())
    sink, checkpoints = MemorySink(), MemoryCheckpoints()
    reports: list[TaskProgress] = []
    results = await backfill(url, sink, checkpoints, progress=reports)
    candles = [e for e in sink.written if e.symbol == "AAA-USD" and hasattr(e, "open_ns")]
    assert [c.open_ns for c in candles] == [SINCE_NS + i * 60_000 * MS for i in range(60)]  # type: ignore[attr-defined]
    assert len(sink.written) == len(sink.rows) == 2 * (60 + 180)  # nothing twice
    assert {(r.symbol, r.kind, r.rows, r.done) for r in results} == {
        (s, k, 60 if k != "trades" else 180, True) for s in SYMBOLS for k in KINDS
    }
    # a checkpoint after every page (the last one of each stream comes back empty), a flush
    # before each checkpoint of a page that had rows
    assert checkpoints.saves == len(server.log) == 2 * (6 + 18) + 4
    assert sink.flushes == 2 * (6 + 18)
    for symbol in SYMBOLS:
        for kind in KINDS:
            fractions = [r.fraction for r in reports if r.symbol == symbol and r.kind == kind]
            assert fractions == sorted(fractions) and fractions[-1] == 1.0


async def test_resume_after_an_outage_gives_the_same_rows(serve_app: Serve, redis_url: str) -> None:
    server = ToyHistoryServer()
    url = await serve_app(server.app())
    reference = MemorySink()
    await backfill(url, reference, MemoryCheckpoints())
    pages_total = len(server.log)

    server.log.clear()
    server.fail_after = 17  # the exchange goes down mid-run
    sink = MemorySink()
    checkpoints = RedisCheckpoints(redis_url)
    with pytest.raises(ExchangeError, match="HTTP 500"):
        await backfill(url, sink, checkpoints)
    before = list(server.log)
    assert 0 < len(sink.rows) < len(reference.rows)

    server.heal()
    server.log.clear()
    again = RedisCheckpoints(redis_url)  # a new process: state comes from Redis only
    await backfill(url, sink, again)
    assert content(sink.rows) == content(reference.rows)
    # every page fetched exactly once across both runs: the resume asked for what came next
    assert sorted(before + server.log) == sorted(set(before + server.log))
    assert len(before) + len(server.log) == pages_total
    await checkpoints.aclose()
    await again.aclose()


class Crash(Exception):
    """Stands for the process dying."""


class CrashAfterWrite(MemorySink):
    """Dies between writing a page and its checkpoint (the worst moment)."""

    def __init__(self, crash_at_flush: int) -> None:
        super().__init__()
        self.crash_at_flush = crash_at_flush

    async def flush(self) -> None:
        await super().flush()
        if self.flushes == self.crash_at_flush:
            raise Crash


async def test_crash_between_write_and_checkpoint_rewrites_one_page(serve_app: Serve) -> None:
    server = ToyHistoryServer()
    url = await serve_app(server.app())
    reference = MemorySink()
    await backfill(url, reference, MemoryCheckpoints())

    sink, checkpoints = CrashAfterWrite(crash_at_flush=5), MemoryCheckpoints()
    with pytest.raises(Crash):
        await backfill(url, sink, checkpoints)
    written_before = len(sink.written)
    sink.crash_at_flush = -1
    await backfill(url, sink, checkpoints)
    assert content(sink.rows) == content(reference.rows)
    # only the page in flight at the crash was written twice, and idempotent rows absorb it
    duplicates = len(sink.written) - len(reference.written)
    assert 0 < duplicates <= 10 and written_before > 0


async def test_completed_range_is_skipped_then_extended(serve_app: Serve) -> None:
    server = ToyHistoryServer()
    url = await serve_app(server.app())
    sink, checkpoints = MemorySink(), MemoryCheckpoints()
    half_ns = SINCE_NS + 30 * 60 * 1_000_000_000
    await backfill(url, sink, checkpoints, until_ns=half_ns)
    server.log.clear()
    results = await backfill(url, sink, checkpoints, until_ns=half_ns)
    assert server.log == [] and all(r.skipped for r in results)
    await backfill(url, sink, checkpoints, until_ns=UNTIL_NS)
    assert min(start for _, _, start in server.log) == half_ns // MS  # only the new half
    reference = MemorySink()
    await backfill(url, reference, MemoryCheckpoints())
    assert content(sink.rows) == content(reference.rows)


async def test_unknown_symbol_and_kind_are_usage_errors(serve_app: Serve) -> None:
    url = await serve_app(ToyHistoryServer().app())
    async with rest(url) as client:
        with pytest.raises(UsageError, match="does not list ZZZ-USD"):
            await fetch_instruments(ToyAdapter(), client, ["AAA-USD", "ZZZ-USD"])
    with pytest.raises(UsageError, match="unknown kind"):
        validate_kind("book")
    with pytest.raises(UsageError, match="unknown timeframe"):
        validate_kind("candles:7m")


def test_candles_stop_at_the_forming_bar() -> None:
    now_ns = SINCE_NS + 90 * 1_000_000_000  # 00:01:30
    assert closed_until_ns("candles:1m", UNTIL_NS, now_ns) == SINCE_NS + 60 * 1_000_000_000
    assert closed_until_ns("trades", UNTIL_NS, now_ns) == now_ns
    assert closed_until_ns("candles:1m", SINCE_NS, now_ns) == SINCE_NS
    assert instrument("AAA-USD").exchange_symbol == "AAAUSD"
