"""``tickvault status``'s newest timestamp per table: read from the indexes (skip scan, newest
partition first), and always the value ``SELECT max(...)`` gives."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import psycopg
from psycopg import sql

from tickvault.model import BookSnapshot, Candle, CandleSource, Ticker
from tickvault.storage.postgres import FeatureValue, PostgresStore
from tickvault.storage.postgres.newest import NEWEST, skip_scan_sql
from tickvault.storage.postgres.reader import table_status

from .helpers import JAN_2024_NS, NS, make_trades

DAY_NS = 86_400 * NS


def _plain_max(conn: psycopg.Connection[Any]) -> dict[str, Any]:
    return {
        table: conn.execute(
            sql.SQL("SELECT max({}) FROM {}").format(
                sql.Identifier(by.column), sql.Identifier(table)
            )
        ).fetchone()[0]  # type: ignore[index]
        for table, by in NEWEST.items()
    }


def _newest(conn: psycopg.Connection[Any]) -> dict[str, Any]:
    return {s.table: s.newest for s in table_status(conn, timescaledb=False)}


async def _load(store: PostgresStore) -> None:
    d = Decimal
    events: list[Any] = []
    # Several markets over several daily partitions; the newest row is not in the last market
    # of the index order, nor the last one written.
    for day, (exchange, symbol) in enumerate(
        [("binance", "BTC-USDT"), ("kraken", "ETH-USD"), ("coinbase", "BTC-USD")]
    ):
        start = JAN_2024_NS + day * DAY_NS
        events += make_trades(50, start_ns=start, exchange=exchange, symbol=symbol)
        bids, asks = ((d("1"), d("2")),), ((d("3"), d("4")),)
        events.append(BookSnapshot(exchange, symbol, bids, asks, start + day, start + day, 1))
        events.append(Ticker(exchange, symbol, start - day, start, last_price=d("1")))
        for timeframe, open_ns in (("1m", start), ("1h", start - 5 * DAY_NS)):
            ohlcv = (d("1"), d("2"), d("0.5"), d("1.5"), d("10"))
            events.append(Candle(exchange, symbol, timeframe, open_ns, *ohlcv, True, open_ns,
                                 open_ns, CandleSource.EXCHANGE))  # fmt: skip
        events.append(FeatureValue(exchange, symbol, "1m", "rsi_14", start + 7 * NS, 50.0))
    events += make_trades(5, start_ns=JAN_2024_NS + DAY_NS + 3600 * NS, symbol="ETH-USDT")
    await store.write(events)
    await store.flush()


async def test_newest_per_table_equals_max(store: PostgresStore, db_url: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        empty = _newest(conn)
        assert empty == _plain_max(conn)  # None everywhere but the audit log of `init`
        assert empty["trades"] is None and empty["audit_log"] is not None
    await _load(store)
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO quality_metrics VALUES ('binance', 'BTC-USDT', 'q', '2024-02-01', 1),"
            " ('kraken', 'ETH-USD', 'q', '2024-03-01', 1), ('kraken', 'ETH-USD', 'r',"
            " '2024-01-01', 1)"
        )
        conn.execute(
            "INSERT INTO signals (exchange, symbol, timeframe, name, ts) VALUES"
            " ('binance', 'BTC-USDT', '1m', 's', '2024-04-01'),"
            " ('coinbase', 'BTC-USD', '1m', 's', '2024-01-01')"
        )
        conn.execute(
            "INSERT INTO quarantine (exchange, symbol, reason, detail, raw, recv_ts) VALUES"
            " ('binance', NULL, 'r', 'd', 'x', '2024-05-01'),"
            " ('kraken', 'ETH-USD', 'r', 'd', 'y', '2024-04-01')"
        )
        newest, expected = _newest(conn), _plain_max(conn)
    assert newest == expected
    assert newest["trades"] == expected["trades"] is not None
    ts = newest["trades"].timestamp()
    assert ts == (JAN_2024_NS + 2 * DAY_NS + 49 * NS) / NS  # coinbase, day 3, last trade
    assert newest["quarantine"].month == 5 and newest["signals"].month == 4


def _rows_read(conn: psycopg.Connection[Any], query: sql.Composable) -> int:
    """The most rows any node of the executed plan produced (EXPLAIN ANALYZE, not timed)."""
    plan = conn.execute(sql.SQL("EXPLAIN (ANALYZE, TIMING OFF) ") + query).fetchall()
    return max(int(m) for (line,) in plan for m in re.findall(r"actual rows=(\d+)", line))


async def test_status_reads_a_few_index_entries_not_the_table(
    store: PostgresStore, db_url: str
) -> None:
    markets = [("binance", "BTC-USDT"), ("binance", "ETH-USDT"), ("kraken", "BTC-USD")]
    for exchange, symbol in markets:  # 60,000 trades in one daily partition
        await store.write(make_trades(20_000, step_ns=NS // 4, exchange=exchange, symbol=symbol))
    await store.flush()
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("ANALYZE trades")
        by = NEWEST["trades"]
        partition = conn.execute(
            "SELECT name FROM tv_partitions WHERE parent = 'trades' AND range_start <= %s"
            " ORDER BY range_start DESC LIMIT 1",
            (_newest(conn)["trades"],),
        ).fetchone()
        assert partition is not None
        skip = skip_scan_sql(sql.Identifier(partition[0]), by)
        whole = sql.SQL("SELECT max(ts) FROM trades")
        assert conn.execute(skip).fetchone() == conn.execute(whole).fetchone()
        assert _rows_read(conn, skip) <= len(markets) + 1  # one entry per market, and a probe
        assert _rows_read(conn, whole) >= 60_000  # what status did before: every row
