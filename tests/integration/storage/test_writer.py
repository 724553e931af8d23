"""The async writer: idempotent batches, exact decimals, retries, timed flush, memory bound."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tickvault.config import WriterSettings
from tickvault.model import BookSnapshot, Candle, CandleSource, Side, Ticker, Trade, decimal_str
from tickvault.storage.postgres import FeatureValue, PostgresStore

from .helpers import JAN_2024_NS, NS, PLAIN, count, make_trades


async def test_resent_batch_changes_nothing(store: PostgresStore, db_url: str) -> None:
    trades = make_trades(2500)
    await store.write(trades)
    await store.flush()
    with psycopg.connect(db_url) as conn:
        before = conn.execute(
            "SELECT md5(string_agg(t::text, ',' ORDER BY ts, trade_id)) FROM trades t"
        ).fetchone()
    await store.write(trades)
    await store.flush()
    with psycopg.connect(db_url) as conn:
        after = conn.execute(
            "SELECT md5(string_agg(t::text, ',' ORDER BY ts, trade_id)) FROM trades t"
        ).fetchone()
    assert before == after
    stats = store.stats.tables["trades"]
    assert (stats.rows_inserted, stats.rows_duplicate) == (2500, 2500)


async def test_duplicate_inside_a_batch_costs_only_itself(
    store: PostgresStore, db_url: str
) -> None:
    trades = make_trades(10)
    await store.write(trades[:5])
    await store.flush()
    # one batch: 5 already stored, 1 repeated twice inside it, 4 new
    await store.write([*trades, trades[7]])
    await store.flush()
    assert count(db_url, "SELECT count(*) FROM trades") == 10
    assert store.stats.tables["trades"].rows_inserted == 10


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=10**12),
            st.integers(min_value=0, max_value=18),
            st.integers(min_value=0, max_value=10**18 - 1),
        ),
        min_size=1,
        max_size=20,
    )
)
def test_decimals_round_trip_exactly(db_url: str, parts: list[tuple[int, int, int]]) -> None:
    texts = []
    for whole, places, frac in parts:  # exchange-style plain decimals, trailing zeros kept
        texts.append(f"{whole}.{str(frac % 10**places).zfill(places)}" if places else str(whole))
    trades = [
        Trade("kraken", "BTC-USD", f"h{i}", Decimal(t), Decimal(t), Side.BUY, JAN_2024_NS + i, 0)
        for i, t in enumerate(texts)
    ]

    async def run() -> None:
        async with await PostgresStore.open(db_url, timescale=PLAIN, timed_flush=False) as st_:
            await st_.write(trades)

    asyncio.run(run())
    with psycopg.connect(db_url) as conn:
        rows = conn.execute(
            "SELECT trade_id, price, size FROM trades WHERE exchange = 'kraken' AND trade_id = ANY(%s)",
            ([t.trade_id for t in trades],),
        ).fetchall()
        conn.execute("DELETE FROM trades WHERE exchange = 'kraken'")
    got = {tid: (decimal_str(p), decimal_str(s)) for tid, p, s in rows}
    assert got == {f"h{i}": (t, t) for i, t in enumerate(texts)}


async def test_candle_updates_only_when_newer_or_closing(store: PostgresStore, db_url: str) -> None:
    def bar(close: str, closed: bool, ts_s: int) -> Candle:
        d = Decimal(close)
        return Candle("binance", "ETH-USDT", "1m", JAN_2024_NS, d, d, d, d, Decimal("1.0"),
                      closed, JAN_2024_NS + ts_s * NS, JAN_2024_NS + ts_s * NS)  # fmt: skip

    def stored() -> tuple[str, bool]:
        with psycopg.connect(db_url) as conn:
            row = conn.execute("SELECT close::text, closed FROM candles").fetchone()
        assert row is not None
        return row[0], row[1]

    await store.write([bar("10.0", False, 10), bar("11.0", False, 20)])  # same batch: newest wins
    await store.flush()
    assert stored() == ("11.0", False)
    await store.write([bar("10.5", False, 15)])  # older update: ignored
    await store.flush()
    assert stored() == ("11.0", False)
    await store.write([bar("12.0", True, 59)])  # closing bar replaces
    await store.flush()
    assert stored() == ("12.0", True)
    await store.write([bar("13.0", False, 70), bar("12.0", True, 59)])  # closed bars stay
    await store.flush()
    assert stored() == ("12.0", True)
    derived = Candle("binance", "ETH-USDT", "1m", JAN_2024_NS, Decimal(1), Decimal(1), Decimal(1),
                     Decimal(1), Decimal(1), True, JAN_2024_NS, JAN_2024_NS, CandleSource.DERIVED)  # fmt: skip
    await store.write([derived])
    await store.flush()
    assert count(db_url, "SELECT count(*) FROM candles") == 2  # source is part of the key


async def test_books_tickers_features_round_trip(store: PostgresStore, db_url: str) -> None:
    d = Decimal
    book = BookSnapshot("coinbase", "BTC-USD", ((d("42000.01"), d("0.50000000")),),
                        ((d("42000.02"), d("1.25")), (d("42001"), d("0.001"))), JAN_2024_NS, JAN_2024_NS + 5, 12345)  # fmt: skip
    ticker = Ticker(
        "coinbase",
        "BTC-USD",
        JAN_2024_NS,
        JAN_2024_NS,
        bid_price=d("42000.01"),
        last_price=d("42000.015"),
    )
    feature = FeatureValue("coinbase", "BTC-USD", "1m", "rsi_14", JAN_2024_NS, 55.5)
    await store.write([book, ticker, feature])
    await store.write([book, ticker, feature])
    await store.flush()
    with psycopg.connect(db_url) as conn:
        row = conn.execute(
            "SELECT bid_prices, bid_sizes, ask_prices, ask_sizes, sequence FROM book_snapshots"
        ).fetchone()
        t = conn.execute("SELECT bid_price, ask_price, last_price FROM tickers").fetchone()
        f = conn.execute("SELECT count(*), max(value) FROM features").fetchone()
    assert row is not None and t is not None
    assert [decimal_str(x) for x in row[0] + row[1] + row[2] + row[3]] == [
        "42000.01", "0.50000000", "42000.02", "42001", "1.25", "0.001"]  # fmt: skip
    assert row[4] == 12345
    assert (decimal_str(t[0]), t[1], decimal_str(t[2])) == ("42000.01", None, "42000.015")
    assert f == (1, 55.5)


async def test_write_survives_a_killed_connection(db_url: str) -> None:
    store = await PostgresStore.open(
        db_url, WriterSettings(batch_rows=500), PLAIN, timed_flush=False
    )
    try:
        await store.write(make_trades(100))
        await store.flush()
        # the server drops every connection of the writer (as on a failover or restart)
        with psycopg.connect(db_url, autocommit=True) as admin:
            killed = admin.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            ).fetchone()
        assert killed is not None and killed[0] >= 1
        await store.write(make_trades(900, first_id=100))
        await store.flush()
        assert count(db_url, "SELECT count(*) FROM trades") == 1000
    finally:
        await store.close()


async def test_timed_flush_and_memory_bound(db_url: str) -> None:
    writer = WriterSettings(batch_rows=200, flush_interval_s=0.05, max_buffered_rows=400)
    store = await PostgresStore.open(db_url, writer, PLAIN)
    try:
        await store.write(make_trades(10))
        await asyncio.sleep(0.5)  # never flushed explicitly: the timer commits it
        assert count(db_url, "SELECT count(*) FROM trades") == 10
        peak = 0
        for chunk in range(20):
            await store.write(make_trades(150, first_id=1000 + chunk * 150))
            peak = max(peak, store.buffered_rows + store._inflight_rows)
        await store.flush()
        assert peak <= 400 + 150  # bound plus the one write() call in progress
        assert count(db_url, "SELECT count(*) FROM trades") == 10 + 20 * 150
    finally:
        await store.close()


async def test_unsupported_events_are_refused(store: PostgresStore) -> None:
    with pytest.raises(TypeError, match="cannot store str"):
        await store.write(["not an event"])  # type: ignore[list-item]
