"""Data quality per (exchange, symbol, channel) over a rolling window, as scores in 0..1.

The runner feeds the :class:`QualityTracker` with what the stages produced (validation results,
decode errors, Gap events, empty derived intervals, reconciliation results) together with the
batch's ``now_ns``, and asks for :meth:`QualityTracker.scores`. Counters live in fixed time slots
(default 10 s) so the window rolls in bounded memory; lags go into log-scale histograms (9 %
resolution) so a p95 needs no stored samples.

Components (1 = perfect; a component without evidence is 1):

* completeness = present / (present + missing items)  x  (1 - missing time / window span).
  Missing items: trade-id gaps (numeric ids), book-delta sequence gaps, skipped exchange
  candles. Missing time: Gap events, and empty derived-candle intervals of timeframes of at
  least ``empty_interval_min_ns`` (an empty minute on a liquid pair means lost trades; an empty
  second does not).
* validity = accepted / (accepted + rejected + decode errors); duplicates are left to uniqueness.
* timeliness = lag score x staleness score, each ``min(1, budget / observed)``: the p95 of
  receive minus exchange time, and ``now - last receive``.
* consistency = deviation score x reconciliation score: ``max(0, 1 - d / deviation_budget)`` of
  the last price's relative distance d from the median of the other exchanges' fresh last prices
  (trades, ticker); share of paired derived/exchange candles without findings (candles).
* uniqueness = 1 - duplicates / (accepted + duplicates).

``score`` is the weighted mean of the components (weights configurable, default 0.3 / 0.2 / 0.2
/ 0.15 / 0.15); ``worst`` names the lowest component (the first in that order on ties).
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from tickvault.model import (
    NS_PER_S,
    BookDelta,
    BookSnapshot,
    Candle,
    CandleSource,
    DecodeError,
    Gap,
    MarketEvent,
    Ticker,
    Trade,
    timeframe_ns,
)
from tickvault.pipeline.reconcile import ReconcileResult
from tickvault.pipeline.records import EmptyInterval, QualityScore
from tickvault.pipeline.validate import ValidationResult

COMPONENTS = ("completeness", "validity", "timeliness", "consistency", "uniqueness")


@dataclass(frozen=True, slots=True)
class QualityWeights:
    completeness: float = 0.30
    validity: float = 0.20
    timeliness: float = 0.20
    consistency: float = 0.15
    uniqueness: float = 0.15


@dataclass(frozen=True, slots=True)
class QualityConfig:
    window_ns: int = 300 * NS_PER_S
    slot_ns: int = 10 * NS_PER_S
    lag_budget_ns: int = 2 * NS_PER_S
    """p95 exchange-to-receive lag at which timeliness starts to fall."""
    staleness_budget_ns: int = 60 * NS_PER_S
    """Silence after which timeliness starts to fall (quiet pairs trade less than once a minute
    only rarely on these venues)."""
    deviation_budget: float = 0.01
    """Relative distance from the other exchanges' median at which consistency reaches 0."""
    cross_max_age_ns: int = 60 * NS_PER_S
    empty_interval_min_ns: int = 60 * NS_PER_S
    weights: QualityWeights = field(default_factory=QualityWeights)


_LAG_STEPS = 8  # histogram buckets per doubling
_RECONCILED_KEPT = 20_000  # compared bars remembered for a revision's recount
_CHANNELS: dict[type, str] = {
    Trade: "trades",
    BookDelta: "book",
    BookSnapshot: "book",
    Ticker: "ticker",
}  # anything else counts as candles


class _Slot:
    __slots__ = (
        "compared",
        "duplicates",
        "events",
        "lags",
        "mismatched",
        "missing",
        "missing_time_ns",
        "rejected",
        "start_ns",
    )

    def __init__(self, start_ns: int) -> None:
        self.start_ns = start_ns
        self.events = self.rejected = self.duplicates = self.missing = 0
        self.missing_time_ns = self.compared = self.mismatched = 0
        self.lags: dict[int, int] = {}


class _Stream:
    __slots__ = ("first_ns", "last_candle", "last_id", "last_recv_ns", "last_seq", "slots")

    def __init__(self, now_ns: int) -> None:
        self.slots: deque[_Slot] = deque()
        self.first_ns = now_ns
        self.last_recv_ns: int | None = None
        self.last_id: int | None = None
        self.last_seq: int | None = None
        self.last_candle: dict[str, int] = {}


