"""The newest timestamp of a table without reading the table: ``tickvault status`` on big data.

``SELECT max(ts) FROM trades`` reads every row: no index leads with ``ts`` (they lead with the
market, ``(exchange, symbol, ts DESC)``). Instead:

1. a *skip scan* walks the index's distinct market keys — one index descent per key, through a
   recursive query (``WHERE (exchange, symbol) > (previous key) ORDER BY ... LIMIT 1``) — and
   takes each market's newest row from the same index (``ORDER BY ts DESC LIMIT 1``);
2. on plain PostgreSQL the partitions are tried newest range first: the first one holding any
   row holds the newest, so only it is searched (the empty partitions made ahead of time cost
   one empty descent each). Under TimescaleDB the skip scan runs on the hypertable.

Small tables, and ``audit_log`` (whose ``ts DESC`` index ``max()`` uses by itself), keep a plain
``max()``. The result is the same value ``max()`` gives.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql


@dataclass(frozen=True)
class NewestBy:
    """``column`` of ``table`` is newest-first inside an index led by the ``keys`` columns
    (all NOT NULL); ``keys`` empty: a plain ``max(column)``."""

    column: str
    keys: tuple[str, ...] = ()
    partitioned: bool = False  # a time-series table: range partitions on plain PostgreSQL


_MARKET = ("exchange", "symbol")
NEWEST: dict[str, NewestBy] = {
    "trades": NewestBy("ts", _MARKET, True),
    "candles": NewestBy("ts", (*_MARKET, "timeframe"), True),
    "book_snapshots": NewestBy("ts", _MARKET, True),
    "tickers": NewestBy("ts", _MARKET, True),
    "features": NewestBy("ts", (*_MARKET, "timeframe", "name"), True),
    "instruments": NewestBy("updated_at"),
    "quarantine": NewestBy("recv_ts", ("exchange",)),  # quarantine_key (exchange, recv_ts, ..)
    "ingest_checkpoints": NewestBy("updated_at"),
    "quality_metrics": NewestBy("ts", _MARKET),
    "signals": NewestBy("ts", _MARKET),
    "gaps": NewestBy("detected_at"),
    "audit_log": NewestBy("ts"),
}


def skip_scan_sql(relation: sql.Composable, by: NewestBy) -> sql.Composed:
    """The newest ``by.column`` of ``relation`` through its (keys..., column DESC) index."""
    column = sql.Identifier(by.column)
    if not by.keys:
        return sql.SQL("SELECT max({c}) FROM {r}").format(c=column, r=relation)
    keys = sql.SQL(", ").join(map(sql.Identifier, by.keys))
    prev = sql.SQL(", ").join(sql.SQL("k.{}").format(sql.Identifier(k)) for k in by.keys)
    same = sql.SQL(" AND ").join(
        sql.SQL("t.{k} = k.{k}").format(k=sql.Identifier(k)) for k in by.keys
    )
    return sql.SQL(
        "WITH RECURSIVE k AS ("
        "(SELECT {keys} FROM {r} ORDER BY {keys} LIMIT 1)"
        " UNION ALL SELECT n.* FROM k, LATERAL (SELECT {keys} FROM {r}"
        " WHERE ({keys}) > ({prev}) ORDER BY {keys} LIMIT 1) n)"
        " SELECT max(m.newest) FROM k, LATERAL (SELECT t.{c} AS newest FROM {r} t"
        " WHERE {same} ORDER BY t.{c} DESC LIMIT 1) m"
    ).format(keys=keys, r=relation, prev=prev, same=same, c=column)


def newest(conn: psycopg.Connection[Any], table: str, timescaledb: bool) -> datetime | None:
    """The newest timestamp of ``table`` (as ``max()`` would say), read from its indexes."""
    by = NEWEST[table]
    if not by.partitioned or timescaledb:
        return _one(conn, skip_scan_sql(sql.Identifier(table), by))
    partitions = conn.execute(
        "SELECT name FROM tv_partitions WHERE parent = %s AND to_regclass(name) IS NOT NULL"
        " ORDER BY range_start DESC",
        (table,),
    ).fetchall()
    for (name,) in partitions:
        found = _one(conn, skip_scan_sql(sql.Identifier(name), by))
        if found is not None:
            return found
    return None


def _one(conn: psycopg.Connection[Any], query: sql.Composed) -> datetime | None:
    row = conn.execute(query).fetchone()
    return row[0] if row else None
