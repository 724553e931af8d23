"""Run totals, and their publication to the metrics facade (once per batch, never per event).

Stage labels follow docs/operations.md: ``decode`` (events out of the collectors' decoders),
``validate`` (accepted), ``transform`` (derived candles, stored books, features, signals),
``write_postgres`` and ``write_redis`` (handed to the sinks).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tickvault.config import Settings
from tickvault.model import CandleSource
from tickvault.pipeline.indicators import IndicatorConfig
from tickvault.runner.stages import BatchCounts, StageOutput

if TYPE_CHECKING:
    from tickvault.runner.app import Runner
    from tickvault.runner.feeds import IngestSink


def by_exchange(items: Iterable[tuple[tuple[str, ...], int]]) -> dict[str, int]:
    """Counts keyed (exchange, ...) summed per exchange; pass ``counts.items()``."""
    out: dict[str, int] = {}
    for key, n in items:
        out[key[0]] = out.get(key[0], 0) + n
    return out


def _add(total: dict[tuple[str, ...], int], key: tuple[str, ...], n: int) -> None:
    total[key] = total.get(key, 0) + n


@dataclass
class RunStats:
    started_s: float = 0.0  # monotonic
    stopped_s: float | None = None
    batches: int = 0
    collected: dict[tuple[str, ...], int] = field(default_factory=dict)  # exchange, channel
    validated: dict[tuple[str, ...], int] = field(default_factory=dict)
    transformed: dict[tuple[str, ...], int] = field(default_factory=dict)
    rejects: dict[tuple[str, ...], int] = field(default_factory=dict)  # exchange, stage, reason
    gaps: dict[tuple[str, ...], int] = field(default_factory=dict)  # exch, symbol, channel, why
    late_trades: dict[tuple[str, ...], int] = field(default_factory=dict)  # exchange, outcome
    quarantined: dict[str, int] = field(default_factory=dict)  # exchange -> records
    quality_rows: int = 0
    messages_seen: dict[str, int] = field(default_factory=dict)  # published to metrics so far
    last_message_s: dict[str, float] = field(default_factory=dict)  # monotonic
    ingest: IngestSink | None = None

    @property
    def elapsed_s(self) -> float:
        if not self.started_s:
            return 0.0
        end = self.stopped_s if self.stopped_s is not None else time.monotonic()
        return max(1e-9, end - self.started_s)

    @staticmethod
    def total(counts: dict[tuple[str, ...], int]) -> int:
        return sum(counts.values())


def publish_batch(runner: Runner, out: StageOutput, counts: BatchCounts) -> None:
    stats, metrics = runner.stats, runner.metrics
    stats.batches += 1
    events = 0
    collected: dict[tuple[str, ...], int] = {}
    for (exchange, symbol, channel), (n, newest_ns) in counts.collected.items():
        events += n
        _add(collected, (exchange, channel), n)
        if newest_ns:
            metrics.event_seen(exchange, symbol, channel, "received", newest_ns)
    for stage, batch, total in (
        ("decode", collected, stats.collected),
        ("validate", counts.validated, stats.validated),
        ("transform", counts.transformed, stats.transformed),
    ):
        for key, n in batch.items():
            _add(total, key, n)
            metrics.events_out(key[0], key[1], stage).inc(n)
    for (exchange, stage, reason), n in counts.rejects.items():
        _add(stats.rejects, (exchange, stage, reason), n)
        metrics.rejects(exchange, stage, reason).inc(n)
        if stage == "decode":
            metrics.decode_errors(exchange, reason).inc(n)
    for (exchange, symbol, channel, reason), n in counts.gaps.items():
        _add(stats.gaps, (exchange, symbol, channel, reason), n)
        metrics.gaps_found(exchange, symbol, channel, reason).inc(n)
        if "checksum" in reason:
            metrics.book_checksum_failures(exchange, symbol).inc(n)
    for (exchange, outcome), n in counts.late_trades.items():
        _add(stats.late_trades, (exchange, outcome), n)
        metrics.late_trades(exchange, outcome).inc(n)
    for record in out.quarantine:
        stats.quarantined[record.exchange] = stats.quarantined.get(record.exchange, 0) + 1
    for exchange in {r.exchange for r in out.quarantine}:
        metrics.quarantine_records(exchange).set(stats.quarantined[exchange])
    if events:
        metrics.batch_rows("stages").observe(events)


def publish_io(runner: Runner) -> None:
    """Collector counters and queue depths (called every second and at the end)."""
    stats, metrics = runner.stats, runner.metrics
    now_s = time.monotonic()
    for feed in runner.feeds:
        c = feed.counters
        seen = stats.messages_seen.get(feed.exchange, 0)
        if c.ws_messages > seen:
            metrics.messages_received(feed.exchange, "all").inc(c.ws_messages - seen)
            stats.messages_seen[feed.exchange] = c.ws_messages
            stats.last_message_s[feed.exchange] = now_s
        # The sessions do not expose their sockets: a feed that delivered within the last
        # 5 s counts as connected (every venue sends heartbeats at least that often).
        live = now_s - stats.last_message_s.get(feed.exchange, -1e9) < 5.0
        metrics.websocket_connections(feed.exchange).set(
            len(feed.collector.sessions) if live else 0
        )
        metrics.queue_depth(f"collect_{feed.exchange}").set(feed.collector.queue.qsize())
    metrics.queue_depth("stages").set(runner.ingest.qsize())
    for writer in runner.writers:
        metrics.queue_depth(writer.stage).set(writer.queue.qsize())


def indicator_config(settings: Settings) -> IndicatorConfig:
    ind = settings.indicators
    return IndicatorConfig(
        sma_periods=tuple(ind.sma),
        ema_periods=tuple(ind.ema),
        rsi_period=ind.rsi,
        macd=ind.macd,
        bollinger=ind.bollinger,
        atr_period=ind.atr,
        vwap=ind.vwap,
        obv=ind.obv,
        source=CandleSource(ind.source),
    )
