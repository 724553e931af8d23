"""Gap repair: refetch what a recorded gap may have lost from the exchange's REST history.

A gap (``gaps`` table) names an exchange, symbol, channel and a time range where data may be
missing: a reconnect, a sequence break, a runner that died (``gapscan.py``), a hole in stored
candles. :class:`GapRepairer` repairs one like this:

1. mark it ``repairing`` (stamps the attempt time);
2. run the connectors' :class:`~tickvault.exchanges.io.backfill.Backfiller` over
   ``[from - widen, to + widen]`` for the channel's kind (``trades``; ``candles:<tf>`` of the
   live candle timeframe), through the exchange's rate-limited :class:`RestClient` and with
   checkpoints of its own (``gap:<id>:<kind>``), so a repair interrupted by a crash resumes at
   its next page and never touches the checkpoints of a ``tickvault backfill``;
3. each page goes through the pipeline's validation and into the PostgreSQL store: writes are
   idempotent on natural keys, so rows already stored change nothing and only the missing ones
   are added. The checkpoint is saved after the page is committed;
4. after a trades gap, the derived candles of every configured timeframe that overlap the range
   are rebuilt from the stored trades (``refresh_derived_candles``); buckets still open are
   rebuilt again once they close, because the live deriver's own closed bar lacks the trades.
   What changed then goes on like live data (``repair_outlet.py``): refetched and rebuilt closed
   bars and the newest trade to Redis, and the features of the indicator source's bars from the
   first repaired one on recomputed, stored, cached, and the live indicator state rebuilt;
5. mark it ``repaired`` (with the row count), or ``failed`` with the reason (the attempt
   counter grows; retried after ``retry_base_s``, doubling, up to ``max_attempts``), or
   ``unrepairable`` (books and tickers have no REST history: the live book resyncs instead;
   ``unrepairable_reason`` says why, also for the restart holes ``gapscan`` records).

The runner runs :func:`run_repairs` as a task; ``tickvault gaps --fix`` calls
:meth:`GapRepairer.repair` directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import msgspec

from tickvault.config import RepairSettings
from tickvault.errors import StorageError, TickvaultError
from tickvault.exchanges.base import ExchangeAdapter
from tickvault.exchanges.io.backfill import Backfiller
from tickvault.exchanges.io.rest import RestClient
from tickvault.exchanges.io.sinks import Checkpoint
from tickvault.model import (
    NS_PER_S,
    Candle,
    CandleSource,
    DecodeError,
    Instrument,
    MarketEvent,
    Trade,
    bucket_start_ns,
    timeframe_ns,
)
from tickvault.monitoring.metrics import Metrics
from tickvault.pipeline.indicators import IndicatorConfig
from tickvault.pipeline.records import Feature
from tickvault.pipeline.validate import ValidationConfig, Validator
from tickvault.runner.repair_outlet import RepairOutlet, StandaloneOutlet
from tickvault.storage.postgres import PostgresStore
from tickvault.storage.postgres.records import FeatureValue, GapRecord, QuarantineRecord

if TYPE_CHECKING:
    from tickvault.runner.app import RunContext

log = logging.getLogger(__name__)

# Channels whose history an exchange serves over REST.
REPAIRABLE = ("trades", "candles")
# The timeframe each venue's live ``candles`` channel carries (Coinbase Advanced: 5 minutes).
LIVE_CANDLE_TIMEFRAME = {"binance": "1m", "kraken": "1m", "coinbase": "5m"}
# Statuses a repair round picks up (``repairing``: a process died while repairing it).
PENDING = ("open", "repairing", "failed")
_DAY_NS = 86_400 * NS_PER_S


# Why a channel's holes stay holes: no exchange serves its history over REST.
_NO_HISTORY = {
    "book": "order-book history is not served over REST; the live book was rebuilt from a fresh"
    " snapshot, and the hole stays a hole",
    "ticker": "ticker history is not served over REST; the hole stays a hole",
}


def unrepairable_reason(channel: str) -> str | None:
    """Why a gap on ``channel`` cannot be repaired, or None if REST can fill it."""
    if channel in REPAIRABLE:
        return None
    return _NO_HISTORY.get(channel, f"{channel} history is not served over REST")


@dataclass(slots=True)
class RestSource:
    """What repairs on one exchange need: its adapter, REST client and instruments."""

    adapter: ExchangeAdapter
    rest: RestClient
    instruments: dict[str, Instrument]  # canonical symbol -> instrument

    @property
    def exchange(self) -> str:
        return self.adapter.name


@dataclass(slots=True)
class RepairResult:
    gap: GapRecord
    status: str  # repaired | failed | unrepairable | skipped
    rows: int = 0
    candles: int = 0
    detail: str = ""


class GapCheckpoints:
    """The backfill's checkpoint store, one namespace per gap (kind ``gap:<id>:<kind>``)."""

    def __init__(self, store: PostgresStore, gap_id: int) -> None:
        self.store = store
        self.prefix = f"gap:{gap_id}:"

    async def load_checkpoint(self, exchange: str, symbol: str, kind: str) -> Checkpoint | None:
        saved = await self.store.load_checkpoint(exchange, symbol, self.prefix + kind)
        return None if saved is None else msgspec.structs.replace(saved, kind=kind)

    async def save_checkpoint(self, cp: Checkpoint) -> None:
        await self.store.save_checkpoint(msgspec.structs.replace(cp, kind=self.prefix + cp.kind))