def _end_run(stream: _Stream, slot: _Slot, events: int, newest_recv_ns: int) -> None:
    slot.events += events
    if stream.last_recv_ns is None or newest_recv_ns > stream.last_recv_ns:
        stream.last_recv_ns = newest_recv_ns


try:  # the compiled per-event loop (pipeline/_quality.pyx), when built;
    # imported here: it takes _CHANNELS, _LAG_STEPS and _end_run from this module
    from tickvault.pipeline import _quality as compiled_quality
except ImportError:  # pragma: no cover - a source tree without the built extension
    compiled_quality = None  # type: ignore[assignment]


class QualityTracker:
    def __init__(self, config: QualityConfig | None = None) -> None:
        self.config = config or QualityConfig()
        self._streams: dict[tuple[str, str, str], _Stream] = {}
        self._prices: dict[str, dict[str, tuple[float, int]]] = {}  # symbol -> exchange -> (p, ts)
        # compared bars -> the slot that counted them, mismatched or not (``observe_reconcile``)
        self._reconciled: OrderedDict[tuple[str, str, str, int], tuple[_Slot, bool]] = OrderedDict()
        # The compiled loop (same results, in C) when built; False selects the Python one.
        self.compiled = compiled_quality is not None

    # -- feeding -------------------------------------------------------------------------

    def _slot(self, key: tuple[str, str, str], now_ns: int) -> tuple[_Stream, _Slot]:
        stream = self._streams.get(key)
        if stream is None:
            stream = self._streams[key] = _Stream(now_ns)
        start = now_ns - now_ns % self.config.slot_ns
        slots = stream.slots
        if not slots or slots[-1].start_ns < start:
            slots.append(_Slot(start))
            horizon = now_ns - self.config.window_ns
            while slots[0].start_ns + self.config.slot_ns <= horizon:
                slots.popleft()
        return stream, slots[-1]

    def observe_validation(self, result: ValidationResult, now_ns: int) -> None:
        """Count a validated batch: events, lags and id/sequence holes per stream, the newest
        receive time, and each stream's last price for the consistency check.

        Batch-wise: events of one stream come in runs (a feed message holds many), so a run
        shares one stream lookup and one update of the counters; of the prices only the last
        one per (symbol, exchange) is kept, so only that one is converted to float."""
        if self.compiled:
            last_price = compiled_quality.observe_accepted(self, result.accepted, now_ns)
        else:
            last_price = self._observe_accepted(result.accepted, now_ns)
        prices = self._prices
        for (symbol, exchange), event in last_price.items():
            if type(event) is Trade:
                value = float(event.price)
            else:
                ticker: Ticker = event  # type: ignore[assignment]
                value = float(ticker.bid_price + ticker.ask_price) / 2  # type: ignore[operator]
            by_exchange = prices.get(symbol)
            if by_exchange is None:
                by_exchange = prices[symbol] = {}
            by_exchange[exchange] = (value, event.ts_ns)
        for rejected in result.rejected:
            key = (rejected.exchange, rejected.symbol or "", rejected.channel)
            _, rejected_slot = self._slot(key, now_ns)
            if rejected.reason == "duplicate":
                rejected_slot.duplicates += 1
            else:
                rejected_slot.rejected += 1

    def _observe_accepted(
        self, accepted: list[MarketEvent], now_ns: int
    ) -> dict[tuple[str, str], MarketEvent]:
        """The per-event part of :meth:`observe_validation`: counters, lags and holes per
        stream; returns the last trade or two-sided ticker per (symbol, exchange)."""
        cache: dict[tuple[str, str, str], tuple[_Stream, _Slot]] = {}
        last_price: dict[tuple[str, str], MarketEvent] = {}  # last trade or two-sided ticker
        log2 = math.log2
        run_kind: type | None = None
        run_exchange = run_symbol = ""
        price_key = ("", "")
        stream: _Stream | None = None
        slot: _Slot | None = None
        lags: dict[int, int] = {}
        run_events = run_recv = 0
        last_lag, last_bucket = 0, 0
        for event in accepted:
            kind = type(event)
            if (
                kind is not run_kind
                or event.exchange is not run_exchange
                or (event.symbol is not run_symbol)
            ):
                if stream is not None:
                    _end_run(stream, slot, run_events, run_recv)  # type: ignore[arg-type]
                run_kind, run_exchange, run_symbol = kind, event.exchange, event.symbol
                price_key = (run_symbol, run_exchange)
                key = (run_exchange, run_symbol, _CHANNELS.get(kind, "candles"))
                pair = cache.get(key)
                if pair is None:
                    pair = cache[key] = self._slot(key, now_ns)
                stream, slot = pair
                lags = slot.lags
                run_events = 0
                run_recv = event.recv_ns
            run_events += 1
            recv_ns = event.recv_ns
            if recv_ns > run_recv:
                run_recv = recv_ns
            lag = recv_ns - event.ts_ns
            if lag != last_lag:
                last_lag = lag
                last_bucket = int(log2(lag) * _LAG_STEPS) if lag > 1 else 0
            lags[last_bucket] = lags.get(last_bucket, 0) + 1
            if kind is Trade:
                trade: Trade = event  # type: ignore[assignment]
                trade_id = trade.trade_id
                if trade_id.isdigit():
                    number = int(trade_id)
                    last = stream.last_id  # type: ignore[union-attr]
                    if last is None or number > last:
                        if last is not None and number > last + 1:
                            slot.missing += number - last - 1  # type: ignore[union-attr]
                        stream.last_id = number  # type: ignore[union-attr]
                last_price[price_key] = trade
            elif kind is BookDelta:
                delta: BookDelta = event  # type: ignore[assignment]
                if delta.first_sequence is not None and delta.last_sequence is not None:
                    last_seq = stream.last_seq  # type: ignore[union-attr]
                    if last_seq is not None and delta.first_sequence > last_seq + 1:
                        slot.missing += delta.first_sequence - last_seq - 1  # type: ignore[union-attr]
                    stream.last_seq = delta.last_sequence  # type: ignore[union-attr]
            elif kind is BookSnapshot:
                stream.last_seq = event.sequence  # type: ignore[union-attr]
            elif kind is Ticker:
                ticker: Ticker = event  # type: ignore[assignment]
                if ticker.bid_price is not None and ticker.ask_price is not None:
                    last_price[price_key] = ticker
            else:
                self._candle(event, stream, slot)  # type: ignore[arg-type]
        if stream is not None:
            _end_run(stream, slot, run_events, run_recv)  # type: ignore[arg-type]
        return last_price

    def _candle(self, candle: Candle, stream: _Stream, slot: _Slot) -> None:
        if not candle.closed or candle.source is not CandleSource.EXCHANGE:
            return
        length = timeframe_ns(candle.timeframe)
        last = stream.last_candle.get(candle.timeframe)
        if last is None or candle.open_ns > last:
            if last is not None and candle.open_ns > last + length:
                slot.missing += (candle.open_ns - last) // length - 1
            stream.last_candle[candle.timeframe] = candle.open_ns

    def observe_decode_errors(self, errors: Iterable[DecodeError], now_ns: int) -> None:
        for error in errors:
            key = (error.exchange, error.symbol or "", error.channel or "unknown")
            self._slot(key, now_ns)[1].rejected += 1

    def observe_gaps(self, gaps: Iterable[Gap], now_ns: int) -> None:
        for gap in gaps:
            _, slot = self._slot((gap.exchange, gap.symbol, gap.channel), now_ns)
            slot.missing_time_ns += max(0, gap.to_ns - gap.from_ns)

    def observe_empty_intervals(self, intervals: Iterable[EmptyInterval], now_ns: int) -> None:
        minimum = self.config.empty_interval_min_ns
        for interval in intervals:
            if timeframe_ns(interval.timeframe) < minimum:
                continue
            _, slot = self._slot((interval.exchange, interval.symbol, "trades"), now_ns)
            slot.missing_time_ns += interval.to_open_ns - interval.from_open_ns

    def observe_reconcile(self, result: ReconcileResult, now_ns: int) -> None:
        """Count compared and mismatched bars; a bar compared again after a revision
        (``recompared``) corrects the count where it was first made (the same slot, if still
        in the window), so one bar counts once, as it compares now."""
        bad = {(f.exchange, f.symbol, f.timeframe, f.open_ns) for f in result.findings}
        reconciled = self._reconciled
        for key in result.compared:
            exchange, symbol = key[0], key[1]
            _, slot = self._slot((exchange, symbol, "candles"), now_ns)
            slot.compared += 1
            mismatched = key in bad
            if mismatched:
                slot.mismatched += 1
            reconciled[key] = (slot, mismatched)
            if len(reconciled) > _RECONCILED_KEPT:
                reconciled.popitem(last=False)
        for key in result.recompared:
            seen = reconciled.get(key)
            if seen is None:
                continue
            slot, was = seen
            now = key in bad
            if now != was:
                slot.mismatched += 1 if now else -1
                reconciled[key] = (slot, now)

    # -- scoring -------------------------------------------------------------------------

    def scores(self, now_ns: int) -> list[QualityScore]:
        cfg = self.config
        horizon = now_ns - cfg.window_ns
        out: list[QualityScore] = []
        for (exchange, symbol, channel), stream in sorted(self._streams.items()):
            slots = [s for s in stream.slots if s.start_ns + cfg.slot_ns > horizon]
            events = sum(s.events for s in slots)
            rejected = sum(s.rejected for s in slots)
            duplicates = sum(s.duplicates for s in slots)
            missing = sum(s.missing for s in slots)
            missing_time = sum(s.missing_time_ns for s in slots)
            compared = sum(s.compared for s in slots)
            mismatched = sum(s.mismatched for s in slots)

            span = max(cfg.slot_ns, min(cfg.window_ns, now_ns - stream.first_ns))
            completeness = _ratio(events, events + missing) * max(0.0, 1 - missing_time / span)
            validity = _ratio(events, events + rejected)
            uniqueness = _ratio(events, events + duplicates)

            lag_p95 = _p95(slots)
            staleness = None if stream.last_recv_ns is None else now_ns - stream.last_recv_ns
            timeliness = _budget(cfg.lag_budget_ns, lag_p95) * _budget(
                cfg.staleness_budget_ns, staleness
            )

            deviation = None
            if channel in ("trades", "ticker"):
                deviation = self._deviation(exchange, symbol, now_ns)
            consistency = _ratio(compared - mismatched, compared)
            if deviation is not None:
                consistency *= max(0.0, 1 - deviation / cfg.deviation_budget)

            values = (completeness, validity, timeliness, consistency, uniqueness)
            weights = cfg.weights
            weight_list = (
                weights.completeness,
                weights.validity,
                weights.timeliness,
                weights.consistency,
                weights.uniqueness,
            )
            total_weight = sum(weight_list)
            score = sum(w * v for w, v in zip(weight_list, values, strict=True)) / total_weight
            worst = COMPONENTS[values.index(min(values))]
            out.append(
                QualityScore(
                    exchange=exchange,
                    symbol=symbol,
                    channel=channel,
                    ts_ns=now_ns,
                    score=score,
                    completeness=completeness,
                    validity=validity,
                    timeliness=timeliness,
                    consistency=consistency,
                    uniqueness=uniqueness,
                    worst=worst,
                    events=events,
                    rejected=rejected,
                    duplicates=duplicates,
                    missing=missing,
                    lag_p95_ns=lag_p95,
                    staleness_ns=staleness,
                    deviation=deviation,
                )
            )
        return out

    def _deviation(self, exchange: str, symbol: str, now_ns: int) -> float | None:
        by_exchange = self._prices.get(symbol, {})
        own = by_exchange.get(exchange)
        if own is None:
            return None
        max_age = self.config.cross_max_age_ns
        others = sorted(
            price
            for other, (price, ts_ns) in by_exchange.items()
            if other != exchange and now_ns - ts_ns <= max_age
        )
        if not others:
            return None
        middle = len(others) // 2
        median = others[middle] if len(others) % 2 else (others[middle - 1] + others[middle]) / 2
        return abs(own[0] - median) / median


def _ratio(good: int, total: int) -> float:
    return good / total if total > 0 else 1.0


def _budget(budget: int, observed: int | None) -> float:
    if observed is None or observed <= budget:
        return 1.0
    return budget / observed


def _p95(slots: list[_Slot]) -> int | None:
    """Upper edge of the histogram bucket holding the 95th percentile lag (conservative)."""
    merged: dict[int, int] = {}
    for slot in slots:
        for bucket, count in slot.lags.items():
            merged[bucket] = merged.get(bucket, 0) + count
    total = sum(merged.values())
    if not total:
        return None
    rank = math.ceil(0.95 * total)
    seen = 0
    for bucket in sorted(merged):
        seen += merged[bucket]
        if seen >= rank:
            return math.ceil(2 ** ((bucket + 1) / _LAG_STEPS)) if bucket else 1
    raise AssertionError("unreachable: rank <= total")
