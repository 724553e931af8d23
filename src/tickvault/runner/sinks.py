"""The runner's two sinks (PostgreSQL, Redis) and the writer task that feeds each of them.

Each sink takes one flat batch of records of any kind the stages produce and stores it,
returning only once it is durable (PostgreSQL: committed; Redis: executed), or raising
:class:`StorageError`. That contract is what lets :class:`ResilientSink` (``spill.py``) absorb
an outage: a batch that raised is buffered, spilled past a bound, and replayed in order.

A :class:`Writer` owns a bounded queue in front of one resilient sink. It gathers what is queued
into batches of up to ``max_rows`` (waiting at most ``linger_s`` for more), so the sinks see a
few large writes instead of many small ones, and it is where write metrics, end-to-end latency
(exchange time → durable) and stored freshness are measured, once per batch.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tickvault.model import BookSnapshot, Candle, Gap, Ticker, Trade
from tickvault.monitoring.metrics import Metrics
from tickvault.pipeline.records import Feature, QualityScore, RepairedHistory
from tickvault.pipeline.records import Signal as PipelineSignal
from tickvault.runner.latency import LatencyTrace, live_trades
from tickvault.runner.spill import ResilientSink
from tickvault.storage.postgres import PostgresStore
from tickvault.storage.postgres.records import (
    FeatureRevision,
    FeatureValue,
    QualityMetric,
    QuarantineRecord,
    Signal,
)
from tickvault.storage.redis_cache import AsyncRedisCache
from tickvault.storage.redis_cache import FeatureValue as CachedFeature

_BUFFERED = (Trade, Candle, BookSnapshot, Ticker, FeatureValue)  # COPY path of the store
_CACHED = (Trade, Candle, BookSnapshot, Ticker)


class PostgresSink:
    """Market events and features through the batched COPY writer, the rest as upserts; every
    ``write`` ends with a flush, so returning means committed."""

    name = "postgres"

    def __init__(self, store: PostgresStore) -> None:
        self.store = store

    async def write(self, records: Sequence[Any]) -> None:
        buffered: list[Any] = []
        quarantine: list[QuarantineRecord] = []
        gaps: list[Gap] = []
        signals: list[Signal] = []
        quality: list[QualityMetric] = []
        revisions: list[FeatureRevision] = []
        for record in records:
            kind = type(record)
            if kind in _BUFFERED:
                buffered.append(record)
            elif kind is FeatureRevision:
                revisions.append(record)
            elif kind is QuarantineRecord:
                quarantine.append(record)
            elif kind is Gap:
                gaps.append(record)
            elif kind is Signal:
                signals.append(record)
            elif kind is QualityMetric:
                quality.append(record)
            else:
                raise TypeError(f"the PostgreSQL sink cannot store {kind.__name__}")
        store = self.store
        if buffered:
            await store.write(buffered)
        if quarantine:
            await store.quarantine(quarantine)
        if gaps:
            await store.record_gaps(gaps)
        if signals:
            await store.write_signals(signals)
        if quality:
            await store.write_quality(quality)
        if revisions:  # replace what the live rows stored (which never overwrite)
            await store.replace_features(revisions)
        await store.flush()


class RedisSink:
    """Latest values, candles, features, signals (stored and published) and quality scores;
    repaired history by the cache's history rule (``AsyncRedisCache.write_history``)."""

    name = "redis"

    def __init__(self, cache: AsyncRedisCache) -> None:
        self.cache = cache

    async def write(self, records: Sequence[Any]) -> None:
        market: list[Any] = []
        features: dict[tuple[str, str, str], dict[str, CachedFeature]] = {}
        signals: list[tuple[str, str, str, object]] = []
        scores: list[QualityScore] = []
        history: list[Trade | Candle] = []
        for record in records:
            kind = type(record)
            if kind in _CACHED:
                market.append(record)
            elif kind is RepairedHistory:
                history.extend(record.events)
            elif kind is Feature:
                key = (record.exchange, record.symbol, record.timeframe)
                features.setdefault(key, {})[record.name] = CachedFeature(
                    record.ts_ns, record.value
                )
            elif kind is PipelineSignal:
                signals.append((record.exchange, record.symbol, record.timeframe, record))
            elif kind is QualityScore:
                scores.append(record)
            else:
                raise TypeError(f"the Redis sink cannot store {kind.__name__}")
        # One round trip for all of it: features, signals and each quality score took one
        # each, holding up the next batch's write (every 10 s: ~40 scores in a row).
        await self.cache.write_batch(
            market,
            history=history,
            features=features,
            signals=signals,
            scores=[(s.exchange, s.symbol, s.channel, s) for s in scores],
        )


