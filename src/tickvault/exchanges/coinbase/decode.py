"""Pure decoding of one Coinbase WebSocket message (either dialect) into normalized pieces.

Shared by both dialect modules: the result type, RFC 3339 times, decimals and errors. The
dialect dispatch (``decode_message``) lives in ``feed.py``, which imports both dialects. State
(books, sequence numbers, open candles) lives in ``feed.py`` too; decoding only turns bytes into
typed results and :class:`DecodeError`s.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from functools import lru_cache

import msgspec

from tickvault.exchanges.coinbase.symbols import SymbolMap
from tickvault.exchanges.numbers import plain_decimal, remember
from tickvault.model import Candle, DecodeError, Level, MarketEvent, Ticker, Trade, parse_decimal

EXCHANGE = "coinbase"


class BadMessage(ValueError):
    """A message (or one part of it) that cannot become events; ``reason`` labels the counter."""

    def __init__(self, reason: str, detail: str, symbol: str | None = None) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.symbol = symbol


class BookOp(msgspec.Struct, gc=False):
    """A snapshot (whole book) or an update (absolute new sizes; 0 removes) for one symbol."""

    symbol: str
    snapshot: bool
    bids: list[Level]
    asks: list[Level]
    ts_ns: int


@dataclass(slots=True)
class Sequenced:
    """An Exchange ticker/match with its per-product ``sequence`` (and ``trade_id`` for matches),
    which the feed checks before letting the event through."""

    symbol: str
    channel: str  # "trades" | "ticker"
    sequence: int
    trade_id: int | None
    event: Trade | Ticker


@dataclass(slots=True)
class Decoded:
    dialect: str | None = None  # "exchange" | "advanced"
    events: list[MarketEvent] = field(default_factory=list)
    sequenced: list[Sequenced] = field(default_factory=list)
    book_ops: list[BookOp] = field(default_factory=list)
    candles: list[Candle] = field(default_factory=list)  # Advanced, still forming
    errors: list[DecodeError] = field(default_factory=list)
    sequence_num: int | None = None  # Advanced per-connection counter
    # Book messages that could not be applied: those books are now unknown and must resync.
    book_resync: set[str] = field(default_factory=set)
    book_resync_all: bool = False
    ts_ns: int | None = None  # Advanced envelope time


def raw_text(raw: bytes | str) -> str:
    return raw if isinstance(raw, str) else raw.decode("utf-8", "replace")


def error(
    raw: bytes | str,
    recv_ns: int,
    reason: str,
    detail: str,
    symbol: str | None = None,
    channel: str | None = None,
) -> DecodeError:
    return DecodeError(
        exchange=EXCHANGE,
        reason=reason,
        detail=detail,
        raw=raw_text(raw),
        recv_ns=recv_ns,
        symbol=symbol,
        channel=channel,
    )


def decimal(text: str, what: str) -> Decimal:
    try:
        return parse_decimal(text)
    except ValueError as exc:
        raise BadMessage("bad_decimal", f"{what}: {exc}") from None


def optional_decimal(text: str | None, what: str) -> Decimal | None:
    return None if text is None or text == "" else decimal(text, what)


# Wire strings already validated: plain finite decimals, positive (prices) or not negative
# (sizes). Books and trades repeat them, so most values are one dict lookup.
POSITIVE: dict[str, Decimal] = {}
NOT_NEGATIVE: dict[str, Decimal] = {}


def level(price: str, size: str) -> Level:
    """A book level; prices must be positive and sizes non-negative (0 removes)."""
    p = POSITIVE.get(price)
    if p is None:
        p = plain_decimal(price)
        if p is None or not p:
            return _checked_level(price, size)
        remember(POSITIVE, price, p)
    s = NOT_NEGATIVE.get(size)
    if s is None:
        s = plain_decimal(size)
        if s is None:
            return _checked_level(price, size)
        remember(NOT_NEGATIVE, size, s)
    return p, s


def _checked_level(price: str, size: str) -> Level:
    """``level`` for anything but the plain wire shape: the reference checks and errors."""
    p = decimal(price, "price")
    s = decimal(size, "size")
    if p <= 0 or s < 0:
        raise BadMessage("bad_level", f"level price {price!r} size {size!r} out of range")
    return p, s


def positive(text: str, what: str) -> Decimal:
    value = POSITIVE.get(text)
    if value is not None:
        return value
    value = plain_decimal(text)
    if value:  # plain and not zero
        remember(POSITIVE, text, value)
        return value
    value = decimal(text, what)
    if value <= 0:
        raise BadMessage("bad_value", f"{what} {text!r} is not positive")
    return value


def symbol_for(symbols: SymbolMap, product_id: str) -> str:
    symbol = symbols.symbol(product_id)
    if symbol is None:
        raise BadMessage("unknown_product", f"product {product_id!r} is not subscribed here")
    return symbol


_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|z|[+-]\d{2}:\d{2})",
    re.ASCII,
)


@lru_cache(maxsize=64)
def _day_seconds(year: int, month: int, day: int) -> int:
    """Seconds from the epoch to a date (cached: a feed sees few distinct days)."""
    return (date(year, month, day).toordinal() - _EPOCH_ORDINAL) * 86400


# "YYYY-MM-DDTHH:MM:SS" prefixes the full parser accepted -> epoch seconds (before any zone
# offset). Messages of one second share the prefix, so most times skip the regex.
_SECONDS: dict[str, int] = {}


def parse_time_ns(text: str) -> int:
    """RFC 3339 UTC time (``2023-02-09T20:32:50.714964855Z``, up to 9 fraction digits, ``Z`` or
    ``±HH:MM``) -> integer ns. Written out by hand because ``datetime`` stops at microseconds."""
    if len(text) > 21 and text[19] == "." and text[-1] == "Z":
        seconds = _SECONDS.get(text[:19])
        if seconds is not None:
            fraction = text[20:-1]
            if len(fraction) <= 9 and fraction.isdigit() and fraction.isascii():
                return seconds * 1_000_000_000 + int(fraction.ljust(9, "0"))
    match = _RFC3339.fullmatch(text)
    if match is None:
        raise BadMessage("bad_time", f"not an RFC 3339 time: {text!r}")
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    if int(hour) > 23 or int(minute) > 59 or int(second) > 59:
        raise BadMessage("bad_time", f"time out of range in {text!r}")
    try:
        seconds = _day_seconds(int(year), int(month), int(day))
    except ValueError:
        raise BadMessage("bad_time", f"no such date in {text!r}") from None
    seconds += int(hour) * 3600 + int(minute) * 60 + int(second)
    if len(_SECONDS) >= 4096:
        _SECONDS.clear()
    _SECONDS[text[:19]] = seconds
    if zone not in ("Z", "z"):
        offset_s = int(zone[1:3]) * 3600 + int(zone[4:6]) * 60
        seconds -= offset_s if zone[0] == "+" else -offset_s
    fraction_ns = int(fraction.ljust(9, "0")) if fraction else 0
    return seconds * 1_000_000_000 + fraction_ns
