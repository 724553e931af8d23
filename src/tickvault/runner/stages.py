"""The runner's stages on one batch: validate → transform → quality (pure: no I/O, no clock).

:class:`Stages` owns the state of every pipeline stage (``tickvault.pipeline``) and turns a
batch of collector output (events, decode errors, gaps) into what the sinks store: market
events, derived candles, sampled books, features, signals, quarantine records and gaps. The
caller passes ``now_ns``; everything else is deterministic, so tests and benchmarks drive it
without sockets.

Per-event work is a few dictionary operations; counters are kept per batch in plain dicts and
handed to the metrics facade once per batch by the caller, never per event.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TypeVar, cast

import msgspec

from tickvault.model import (
    BookDelta,
    BookSnapshot,
    Candle,
    DecodeError,
    Gap,
    MarketEvent,
    Ticker,
    Trade,
)
from tickvault.pipeline.candles import CandleConfig, CandleDeriver, CandleOutput
from tickvault.pipeline.indicators import IndicatorConfig, IndicatorEngine
from tickvault.pipeline.quality import QualityConfig, QualityTracker
from tickvault.pipeline.reconcile import ReconcileConfig, Reconciler
from tickvault.pipeline.records import Feature, QualityScore, ReconcileFinding, Signal
from tickvault.pipeline.signals import EmaCross, RsiThreshold, Rule, SignalEngine
from tickvault.pipeline.validate import ValidationConfig, Validator
from tickvault.runner.books import BookKeeper
from tickvault.storage.postgres.records import QuarantineRecord

CHANNEL_OF: dict[type, str] = {
    Trade: "trades",
    Candle: "candles",
    BookSnapshot: "book",
    BookDelta: "book",
    Ticker: "ticker",
}

# Gap channels as FeedSettings names them (the Kraken feed reports its own "trade"/"candle").
GAP_CHANNELS = {"trade": "trades", "candle": "candles", "ohlc": "candles", "ticker": "ticker"}

# (exchange, channel) -> events; (exchange, symbol, channel) -> [events, newest ts_ns]
ChannelCounts = dict[tuple[str, str], int]
StreamCounts = dict[tuple[str, str, str], list[int]]


def default_rules(indicators: IndicatorConfig) -> list[Rule]:
    """EMA cross and RSI thresholds, when the indicators they need are configured."""
    names = indicators.feature_names()
    rules: list[Rule] = []
    if {"ema_12", "ema_26"} <= names:
        rules.append(cast(Rule, EmaCross(12, 26)))  # frozen dataclass: read-only name
    if indicators.rsi_period and f"rsi_{indicators.rsi_period}" in names:
        rules.append(cast(Rule, RsiThreshold(indicators.rsi_period)))
    return rules


@dataclass(frozen=True, slots=True)
class StageConfig:
    timeframes: tuple[str, ...] = ("1m", "5m", "15m", "1h", "4h", "1d")
    indicators: IndicatorConfig = field(default_factory=IndicatorConfig)
    rules: tuple[Rule, ...] | None = None  # None: default_rules(indicators)
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    quality: QualityConfig = field(default_factory=QualityConfig)
    book_depth: int = 10
    book_interval_ns: int = 100_000_000  # sampled books: at most one per stream per 100 ms
    forming_interval_ns: int = 1_000_000_000  # forming derived bars written once a second
    advance_interval_ns: int = 500_000_000  # how often quiet streams' bars are checked
    late_window_ns: int = 60_000_000_000  # a trade this late still revises its closed bar


@dataclass(slots=True)
class StageOutput:
    market: list[MarketEvent] = field(default_factory=list)  # to PostgreSQL and Redis
    features: list[Feature] = field(default_factory=list)
    # features recomputed for bars revised by late trades: they replace the stored values
    revised_features: list[Feature] = field(default_factory=list)
    signals: list[Signal] = field(default_factory=list)
    quarantine: list[QuarantineRecord] = field(default_factory=list)
    gaps: list[Gap] = field(default_factory=list)
    findings: list[ReconcileFinding] = field(default_factory=list)


@dataclass(slots=True)
class BatchCounts:
    """What one batch did, for the metrics facade and the run's totals."""

    collected: StreamCounts = field(default_factory=dict)
    validated: ChannelCounts = field(default_factory=dict)
    transformed: ChannelCounts = field(default_factory=dict)  # candles, book, features, signals
    rejects: dict[tuple[str, str, str], int] = field(default_factory=dict)  # exch, stage, reason
    gaps: dict[tuple[str, str, str, str], int] = field(default_factory=dict)  # + reason
    late_trades: dict[tuple[str, str], int] = field(default_factory=dict)  # exchange, outcome


