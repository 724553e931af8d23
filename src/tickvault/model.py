"""The normalized market-data model shared by every exchange, stage and sink.

Conventions (units are in the names):

* ``ts_ns``   exchange (event) time, integer nanoseconds since the Unix epoch, UTC.
* ``recv_ns`` time tickvault received the message, integer nanoseconds, UTC.
* ``symbol``  canonical ``BASE-QUOTE`` (``BTC-USDT``; Kraken ``XBT`` becomes ``BTC``).
* ``price``/``size`` are :class:`decimal.Decimal` built from the exchange's own decimal
  string, so a value stored and read back prints exactly as the exchange sent it.

Events are ``msgspec.Struct`` classes: cheap to build, immutable, and encodable to JSON or
MessagePack without glue code.
"""

from __future__ import annotations

import enum
from decimal import Decimal
from typing import Literal, TypeAlias

import msgspec

Exchange: TypeAlias = Literal["binance", "coinbase", "kraken"]
EXCHANGES: tuple[str, ...] = ("binance", "coinbase", "kraken")

# A price level: (price, size). Size 0 in a delta removes the level.
Level: TypeAlias = tuple[Decimal, Decimal]


class Side(enum.StrEnum):
    """Side of the taker (aggressor) of a trade."""

    BUY = "buy"
    SELL = "sell"
    UNKNOWN = "unknown"


class CandleSource(enum.StrEnum):
    EXCHANGE = "exchange"  # bar published by the exchange
    DERIVED = "derived"  # bar built by tickvault from trades


# Timeframes tickvault knows, with their length in seconds. "1M" (month) is not a fixed length
# and is not supported for derivation.
TIMEFRAMES: dict[str, int] = {
    "1s": 1,
    "5s": 5,
    "15s": 15,
    "30s": 30,
    "1m": 60,
    "3m": 180,
    "5m": 300,
    "15m": 900,
    "30m": 1800,
    "1h": 3600,
    "2h": 7200,
    "4h": 14400,
    "6h": 21600,
    "8h": 28800,
    "12h": 43200,
    "1d": 86400,
    "3d": 259200,
    "1w": 604800,
}

NS_PER_S = 1_000_000_000


def timeframe_ns(timeframe: str) -> int:
    """Length of a timeframe in nanoseconds; raises ``ValueError`` for an unknown one."""
    try:
        return TIMEFRAMES[timeframe] * NS_PER_S
    except KeyError:
        known = ", ".join(TIMEFRAMES)
        raise ValueError(f"unknown timeframe {timeframe!r}; known: {known}") from None


def bucket_start_ns(ts_ns: int, timeframe: str) -> int:
    """Start of the timeframe bucket holding ``ts_ns`` (buckets aligned to the Unix epoch)."""
    length = timeframe_ns(timeframe)
    return ts_ns - ts_ns % length


class Trade(msgspec.Struct, frozen=True, gc=False, tag="trade"):
    exchange: str
    symbol: str
    trade_id: str
    price: Decimal
    size: Decimal
    side: Side
    ts_ns: int
    recv_ns: int


class Candle(msgspec.Struct, frozen=True, gc=False, tag="candle"):
    """OHLCV bar. ``open_ns`` is the bucket start; ``closed`` is False while the bar is forming."""

    exchange: str
    symbol: str
    timeframe: str
    open_ns: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    closed: bool
    ts_ns: int
    recv_ns: int
    source: CandleSource = CandleSource.EXCHANGE
    trade_count: int | None = None
    quote_volume: Decimal | None = None
    vwap: Decimal | None = None
    buy_volume: Decimal | None = None
    sell_volume: Decimal | None = None


class BookSnapshot(msgspec.Struct, frozen=True, gc=False, tag="book_snapshot"):
    """The top levels of one L2 book. Bids best (highest) first, asks best (lowest) first."""

    exchange: str
    symbol: str
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]
    ts_ns: int
    recv_ns: int
    sequence: int | None = None
    checksum: int | None = None


class BookDelta(msgspec.Struct, frozen=True, gc=False, tag="book_delta"):
    """Absolute new sizes of changed levels (size 0 deletes); sequence range when the venue has one."""

    exchange: str
    symbol: str
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]
    ts_ns: int
    recv_ns: int
    first_sequence: int | None = None
    last_sequence: int | None = None
    checksum: int | None = None


