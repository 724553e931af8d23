"""What of a stage batch goes to which sink, in the records each sink stores.

PostgreSQL gets market events (no book deltas: books are stored as snapshots), derived
candles, features, signals, quarantine, gaps and reconciliation findings (as quality rows).
Redis gets the latest values, candles, features, signals (published) and quality scores.
"""

from __future__ import annotations

import msgspec

from tickvault.pipeline.records import QualityScore, ReconcileFinding
from tickvault.pipeline.records import Signal as PipelineSignal
from tickvault.runner.sinks import WriteItem
from tickvault.runner.stages import CHANNEL_OF, BatchCounts, StageOutput
from tickvault.storage.postgres.records import (
    FeatureRevision,
    FeatureValue,
    QualityMetric,
    Signal,
)

QUALITY_METRIC_PREFIX = "quality:"  # quality_metrics.metric = quality:<channel>
RECONCILE_METRIC_PREFIX = "reconcile:"  # reconcile:<timeframe>:<field>


def market_channels(out: StageOutput) -> dict[tuple[str, str], int]:
    counts: dict[tuple[str, str], int] = {}
    channel_of = CHANNEL_OF
    for event in out.market:
        key = (event.exchange, channel_of[type(event)])
        counts[key] = counts.get(key, 0) + 1
    return counts


def split(
    out: StageOutput, counts: BatchCounts, *, live: bool = True
) -> tuple[WriteItem, WriteItem]:
    """(item for PostgreSQL, item for Redis) of one stage batch (``live``: not history)."""
    channels = market_channels(out)
    newest = {stream: value[1] for stream, value in counts.collected.items()}
    pg: list[object] = list(out.market)
    cache: list[object] = list(out.market)
    if out.revised_features:  # before the batch's own: its new bars follow the replayed ones
        pg.extend(
            FeatureRevision(f.exchange, f.symbol, f.timeframe, f.name, f.ts_ns, f.value)
            for f in out.revised_features
        )
        cache.extend(out.revised_features)
    if out.features:
        pg.extend(
            FeatureValue(f.exchange, f.symbol, f.timeframe, f.name, f.ts_ns, f.value)
            for f in out.features
        )
        cache.extend(out.features)
    if out.signals:
        pg.extend(signal_row(s) for s in out.signals)
        cache.extend(out.signals)
    pg.extend(out.quarantine)
    pg.extend(out.gaps)
    pg.extend(finding_row(f) for f in out.findings)
    return WriteItem(pg, channels, newest, live), WriteItem(cache, channels, newest, live)


def signal_row(signal: PipelineSignal) -> Signal:
    return Signal(
        signal.exchange,
        signal.symbol,
        signal.timeframe,
        signal.rule,
        signal.ts_ns,
        signal.value,
        signal.direction,
        dict(signal.details),
    )


def finding_row(finding: ReconcileFinding) -> QualityMetric:
    return QualityMetric(
        finding.exchange,
        finding.symbol,
        f"{RECONCILE_METRIC_PREFIX}{finding.timeframe}:{finding.field}",
        finding.open_ns,
        finding.rel_diff,
        {"derived": finding.derived, "exchange": finding.exchange_value},
    )


def score_row(score: QualityScore) -> QualityMetric:
    """One row per stream and computation: the score, with components and figures in detail."""
    return QualityMetric(
        score.exchange,
        score.symbol,
        f"{QUALITY_METRIC_PREFIX}{score.channel}",
        score.ts_ns,
        score.score,
        msgspec.structs.asdict(score),
    )