K = TypeVar("K")


class _NoRun:
    """The type no event has: marks "no current run" in the per-run loops."""


def _bump(counts: dict[K, int], key: K, n: int = 1) -> None:
    counts[key] = counts.get(key, 0) + n


class Stages:
    def __init__(self, config: StageConfig | None = None) -> None:
        self.config = cfg = config or StageConfig()
        self.validator = Validator(cfg.validation)
        # Backfill and repaired history go back in time: their own duplicate/order state.
        self.backfill_validator = Validator(replace(cfg.validation, check_trade_id_order=False))
        self.deriver = CandleDeriver(
            CandleConfig(timeframes=cfg.timeframes, late_window_ns=cfg.late_window_ns)
        )
        self.reconciler = Reconciler(ReconcileConfig())
        self.indicators = IndicatorEngine(cfg.indicators, late_window_ns=cfg.late_window_ns)
        rules = default_rules(cfg.indicators) if cfg.rules is None else list(cfg.rules)
        self.signals = SignalEngine(rules, cfg.indicators)
        self.quality = QualityTracker(cfg.quality)
        self.books = BookKeeper(cfg.book_depth, cfg.book_interval_ns)
        self._forming: dict[tuple[str, str, str], Candle] = {}
        self._forming_due_ns = 0
        self._advance_due_ns = 0

    # -- one batch ---------------------------------------------------------------------------

    def process(
        self,
        events: Sequence[MarketEvent],
        errors: Sequence[DecodeError],
        gaps: Sequence[Gap],
        now_ns: int,
        *,
        backfill: bool = False,
        received_to_ns: int | None = None,
    ) -> tuple[StageOutput, BatchCounts]:
        """One batch. ``received_to_ns``: when more input is queued behind this batch, the
        receive time it reaches; quiet streams' bars close by it rather than by ``now_ns``, so
        a backlog's trades are not late for bars closed under them (``now_ns`` otherwise)."""
        out = StageOutput()
        counts = BatchCounts()
        quality = self.quality
        if events:
            self._count_collected(events, counts.collected)
            validator = self.backfill_validator if backfill else self.validator
            result = validator.validate(events, now_ns)
            quality.observe_validation(result, now_ns)
            for rejected in result.rejected:
                _bump(counts.rejects, (rejected.exchange, "validate", rejected.reason))
                out.quarantine.append(
                    QuarantineRecord(
                        rejected.exchange,
                        rejected.reason,
                        rejected.detail,
                        rejected.raw,
                        rejected.recv_ns if rejected.recv_ns is not None else now_ns,
                        rejected.symbol,
                        rejected.channel,
                    )
                )
            self._transform(result.accepted, out, counts, now_ns)
        if errors:
            quality.observe_decode_errors(errors, now_ns)
            for error in errors:
                _bump(counts.rejects, (error.exchange, "decode", error.reason))
                out.quarantine.append(QuarantineRecord.from_decode_error(error))
        if gaps:
            gaps = [
                msgspec.structs.replace(g, channel=GAP_CHANNELS[g.channel])
                if g.channel in GAP_CHANNELS and GAP_CHANNELS[g.channel] != g.channel
                else g
                for g in gaps
            ]
            quality.observe_gaps(gaps, now_ns)
            out.gaps.extend(gaps)
            for gap in gaps:
                _bump(counts.gaps, (gap.exchange, gap.symbol, gap.channel, gap.reason))
        clock_ns = now_ns if received_to_ns is None else min(now_ns, received_to_ns)
        if clock_ns >= self._advance_due_ns:
            self._advance_due_ns = clock_ns + self.config.advance_interval_ns
            self._derived(self.deriver.advance(clock_ns).closed, [], out, counts, now_ns)
        if now_ns >= self._forming_due_ns:
            self._forming_due_ns = now_ns + self.config.forming_interval_ns
            self._emit_forming(out, counts)
        return out, counts

    def finish(self, now_ns: int) -> tuple[StageOutput, BatchCounts]:
        """At shutdown: forming bars and sampled books not yet written."""
        out = StageOutput()
        counts = BatchCounts()
        self._emit_forming(out, counts)
        for book in self.books.flush():
            out.market.append(book)
            _bump(counts.transformed, (book.exchange, "book"))
        return out, counts

    def quality_scores(self, now_ns: int) -> list[QualityScore]:
        return self.quality.scores(now_ns)

    # -- transform ---------------------------------------------------------------------------

    def _transform(
        self,
        accepted: list[MarketEvent],
        out: StageOutput,
        counts: BatchCounts,
        now_ns: int,
    ) -> None:
        market = out.market
        validated = counts.validated
        trades: list[Trade] = []
        books: list[BookSnapshot | BookDelta] = []
        exchange_bars: list[Candle] = []
        # (exchange, channel) counts by runs: a feed message's events share both
        run_key: tuple[str, str] | None = None
        run_kind: type | None = None
        run_exchange = ""
        run_count = 0
        for event in accepted:
            kind = type(event)
            if kind is Trade:
                trades.append(event)  # type: ignore[arg-type]
                market.append(event)
            elif kind is BookDelta or kind is BookSnapshot:
                books.append(event)  # type: ignore[arg-type]
            else:
                market.append(event)
                if kind is Candle and event.closed:  # type: ignore[union-attr]
                    exchange_bars.append(event)  # type: ignore[arg-type]
            if kind is run_kind and event.exchange is run_exchange:
                run_count += 1
                continue
            if run_key is not None:
                validated[run_key] = validated.get(run_key, 0) + run_count
            run_kind, run_exchange, run_count = kind, event.exchange, 1
            run_key = (run_exchange, CHANNEL_OF.get(kind, "unknown"))
        if run_key is not None:
            validated[run_key] = validated.get(run_key, 0) + run_count
        if trades:
            derived = self.deriver.add_trades(trades)
            for bar in derived.updated:
                self._forming[(bar.exchange, bar.symbol, bar.timeframe)] = bar
            if derived.empty:
                self.quality.observe_empty_intervals(derived.empty, now_ns)
            if derived.revised_trades or derived.late_trades:
                self._late(derived, out, counts)
            closed = derived.closed
            if derived.revised:
                closed = self._revised(derived.revised, closed, out, counts, now_ns)
            self._derived(closed, exchange_bars, out, counts, now_ns)
        elif exchange_bars:
            self._derived([], exchange_bars, out, counts, now_ns)
        if books:
            for book in self.books.update(books):
                market.append(book)  # feed snapshots and sampled books alike
                _bump(counts.transformed, (book.exchange, "book"))

    @staticmethod
    def _late(derived: CandleOutput, out: StageOutput, counts: BatchCounts) -> None:
        """Trades that came after their bars closed: the revised bars go to storage (replacing
        the closed ones there; reconciliation and indicators take them again: ``_revised``);
        where they came too late to revise, a gap, whose repair rebuilds the bars from stored
        trades."""
        for bar in derived.revised:
            out.market.append(bar)
            _bump(counts.transformed, (bar.exchange, "candles"))
        for gap in derived.late_gaps:
            out.gaps.append(gap)
            _bump(counts.gaps, (gap.exchange, gap.symbol, gap.channel, gap.reason))
        for outcome, per_exchange in (
            ("revised", derived.revised_trades), ("too_late", derived.late_trades)
        ):  # fmt: skip
            for exchange, n in per_exchange.items():
                _bump(counts.late_trades, (exchange, outcome), n)

    def _revised(
        self,
        revised: list[Candle],
        closed: list[Candle],
        out: StageOutput,
        counts: BatchCounts,
        now_ns: int,
    ) -> list[Candle]:
        """Bars revised by late trades. Those closed before this batch are compared again with
        the exchange's bars (``Reconciler.revise``: findings as they stand now, resolved ones
        stored over those made at close, the quality counts corrected) and replayed through the
        indicators (``IndicatorEngine.revise``: their features replace the stored ones, and
        this batch's closed bars go on from the corrected state). A bar that closed in this
        batch and was revised in it too goes on as its revision. Returns the closed bars, so
        replaced. Signals are not evaluated again: a signal is what the rules said when its bar
        closed, and stays as published."""
        latest = {(b.exchange, b.symbol, b.timeframe, b.open_ns): b for b in revised}
        closed = [latest.pop((b.exchange, b.symbol, b.timeframe, b.open_ns), b) for b in closed]
        result = self.reconciler.revise(latest.values())
        if result.recompared or result.resolved:
            self.quality.observe_reconcile(result, now_ns)
            out.findings.extend(result.findings)
            out.findings.extend(result.resolved)  # stored over the finding made at close
        features = self.indicators.revise(latest.values())
        out.revised_features.extend(features)
        for feature in features:
            _bump(counts.transformed, (feature.exchange, "features"))
        return closed

    def _derived(
        self,
        closed: list[Candle],
        exchange_bars: list[Candle],
        out: StageOutput,
        counts: BatchCounts,
        now_ns: int,
    ) -> None:
        if not closed and not exchange_bars:
            return
        for bar in closed:
            key = (bar.exchange, bar.symbol, bar.timeframe)
            forming = self._forming.get(key)
            if forming is not None and forming.open_ns <= bar.open_ns:
                del self._forming[key]  # the closed bar supersedes it
            out.market.append(bar)
            _bump(counts.transformed, (bar.exchange, "candles"))
        bars = [*closed, *exchange_bars]
        result = self.reconciler.add(bars)
        if result.compared or result.findings:
            self.quality.observe_reconcile(result, now_ns)
            out.findings.extend(result.findings)
        features = self.indicators.update(bars)
        if features:
            out.features.extend(features)
            for feature in features:
                _bump(counts.transformed, (feature.exchange, "features"))
            signals = self.signals.evaluate(features)
            out.signals.extend(signals)
            for signal in signals:
                _bump(counts.transformed, (signal.exchange, "signals"))

    def _emit_forming(self, out: StageOutput, counts: BatchCounts) -> None:
        for bar in self._forming.values():
            out.market.append(bar)
            _bump(counts.transformed, (bar.exchange, "candles"))
        self._forming.clear()

    @staticmethod
    def _count_collected(events: Sequence[MarketEvent], streams: StreamCounts) -> None:
        channel_of = CHANNEL_OF
        run_kind: type | None = None  # the stream of the current run of events (see _transform)
        run_exchange: object = None
        run_symbol: object = None
        stream: list[int] = []
        for event in events:
            kind: type = type(event)
            try:
                exchange, symbol, ts_ns = event.exchange, event.symbol, event.ts_ns
                if kind is run_kind and exchange is run_exchange and symbol is run_symbol:
                    stream[0] += 1
                    if ts_ns > stream[1]:
                        stream[1] = ts_ns
                    continue
                key = (exchange, symbol, channel_of[kind])
            except (AttributeError, KeyError):
                key, ts_ns = (str(getattr(event, "exchange", "?")), "?", "unknown"), 0
                kind = _NoRun  # not a market event: starts no run
            found = streams.get(key)
            if found is None:
                stream = streams[key] = [1, ts_ns]
            else:
                stream = found
                stream[0] += 1
                if ts_ns > stream[1]:
                    stream[1] = ts_ns
            run_kind, run_exchange, run_symbol = kind, key[0], key[1]
