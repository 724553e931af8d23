"""``tickvault run``: collectors → validate → transform → quality → PostgreSQL + Redis, one process.

::

    collectors (one per exchange, bounded queue each)
        │ IngestSink: one await per batch
        ▼
    ingest queue (bounded) ──► stage task: Stages.process(batch)  (validate, candles, books,
        │                                    reconcile, indicators, signals, quality)
        ▼ WriteItem per batch                         quality task: scores every N s
    PostgreSQL writer (bounded queue → ResilientSink(PostgresSink))
    Redis writer      (bounded queue → ResilientSink(RedisSink))

Every queue is bounded, so a slow sink slows the stages, which slow the collectors, which stop
reading their sockets. :meth:`Runner.stop` (SIGINT/SIGTERM in the CLI) drains front to back:
collectors stop and hand over what they hold, the stage task processes everything queued and
emits forming bars and books, final quality scores are computed, each writer writes what is
queued, and a sink still down keeps its backlog in spill files for the next start.

Extension points: :meth:`Runner.add_task` runs a coroutine (a ``GapRepairer``, a backfill)
with a :class:`RunContext` giving it the store, the cache, the feeds' REST clients and
``submit`` to push repaired history through the same stages.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tickvault.config import Settings
from tickvault.exchanges.io import WsPolicy
from tickvault.model import MarketEvent
from tickvault.monitoring.metrics import Metrics, get_metrics
from tickvault.pipeline.records import QualityScore
from tickvault.runner.feeds import Feed, IngestItem, IngestSink, close_feeds, open_feeds
from tickvault.runner.latency import LatencyTrace
from tickvault.runner.repair import run_repairs
from tickvault.runner.repair_outlet import RepairOutlet, RunnerOutlet
from tickvault.runner.routing import score_row, split
from tickvault.runner.sinks import PostgresSink, RedisSink, WriteItem, Writer
from tickvault.runner.spill import ResilientSink, adopt_spills
from tickvault.runner.stages import BatchCounts, StageConfig, StageOutput, Stages
from tickvault.runner.stats import RunStats, publish_batch, publish_io
from tickvault.storage.postgres import PostgresStore
from tickvault.storage.postgres.schema import init_database
from tickvault.storage.redis_cache import AsyncRedisCache
from tickvault.storage.urls import StorageUrls, resolve_urls

log = logging.getLogger(__name__)


@dataclass
class RunOptions:
    duration_s: float | None = None  # stop by itself after this long
    spill_dir: Path | None = None  # default: <data_dir>/spill
    quality_interval_s: float = 10.0
    ingest_queue_items: int = 256
    # Events per stage batch at most (~16 ms of stage work): after a stall the backlog is worked
    # off in slices, each written before the next, instead of one long batch holding the loop.
    stage_batch_events: int = 2_000
    writer_queue_items: int = 64
    # How long a writer waits for more after the first queued batch. Redis is the hot path:
    # it writes at once, and what arrives while it writes makes the next batch. PostgreSQL
    # commits gather a little longer (fewer commits), well inside the 0.5 s freshness goal.
    postgres_linger_s: float = 0.1
    redis_linger_s: float = 0.0
    drain_timeout_s: float = 30.0  # a sink still down after this keeps its backlog on disk
    stages: StageConfig | None = None  # default: from settings (timeframes, indicators)
    ws_policies: dict[str, WsPolicy] = field(default_factory=dict)  # tests shorten timeouts
    trace_latency: bool = False  # benches: per-hop latency of every trade (runner.trace)
    # Start-up leaves ~100 000 long-lived objects (modules, settings, instruments) that every
    # full collection walked: a 0.1 s stall of the loop (0.4 s on a loaded machine) every few
    # seconds at high rates. Frozen once started, collections scan only what the run creates.
    freeze_gc: bool = True
    # ... and again once every stream's state exists (duplicate windows, bars, indicator and
    # quality windows are made on a stream's first events, after the start): a full collection
    # walked their 10^5 entries every time (~6 ms idle, 18 ms mean and 40 ms at worst under
    # load, every ~1.3 s at 16 000 msg/s). Each refreeze collects first; anything frozen is
    # collectable again after the run.
    refreeze_after_s: tuple[float, ...] = (10.0, 60.0)
    # Create or migrate the schema at start (False: someone did, as --workers' parent does
    # once for all; the store still checks the stored schema version when it opens).
    init_schema: bool = True


def _freeze() -> None:
    gc.collect()  # what is garbage now must not be frozen with the rest
    gc.freeze()


@dataclass
class RunContext:
    """What an added task gets: storage, cache, feeds, and the way into the stages."""

    settings: Settings
    urls: StorageUrls
    store: PostgresStore
    cache: AsyncRedisCache
    feeds: list[Feed]
    metrics: Metrics
    stopping: asyncio.Event
    submit: Callable[[Sequence[MarketEvent]], Awaitable[None]]
    outlet: RepairOutlet | None = None  # repaired history → Redis writer, live indicator state


TaskFactory = Callable[[RunContext], Coroutine[Any, Any, None]]


class Runner:
    def __init__(
        self,
        settings: Settings,
        options: RunOptions | None = None,
        *,
        metrics: Metrics | None = None,
    ) -> None:
        self.settings = settings
        self.options = options or RunOptions()
        self.metrics = metrics or get_metrics()
        self.stats = RunStats()
        self.stages = Stages(self.options.stages or stage_config(settings))
        self.ingest: asyncio.Queue[IngestItem | None] = asyncio.Queue(
            maxsize=self.options.ingest_queue_items
        )
        self.feeds: list[Feed] = []
        self.writers: list[Writer] = []
        self.store: PostgresStore | None = None
        self.cache: AsyncRedisCache | None = None
        self.urls: StorageUrls | None = None
        self.latest_scores: list[QualityScore] = []
        self.trace = LatencyTrace() if self.options.trace_latency else None
        self._stop = asyncio.Event()
        self._started = asyncio.Event()
        self._extra: list[tuple[str, TaskFactory]] = []
        if settings.repair.enabled:  # gap repair from REST (runner/repair.py)
            self.add_task("gap-repair", run_repairs)

    # -- control -----------------------------------------------------------------------------

    def stop(self) -> None:
        """Begin the drain (safe from a signal handler on the loop, and more than once)."""
        self._stop.set()

    def add_task(self, name: str, factory: TaskFactory) -> None:
        """Run ``factory(context)`` beside the pipeline; it should return once
        ``context.stopping`` is set (it is cancelled if still running after the collectors)."""
        self._extra.append((name, factory))

    async def wait_started(self) -> None:
        await self._started.wait()

    async def submit(self, events: Sequence[MarketEvent], *, backfill: bool = True) -> None:
        """Push events (repaired history) through the stages to storage."""
        await self.ingest.put(IngestItem(events=events, backfill=backfill))

    # -- the run -----------------------------------------------------------------------------

    async def run(self) -> RunStats:
        settings, options = self.settings, self.options
        self.urls = urls = await asyncio.to_thread(resolve_urls, settings)
        if options.init_schema:
            await asyncio.to_thread(init_database, urls.database_url, settings.timescale)
        self.store = store = await PostgresStore.open(
            urls.database_url, settings.writer, settings.timescale, timed_flush=False
        )
        self.cache = cache = AsyncRedisCache(urls.redis_url, settings.cache)
        spill_dir = options.spill_dir or settings.data_dir / "spill"
        # what a run with --workers left under this folder is replayed by this runner
        await asyncio.to_thread(adopt_spills, spill_dir, [spill_dir])
        pg_sink = ResilientSink(PostgresSink(store), spill_dir / "postgres")
        redis_sink = ResilientSink(RedisSink(cache), spill_dir / "redis")
        max_rows = min(settings.writer.batch_rows, 50_000)
        self.writers = [
            Writer(pg_sink, self.metrics, stage="write_postgres", backend="postgres",
                   queue_items=options.writer_queue_items, max_rows=max_rows,
                   linger_s=options.postgres_linger_s, track_freshness=True),
            Writer(redis_sink, self.metrics, stage="write_redis", backend="redis",
                   queue_items=options.writer_queue_items, max_rows=max_rows,
                   linger_s=options.redis_linger_s),
        ]  # fmt: skip
        for writer in self.writers:
            writer.trace = self.trace
        ingest = IngestSink(self.ingest)
        self.stats.ingest = ingest
        monitoring = None
        frozen = False
        refreezes: list[asyncio.TimerHandle] = []
        try:
            self.feeds = await open_feeds(
                settings, urls.redis_url, ingest, ws_policies=options.ws_policies
            )
            for feed in self.feeds:
                await store.upsert_instruments(feed.instruments)
                for symbol, channel in feed.streams:
                    self.metrics.declare_stream(feed.exchange, symbol, channel)
            if settings.metrics_port is not None:
                from tickvault.runner.serve import start_monitoring

                monitoring = await start_monitoring(self, settings.metrics_port, urls)
            log.info("started: %d feeds", len(self.feeds))
            if options.freeze_gc:
                _freeze()
                frozen = True
                loop = asyncio.get_running_loop()
                refreezes = [loop.call_later(t, _freeze) for t in options.refreeze_after_s]
            await self._run_tasks(urls, store, cache)
        finally:
            if frozen:
                for handle in refreezes:
                    handle.cancel()
                gc.unfreeze()  # collectable again once the run is over (tests, embedding)
            if monitoring is not None:
                await monitoring.stop()
            await close_feeds(self.feeds)
            for sink in (pg_sink, redis_sink):
                await sink.drain(timeout_s=options.drain_timeout_s)
                await sink.close()
            await cache.close()
            await store.close()
        return self.stats

    async def _run_tasks(
        self, urls: StorageUrls, store: PostgresStore, cache: AsyncRedisCache
    ) -> None:
        writer_tasks = [asyncio.create_task(w.run(), name=w.stage) for w in self.writers]
        stage_task = asyncio.create_task(self._stage_loop(), name="stages")
        quality_task = asyncio.create_task(self._quality_loop(), name="quality")
        monitor_task = asyncio.create_task(self._monitor_loop(), name="monitor")
        collectors = [
            asyncio.create_task(f.collector.run(), name=f"collect-{f.exchange}") for f in self.feeds
        ]
        outlet = RunnerOutlet(self.stages.indicators, self.writers[1].put)
        context = RunContext(
            self.settings,
            urls,
            store,
            cache,
            self.feeds,
            self.metrics,
            self._stop,
            self.submit,
            outlet,
        )
        extra = [asyncio.create_task(f(context), name=n) for n, f in self._extra]
        self.stats.started_s = time.monotonic()
        self._started.set()
        if self.options.duration_s is not None:
            asyncio.get_running_loop().call_later(self.options.duration_s, self.stop)
        stop_wait = asyncio.create_task(self._stop.wait())
        watched = {stop_wait, stage_task, *writer_tasks, *collectors, *extra}
        failure: BaseException | None = None
        try:
            done, _ = await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
            for task in done - {stop_wait}:
                if task.cancelled() or task.exception() is None:
                    continue
                failure = task.exception()
                log.error("%s failed: %s", task.get_name(), failure)
        finally:
            self._stop.set()
            stop_wait.cancel()
            # 1. collectors stop and hand over what they hold; added tasks finish or are cancelled
            for feed in self.feeds:
                feed.collector.stop()
            log.info("draining: collectors")
            await _settle(collectors, timeout_s=10.0)
            await _settle(extra, timeout_s=5.0)
            log.info("draining: stages")
            # 2. the stages process everything queued, then emit what they still hold
            if not stage_task.done():
                await self.ingest.put(None)
            await _settle([stage_task], timeout_s=None)
            quality_task.cancel()
            monitor_task.cancel()
            await _settle([quality_task, monitor_task], timeout_s=None)
            if not stage_task.cancelled() and stage_task.exception() is None:
                await self._finish()
            log.info("draining: writers")
            # 3. the writers write what is queued
            for writer, task in zip(self.writers, writer_tasks, strict=True):
                if not task.done():
                    await writer.close()
            await _settle(writer_tasks, timeout_s=None)
            self.stats.stopped_s = time.monotonic()
            publish_io(self)
        if failure is not None:
            raise failure

    # -- tasks -------------------------------------------------------------------------------

    async def _stage_loop(self) -> None:
        queue = self.ingest
        limit = self.options.stage_batch_events
        while True:
            item = await queue.get()
            if item is None:
                return
            live: list[IngestItem] = []
            history: list[IngestItem] = []
            size = 0
            stop = False
            while True:
                (history if item.backfill else live).append(item)
                size += len(item.events) + 1
                if size >= limit or queue.empty():
                    break
                next_item = queue.get_nowait()
                if next_item is None:
                    stop = True
                    break
                item = next_item
            # a backlog behind this batch: bars close by what was received, not by the clock
            backlog = not queue.empty()
            for group, backfill in ((live, False), (history, True)):
                if group:
                    staged_ns = time.time_ns()
                    out, counts = self.stages.process(
                        [e for i in group for e in i.events],
                        [e for i in group for e in i.errors],
                        [g for i in group for g in i.gaps],
                        staged_ns,
                        backfill=backfill,
                        received_to_ns=_received_to(group) if backlog else None,
                    )
                    await self._emit(out, counts, live=not backfill, staged_ns=staged_ns)
            if stop:
                return
            # The writers were just handed this batch: let them start on it before the next
            # (``get`` on a non-empty queue does not suspend, so without this the stages could
            # keep the loop for batch after batch while the Redis write waits).
            await asyncio.sleep(0)

    async def _emit(
        self, out: StageOutput, counts: BatchCounts, *, live: bool = True, staged_ns: int = 0
    ) -> None:
        publish_batch(self, out, counts)
        pg_item, cache_item = split(out, counts, live=live)
        pg_item.staged_ns = cache_item.staged_ns = staged_ns
        pg_item.emitted_ns = cache_item.emitted_ns = time.time_ns()
        # Redis first: a PostgreSQL queue full (a slow commit) must not hold back the hot cache.
        if cache_item.records:
            await self.writers[1].put(cache_item)
        if pg_item.records:
            await self.writers[0].put(pg_item)

    async def _finish(self) -> None:
        now_ns = time.time_ns()
        out, counts = self.stages.finish(now_ns)
        await self._emit(out, counts)
        await self._publish_scores(now_ns)

    async def _quality_loop(self) -> None:
        while True:
            await asyncio.sleep(self.options.quality_interval_s)
            await self._publish_scores(time.time_ns())

    async def _publish_scores(self, now_ns: int) -> None:
        scores = self.stages.quality_scores(now_ns)
        if not scores:
            return
        self.latest_scores = scores
        for s in scores:
            components = {
                "completeness": s.completeness,
                "validity": s.validity,
                "timeliness": s.timeliness,
                "consistency": s.consistency,
                "uniqueness": s.uniqueness,
            }
            self.metrics.quality(s.exchange, s.symbol, s.channel, s.score, components)
        self.stats.quality_rows += len(scores)
        await self.writers[0].put(WriteItem([score_row(s) for s in scores]))
        await self.writers[1].put(WriteItem(list(scores)))

    async def _monitor_loop(self) -> None:
        while True:
            publish_io(self)
            await asyncio.sleep(1.0)


def stage_config(settings: Settings) -> StageConfig:
    from tickvault.model import NS_PER_S
    from tickvault.pipeline.quality import QualityConfig
    from tickvault.runner.stats import indicator_config

    depth = max((f.book_depth for f in settings.feeds), default=10)
    return StageConfig(
        timeframes=tuple(settings.timeframes),
        indicators=indicator_config(settings),
        book_depth=depth,
        quality=QualityConfig(
            window_ns=int(settings.quality.window_s * NS_PER_S),
            slot_ns=int(settings.quality.slot_s * NS_PER_S),
        ),
    )


async def _settle(tasks: Sequence[asyncio.Task[None]], timeout_s: float | None) -> None:
    """Wait for tasks; cancel those still running after the timeout. Never raises."""
    pending = [t for t in tasks if not t.done()]
    if pending:
        _, late = await asyncio.wait(pending, timeout=timeout_s)
        for task in late:
            task.cancel()
        if late:
            await asyncio.wait(late)
    for task in tasks:
        if not task.cancelled() and task.exception() is not None:
            log.debug("%s ended with %r", task.get_name(), task.exception())


def _received_to(items: list[IngestItem]) -> int | None:
    """The newest receive time of the batch's events (each item's last event: a feed message's
    events arrive together)."""
    times = [i.events[-1].recv_ns for i in items if i.events]
    return max(times) if times else None
