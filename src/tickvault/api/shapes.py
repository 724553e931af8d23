"""The JSON shapes of the HTTP API (pure: no I/O).

Prices and sizes are decimal strings exactly as stored (``"100.10"`` stays ``"100.10"``; never
exponent form), times are ISO-8601 UTC strings (``2024-01-01T00:00:00Z``). A row from
PostgreSQL and the same value from Redis give byte-identical JSON, so a client cannot tell (and
need not care) which store answered; ``source`` in the envelope says it anyway.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import msgspec

from tickvault.model import NS_PER_S, BookSnapshot, Candle, Ticker, Trade, decimal_str

Json = dict[str, Any]
_encoder = msgspec.json.Encoder()


def dumps(value: object) -> bytes:
    return _encoder.encode(value)


def iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat().replace("+00:00", "Z")


def iso_ns(ts_ns: int) -> str:
    """ISO-8601 of integer nanoseconds, to the microsecond (what PostgreSQL keeps)."""
    seconds, rest = divmod(ts_ns, NS_PER_S)
    return iso(datetime.fromtimestamp(seconds, UTC).replace(microsecond=rest // 1000))


def dec(value: Decimal | None) -> str | None:
    return None if value is None else decimal_str(value)


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
