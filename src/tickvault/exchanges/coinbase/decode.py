"""Pure decoding of one Coinbase WebSocket message (either dialect) into normalized pieces.

The dialect is read from the message itself: an Advanced Trade message has a ``channel`` (its
envelope), an Exchange message has a ``type``. One ``CoinbaseFeed`` therefore replays captures of
both feeds. State (books, sequence numbers, open candles) lives in ``feed.py``; this module only
turns bytes into typed results and :class:`DecodeError`s.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

import msgspec

from tickvault.exchanges.coinbase.schemas import Probe
from tickvault.exchanges.coinbase.symbols import SymbolMap
from tickvault.model import Candle, DecodeError, Level, MarketEvent, Ticker, Trade, parse_decimal

EXCHANGE = "coinbase"


class BadMessage(ValueError):
    """A message (or one part of it) that cannot become events; ``reason`` labels the counter."""

    def __init__(self, reason: str, detail: str, symbol: str | None = None) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.symbol = symbol


@dataclass(slots=True)
class BookOp:
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


def level(price: str, size: str) -> Level:
    """A book level; prices must be positive and sizes non-negative (0 removes)."""
    p = decimal(price, "price")
    s = decimal(size, "size")
    if p <= 0 or s < 0:
        raise BadMessage("bad_level", f"level price {price!r} size {size!r} out of range")
    return p, s


def positive(text: str, what: str) -> Decimal:
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


def _digits(text: str, what: str) -> int:
    if not text.isdigit() or not text.isascii():
        raise BadMessage("bad_time", f"{what} is not a number")
    return int(text)


def parse_time_ns(text: str) -> int:
    """RFC 3339 UTC time (``2023-02-09T20:32:50.714964855Z``, up to 9 fraction digits, ``Z`` or
    ``±HH:MM``) -> integer ns. Written out by hand because ``datetime`` stops at microseconds."""
    if len(text) < 20 or text[4] != "-" or text[7] != "-" or text[10] not in "Tt ":
        raise BadMessage("bad_time", f"not an RFC 3339 time: {text!r}")
    if text[13] != ":" or text[16] != ":":
        raise BadMessage("bad_time", f"not an RFC 3339 time: {text!r}")
    hour, minute, second = (_digits(text[i : i + 2], "time") for i in (11, 14, 17))
    rest = text[19:]
    fraction_ns = 0
    if rest.startswith("."):
        end = 1
        while end < len(rest) and rest[end].isdigit():
            end += 1
        digits = rest[1:end]
        if not digits or len(digits) > 9:
            raise BadMessage("bad_time", f"bad fraction in {text!r}")
        fraction_ns = int(digits.ljust(9, "0"))
        rest = rest[end:]
    if rest in ("Z", "z", "+00:00", "-00:00"):
        offset_s = 0
    elif len(rest) == 6 and rest[0] in "+-" and rest[3] == ":":
        offset_s = _digits(rest[1:3], "offset") * 3600 + _digits(rest[4:6], "offset") * 60
        offset_s = offset_s if rest[0] == "+" else -offset_s
    else:
        raise BadMessage("bad_time", f"no UTC offset in {text!r}")
    if hour > 23 or minute > 59 or second > 59:
        raise BadMessage("bad_time", f"time out of range in {text!r}")
    try:
        ordinal = date(
            _digits(text[0:4], "year"), _digits(text[5:7], "month"), _digits(text[8:10], "day")
        ).toordinal()
    except ValueError:
        raise BadMessage("bad_time", f"no such date in {text!r}") from None
    seconds = (ordinal - _EPOCH_ORDINAL) * 86400 + hour * 3600 + minute * 60 + second - offset_s
    return seconds * 1_000_000_000 + fraction_ns


_probe = msgspec.json.Decoder(Probe)


def decode_message(raw: bytes | str, recv_ns: int, symbols: SymbolMap) -> Decoded:
    """One WebSocket message -> :class:`Decoded`; never raises."""
    # Local imports keep the two dialect modules independent of each other.
    from tickvault.exchanges.coinbase.decode_advanced import decode_advanced
    from tickvault.exchanges.coinbase.decode_exchange import decode_exchange

    out = Decoded()
    try:
        probe = _probe.decode(raw)
    except msgspec.ValidationError as exc:
        out.errors.append(error(raw, recv_ns, "schema", str(exc)))
        return out
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        out.errors.append(error(raw, recv_ns, "malformed_json", str(exc)))
        return out
    if probe.channel is not None:
        out.dialect = "advanced"
        decode_advanced(raw, recv_ns, symbols, out)
    elif probe.type is not None:
        out.dialect = "exchange"
        decode_exchange(probe.type, probe.product_id, raw, recv_ns, symbols, out)
    else:
        out.errors.append(error(raw, recv_ns, "unknown_type", "neither `type` nor `channel`"))
    return out