class ValidatedStoreSink:
    """Backfilled pages → the pipeline's validation → the store; ``flush`` means committed.

    A fresh validator per repair (trade ids of history go back in time). Rejects are
    quarantined with their reason, except duplicates: pages may overlap at their edges and the
    store absorbs a re-sent row anyway."""

    def __init__(self, store: PostgresStore) -> None:
        self.store = store
        self.validator = Validator(ValidationConfig(check_trade_id_order=False))
        self.rows = 0
        self.rejected = 0
        self.candles: list[Candle] = []  # refetched bars, for the cache
        self.newest: dict[tuple[str, str], Trade] = {}  # newest refetched trade per stream

    @property
    def history(self) -> list[Trade | Candle]:
        return [*self.candles, *self.newest.values()]

    async def write(self, events: Sequence[MarketEvent]) -> None:
        result = self.validator.validate(events, time.time_ns())
        keep: list[Trade | Candle] = [e for e in result.accepted if isinstance(e, Trade | Candle)]
        for e in keep:
            if isinstance(e, Candle):
                self.candles.append(e)
            else:
                held_trade = self.newest.get((e.exchange, e.symbol))
                if held_trade is None or e.ts_ns >= held_trade.ts_ns:
                    self.newest[(e.exchange, e.symbol)] = e
        held = [
            QuarantineRecord(r.exchange, r.reason, r.detail, r.raw, r.recv_ns or time.time_ns(),
                             r.symbol, r.channel)
            for r in result.rejected
            if r.reason != "duplicate"
        ]  # fmt: skip
        self.rejected += len(held)
        if keep:
            await self.store.write(keep)
            self.rows += len(keep)
        if held:
            await self.store.quarantine(held)

    async def flush(self) -> None:
        await self.store.flush()

    async def quarantine(self, records: Sequence[DecodeError]) -> None:
        self.rejected += len(records)
        await self.store.quarantine(records)


@dataclass(order=True, slots=True)
class _Refresh:
    due_ns: int
    exchange: str = field(compare=False)
    symbol: str = field(compare=False)
    timeframe: str = field(compare=False)
    from_ns: int = field(compare=False)
    to_ns: int = field(compare=False)


