"""The JSON shapes of the HTTP API (pure: no I/O).

Prices and sizes are decimal strings exactly as stored (``"100.10"`` stays ``"100.10"``; never
exponent form), times are ISO-8601 UTC strings (``2024-01-01T00:00:00Z``). A row from
PostgreSQL and the same value from Redis give byte-identical JSON, so a client cannot tell (and
need not care) which store answered; ``source`` in the envelope says it anyway.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import msgspec

from tickvault.model import BookSnapshot, Candle, Ticker, Trade, decimal_str

Json = dict[str, Any]
_encoder = msgspec.json.Encoder()


def dumps(value: object) -> bytes:
    return _encoder.encode(value)


def iso(dt: datetime) -> str:
    """ISO-8601 UTC text of an aware datetime (``2024-01-01T00:00:00.250000Z``)."""
    if dt.utcoffset():
        dt = dt.astimezone(UTC)
    return iso_ns(_to_us(dt) * 1000)


def _to_us(dt: datetime) -> int:
    return (dt.toordinal() - _EPOCH_ORDINAL) * 86_400_000_000 + (
        (dt.hour * 3600 + dt.minute * 60 + dt.second) * 1_000_000 + dt.microsecond
    )


_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


@functools.lru_cache(maxsize=4096)
def _day_prefix(day: int) -> str:
    return f"{date.fromordinal(_EPOCH_ORDINAL + day).isoformat()}T"


def iso_ns(ts_ns: int) -> str:
    """ISO-8601 of integer nanoseconds, to the microsecond (what PostgreSQL keeps).

    Built from integer arithmetic and a per-day cache: ``datetime.isoformat`` cost ~10x more,
    which showed at 500 bars per response.
    """
    seconds, us = divmod(ts_ns // 1000, 1_000_000)
    day, second_of_day = divmod(seconds, 86_400)
    hours, rest = divmod(second_of_day, 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{_day_prefix(day)}{hours:02d}:{minutes:02d}:{secs:02d}"
    return f"{text}.{us:06d}Z" if us else f"{text}Z"


def dec(value: Decimal | None) -> str | None:
    """Positional text; ``str`` (twice as fast as formatting) unless it chose exponent form."""
    if value is None:
        return None
    text = str(value)
    return decimal_str(value) if "E" in text else text


# -- candles -------------------------------------------------------------------------------------


def candle_from_row(row: Sequence[Any]) -> Json:
    """A row of ``reader.CANDLE_COLUMNS``."""
    ts, o, h, lo, c, vol, closed, source, count, qvol, vwap, buy, sell = row
    return {
        "ts": iso(ts), "open": dec(o), "high": dec(h), "low": dec(lo), "close": dec(c),
        "volume": dec(vol), "closed": closed, "source": source, "trade_count": count,
        "quote_volume": dec(qvol), "vwap": dec(vwap), "buy_volume": dec(buy),
        "sell_volume": dec(sell),
    }  # fmt: skip


def candle_from_event(c: Candle) -> Json:
    return {
        "ts": iso_ns(c.open_ns), "open": dec(c.open), "high": dec(c.high), "low": dec(c.low),
        "close": dec(c.close), "volume": dec(c.volume), "closed": c.closed,
        "source": str(c.source), "trade_count": c.trade_count,
        "quote_volume": dec(c.quote_volume), "vwap": dec(c.vwap),
        "buy_volume": dec(c.buy_volume), "sell_volume": dec(c.sell_volume),
    }  # fmt: skip


# -- trades, tickers, books ----------------------------------------------------------------------


def trade_from_row(row: Sequence[Any]) -> Json:
    """A row of ``reader.TRADE_COLUMNS``: ts, trade_id, price, size, side, recv_ts."""
    ts, trade_id, price, size, side, recv_ts = row
    return {
        "ts": iso(ts), "trade_id": trade_id, "price": dec(price), "size": dec(size),
        "side": side, "recv_ts": iso(recv_ts),
    }  # fmt: skip


def trade_from_event(t: Trade) -> Json:
    return {
        "ts": iso_ns(t.ts_ns), "trade_id": t.trade_id, "price": dec(t.price),
        "size": dec(t.size), "side": str(t.side), "recv_ts": iso_ns(t.recv_ns),
    }  # fmt: skip


TICKER_SQL_COLUMNS = "ts, recv_ts, bid_price, bid_size, ask_price, ask_size, last_price, volume_24h"


def ticker_from_row(row: Sequence[Any]) -> Json:
    ts, recv_ts, bid_p, bid_s, ask_p, ask_s, last, volume = row
    return {
        "ts": iso(ts), "recv_ts": iso(recv_ts), "bid_price": dec(bid_p), "bid_size": dec(bid_s),
        "ask_price": dec(ask_p), "ask_size": dec(ask_s), "last_price": dec(last),
        "volume_24h": dec(volume),
    }  # fmt: skip


def ticker_from_event(t: Ticker) -> Json:
    return {
        "ts": iso_ns(t.ts_ns), "recv_ts": iso_ns(t.recv_ns), "bid_price": dec(t.bid_price),
        "bid_size": dec(t.bid_size), "ask_price": dec(t.ask_price), "ask_size": dec(t.ask_size),
        "last_price": dec(t.last_price), "volume_24h": dec(t.volume_24h),
    }  # fmt: skip


def _levels(prices: Sequence[Decimal], sizes: Sequence[Decimal]) -> list[list[str | None]]:
    return [[dec(p), dec(s)] for p, s in zip(prices, sizes, strict=True)]


def book_from_row(row: Sequence[Any]) -> Json:
    """A row of ``reader.BOOK_SQL``: ts, sequence, bid prices, bid sizes, ask prices, sizes."""
    ts, sequence, bid_p, bid_s, ask_p, ask_s = row
    return {
        "ts": iso(ts), "sequence": sequence,
        "bids": _levels(bid_p, bid_s), "asks": _levels(ask_p, ask_s),
    }  # fmt: skip


def book_from_event(b: BookSnapshot) -> Json:
    return {
        "ts": iso_ns(b.ts_ns), "sequence": b.sequence,
        "bids": [[dec(p), dec(s)] for p, s in b.bids],
        "asks": [[dec(p), dec(s)] for p, s in b.asks],
    }  # fmt: skip


def latest_from_event(event: Trade | Ticker | BookSnapshot) -> Json:
    if isinstance(event, Trade):
        return trade_from_event(event)
    if isinstance(event, Ticker):
        return ticker_from_event(event)
    return book_from_event(event)
