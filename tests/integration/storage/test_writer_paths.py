"""The writer's two paths: direct COPY for new data, staging + ON CONFLICT when keys exist.

Every test reads back what PostgreSQL stored and checks the path taken through the store's
counters (``direct_batches``, ``conflicts``, ``staged_batches``).
"""

from __future__ import annotations

import asyncio
import math
import time
from decimal import Decimal

import psycopg

from tickvault.config import WriterSettings
from tickvault.model import BookSnapshot, Candle, Side, Ticker, Trade, decimal_str
from tickvault.storage.postgres import FeatureValue, PostgresStore
from tickvault.storage.postgres.copytext import ts_text
from tickvault.storage.postgres.rows import SPECS

from .helpers import JAN_2024_NS, NS, PLAIN, count, make_trades


def stored_trades(url: str) -> list[tuple[str, str, str, str, str, str, int, int]]:
    """(exchange, symbol, trade_id, price, size, side, ts µs, recv µs), in key order."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT exchange, symbol, trade_id, price, size, side,"
            " (extract(epoch FROM ts) * 1e6)::bigint, (extract(epoch FROM recv_ts) * 1e6)::bigint"
            " FROM trades ORDER BY exchange, symbol, ts, trade_id"
        ).fetchall()
    return [(e, s, i, decimal_str(p), decimal_str(z), d, t, r) for e, s, i, p, z, d, t, r in rows]


def expected(trades: list[Trade]) -> list[tuple[str, str, str, str, str, str, int, int]]:
    rows = [
        (t.exchange, t.symbol, t.trade_id, decimal_str(t.price), decimal_str(t.size),
         str(t.side), t.ts_ns // 1000, t.recv_ns // 1000)
        for t in trades
    ]  # fmt: skip
    return sorted(rows, key=lambda r: (r[0], r[1], r[6], r[2]))


async def test_first_load_goes_direct_and_stores_every_row_exactly(
    store: PostgresStore, db_url: str
) -> None:
    trades = make_trades(2500, step_ns=NS + 123_456)  # sub-µs parts are truncated, not rounded
    await store.write(trades)
    await store.flush()
    stats = store.stats.tables["trades"]
    assert (stats.direct_batches, stats.conflicts, stats.staged_batches) == (3, 0, 0)
    assert (stats.rows_inserted, stats.rows_duplicate) == (2500, 0)
    assert stored_trades(db_url) == expected(trades)


async def test_resend_falls_back_to_staging_and_changes_nothing(
    store: PostgresStore, db_url: str
) -> None:
    trades = make_trades(3000)  # 3 batches of 1000
    await store.write(trades)
    await store.flush()
    before = stored_trades(db_url)
    await store.write(trades)
    await store.flush()
    assert stored_trades(db_url) == before
    stats = store.stats.tables["trades"]
    # the first re-sent batch tries COPY, hits the unique key and is staged; the batches after
    # a batch with duplicates go straight to staging (no second failed COPY)
    assert stats.direct_batches == 3 and stats.conflicts >= 1 and stats.staged_batches == 3
    assert (stats.rows_inserted, stats.rows_duplicate) == (3000, 3000)


async def test_one_duplicate_inside_a_new_batch_keeps_all_the_others(
    store: PostgresStore, db_url: str
) -> None:
    trades = make_trades(500)
    await store.write([*trades, trades[250]])  # empty table; one trade twice in one batch
    await store.flush()
    stats = store.stats.tables["trades"]
    assert (stats.direct_batches, stats.conflicts, stats.staged_batches) == (0, 1, 1)
    assert (stats.rows_inserted, stats.rows_duplicate) == (500, 1)
    assert stored_trades(db_url) == expected(trades)


async def test_mixed_old_and_new_rows_then_direct_again(store: PostgresStore, db_url: str) -> None:
    old = make_trades(600)
    await store.write(old)
    await store.flush()
    # one batch: every other old trade re-sent (a replay overlap), plus 700 new ones
    new = make_trades(700, start_ns=JAN_2024_NS + 3600 * NS, first_id=10_000)
    await store.write([*old[::2], *new[:700]])
    await store.flush()
    stats = store.stats.tables["trades"]
    assert stats.conflicts == 1 and stats.rows_inserted == 1300 and stats.rows_duplicate == 300
    # the next batch is staged (the last one had duplicates); it has none, so COPY is back on
    later = make_trades(1000, start_ns=JAN_2024_NS + 7200 * NS, first_id=20_000)
    await store.write(later)
    await store.flush()
    more = make_trades(1000, start_ns=JAN_2024_NS + 9000 * NS, first_id=30_000)
    await store.write(more)
    await store.flush()
    assert (stats.direct_batches, stats.staged_batches) == (2, 2)
    assert stored_trades(db_url) == expected([*old, *new, *later, *more])


async def test_direct_copy_creates_partitions_on_demand(db_url: str) -> None:
    day = 86_400 * NS
    trades = [  # one batch over four daily partitions that do not exist yet (2021 backfill)
        *make_trades(50, start_ns=JAN_2024_NS - 1095 * day),
        *make_trades(50, start_ns=JAN_2024_NS - 1094 * day, first_id=100),
        *make_trades(50, start_ns=JAN_2024_NS - 1000 * day, first_id=200),
        *make_trades(50, start_ns=JAN_2024_NS - 1000 * day + 3600 * NS, first_id=300),
        *make_trades(50, start_ns=JAN_2024_NS - 999 * day, first_id=400),
    ]
    async with await PostgresStore.open(db_url, timescale=PLAIN, timed_flush=False) as store:
        await store.write(trades)
        await store.flush()
        assert store.stats.partitions_created == 4
        assert store.stats.tables["trades"].direct_batches == 1
    assert stored_trades(db_url) == expected(trades)


async def test_text_fields_with_copy_specials_round_trip(db_url: str) -> None:
    """Tabs, newlines, CRs and backslashes leave the fast encoder for the escaping one."""
    odd = ["a\tb", "line\nbreak", "back\\slash", "cr\rx", "\\N", "plain"]
    trades = [
        Trade("kraken", "BTC-USD", tid, Decimal("1.5"), Decimal("0.00000010"), Side.SELL,
              JAN_2024_NS + i * NS, JAN_2024_NS + i * NS)
        for i, tid in enumerate(odd)
    ]  # fmt: skip
    data = SPECS["trades"].encode(trades)
    assert data.count(b"\n") == len(odd)  # one line per row: the newline in an id is escaped
    features = [
        FeatureValue("kraken", "BTC-USD", "1m", "name\twith tab", JAN_2024_NS, math.nan),
        FeatureValue("kraken", "BTC-USD", "1m", "inf", JAN_2024_NS, math.inf),
        FeatureValue("kraken", "BTC-USD", "1m", "none", JAN_2024_NS, None),
        FeatureValue("kraken", "BTC-USD", "1m", "tiny", JAN_2024_NS, 5e-324),
    ]
    async with await PostgresStore.open(db_url, timescale=PLAIN, timed_flush=False) as store:
        await store.write([*trades, *features])
    assert stored_trades(db_url) == expected(trades)
    with psycopg.connect(db_url) as conn:
        got = dict(conn.execute("SELECT name, value FROM features").fetchall())
    assert math.isnan(got.pop("name\twith tab"))
    assert got == {"inf": math.inf, "none": None, "tiny": 5e-324}


async def test_timestamps_before_1970_and_far_ahead(store: PostgresStore, db_url: str) -> None:
    times = [-1, -1_500_000_001, 0, 999, 253_402_300_799_999_999_999]  # ns; up to 9999-12-31
    assert ts_text(-1) == "1969-12-31 23:59:59.999999+00"
    trades = [
        Trade("binance", "BTC-USDT", str(i), Decimal(1), Decimal(1), Side.BUY, t, t)
        for i, t in enumerate(times)
    ]
    await store.write(trades)
    await store.flush()
    assert stored_trades(db_url) == expected(trades)
    assert count(db_url, "SELECT count(*) FROM tv_partitions WHERE parent = 'trades'") >= 3


async def test_concurrent_batches_with_the_same_keys(db_url: str) -> None:
    """Two batches in flight at once holding the same trades: one inserts, one is staged."""
    trades = make_trades(400)
    store = await PostgresStore.open(
        db_url, WriterSettings(batch_rows=400), PLAIN, timed_flush=False
    )
    try:
        await store.write(trades)
        await store.write(trades)  # launched while the first may still be in flight
        await store.flush()
    finally:
        await store.close()
    stats = store.stats.tables["trades"]
    assert (stats.rows_inserted, stats.rows_duplicate) == (400, 400)
    assert stored_trades(db_url) == expected(trades)


async def test_direct_and_staged_paths_store_the_same_values(
    store: PostgresStore, db_url: str
) -> None:
    """Books, tickers and candles: a direct load and a staged one of the same events agree."""
    d = Decimal
    events = [
        BookSnapshot("coinbase", "BTC-USD", (), ((d("42000.02"), d("0.00000010")),),
                     JAN_2024_NS, JAN_2024_NS + 5, None, 2**40),
        Ticker("coinbase", "BTC-USD", JAN_2024_NS, JAN_2024_NS, bid_price=d("1E+2"),
               volume_24h=d("0.000000001")),
        Candle("binance", "ETH-USDT", "1m", JAN_2024_NS, d("1.10"), d("2"), d("0.5"),
               d("1.000"), d("12.50000000"), True, JAN_2024_NS, JAN_2024_NS, trade_count=7,
               vwap=d("1.23456789012345678901234567890")),
    ]  # fmt: skip
    queries = {
        "book_snapshots": "SELECT bid_prices::text, ask_prices::text, ask_sizes::text,"
        " sequence, checksum, ts, recv_ts FROM book_snapshots",
        "tickers": "SELECT bid_price::text, bid_size, volume_24h::text, ts FROM tickers",
        "candles": "SELECT open::text, close::text, volume::text, vwap::text, quote_volume,"
        " trade_count, closed, ts, event_ts FROM candles",
    }

    def snapshot() -> dict[str, list[tuple[object, ...]]]:
        with psycopg.connect(db_url) as conn:
            out = {t: conn.execute(q).fetchall() for t, q in queries.items()}  # type: ignore[call-overload]
            for table in queries:
                conn.execute(f"TRUNCATE {table}")
        return out

    await store.write(events)
    await store.flush()
    direct = snapshot()
    await store.write([*events, *events])  # duplicates inside the batch: staged path
    await store.flush()
    staged = snapshot()
    for table in queries:
        stats = store.stats.tables[table]
        assert (stats.direct_batches, stats.staged_batches) == (1, 1), table
    assert direct == staged
    assert direct["book_snapshots"][0][:5] == ("{}", "{42000.02}", "{0.00000010}", None, 2**40)
    assert direct["tickers"][0][:3] == ("100", None, "0.000000001")
    assert direct["candles"][0][:6] == ("1.10", "1.000", "12.50000000",
                                        "1.23456789012345678901234567890", None, 7)  # fmt: skip


async def test_a_large_staged_batch_leaves_the_loop_free_while_it_is_written(
    db_url: str,
) -> None:
    """A replayed batch (keys already stored) goes through staging: its rows are converted and
    sent in slices of 2 000 with the loop handed back between them, not converted all at once
    first (~0.15 s for 20 000 rows) — the Redis writer shares the loop."""
    store = await PostgresStore.open(
        db_url, WriterSettings(batch_rows=20_000), PLAIN, timed_flush=False
    )
    trades = make_trades(20_000)
    await store.write(trades)
    await store.flush()
    gaps: list[float] = []

    async def watch() -> None:
        while True:
            before = time.perf_counter()
            await asyncio.sleep(0)
            gaps.append(time.perf_counter() - before)

    watcher = asyncio.create_task(watch())
    try:
        await store.write(trades)
        await store.flush()
    finally:
        watcher.cancel()
        await store.close()
    stats = store.stats.tables["trades"]
    assert stats.staged_batches == 1 and stats.rows_duplicate == 20_000
    assert max(gaps) < 0.1


def _bar(trade_count: int, close: str, closed: bool = True, event_s: int = 30) -> Candle:
    return Candle(
        "binance", "BTC-USDT", "1m", JAN_2024_NS, Decimal("42000.10"), Decimal("42010"),
        Decimal("41990"), Decimal(close), Decimal(trade_count), closed, JAN_2024_NS + event_s * NS,
        JAN_2024_NS + 61 * NS, trade_count=trade_count,
    )  # fmt: skip


async def test_a_closed_bar_is_replaced_only_by_a_revision_with_more_trades(
    store: PostgresStore, db_url: str
) -> None:
    """Late trades revise a closed derived bar (see trade_bars): the revision replaces it; a
    replay of the first closed version, or a forming one, changes nothing."""

    def stored() -> tuple[int, Decimal, bool]:
        with psycopg.connect(db_url) as conn:
            row = conn.execute("SELECT trade_count, close, closed FROM candles").fetchone()
        assert row is not None
        return row[0], row[1], row[2]

    await store.write([_bar(2, "42001")])
    await store.flush()
    assert stored() == (2, Decimal("42001"), True)
    await store.write([_bar(3, "42002")])  # the revision: one late trade more
    await store.flush()
    assert stored() == (3, Decimal("42002"), True)
    # Replays of older versions, in one batch with the newest or alone, leave the revision.
    await store.write(
        [_bar(2, "42001"), _bar(3, "42002"), _bar(4, "42003", closed=False, event_s=59)]
    )
    await store.flush()
    await store.write([_bar(2, "42001")])
    await store.flush()
    assert stored() == (3, Decimal("42002"), True)
    # Inside one batch the revision with the most trades wins.
    await store.write([_bar(5, "42005"), _bar(4, "42004")])
    await store.flush()
    assert stored() == (5, Decimal("42005"), True)


async def test_a_forming_bar_with_more_trades_of_the_same_millisecond_replaces_it(
    store: PostgresStore, db_url: str
) -> None:
    """Exchange times repeat within a millisecond: a later forming version of a bar can have
    the same newest-trade time and more trades. It must still replace the stored one."""
    await store.write([_bar(41, "42001", closed=False)])
    await store.flush()
    await store.write([_bar(44, "42004", closed=False)])  # same event_ts (30 s), 3 trades more
    await store.flush()
    await store.write([_bar(41, "42001", closed=False)])  # a replay of the older version
    await store.flush()
    with psycopg.connect(db_url) as conn:
        row = conn.execute("SELECT trade_count, close, closed FROM candles").fetchone()
    assert row == (44, Decimal("42004"), False)