class GapRepairer:
    def __init__(
        self,
        store: PostgresStore,
        sources: Mapping[str, RestSource],
        settings: RepairSettings,
        timeframes: Sequence[str],
        metrics: Metrics | None = None,
        outlet: RepairOutlet | None = None,
        markets: set[tuple[str, str]] | None = None,
    ) -> None:
        self.store = store
        # Only gaps of these (exchange, symbol) markets (a runner's own: with --workers, another
        # worker repairs the rest); None: every market.
        self.markets = markets
        self.sources = sources
        self.settings = settings
        self.timeframes = list(timeframes)
        self.metrics = metrics
        self.outlet: RepairOutlet = outlet or StandaloneOutlet(IndicatorConfig())
        self._refresh_later: list[_Refresh] = []
        self._published: set[tuple[str, str, str]] = set()

    # -- choosing -----------------------------------------------------------------------------

    def due(self, gaps: Sequence[GapRecord], now_ns: int) -> list[GapRecord]:
        """Pending gaps worth trying now: settled (the exchange has published the range), on an
        exchange we can reach (and a market of ours, given ``markets``), and, once failed, past
        their retry delay and attempt limit."""
        s = self.settings
        out = []
        for gap in gaps:
            if gap.status not in PENDING or gap.exchange not in self.sources:
                continue
            if self.markets is not None and (gap.exchange, gap.symbol) not in self.markets:
                continue
            if gap.to_ns + int((s.widen_s + s.settle_s) * NS_PER_S) > now_ns:
                continue
            if gap.status == "failed":
                if gap.attempts >= s.max_attempts:
                    continue
                delay_ns = int(s.retry_base_s * 2 ** max(0, gap.attempts - 1) * NS_PER_S)
                if (gap.attempted_ns or 0) + delay_ns > now_ns:
                    continue
            out.append(gap)
        return out

    async def pending(self, exchange: str | None = None) -> list[GapRecord]:
        gaps = [g for s in PENDING for g in await self.store.list_gaps(exchange, status=s)]
        return sorted(gaps, key=lambda g: (g.from_ns, g.id))

    # -- repairing ----------------------------------------------------------------------------

    async def repair_due(
        self, now_ns: int, progress: Callable[[RepairResult], None] | None = None
    ) -> list[RepairResult]:
        results = []
        for gap in self.due(await self.pending(), now_ns):
            result = await self.repair(gap)
            results.append(result)
            if progress is not None:
                progress(result)
        await self.refresh_closed(now_ns)
        return results

    async def repair(self, gap: GapRecord) -> RepairResult:
        """Repair one gap now (whatever its status); StorageError propagates (nothing can be
        marked while PostgreSQL is down: the next round tries again)."""
        why = unrepairable_reason(gap.channel)
        if why is not None:
            await self.store.mark_gap(gap.id, "unrepairable", why)
            return RepairResult(gap, "unrepairable", detail=why)
        source = self.sources.get(gap.exchange)
        if source is None:
            return RepairResult(gap, "skipped", detail=f"no REST client for {gap.exchange}")
        instrument = source.instruments.get(gap.symbol)
        await self.store.mark_gap(gap.id, "repairing")
        if instrument is None:
            return await self._failed(gap, f"{gap.exchange} does not list {gap.symbol}")
        widen_ns = int(self.settings.widen_s * NS_PER_S)
        since_ns, until_ns = gap.from_ns - widen_ns, gap.to_ns + widen_ns
        if gap.channel == "trades":
            kind = "trades"
        else:
            kind = f"candles:{LIVE_CANDLE_TIMEFRAME.get(gap.exchange, '1m')}"
        sink = ValidatedStoreSink(self.store)
        backfiller = Backfiller(
            source.adapter, source.rest, sink, GapCheckpoints(self.store, gap.id), errors=sink,
            concurrency=1,
        )  # fmt: skip
        candles = features = 0
        try:
            await backfiller.run([instrument], [kind], since_ns, until_ns)
            await self.outlet.cache_history(sink.history)
            if kind == "trades":
                candles, features = await self._refresh_candles(
                    gap, since_ns, until_ns, time.time_ns()
                )
            elif self.outlet.indicators.source == CandleSource.EXCHANGE:
                timeframe = kind.partition(":")[2]
                features = await self._recompute_features(
                    gap.exchange, gap.symbol, timeframe, since_ns
                )
        except StorageError:
            raise
        except TickvaultError as exc:
            return await self._failed(gap, str(exc))
        detail = f"{sink.rows} {kind} rows from REST"
        if candles:
            detail += f", {candles} derived candles rebuilt"
        if features:
            detail += f", {features} features recomputed"
        if sink.rejected:
            detail += f", {sink.rejected} rejected to quarantine"
        await self.store.mark_gap(gap.id, "repaired", detail)
        if self.metrics is not None:
            self.metrics.gaps_repaired(gap.exchange, gap.symbol, gap.channel).inc()
        log.info("gap %d repaired: %s %s %s, %s", gap.id, *_where(gap), detail)
        return RepairResult(gap, "repaired", sink.rows, candles, detail)

    async def _failed(self, gap: GapRecord, reason: str) -> RepairResult:
        await self.store.mark_gap(gap.id, "failed", reason)
        if self.metrics is not None:
            self.metrics.gap_repair_failures(gap.exchange, gap.symbol, gap.channel).inc()
        log.warning("gap %d repair failed (attempt %d): %s", gap.id, gap.attempts + 1, reason)
        return RepairResult(gap, "failed", detail=reason)

    # -- derived candles ----------------------------------------------------------------------

    async def _refresh_candles(
        self, gap: GapRecord, from_ns: int, to_ns: int, now_ns: int
    ) -> tuple[int, int]:
        """Rebuild derived bars over the range in every timeframe; returns (bars changed,
        features recomputed)."""
        changed = features = 0
        settle_ns = int(self.settings.settle_s * NS_PER_S)
        for timeframe in self.timeframes:
            changed += await self.store.refresh_derived_candles(
                timeframe, from_ns, to_ns, gap.exchange, gap.symbol
            )
            features += await self._after_rebuild(
                gap.exchange, gap.symbol, timeframe, from_ns, to_ns
            )
            end_ns = bucket_start_ns(to_ns, timeframe) + timeframe_ns(timeframe)
            if end_ns > now_ns:  # the live deriver will close that bar without the gap's trades
                self._refresh_later.append(
                    _Refresh(end_ns + settle_ns, gap.exchange, gap.symbol, timeframe, from_ns,
                             to_ns)
                )  # fmt: skip
        return changed, features

    async def refresh_closed(self, now_ns: int) -> int:
        """Rebuild the derived bars that were still open when their gap was repaired."""
        due = [r for r in self._refresh_later if r.due_ns <= now_ns]
        self._refresh_later = [r for r in self._refresh_later if r.due_ns > now_ns]
        changed = 0
        for r in due:
            changed += await self.store.refresh_derived_candles(
                r.timeframe, r.from_ns, r.to_ns, r.exchange, r.symbol
            )
            await self._after_rebuild(r.exchange, r.symbol, r.timeframe, r.from_ns, r.to_ns)
        return changed

    async def _after_rebuild(
        self, exchange: str, symbol: str, timeframe: str, from_ns: int, to_ns: int
    ) -> int:
        """The rebuilt closed bars to the cache, and the features from the first of them on
        recomputed (when derived bars feed the indicators); returns features recomputed."""
        first_ns = bucket_start_ns(from_ns, timeframe)
        end_ns = bucket_start_ns(to_ns, timeframe) + timeframe_ns(timeframe)
        rebuilt = await self.store.closed_candles(
            exchange, symbol, timeframe, CandleSource.DERIVED.value, first_ns, end_ns
        )
        await self.outlet.cache_history(rebuilt)
        if self.outlet.indicators.source != CandleSource.DERIVED:
            return 0
        return await self._recompute_features(exchange, symbol, timeframe, first_ns)

    async def _recompute_features(
        self, exchange: str, symbol: str, timeframe: str, from_ns: int
    ) -> int:
        """Features of one stream recomputed from storage for every bar from ``from_ns`` on.

        The replay starts ``warmup_bars`` earlier; the session VWAP starts from its day's sums
        before that (summed by the server, so a 1 s stream is not replayed from 00:00), and the
        stored OBV of the last bar before ``from_ns`` is its anchor (see
        ``IndicatorEngine.rebuild``). Recomputed values replace stored ones; the newest go to
        the cache."""
        config = self.outlet.indicators
        source = config.source.value
        step_ns = timeframe_ns(timeframe)
        first_ns = bucket_start_ns(from_ns, timeframe)
        warm_ns = first_ns - config.warmup_bars * step_ns
        seeds: dict[str, float] = {}
        day_ns = warm_ns - warm_ns % _DAY_NS
        if config.vwap and day_ns < warm_ns:
            pv, volume = await self.store.vwap_sums(
                exchange, symbol, timeframe, source, day_ns, warm_ns
            )
            seeds = {"vwap_session_start_ns": day_ns, "vwap_pv": pv, "vwap_volume": volume}
        bars = await self.store.closed_candles(exchange, symbol, timeframe, source, warm_ns)
        before = [b for b in bars if b.open_ns < first_ns]
        anchors = (
            await self.store.features_at(exchange, symbol, timeframe, before[-1].open_ns)
            if before
            else {}
        )
        key = (exchange, symbol, timeframe)
        features = self.outlet.rebuild_features(key, bars, first_ns, anchors, seeds)
        await self.store.replace_features(
            [FeatureValue(f.exchange, f.symbol, f.timeframe, f.name, f.ts_ns, f.value)
             for f in features]
        )  # fmt: skip
        newest: dict[str, Feature] = {}
        for f in features:
            newest[f.name] = f
        await self.outlet.cache_features(list(newest.values()))
        return len(features)

    async def publish_pending(self) -> None:
        """Gauge of gaps not repaired yet, per stream (streams that had some go back to 0)."""
        if self.metrics is None:
            return
        counts = dict.fromkeys(self._published, 0)
        for gap in await self.pending():
            key = (gap.exchange, gap.symbol, gap.channel)
            counts[key] = counts.get(key, 0) + 1
        for (exchange, symbol, channel), n in counts.items():
            self.metrics.gaps_pending(exchange, symbol, channel).set(n)
        self._published = set(counts)


