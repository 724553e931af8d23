"""Read queries (synchronous psycopg) behind :mod:`tickvault.query`.

Candle selection rule, per bar (``ts`` = open time): the exchange's own bar when stored; else a
derived bar stored in ``candles`` (written by the pipeline or by ``tv_refresh_derived_candles``);
else, under TimescaleDB, the continuous aggregate of that timeframe (real-time, so it includes
trades not yet materialized). ``source`` in the result says which one was used.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from tickvault.model import timeframe_ns
from tickvault.storage.postgres.newest import NEWEST, newest
from tickvault.storage.postgres.timescale import CAGG_TIMEFRAMES, cagg_name

CANDLE_COLUMNS = (
    ("ts", "ts"), ("open", "dec"), ("high", "dec"), ("low", "dec"), ("close", "dec"),
    ("volume", "dec"), ("closed", "bool"), ("source", "text"), ("trade_count", "int"),
    ("quote_volume", "dec"), ("vwap", "dec"), ("buy_volume", "dec"), ("sell_volume", "dec"),
)  # fmt: skip
TRADE_COLUMNS = (
    ("ts", "ts"), ("trade_id", "text"), ("price", "dec"), ("size", "dec"), ("side", "text"),
    ("recv_ts", "ts"),
)  # fmt: skip
BOOK_COLUMNS = (
    ("ts", "ts"), ("side", "text"), ("level", "int"), ("price", "dec"), ("size", "dec"),
    ("sequence", "int"),
)  # fmt: skip
LATEST_COLUMNS = (
    ("kind", "text"), ("ts", "ts"), ("price", "dec"), ("size", "dec"), ("bid_price", "dec"),
    ("bid_size", "dec"), ("ask_price", "dec"), ("ask_size", "dec"),
)  # fmt: skip

_TABLE_PART = (
    "SELECT ts, open, high, low, close, volume, closed, source, trade_count, quote_volume,"
    " vwap, buy_volume, sell_volume, CASE WHEN source = 'exchange' THEN 0 ELSE 1 END AS prio"
    " FROM candles WHERE exchange = %(exchange)s AND symbol = %(symbol)s"
    " AND timeframe = %(timeframe)s AND {time} {source}"
)
_CAGG_PART = (
    "SELECT bucket, open, high, low, close, volume, bucket + %(step)s::interval <= now(),"
    " 'derived', trade_count, quote_volume,"
    " CASE WHEN volume > 0 THEN round(quote_volume / volume, 12) END, buy_volume, sell_volume, 2"
    " FROM {view} WHERE exchange = %(exchange)s AND symbol = %(symbol)s AND {time}"
)


def candles_sql(
    timescaledb: bool, timeframe: str, source: str, *, latest: bool,
    start: str = "%(start)s", end: str = "%(end)s",
) -> str:  # fmt: skip
    """One bar per open time, chosen by the rule in the module docstring.

    ``latest``: the newest ``%(limit)s`` bars. Their oldest open time is found first from the
    index alone (newest distinct ``ts`` values), so the bar query stays a short range scan
    however long the history is. Otherwise the bars opening in [``start``, ``end``): SQL
    expressions, the query parameters by default.
    """
    with_cagg = timescaledb and timeframe in CAGG_TIMEFRAMES and source in ("auto", "derived")
    src = "" if source == "auto" else "AND source = %(source)s"
    if latest:
        time, ctime = "ts >= (SELECT lo FROM bound)", "bucket >= (SELECT lo FROM bound)"
    else:
        time, ctime = f"ts >= {start} AND ts < {end}", f"bucket >= {start} AND bucket < {end}"
    parts = [_TABLE_PART.format(time=time, source=src)]
    if with_cagg:
        parts.append(_CAGG_PART.format(view=cagg_name(timeframe), time=ctime))
    union = " UNION ALL ".join(parts)
    cols = ", ".join(name for name, _ in CANDLE_COLUMNS)
    # Without the aggregate, source DESC ranks 'exchange' before 'derived' (the only two values,
    # a CHECK constraint) and matches the key index read backwards: no sort for a range read.
    prio = "prio" if with_cagg else "source DESC"
    if not latest:
        return f"SELECT DISTINCT ON (ts) {cols} FROM ({union}) u ORDER BY ts, {prio}"
    keys = (
        "SELECT ts FROM candles WHERE exchange = %(exchange)s AND symbol = %(symbol)s"
        f" AND timeframe = %(timeframe)s {src}"
    )
    if with_cagg:
        keys += (
            f" UNION ALL SELECT bucket FROM {cagg_name(timeframe)}"
            " WHERE exchange = %(exchange)s AND symbol = %(symbol)s"
        )
    return (
        f"WITH bound AS (SELECT min(ts) AS lo FROM (SELECT DISTINCT ts FROM ({keys}) k"
        " ORDER BY ts DESC LIMIT %(limit)s) b) "
        f"SELECT {cols} FROM (SELECT DISTINCT ON (ts) * FROM ({union}) u"
        f" ORDER BY ts DESC, {prio} LIMIT %(limit)s) l ORDER BY ts"
    )


def candle_params(
    exchange: str, symbol: str, timeframe: str, source: str, **extra: Any
) -> dict[str, Any]:
    step_s = timeframe_ns(timeframe) // 1_000_000_000
    return {
        "exchange": exchange,
        "symbol": symbol,
        "timeframe": timeframe,
        "source": source,
        "step": f"{step_s} seconds",
        **extra,
    }


TRADES_SQL = (
    "SELECT ts, trade_id, price, size, side, recv_ts FROM trades"
    " WHERE exchange = %s AND symbol = %s AND ts >= %s AND ts < %s ORDER BY ts, trade_id"
)

BOOK_SQL = (
    "SELECT ts, sequence, bid_prices, bid_sizes, ask_prices, ask_sizes FROM book_snapshots"
    " WHERE exchange = %s AND symbol = %s AND ts <= %s ORDER BY ts DESC LIMIT 1"
)


def book_rows(
    conn: psycopg.Connection[Any], exchange: str, symbol: str, at: datetime
) -> list[tuple[Any, ...]]:
    """The latest snapshot at or before ``at`` as long rows (ts, side, level, price, size, seq)."""
    row = conn.execute(BOOK_SQL, (exchange, symbol, at)).fetchone()
    if row is None:
        return []
    ts, seq, bid_p, bid_s, ask_p, ask_s = row
    out = [(ts, "bid", i, p, s, seq) for i, (p, s) in enumerate(zip(bid_p, bid_s, strict=True))]
    out += [(ts, "ask", i, p, s, seq) for i, (p, s) in enumerate(zip(ask_p, ask_s, strict=True))]
    return out


def latest_rows(
    conn: psycopg.Connection[Any],
    exchange: str,
    symbol: str,
    timeframes: list[str],
    timescaledb: bool,
) -> list[tuple[Any, ...]]:
    """Newest trade, ticker, book top and candle (per timeframe) of one market."""
    key = (exchange, symbol)
    out: list[tuple[Any, ...]] = []
    trade = conn.execute(
        "SELECT ts, price, size FROM trades WHERE exchange = %s AND symbol = %s"
        " ORDER BY ts DESC LIMIT 1",
        key,
    ).fetchone()
    if trade:
        out.append(("trade", trade[0], trade[1], trade[2], None, None, None, None))
    ticker = conn.execute(
        "SELECT ts, last_price, bid_price, bid_size, ask_price, ask_size FROM tickers"
        " WHERE exchange = %s AND symbol = %s ORDER BY ts DESC LIMIT 1",
        key,
    ).fetchone()
    if ticker:
        out.append(("ticker", ticker[0], ticker[1], None, *ticker[2:]))
    book = conn.execute(
        "SELECT ts, bid_prices[1], bid_sizes[1], ask_prices[1], ask_sizes[1] FROM book_snapshots"
        " WHERE exchange = %s AND symbol = %s ORDER BY ts DESC LIMIT 1",
        key,
    ).fetchone()
    if book:
        out.append(("book", book[0], None, None, *book[1:]))
    for timeframe in timeframes:
        sql = candles_sql(timescaledb, timeframe, "auto", latest=True)
        params = candle_params(exchange, symbol, timeframe, "auto", limit=1)
        bar = conn.execute(sql, params).fetchone()  # type: ignore[call-overload]
        if bar:
            out.append((f"candle {timeframe}", bar[0], bar[4], bar[5], None, None, None, None))
    return out


@dataclass(frozen=True)
class TableStatus:
    table: str
    rows: int
    estimated: bool  # True when ``rows`` is the planner's estimate (big tables)
    newest: datetime | None


_EXACT_COUNT_LIMIT = 1_000_000


def table_status(conn: psycopg.Connection[Any], timescaledb: bool) -> list[TableStatus]:
    """Row count (estimated above a million rows) and newest timestamp of every table; the
    newest comes from the indexes (``newest.py``), so big tables stay quick."""
    out: list[TableStatus] = []
    for table in NEWEST:
        estimate = _estimate(conn, table, timescaledb)
        if estimate > _EXACT_COUNT_LIMIT:
            rows, estimated = estimate, True
        else:
            row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()  # type: ignore[call-overload]
            rows, estimated = (int(row[0]) if row else 0), False
        out.append(TableStatus(table, rows, estimated, newest(conn, table, timescaledb)))
    return out


def _estimate(conn: psycopg.Connection[Any], table: str, timescaledb: bool) -> int:
    if timescaledb:
        row = conn.execute("SELECT approximate_row_count(%s::regclass)", (table,)).fetchone()
    else:  # a partitioned parent has no tuples itself: sum its partitions
        row = conn.execute(
            "SELECT coalesce(sum(greatest(c.reltuples, 0)), 0)::bigint FROM pg_class c"
            " WHERE c.oid = %s::regclass OR c.oid IN"
            " (SELECT inhrelid FROM pg_inherits WHERE inhparent = %s::regclass)",
            (table, table),
        ).fetchone()
    return int(row[0]) if row and row[0] is not None else 0
