"""PostgreSQL reads of the API: synchronous functions of one connection, run in worker threads.

The candle, trade and book queries are the ones :mod:`tickvault.query` uses
(:mod:`tickvault.storage.postgres.reader`), so the candle selection rule is the same. The API
reads the driver's rows itself instead of going through Arrow frames: a ``numeric`` comes back
as a ``Decimal`` with its own scale (``100.10``), which a decimal128 column would widen to the
column's largest scale (``100.100``) — and it saves the frame's cost on every request.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from tickvault.api import shapes
from tickvault.api.shapes import Json
from tickvault.model import Candle, CandleSource, timeframe_ns
from tickvault.storage.postgres import reader

Conn = psycopg.Connection[Any]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_FAR_FUTURE = datetime(9999, 12, 31, tzinfo=UTC)


def to_ns(dt: datetime) -> int:
    return (dt - _EPOCH) // timedelta(microseconds=1) * 1000


def candles(
    conn: Conn,
    timescaledb: bool,
    market: tuple[str, str, str],
    span: tuple[datetime, datetime],
    source: str,
    limit: int,
) -> tuple[list[Json], bool]:
    """Bars opening in ``span``, at most ``limit``; True when more were there."""
    exchange, symbol, timeframe = market
    sql = reader.candles_sql(timescaledb, timeframe, source, latest=False)
    params = reader.candle_params(
        exchange, symbol, timeframe, source, start=span[0], end=span[1], row_limit=limit + 1
    )
    rows = conn.execute(f"{sql} LIMIT %(row_limit)s", params).fetchall()  # type: ignore[call-overload]
    return [shapes.candle_from_row(r) for r in rows[:limit]], len(rows) > limit


def latest_candle_rows(
    conn: Conn, timescaledb: bool, market: tuple[str, str, str], n: int
) -> list[tuple[Any, ...]]:
    exchange, symbol, timeframe = market
    sql = reader.candles_sql(timescaledb, timeframe, "auto", latest=True)
    params = reader.candle_params(exchange, symbol, timeframe, "auto", limit=n)
    return conn.execute(sql, params).fetchall()  # type: ignore[call-overload,no-any-return]


def candle_event(market: tuple[str, str, str], row: Sequence[Any]) -> Candle:
    """A stored bar as a model Candle, for refilling the cache.

    The reader's rows carry no event or receive time, so both are set to the bar's end: the
    earliest time such a bar can be known complete.
    """
    exchange, symbol, timeframe = market
    ts, o, h, lo, c, vol, closed, source, count, qvol, vwap, buy, sell = row
    open_ns = to_ns(ts)
    end_ns = open_ns + timeframe_ns(timeframe)
    return Candle(
        exchange, symbol, timeframe, open_ns, o, h, lo, c, vol, closed, end_ns, end_ns,
        CandleSource(source), count, qvol, vwap, buy, sell,
    )  # fmt: skip


def trades(
    conn: Conn, market: tuple[str, str], span: tuple[datetime, datetime], limit: int
) -> tuple[list[Json], bool]:
    rows = conn.execute(f"{reader.TRADES_SQL} LIMIT %s", (*market, *span, limit + 1)).fetchall()
    return [shapes.trade_from_row(r) for r in rows[:limit]], len(rows) > limit


def book(conn: Conn, market: tuple[str, str], at: datetime | None) -> Json | None:
    """The newest snapshot at or before ``at`` (None: the newest of all)."""
    row = conn.execute(reader.BOOK_SQL, (*market, at or _FAR_FUTURE)).fetchone()
    return None if row is None else shapes.book_from_row(row)


def latest_trade(conn: Conn, market: tuple[str, str]) -> Json | None:
    row = conn.execute(
        "SELECT ts, trade_id, price, size, side, recv_ts FROM trades"
        " WHERE exchange = %s AND symbol = %s ORDER BY ts DESC, trade_id DESC LIMIT 1",
        market,
    ).fetchone()
    return None if row is None else shapes.trade_from_row(row)


def latest_ticker(conn: Conn, market: tuple[str, str]) -> Json | None:
    row = conn.execute(
        f"SELECT {shapes.TICKER_SQL_COLUMNS} FROM tickers"
        " WHERE exchange = %s AND symbol = %s ORDER BY ts DESC LIMIT 1",
        market,
    ).fetchone()
    return None if row is None else shapes.ticker_from_row(row)


def features(conn: Conn, market: tuple[str, str, str]) -> dict[str, Json]:
    """The newest value of every feature of one stream."""
    rows = conn.execute(
        "SELECT DISTINCT ON (name) name, ts, value FROM features"
        " WHERE exchange = %s AND symbol = %s AND timeframe = %s ORDER BY name, ts DESC",
        market,
    ).fetchall()
    return {name: {"ts": shapes.iso(ts), "value": value} for name, ts, value in rows}


def signals(conn: Conn, market: tuple[str, str, str], n: int) -> list[Json]:
    """The newest ``n`` stored signals of one stream, newest first."""
    rows = conn.execute(
        "SELECT ts, name, value, side, detail FROM signals"
        " WHERE exchange = %s AND symbol = %s AND timeframe = %s ORDER BY ts DESC, name LIMIT %s",
        (*market, n),
    ).fetchall()
    return [
        {"ts": shapes.iso(ts), "name": name, "value": value, "side": side, "detail": detail}
        for ts, name, value, side, detail in rows
    ]


def quality_metrics(conn: Conn, market: tuple[str, str]) -> dict[str, Json]:
    """The newest value of every stored quality metric of one market."""
    rows = conn.execute(
        "SELECT DISTINCT ON (metric) metric, ts, value, detail FROM quality_metrics"
        " WHERE exchange = %s AND symbol = %s ORDER BY metric, ts DESC",
        market,
    ).fetchall()
    return {
        metric: {"ts": shapes.iso(ts), "value": value, "detail": detail}
        for metric, ts, value, detail in rows
    }