def _where(gap: GapRecord) -> tuple[str, str, str]:
    return gap.exchange, gap.symbol, gap.channel


# -- the runner task ---------------------------------------------------------------------------


async def run_repairs(context: RunContext) -> None:
    """Repair rounds every ``repair.interval_s`` until the runner stops: restart holes and
    candle holes are recorded first (``gapscan``), then every due gap is repaired."""
    from tickvault.runner.gapscan import GapScanner, streams_of

    settings = context.settings
    session_start_ns = time.time_ns()  # every trade received from now on is this session's
    store = await PostgresStore.open(
        context.urls.database_url, settings.writer, settings.timescale, timed_flush=False
    )
    sources = {
        f.exchange: RestSource(f.adapter, f.rest, {i.symbol: i for i in f.instruments})
        for f in context.feeds
    }
    markets = {(f.exchange, i.symbol) for f in context.feeds for i in f.instruments}
    repairer = GapRepairer(
        store,
        sources,
        settings.repair,
        settings.timeframes,
        context.metrics,
        context.outlet,
        markets,
    )
    scanner = GapScanner(
        store, settings, streams_of(context.feeds), session_start_ns, context.metrics
    )
    try:
        while not context.stopping.is_set():
            now_ns = time.time_ns()
            try:
                await scanner.scan(now_ns)
                await repairer.repair_due(now_ns)
                await repairer.publish_pending()
            except StorageError as exc:  # PostgreSQL away: the writers buffer, we wait
                log.warning("gap repair waits for PostgreSQL: %s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(context.stopping.wait(), settings.repair.interval_s)
    finally:
        await store.close()