@dataclass(slots=True)
class WriteItem:
    """One stage batch bound for a sink, with its counts (so the writer never recounts)."""

    records: list[Any]
    channels: dict[tuple[str, str], int] = field(default_factory=dict)  # (exchange, channel)
    newest: dict[tuple[str, str, str], int] = field(default_factory=dict)  # stream -> ts_ns
    live: bool = True  # False: repaired history, whose age is not the pipeline's latency
    staged_ns: int = 0  # when the stages took its batch (for LatencyTrace)
    emitted_ns: int = 0  # when the stages handed it on


@dataclass
class WriterStats:
    batches: int = 0
    records: int = 0
    write_s: float = 0.0
    channels: dict[tuple[str, str], int] = field(default_factory=dict)
    latency_ns: deque[int] = field(default_factory=lambda: deque(maxlen=200_000))


class Writer:
    """Bounded queue → batches → one :class:`ResilientSink`; never raises on an outage."""

    def __init__(
        self,
        sink: ResilientSink,
        metrics: Metrics,
        *,
        stage: str,
        backend: str,
        queue_items: int = 64,
        max_rows: int = 20_000,
        linger_s: float = 0.1,
        track_freshness: bool = False,
    ) -> None:
        self.sink = sink
        self.metrics = metrics
        self.stage = stage  # metric label: write_postgres / write_redis
        self.backend = backend
        self.queue: asyncio.Queue[WriteItem | None] = asyncio.Queue(maxsize=queue_items)
        self.max_rows = max_rows
        self.linger_s = linger_s
        self.track_freshness = track_freshness
        self.stats = WriterStats()
        self.trace: LatencyTrace | None = None  # set by benches: per-hop latency of trades
        self._spilled_seen = 0

    async def put(self, item: WriteItem) -> None:
        await self.queue.put(item)  # waits when the sink falls behind: backpressure upstream

    async def close(self) -> None:
        """Ask :meth:`run` to write what is queued and return."""
        await self.queue.put(None)

    async def run(self) -> None:
        queue = self.queue
        loop = asyncio.get_running_loop()
        while True:
            first = await queue.get()
            if first is None:
                return
            items = [first]
            rows = len(first.records)
            deadline = loop.time() + self.linger_s
            stop = False
            while rows < self.max_rows:
                if queue.empty():
                    left_s = deadline - loop.time()
                    if left_s <= 0:
                        break
                    try:
                        item = await asyncio.wait_for(queue.get(), left_s)
                    except TimeoutError:
                        break
                else:
                    item = queue.get_nowait()
                if item is None:
                    stop = True
                    break
                items.append(item)
                rows += len(item.records)
            await self._write(items)
            if stop:
                return

    async def _write(self, items: list[WriteItem]) -> None:
        records = [r for item in items for r in item.records]
        write_ns = time.time_ns()
        started = time.perf_counter()
        await self.sink.write(records)
        took_s = time.perf_counter() - started
        done_ns = time.time_ns()
        stats = self.stats
        stats.batches += 1
        stats.records += len(records)
        stats.write_s += took_s
        metrics = self.metrics
        metrics.batch_rows(self.stage).observe(len(records))
        healthy = self.sink.healthy
        metrics.storage_up(self.backend).set(1 if healthy else 0)
        metrics.writer_backlog(self.backend).set(self.sink.stats.backlog_rows)
        spilled = self.sink.stats.spilled_total_bytes
        if spilled > self._spilled_seen:
            metrics.spilled_bytes(self.stage).inc(spilled - self._spilled_seen)
            self._spilled_seen = spilled
        channels: dict[tuple[str, str], int] = {}
        for item in items:
            for key, n in item.channels.items():
                channels[key] = channels.get(key, 0) + n
        for key, n in channels.items():
            stats.channels[key] = stats.channels.get(key, 0) + n
            metrics.events_out(key[0], key[1], self.stage).inc(n)
        if not healthy:
            return  # buffered, not durable: no latency or freshness for it yet
        metrics.write_latency(self.backend, "batch").observe(took_s)
        stats.latency_ns.extend(
            [done_ns - r.ts_ns for i in items if i.live for r in i.records if type(r) is Trade]
        )
        trace = self.trace
        if trace is not None:
            for item in items:
                if item.live and item.staged_ns:
                    trades = live_trades(item.records)
                    trace.record(self.backend, trades, item.staged_ns, item.emitted_ns,
                                 write_ns, done_ns)  # fmt: skip
        if self.track_freshness:
            for item in items:
                for (exchange, symbol, channel), ts_ns in item.newest.items():
                    metrics.event_seen(exchange, symbol, channel, "stored", ts_ns)
