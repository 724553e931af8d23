"""Validation stage: a batch of events in, (accepted, rejected, counts by reason) out.

Pure and stateful: the :class:`Validator` remembers, per stream, the recent natural keys
(duplicates), the last sequence / trade id (monotonicity) and recent prices (outliers), all in
bounded memory. Nothing reads a clock: the caller passes ``now_ns``. A bad record never stops
the batch; it becomes a :class:`Rejected` with a short reason label.

Reasons: ``wrong_type``, ``missing_field``, ``bad_price``, ``bad_size``, ``bad_ohlc``,
``bad_timeframe``, ``future_ts``, ``stale_ts``, ``duplicate``, ``sequence_regression``,
``crossed_book``, ``outlier_stream``, ``outlier_cross``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from tickvault.model import (
    NS_PER_S,
    BookDelta,
    BookSnapshot,
    Candle,
    MarketEvent,
    Ticker,
    Trade,
)
from tickvault.pipeline._checks import (
    Failure,
    check_book,
    check_candle,
    check_ticker,
    cross_outlier,
    median_of,
    missing_field,
    rejected_record,
    stream_outlier,
)
from tickvault.pipeline.records import Rejected

try:  # the compiled validation loop (pipeline/_validate.pyx), when the package was built with it
    from tickvault.pipeline import _validate as compiled_validation
except ImportError:  # pragma: no cover - a source tree without the built extension
    compiled_validation = None  # type: ignore[assignment]


@dataclass(frozen=True, slots=True)
class ValidationConfig:
    """Thresholds of the validation rules; the defaults suit live spot crypto feeds."""

    future_tolerance_ns: int = 10 * NS_PER_S
    """An event time this far ahead of ``now_ns`` is refused: venue and local clocks differ by
    well under a second when NTP works, so 10 s means a wrong clock or unit."""
    min_ts_ns: int = 1_230_940_800 * NS_PER_S
    """Absolute floor (2009-01-03). Older times are unit mistakes (ms or s taken for ns)."""
    max_age_ns: int | None = None
    """Refuse events older than ``now_ns - max_age_ns``. None (default) lets backfill through;
    a live-only validator may set e.g. one day."""
    duplicate_window: int = 10_000
    """Natural keys remembered per stream (kind, exchange, symbol) for duplicate detection."""
    check_trade_id_order: bool = True
    """Numeric trade ids must not go backwards within a stream (ids of all three venues are
    increasing integers). Give backfill its own Validator so its older ids are not refused."""
    outlier_window: int = 200
    """Recent prices per (exchange, symbol) whose median is the outlier reference."""
    outlier_min_samples: int = 20
    """No outlier check until a stream has this many prices."""
    outlier_refresh_every: int = 32
    """Recompute the medians every N prices: amortizes the sort to a few hundred ns a price."""
    outlier_max_deviation: float = 0.10
    """Relative distance from the stream's own recent median above which a price is refused."""
    cross_max_deviation: float = 0.05
    """Relative distance from the other exchanges' median for the same symbol."""
    cross_min_exchanges: int = 2
    """Other exchanges needed for the cross check: with one, a broken peer would condemn a
    healthy venue, so the default asks for two (all three venues)."""
    cross_max_age_ns: int = 60 * NS_PER_S
    """A peer's median older than this (event time) does not take part."""


@dataclass(slots=True)
class ValidationResult:
    accepted: list[MarketEvent]
    rejected: list[Rejected]
    counts: dict[str, int] = field(default_factory=dict)  # rejections of this batch by reason


class _KeyWindow:
    """The last ``size`` keys of one stream: a set for lookups, a deque for eviction order."""

    __slots__ = ("keys", "order", "size")

    def __init__(self, size: int) -> None:
        self.keys: set[Any] = set()
        self.order: deque[Any] = deque()
        self.size = size

    def add(self, key: Any) -> None:
        if len(self.order) >= self.size:
            self.keys.discard(self.order.popleft())
        self.order.append(key)
        self.keys.add(key)