class Ticker(msgspec.Struct, frozen=True, gc=False, tag="ticker"):
    """Best bid/ask (BBO) and last price."""

    exchange: str
    symbol: str
    ts_ns: int
    recv_ns: int
    bid_price: Decimal | None = None
    bid_size: Decimal | None = None
    ask_price: Decimal | None = None
    ask_size: Decimal | None = None
    last_price: Decimal | None = None
    volume_24h: Decimal | None = None


class Instrument(msgspec.Struct, frozen=True, gc=False):
    """One market of one exchange: the exchange's id(s) and the canonical symbol."""

    exchange: str
    exchange_symbol: str  # the id used in REST requests (BTCUSDT, BTC-USD, XXBTZUSD)
    symbol: str  # canonical BASE-QUOTE
    base: str
    quote: str
    tick_size: Decimal | None = None
    lot_size: Decimal | None = None
    status: str = "trading"
    ws_symbol: str | None = None  # id used on the WebSocket when it differs (XBT/USD, btcusdt)
    aliases: tuple[str, ...] = ()  # other ids naming the same market (altname, v2 symbol)


MarketEvent: TypeAlias = Trade | Candle | BookSnapshot | BookDelta | Ticker


def canonical_symbol(base: str, quote: str) -> str:
    """Canonical ``BASE-QUOTE`` from already-normalized asset codes."""
    return f"{base.upper()}-{quote.upper()}"


def split_symbol(symbol: str) -> tuple[str, str]:
    """Split a canonical symbol; raises ``ValueError`` when it is not ``BASE-QUOTE``."""
    base, sep, quote = symbol.partition("-")
    if not sep or not base or not quote or "-" in quote:
        raise ValueError(f"symbol {symbol!r} is not canonical BASE-QUOTE (e.g. BTC-USDT)")
    return base, quote


class DecodeError(msgspec.Struct, frozen=True, gc=False):
    """A message a decoder could not turn into events: kept whole for the quarantine."""

    exchange: str
    reason: str  # short machine-readable reason, the label of the counter
    detail: str  # human-readable explanation
    raw: str
    recv_ns: int
    symbol: str | None = None
    channel: str | None = None


def parse_decimal(text: str | int | float | Decimal) -> Decimal:
    """An exact, finite decimal from a wire value; rejects NaN, infinities and exponents.

    ``"1e-05"`` is refused: exchanges send plain decimals, so an exponent means a float went
    through somebody's formatter and the precision can no longer be trusted.
    """
    if type(text) is str:  # the hot path: wire strings, many of them repeated book prices
        cached = _DECIMALS.get(text)
        if cached is not None:
            return cached
    if isinstance(text, Decimal):
        value = text
    elif isinstance(text, str):
        if not text or "e" in text or "E" in text:
            raise ValueError(f"not a plain decimal: {text!r}")
        try:
            value = Decimal(text)
        except ArithmeticError:
            raise ValueError(f"not a decimal: {text!r}") from None
    elif isinstance(text, int) and not isinstance(text, bool):
        value = Decimal(text)
    elif isinstance(text, float):
        value = Decimal(repr(text))
    else:
        raise ValueError(f"not a number: {text!r}")
    if not value.is_finite():
        raise ValueError(f"not a finite number: {text!r}")
    if type(text) is str:
        if len(_DECIMALS) >= _DECIMALS_MAX:
            _DECIMALS.clear()
        _DECIMALS[text] = value
    return value


# Valid decimal strings already parsed (Decimals are immutable, so sharing one is safe):
# replay and live books see the same price strings over and over. Bounded by clearing.
_DECIMALS: dict[str, Decimal] = {}
_DECIMALS_MAX = 1 << 16


class Gap(msgspec.Struct, frozen=True, gc=False, tag="gap"):
    """A stretch of a stream that may be missing data, to be repaired from REST.

    ``from_ns``/``to_ns`` bound the missing interval (exchange time where known, else receive
    time). ``reason``: ``disconnect``, ``sequence_gap``, ``checksum``, ``missing_candle``, ...
    """

    exchange: str
    symbol: str
    channel: str
    from_ns: int
    to_ns: int
    reason: str


def decimal_str(value: Decimal) -> str:
    """Plain positional text of a decimal, never exponent form (``0.00000000``, not ``0E-8``)."""
    return f"{value:f}"
