"""Stateless validation rules for books, tickers and candles, and the rules' messages.

Trades are checked inline in the validator's loop, their hot path.

Each returns ``None`` when the event passes, else a ``(reason, detail)`` pair.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import TypeAlias

import msgspec

from tickvault.model import TIMEFRAMES, BookDelta, BookSnapshot, Candle, Ticker, Trade
from tickvault.pipeline.records import Rejected

Failure: TypeAlias = tuple[str, str]

_ZERO = Decimal(0)


def _is_decimal(value: object) -> bool:
    return type(value) is Decimal and value.is_finite()  # type: ignore[attr-defined]


def _common(event: BookSnapshot | BookDelta | Ticker | Candle) -> Failure | None:
    for name in ("exchange", "symbol"):
        value = getattr(event, name)
        if type(value) is not str or not value:
            return ("missing_field", f"{name} is {value!r}")
    if type(event.ts_ns) is not int or type(event.recv_ns) is not int:
        return ("missing_field", f"ts_ns/recv_ns are {event.ts_ns!r}/{event.recv_ns!r}, not int")
    return None


def _times(ts_ns: int, future_ns: int, floor_ns: int) -> Failure | None:
    if ts_ns > future_ns:
        return ("future_ts", f"ts_ns {ts_ns} is beyond the tolerated future ({future_ns})")
    if ts_ns < floor_ns:
        return ("stale_ts", f"ts_ns {ts_ns} is before {floor_ns}")
    return None


def _levels(levels: object, side: str) -> tuple[Failure | None, list[Decimal]]:
    """Check one side's levels; also return the prices of levels with size > 0.

    A delta may carry several updates of one price in order (Coinbase ``l2_data``): the last
    one is the level's state, so a price set and then removed in the same message is not live.
    """
    if not isinstance(levels, tuple):
        return ("missing_field", f"{side} is not a tuple of levels"), []
    sizes: dict[Decimal, Decimal] = {}
    zero = _ZERO
    for level in levels:  # _is_decimal inlined: books carry thousands of levels a second
        if not isinstance(level, tuple) or len(level) != 2:
            return ("missing_field", f"{side} level {level!r} is not (price, size)"), []
        price, size = level
        if type(price) is not Decimal or not price.is_finite() or not price > zero:
            return ("bad_price", f"{side} price {price!r} is not a positive decimal"), []
        if type(size) is not Decimal or not size.is_finite() or size < zero:
            return ("bad_size", f"{side} size {size!r} at {price} is negative or not a decimal"), []
        sizes[price] = size
    return None, [price for price, size in sizes.items() if size]


try:  # the compiled _levels (pipeline/_levels.pyx), when the package was built with it
    from tickvault.pipeline._levels import levels as compiled_levels
except ImportError:  # pragma: no cover - a source tree without the built extension
    compiled_levels = None  # type: ignore[assignment]
_side_levels = _levels if compiled_levels is None else compiled_levels


def check_book(book: BookSnapshot | BookDelta, future_ns: int, floor_ns: int) -> Failure | None:
    failure = _common(book)
    if failure is not None:
        return failure
    failure, bids = _side_levels(book.bids, "bid")
    if failure is not None:
        return failure
    failure, asks = _side_levels(book.asks, "ask")
    if failure is not None:
        return failure
    # A delta can only be judged on the levels it sets: a bid it adds at or above an ask it
    # adds leaves the book crossed whatever else it holds.
    if bids and asks:
        best_bid, best_ask = max(bids), min(asks)
        if best_bid >= best_ask:
            return ("crossed_book", f"best bid {best_bid} >= best ask {best_ask}")
    return _times(book.ts_ns, future_ns, floor_ns)


def check_ticker(ticker: Ticker, future_ns: int, floor_ns: int) -> Failure | None:
    failure = _common(ticker)
    if failure is not None:
        return failure
    for name in ("bid_price", "ask_price", "last_price"):
        value = getattr(ticker, name)
        if value is not None and (not _is_decimal(value) or not value > _ZERO):
            return ("bad_price", f"{name} {value!r} is not a positive decimal")
    for name in ("bid_size", "ask_size", "volume_24h"):
        value = getattr(ticker, name)
        if value is not None and (not _is_decimal(value) or value < _ZERO):
            return ("bad_size", f"{name} {value!r} is negative or not a decimal")
    bid, ask = ticker.bid_price, ticker.ask_price
    if bid is not None and ask is not None and bid >= ask:
        return ("crossed_book", f"bid {bid} >= ask {ask}")
    return _times(ticker.ts_ns, future_ns, floor_ns)


def check_candle(candle: Candle, future_ns: int, floor_ns: int) -> Failure | None:
    failure = _common(candle)
    if failure is not None:
        return failure
    if candle.timeframe not in TIMEFRAMES:
        return ("bad_timeframe", f"timeframe {candle.timeframe!r} is not supported")
    if type(candle.open_ns) is not int:
        return ("missing_field", f"open_ns is {candle.open_ns!r}, not int")
    o, h, low, c = candle.open, candle.high, candle.low, candle.close
    for name, value in (("open", o), ("high", h), ("low", low), ("close", c)):
        if not _is_decimal(value) or not value > _ZERO:
            return ("bad_price", f"{name} {value!r} is not a positive decimal")
    for name in ("volume", "quote_volume", "buy_volume", "sell_volume", "vwap"):
        value = getattr(candle, name)
        if value is None and name != "volume":
            continue
        if not _is_decimal(value) or value < _ZERO:
            return ("bad_size", f"{name} {value!r} is negative or not a decimal")
    if candle.trade_count is not None and (
        type(candle.trade_count) is not int or candle.trade_count < 0
    ):
        return ("bad_size", f"trade_count {candle.trade_count!r} is not a count")
    try:
        if not (low <= o <= h and low <= c <= h):
            return ("bad_ohlc", f"OHLC {o}/{h}/{low}/{c} violates low <= open, close <= high")
    except InvalidOperation:  # pragma: no cover - finite decimals were checked above
        return ("bad_price", "OHLC not comparable")
    if candle.open_ns > future_ns:
        return ("future_ts", f"open_ns {candle.open_ns} is beyond the tolerated future")
    return _times(candle.ts_ns, future_ns, floor_ns)


def missing_field(event: Trade) -> Failure:
    for name in ("exchange", "symbol", "trade_id"):
        value = getattr(event, name)
        if not isinstance(value, str) or not value:
            return ("missing_field", f"{name} is {value!r}")
    for name in ("price", "size"):
        if type(getattr(event, name)) is not Decimal:
            return ("missing_field", f"{name} is {getattr(event, name)!r}, not a Decimal")
    return ("missing_field", f"ts_ns/recv_ns are {event.ts_ns!r}/{event.recv_ns!r}, not int")


def stream_outlier(price: float, median: float) -> Failure:
    deviation = abs(price - median) / median
    return ("outlier_stream", f"price {price} is {deviation:.2%} from the recent median {median}")


def cross_outlier(price: float, cross: float) -> Failure:
    deviation = abs(price - cross) / cross
    return (
        "outlier_cross",
        f"price {price} is {deviation:.2%} from other exchanges' median {cross}",
    )


def median_of(values: list[float]) -> float:
    values.sort()
    middle = len(values) // 2
    if len(values) % 2:
        return values[middle]
    return (values[middle - 1] + values[middle]) / 2


def int_or_none(value: object) -> int | None:
    return value if type(value) is int else None


_encoder = msgspec.json.Encoder(decimal_format="string")


def _raw_json(event: object) -> str:
    try:
        return _encoder.encode(event).decode()
    except (TypeError, ValueError, msgspec.EncodeError):
        return repr(event)


def _kind(event: object) -> str:
    tag = getattr(getattr(type(event), "__struct_config__", None), "tag", None)
    return tag if isinstance(tag, str) else type(event).__name__


def rejected_record(event: object, failure: Failure) -> Rejected:
    """What validation keeps of a refused event: the event whole (JSON) and why."""
    return Rejected(
        exchange=str(getattr(event, "exchange", "") or ""),
        symbol=getattr(event, "symbol", None),
        kind=_kind(event),
        reason=failure[0],
        detail=failure[1],
        raw=_raw_json(event),
        ts_ns=int_or_none(getattr(event, "ts_ns", None)),
        recv_ns=int_or_none(getattr(event, "recv_ns", None)),
    )