class _PriceRef:
    """Recent prices of one (exchange, symbol) with cached medians (own and cross-exchange)."""

    __slots__ = ("cross", "last_ts_ns", "median", "prices", "since_refresh")

    def __init__(self, size: int) -> None:
        self.prices: deque[float] = deque(maxlen=size)
        self.median: float | None = None
        self.cross: float | None = None
        self.since_refresh = 0
        self.last_ts_ns = 0


class _TradeStream:
    """Everything validation remembers about one market's trades."""

    __slots__ = ("last_id", "ref", "window")

    def __init__(self, window: _KeyWindow, ref: _PriceRef) -> None:
        self.window = window
        self.ref = ref
        self.last_id = -1


_ZERO = Decimal(0)


class Validator:
    def __init__(self, config: ValidationConfig | None = None) -> None:
        self.config = config or ValidationConfig()
        self.totals: dict[str, int] = {}  # rejections since creation, by reason
        self._keys: dict[tuple[str, str, str], _KeyWindow] = {}  # books, tickers, candles
        self._trades: dict[tuple[str, str], _TradeStream] = {}
        self._last_sequence: dict[tuple[str, str], int] = {}
        self._prices: dict[tuple[str, str], _PriceRef] = {}
        self._peers: dict[str, list[tuple[str, _PriceRef]]] = {}  # symbol -> refs by exchange
        # The compiled loop (same results, in C) when built; False selects the Python one.
        self.compiled = compiled_validation is not None

    def reset(self, exchange: str, symbol: str) -> None:
        """Forget sequence and trade-id state of a market (after a reconnect or resync)."""
        state = self._trades.get((exchange, symbol))
        if state is not None:
            state.last_id = -1
        self._last_sequence.pop((exchange, symbol), None)

    def validate(self, events: Iterable[object], now_ns: int) -> ValidationResult:
        if self.compiled:
            return ValidationResult(*compiled_validation.validate(self, events, now_ns))
        cfg = self.config
        accepted: list[MarketEvent] = []
        rejected: list[Rejected] = []
        counts: dict[str, int] = {}
        future_ns = now_ns + cfg.future_tolerance_ns
        floor_ns = cfg.min_ts_ns
        if cfg.max_age_ns is not None:
            floor_ns = max(floor_ns, now_ns - cfg.max_age_ns)
        streams = self._trades
        check_ids = cfg.check_trade_id_order
        max_dev, cross_dev = cfg.outlier_max_deviation, cfg.cross_max_deviation
        refresh_every, min_samples = cfg.outlier_refresh_every, cfg.outlier_min_samples
        run_exchange: object = None  # the market of the current run of trades, and its state
        run_symbol: object = None
        last_price: Decimal | None = None  # the last trade price converted, and its float
        last_value = 0.0
        state: _TradeStream
        window: _KeyWindow
        seen: set[Any]
        ref: _PriceRef

        for event in events:
            failure: Failure | None = None
            kind = type(event)
            if kind is Trade:
                trade: Trade = event  # type: ignore[assignment]
                exchange = trade.exchange
                symbol = trade.symbol
                tid = trade.trade_id
                price = trade.price
                size = trade.size
                ts_ns = trade.ts_ns
                if not (
                    type(exchange) is str
                    and type(symbol) is str
                    and exchange
                    and symbol
                    and tid
                    and type(tid) is str
                    and type(price) is Decimal
                    and type(size) is Decimal
                    and type(ts_ns) is int
                    and type(trade.recv_ns) is int
                ):
                    failure = missing_field(trade)
                else:
                    try:
                        if not (price > _ZERO and price.is_finite()):
                            failure = ("bad_price", f"price {price} is not a positive number")
                        elif not (size > _ZERO and size.is_finite()):
                            failure = ("bad_size", f"size {size} is not a positive number")
                    except InvalidOperation:
                        failure = ("bad_price", f"price {price} or size {size} is NaN")
                if failure is None:
                    if ts_ns > future_ns:
                        failure = ("future_ts", f"ts_ns {ts_ns} is {ts_ns - now_ns} ns ahead")
                    elif ts_ns < floor_ns:
                        failure = ("stale_ts", f"ts_ns {ts_ns} is before {floor_ns}")
                if failure is None:
                    # Hot path: a run of one market's trades (a feed message holds many) shares
                    # one state lookup; the outlier check is inlined (same rule as
                    # _check_price, which tickers use).
                    if exchange is not run_exchange or symbol is not run_symbol:
                        run_exchange, run_symbol = exchange, symbol
                        found = streams.get((exchange, symbol))
                        state = found or self._trade_stream((exchange, symbol))
                        window = state.window
                        seen = window.keys
                        ref = state.ref
                    if tid in seen:
                        failure = ("duplicate", f"trade id {tid} seen before")
                    else:
                        if check_ids and tid.isdigit():
                            number = int(tid)
                            if number < state.last_id:
                                failure = (
                                    "sequence_regression",
                                    f"trade id {tid} after {state.last_id}",
                                )
                            else:
                                state.last_id = number
                        if failure is None:
                            # equal decimals give the same float: consecutive trades of a
                            # market share their price ~40 % of the time, and a compare is
                            # far cheaper than float(Decimal)
                            if price != last_price:
                                last_price, last_value = price, float(price)
                            value = last_value
                            median = ref.median
                            if median is not None:
                                if abs(value - median) > max_dev * median:
                                    failure = stream_outlier(value, median)
                                elif (cross := ref.cross) is not None and abs(
                                    value - cross
                                ) > cross_dev * cross:
                                    failure = cross_outlier(value, cross)
                            ref.prices.append(value)
                            ref.last_ts_ns = ts_ns
                            ref.since_refresh += 1
                            if ref.since_refresh >= refresh_every or (
                                median is None and len(ref.prices) >= min_samples
                            ):
                                self._refresh((exchange, symbol), ref, ts_ns)
                        if failure is None:
                            order = window.order
                            if len(order) >= window.size:
                                seen.discard(order.popleft())
                            order.append(tid)
                            seen.add(tid)
            elif kind is BookDelta or kind is BookSnapshot:
                failure = check_book(event, future_ns, floor_ns)  # type: ignore[arg-type]
                if failure is None:
                    failure = self._check_book_order(event)  # type: ignore[arg-type]
            elif kind is Ticker:
                failure = check_ticker(event, future_ns, floor_ns)  # type: ignore[arg-type]
                if failure is None:
                    failure = self._check_ticker_state(event)  # type: ignore[arg-type]
            elif kind is Candle:
                failure = check_candle(event, future_ns, floor_ns)  # type: ignore[arg-type]
                if failure is None:
                    failure = self._check_candle_key(event)  # type: ignore[arg-type]
            else:
                failure = ("wrong_type", f"{kind.__name__} is not a market event")

            if failure is None:
                accepted.append(event)  # type: ignore[arg-type]
            else:
                reason = failure[0]
                counts[reason] = counts.get(reason, 0) + 1
                rejected.append(rejected_record(event, failure))
        totals = self.totals
        for reason, count in counts.items():
            totals[reason] = totals.get(reason, 0) + count
        return ValidationResult(accepted, rejected, counts)

    # -- stateful rules ------------------------------------------------------------------

    def _window(self, stream: tuple[str, str, str]) -> _KeyWindow:
        window = self._keys.get(stream)
        if window is None:
            window = self._keys[stream] = _KeyWindow(self.config.duplicate_window)
        return window

    def _check_price(self, market: tuple[str, str], price: float, ts_ns: int) -> Failure | None:
        """Outlier check against the stream's median and the peers' median, then remember.

        Outliers are remembered too: a lasting move to a new level then becomes the median
        after half a window instead of being refused forever; a lone spike stays refused.
        """
        ref = self._price_ref(market)
        failure: Failure | None = None
        median = ref.median
        if median is not None:
            if abs(price - median) > self.config.outlier_max_deviation * median:
                failure = stream_outlier(price, median)
            elif (cross := ref.cross) is not None and abs(
                price - cross
            ) > self.config.cross_max_deviation * cross:
                failure = cross_outlier(price, cross)
        ref.prices.append(price)
        ref.last_ts_ns = ts_ns
        ref.since_refresh += 1
        if ref.since_refresh >= self.config.outlier_refresh_every or (
            median is None and len(ref.prices) >= self.config.outlier_min_samples
        ):
            self._refresh(market, ref, ts_ns)
        return failure

    def _price_ref(self, market: tuple[str, str]) -> _PriceRef:
        ref = self._prices.get(market)
        if ref is None:
            ref = self._prices[market] = _PriceRef(self.config.outlier_window)
            self._peers.setdefault(market[1], []).append((market[0], ref))
        return ref

    def _trade_stream(self, market: tuple[str, str]) -> _TradeStream:
        state = _TradeStream(_KeyWindow(self.config.duplicate_window), self._price_ref(market))
        self._trades[market] = state
        return state

    def _refresh(self, market: tuple[str, str], ref: _PriceRef, ts_ns: int) -> None:
        cfg = self.config
        ref.since_refresh = 0
        if len(ref.prices) >= cfg.outlier_min_samples:
            ref.median = median_of(list(ref.prices))
        peers = [
            other.median
            for exchange, other in self._peers.get(market[1], ())
            if exchange != market[0]
            and other.median is not None
            and ts_ns - other.last_ts_ns <= cfg.cross_max_age_ns
        ]
        ref.cross = median_of(peers) if len(peers) >= cfg.cross_min_exchanges else None

    def _check_book_order(self, book: BookSnapshot | BookDelta) -> Failure | None:
        market = (book.exchange, book.symbol)
        last = self._last_sequence.get(market)
        if type(book) is BookSnapshot:
            # A snapshot starts a new sync epoch (venues may restart sequences on reconnect),
            # so it resets the baseline; only an exact repeat is refused.
            seq = book.sequence
            if seq is not None:
                if seq == last:
                    return ("duplicate", f"snapshot sequence {seq} seen before")
                self._last_sequence[market] = seq
            return None
        delta: BookDelta = book  # type: ignore[assignment]
        first, final = delta.first_sequence, delta.last_sequence
        if final is None:
            return None
        if first is not None and first > final:
            return ("sequence_regression", f"first_sequence {first} > last_sequence {final}")
        if last is not None and final <= last:
            if final == last:
                return ("duplicate", f"delta up to sequence {final} seen before")
            return ("sequence_regression", f"delta up to sequence {final} after {last}")
        self._last_sequence[market] = final
        return None

    def _check_ticker_state(self, ticker: Ticker) -> Failure | None:
        key = (ticker.ts_ns, ticker.bid_price, ticker.ask_price, ticker.last_price)
        window = self._window(("ticker", ticker.exchange, ticker.symbol))
        if key in window.keys:
            return ("duplicate", f"ticker at ts_ns {ticker.ts_ns} seen before")
        if ticker.bid_price is not None and ticker.ask_price is not None:
            price = float(ticker.bid_price + ticker.ask_price) / 2
        elif ticker.last_price is not None:
            price = float(ticker.last_price)
        else:
            price = None
        if price is not None:
            failure = self._check_price((ticker.exchange, ticker.symbol), price, ticker.ts_ns)
            if failure is not None:
                return failure
        window.add(key)
        return None

    def _check_candle_key(self, candle: Candle) -> Failure | None:
        # A closed bar is unique per open time; a forming bar is re-sent with each update,
        # so only an update with the same event time is a duplicate.
        key: tuple[Any, ...]
        if candle.closed:
            key = (candle.timeframe, candle.open_ns, candle.source, True)
        else:
            key = (candle.timeframe, candle.open_ns, candle.source, False, candle.ts_ns)
        window = self._window(("candle", candle.exchange, candle.symbol))
        if key in window.keys:
            return ("duplicate", f"{candle.timeframe} bar at {candle.open_ns} seen before")
        window.add(key)
        return None
