"""The end-of-run summary, and the stored-quality view behind ``tickvault quality``.

Counters come from the runner; rows per table, gaps and quality come from PostgreSQL (what
was actually stored, not what was meant to be); the sample query reads the latest derived
candles through the Redis cache, falling back to PostgreSQL on a miss.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import psycopg
from rich.console import Console
from rich.table import Table

from tickvault.config import Settings
from tickvault.model import Candle, CandleSource, timeframe_ns
from tickvault.monitoring.metrics import Metrics
from tickvault.runner.routing import QUALITY_METRIC_PREFIX
from tickvault.runner.tally import Tally, latency_ms, tally
from tickvault.storage.redis_cache import CachedReader, RedisCache
from tickvault.storage.urls import StorageUrls

if TYPE_CHECKING:
    from tickvault.runner.app import Runner

TABLES = (
    "trades", "candles", "book_snapshots", "tickers", "features", "signals", "quarantine",
    "gaps", "quality_metrics", "instruments",
)  # fmt: skip
COMPONENTS = ("completeness", "validity", "timeliness", "consistency", "uniqueness")


@dataclass(frozen=True, slots=True)
class StoredQuality:
    exchange: str
    symbol: str
    channel: str
    ts: datetime
    score: float
    worst: str
    components: dict[str, float]
    events: int


@dataclass
class Summary:
    elapsed_s: float
    messages: dict[str, int]
    stages: dict[str, dict[str, int]]  # stage -> exchange -> events out
    rejects: dict[tuple[str, ...], int]
    quality: list[StoredQuality]
    rows: dict[str, int]
    gaps: dict[str, int]  # status -> count
    latency_ms: dict[str, tuple[float, float]]  # sink -> (p50, p99)
    sample_title: str = ""
    sample: list[Candle] = field(default_factory=list)
    cache_hit: bool | None = None
    late_trades: dict[str, int] = field(default_factory=dict)  # revised / too_late -> trades


def stored_quality(conn: psycopg.Connection[Any]) -> list[StoredQuality]:
    """The newest stored score of every stream, worst component first-class."""
    rows = conn.execute(
        "SELECT DISTINCT ON (exchange, symbol, metric) exchange, symbol, metric, ts, value, detail"
        " FROM quality_metrics WHERE metric LIKE %s ORDER BY exchange, symbol, metric, ts DESC",
        (QUALITY_METRIC_PREFIX + "%",),
    ).fetchall()
    out = []
    for exchange, symbol, metric, ts, value, detail in rows:
        detail = detail or {}
        components = {c: float(detail[c]) for c in COMPONENTS if c in detail}
        out.append(
            StoredQuality(
                exchange, symbol, metric.removeprefix(QUALITY_METRIC_PREFIX), ts, float(value),
                str(detail.get("worst", "?")), components, int(detail.get("events", 0)),
            )
        )  # fmt: skip
    return out


def _read_storage(url: str) -> tuple[dict[str, int], dict[str, int], list[StoredQuality]]:
    with psycopg.connect(url, connect_timeout=10) as conn:
        rows = {t: int(conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]) for t in TABLES}  # type: ignore[index]
        gaps: dict[str, int] = dict(
            conn.execute("SELECT status, count(*) FROM gaps GROUP BY 1").fetchall()
        )
        return rows, gaps, stored_quality(conn)


def _sample(
    t: Tally, settings: Settings, metrics: Metrics | None, url: str, redis_url: str
) -> tuple[str, list[Candle], bool | None]:
    if t.sample_stream is None:
        return "", [], None
    exchange, symbol = t.sample_stream
    # The longest timeframe with at least five bars in this run, else the shortest.
    frames = sorted(settings.timeframes, key=timeframe_ns)
    fitting = [f for f in frames if timeframe_ns(f) * 5 <= t.elapsed_s * 1e9]
    timeframe = fitting[-1] if fitting else frames[0]

    def from_postgres(ex: str, sym: str, tf: str, n: int) -> list[Candle]:
        with psycopg.connect(url, connect_timeout=10) as conn:
            rows = conn.execute(
                "SELECT ts, open, high, low, close, volume, closed FROM candles WHERE exchange = %s"
                " AND symbol = %s AND timeframe = %s AND source = 'derived' ORDER BY ts DESC"
                " LIMIT %s",
                (ex, sym, tf, n),
            ).fetchall()
        return [
            Candle(ex, sym, tf, _ns(ts), o, h, lo, c, v, closed, _ns(ts), 0, CandleSource.DERIVED)
            for ts, o, h, lo, c, v, closed in reversed(rows)
        ]

    cache = RedisCache(redis_url, settings.cache)
    try:
        reader = CachedReader(cache, from_postgres)
        candles = reader.latest_candles(exchange, symbol, timeframe, 5)
        hit = reader.stats.hits > 0
        if metrics is not None:
            metrics.cache_lookup("candles", hit)
    finally:
        cache.close()
    title = f"latest {timeframe} derived candles of {exchange} {symbol} ({'Redis' if hit else 'PostgreSQL'})"
    return title, candles, hit


def _ns(ts: datetime) -> int:
    delta = ts - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400_000_000 + delta.seconds * 1_000_000 + delta.microseconds) * 1000


async def collect(runner: Runner) -> Summary:
    assert runner.urls is not None
    t = tally(runner, latency=True)
    return await collect_tally(t, runner.settings, runner.urls, runner.metrics)


async def collect_tally(
    t: Tally, settings: Settings, urls: StorageUrls, metrics: Metrics | None = None
) -> Summary:
    """The summary of a run's (or several workers' merged) tally, with what storage holds."""
    url, redis_url = urls.database_url, urls.redis_url
    rows, gaps, quality = await asyncio.to_thread(_read_storage, url)
    title, sample, hit = await asyncio.to_thread(_sample, t, settings, metrics, url, redis_url)
    stages = {name: dict(per) for name, per in t.stages.items()}
    return Summary(
        elapsed_s=t.elapsed_s,
        messages=dict(t.messages),
        stages=stages,
        rejects=dict(t.rejects),
        quality=quality,
        rows=rows,
        gaps=gaps,
        latency_ms=latency_ms(t.latency_ns),
        sample_title=title,
        sample=sample,
        cache_hit=hit,
        late_trades=dict(t.late_trades),
    )


def quality_table(quality: list[StoredQuality], *, components: bool = True) -> Table:
    """Worst streams first; ``components=False`` for a narrow table (the run summary)."""
    short = ("complete", "valid", "timely", "consistent", "unique")
    table = Table("exchange", "symbol", "channel", "score", "worst", header_style="bold cyan")
    if components:
        for name in short:
            table.add_column(name)
        table.add_column("events")
        table.add_column("as of")
    for q in sorted(quality, key=lambda q: (q.score, q.exchange, q.symbol, q.channel)):
        row = [q.exchange, q.symbol, q.channel, f"{q.score:.3f}",
               f"{q.worst} {q.components.get(q.worst, float('nan')):.2f}"]  # fmt: skip
        if components:
            row += [f"{q.components.get(c, float('nan')):.3f}" for c in COMPONENTS]
            row += [f"{q.events:,}", q.ts.astimezone(UTC).strftime("%H:%M:%S")]
        table.add_row(*row)
    return table


def render(summary: Summary, console: Console) -> None:
    total = sum(summary.messages.values())
    console.rule("summary")
    console.print(
        f"{summary.elapsed_s:.1f} s, {total:,} messages in "
        f"({total / max(summary.elapsed_s, 1e-9):,.0f}/s): "
        + ", ".join(f"{ex} {n:,}" for ex, n in summary.messages.items())
    )
    exchanges = list(summary.messages)
    stages = Table("events out", *exchanges, "total", header_style="bold cyan")
    for stage, per in summary.stages.items():
        stages.add_row(
            stage, *(f"{per.get(ex, 0):,}" for ex in exchanges), f"{sum(per.values()):,}"
        )
    console.print(stages)
    if summary.rejects:
        rejects = Table("exchange", "stage", "reason", "rejected", header_style="bold cyan")
        for (ex, stage, reason), n in sorted(summary.rejects.items()):
            rejects.add_row(ex, stage, reason, f"{n:,}")
        console.print(rejects)
    else:
        console.print("rejects: none")
    console.print(quality_table(summary.quality, components=False))
    console.print("rows: " + ", ".join(f"{t} {n:,}" for t, n in summary.rows.items()))
    found = sum(summary.gaps.values())
    repaired = summary.gaps.get("repaired", 0)
    console.print(f"gaps: {found} found, {repaired} repaired ({dict(summary.gaps) or 'none'})")
    late = summary.late_trades
    console.print(
        f"late trades (after their bar closed): {late.get('revised', 0)} revised their bar,"
        f" {late.get('too_late', 0)} too late (gap recorded)"
    )
    for sink, (p50, p99) in summary.latency_ms.items():
        console.print(f"exchange time → stored in {sink}: p50 {p50:,.0f} ms, p99 {p99:,.0f} ms")
    if summary.sample:
        table = Table("open (UTC)", "open", "high", "low", "close", "volume",
                      title=summary.sample_title, header_style="bold cyan")  # fmt: skip
        for c in summary.sample:
            opened = datetime.fromtimestamp(c.open_ns / 1e9, UTC).strftime("%H:%M:%S")
            table.add_row(opened, *(str(v) for v in (c.open, c.high, c.low, c.close, c.volume)))
        console.print(table)
