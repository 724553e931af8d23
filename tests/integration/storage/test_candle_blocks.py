"""Candle blocks (the columnar read cache inside PostgreSQL): cached reads equal uncached ones,
every write path marks them, races with writers never store a stale frame."""

from __future__ import annotations

import gc
import random
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import msgspec
import psycopg
import pyarrow as pa
import pytest

from tickvault.config import TimescaleSettings
from tickvault.model import Candle, CandleSource
from tickvault.query import FrameMemo, Vault
from tickvault.storage.postgres import PostgresStore, candle_frames
from tickvault.storage.postgres.candle_blocks import MAX_EMPTY_STORED, CandleBlocks, Key
from tickvault.storage.postgres.schema import init_database

from .helpers import JAN_2024_NS, NS, PLAIN, make_trades

D = Decimal
MIN = 60 * NS
DAY_MIN = 1440
JAN1 = datetime(2024, 1, 1, tzinfo=UTC)
MARKET = ("binance", "BTC-USDT")


def bar(minute: int, close: str, source: CandleSource = CandleSource.EXCHANGE, *,
        closed: bool = True, volume: str = "2.50", extra: bool = False) -> Candle:  # fmt: skip
    ts = JAN_2024_NS + minute * MIN
    c = D(close)
    more: tuple[Any, ...] = (7, D("12.3450"), D("100.1"), D("1.0"), D("1.5")) if extra else ()
    return Candle(*MARKET, "1m", ts, c, c + 1, c - 1, c, D(volume), closed, ts + MIN,
                  ts + MIN, source, *more)  # fmt: skip


def history() -> list[Candle]:
    """Three days with holes, both sources, optional columns partly null, scales varying by
    bar (trailing zeros count: they set the scale of an uncached read)."""
    rng = random.Random(7)
    out: list[Candle] = []
    for m in range(3 * DAY_MIN):
        if rng.random() < 0.05:
            continue  # a hole
        cents = f"{m % 100:02d}"
        close = f"{40000 + m % 997}.{cents}"
        if m % 331 == 0:
            close += "0100"  # a more precise bar now and then
        volume = "2.50" if m % 2 else f"1{m % 7}.{m % 1000:03d}00"
        source = CandleSource.DERIVED if m % 5 == 0 else CandleSource.EXCHANGE
        out.append(bar(m, close, source, volume=volume, extra=m % 3 == 0))
        if m % 11 == 0 and source == CandleSource.EXCHANGE:  # a derived bar it outranks
            out.append(bar(m, "1.123456789", CandleSource.DERIVED))
    out.append(bar(3 * DAY_MIN + 100, "99999999999999.5"))  # big digits in a later block
    return out


@pytest.fixture
def vaults(db_url: str) -> Iterator[tuple[Vault, Vault]]:
    with psycopg.connect(db_url, autocommit=True) as conn:  # for bars written by hand
        conn.execute("SELECT tv_ensure_partition_range('candles', '2023-12-25', '2024-01-15')")
    with Vault.connect(url=db_url) as cached, Vault.connect(url=db_url, block_cache=False) as raw:
        yield cached, raw


def at(minute: float) -> datetime:
    return JAN1 + timedelta(minutes=minute)


def same_range(vaults: tuple[Vault, Vault], lo: datetime, hi: datetime) -> pa.Table:
    cached, raw = vaults
    want = raw.candles(*MARKET, "1m", lo, hi, format="arrow")
    got = cached.candles(*MARKET, "1m", lo, hi, format="arrow")
    assert got.schema == want.schema, (lo, hi)
    assert got.equals(want), (lo, hi)
    polars = cached.candles(*MARKET, "1m", lo, hi)
    assert (
        polars.equals(raw.candles(*MARKET, "1m", lo, hi))
        and polars.schema == raw.candles(*MARKET, "1m", lo, hi).schema
    )
    return got


def same_latest(vaults: tuple[Vault, Vault], limit: int) -> pa.Table:
    cached, raw = vaults
    want = raw.latest_candles(*MARKET, "1m", limit, format="arrow")
    got = cached.latest_candles(*MARKET, "1m", limit, format="arrow")
    assert got.schema == want.schema and got.equals(want), limit
    return got


async def write(store: PostgresStore, candles: list[Candle]) -> None:
    await store.write(candles)
    await store.flush()


def blocks(url: str) -> dict[datetime, tuple[int | None, datetime | None]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT block_start, rows, dirty_from FROM candle_blocks").fetchall()
    return {r[0]: (r[1], r[2]) for r in rows}


async def test_cached_reads_equal_uncached_ones(
    store: PostgresStore, vaults: tuple[Vault, Vault], db_url: str
) -> None:
    await write(store, history())
    rng = random.Random(11)
    ranges = [(at(0), at(DAY_MIN)), (at(DAY_MIN), at(2 * DAY_MIN)), (at(-5000), at(9000)),
              (at(10), at(11)), (at(10.5), at(10.7)), (at(DAY_MIN - 1), at(DAY_MIN + 1)),
              (at(-3 * DAY_MIN), at(-DAY_MIN)), (at(3 * DAY_MIN), at(4 * DAY_MIN))]  # fmt: skip
    for _ in range(60):
        first = rng.uniform(-200, 3 * DAY_MIN + 200)
        ranges.append((at(first), at(first + rng.choice([0.5, 3, 90, 1439, 1440, 1441, 3000]))))
    for lo, hi in ranges:  # cold (built, stored), then warm (served from the frames)
        same_range(vaults, lo, hi)
        same_range(vaults, lo, hi)
    cached = vaults[0].blocks
    assert cached is not None and cached.stored_blocks >= 4 and cached.store_failures == 0
    stored = blocks(db_url)
    assert stored[JAN1][0] == len({c.open_ns for c in history() if c.open_ns < JAN_2024_NS
                                   + DAY_MIN * MIN})  # fmt: skip
    assert all(dirty is None for _, dirty in stored.values())
    # the big bar: one column needs 14 integer digits, slices without it far fewer
    big = same_range(vaults, at(3 * DAY_MIN), at(4 * DAY_MIN))
    assert big.schema.field("close").type == pa.decimal128(15, 1)
    for limit in (1, 2, 10, 500, 1440, 1441, 3000, 10_000):
        same_latest(vaults, limit)


async def test_writes_after_caching_are_read(
    store: PostgresStore, vaults: tuple[Vault, Vault], db_url: str
) -> None:
    await write(store, [bar(m, f"100.{m % 10}") for m in range(0, 600, 2)])
    day = (at(0), at(DAY_MIN))
    same_range(vaults, *day)
    await write(store, [bar(1, "555.5")])  # a new bar in a hole
    assert blocks(db_url)[JAN1][1] == at(1)  # marked from the changed bar on
    assert same_range(vaults, *day).column("close")[1].as_py() == D("555.5")
    assert blocks(db_url)[JAN1][1] is None  # rebuilt (from the mark on) and stored clean
    # a corrected bar: the open version, then the closed one replacing it
    await write(store, [bar(700, "1.00", closed=False)])
    same_range(vaults, *day)
    await write(store, [bar(700, "2.000")])
    assert same_range(vaults, *day).column("close")[-1].as_py() == D("2.000")
    # an exchange bar replaces a derived one
    await write(store, [bar(801, "3.3", CandleSource.DERIVED)])
    assert same_range(vaults, *day).column("source")[-1].as_py() == "derived"
    await write(store, [bar(801, "4.4")])
    last = same_range(vaults, *day)
    assert last.column("source")[-1].as_py() == "exchange"
    assert last.column("close")[-1].as_py() == D("4.4")
    # hand-written SQL is marked too: update, delete, truncate
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("UPDATE candles SET close = 9.99 WHERE ts = %s", (at(0),))
        assert same_range(vaults, *day).column("close")[0].as_py() == D("9.99")
        conn.execute("DELETE FROM candles WHERE ts = %s", (at(2),))
        assert same_range(vaults, *day).num_rows == last.num_rows - 1
        conn.execute("TRUNCATE candles")
        assert same_range(vaults, *day).num_rows == 0


async def test_derived_refresh_and_repair_writes_are_read(
    store: PostgresStore, vaults: tuple[Vault, Vault]
) -> None:
    trades = make_trades(600)  # 10 minutes of 2024-01-01
    await store.write(trades)
    await store.flush()
    await store.refresh_derived_candles("1m", JAN_2024_NS, JAN_2024_NS + DAY_MIN * MIN)
    day = (at(0), at(DAY_MIN))
    before = same_range(vaults, *day)
    assert before.num_rows == 10
    # late trades, then the refresh a gap repair runs over their range
    await store.write(make_trades(30, JAN_2024_NS + 20 * MIN, first_id=10_000))
    await store.flush()
    await store.refresh_derived_candles("1m", JAN_2024_NS, JAN_2024_NS + DAY_MIN * MIN)
    assert same_range(vaults, *day).num_rows == 11
    # a repair's refetched page: stored bars again (all duplicates) plus the missing ones,
    # written through the staged path as a replay is
    refetched = [bar(m, "7.7") for m in range(5)] + [bar(m, "8.8") for m in range(3)]
    await write(store, refetched)
    got = same_range(vaults, *day)
    assert got.column("source").to_pylist()[:6] == ["exchange"] * 5 + ["derived"]
    assert got.column("close")[0].as_py() == D("8.8")  # the first version of a closed bar stays


async def test_latest_across_a_block_boundary(
    store: PostgresStore, vaults: tuple[Vault, Vault]
) -> None:
    await write(store, [bar(m, f"5.{m % 7}") for m in range(DAY_MIN - 400, DAY_MIN + 10)])
    got = same_latest(vaults, 300)
    assert got.column("ts")[0].as_py() == at(DAY_MIN + 10 - 300)
    same_latest(vaults, 300)  # warm
    same_latest(vaults, 410)
    same_latest(vaults, 411)
    await write(store, [bar(DAY_MIN + 10, "6.25")])
    assert same_latest(vaults, 300).column("close")[-1].as_py() == D("6.25")
    await write(store, [bar(2 * DAY_MIN + 3, "7")])  # a new block, one bar in it
    assert same_latest(vaults, 5).column("ts")[-1].as_py() == at(2 * DAY_MIN + 3)
    same_latest(vaults, 2000)


async def test_retention_drop_marks_the_dropped_range(
    store: PostgresStore, vaults: tuple[Vault, Vault], db_url: str
) -> None:
    # candle partitions are 7 epoch-aligned days: 2023-12-28..2024-01-04, 2024-01-04..
    await write(store, [bar(m, "1.5") for m in range(2 * DAY_MIN, 4 * DAY_MIN, 7)])
    span = (at(2 * DAY_MIN), at(4 * DAY_MIN))
    assert same_range(vaults, *span).num_rows > 0
    with psycopg.connect(db_url, autocommit=True) as conn:
        dropped = conn.execute(
            "SELECT tv_drop_partitions_before('candles', '2024-01-04')"
        ).fetchall()
    assert ("candles_p20231228",) in dropped
    after = same_range(vaults, *span)
    assert after.column("ts")[0].as_py() == datetime(2024, 1, 4, 0, 2, tzinfo=UTC)


def test_corrupt_frames_are_read_through_sql_and_rebuilt(
    vaults: tuple[Vault, Vault], db_url: str
) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO candles (exchange, symbol, timeframe, ts, source, open, high, low, close,"
            " volume, closed, event_ts, recv_ts) SELECT 'binance', 'BTC-USDT', '1m', t, 'exchange',"
            " 1.5, 2, 1, 1.25, 3, true, t, t FROM generate_series(%s::timestamptz,"
            " %s::timestamptz, interval '1 minute') t",
            (at(0), at(DAY_MIN - 1)),
        )
        day = (at(0), at(DAY_MIN))
        good = same_range(vaults, *day)
        for bad in (b"\x00not arrow", b"", good.schema.serialize().to_pybytes()):
            conn.execute("UPDATE candle_blocks SET frame = %s", (bad,))
            assert same_range(vaults, *day).equals(good)
            row = conn.execute("SELECT frame, rows FROM candle_blocks").fetchone()
            assert row is not None and row[0] != bad and row[1] == DAY_MIN  # rebuilt
        conn.execute("UPDATE candle_blocks SET rows = 5")  # decodes, but not what was stored
        assert same_range(vaults, *day).equals(good)
        conn.execute("UPDATE candle_blocks SET layout = 99")  # a layout of another version
        assert same_range(vaults, *day).equals(good)
        layout = conn.execute("SELECT layout, rows FROM candle_blocks").fetchone()
        assert layout == (candle_frames.FRAME_FORMAT, DAY_MIN)


class _RacingBlocks(CandleBlocks):
    """Runs ``before_store`` between the build (in the read's snapshot) and its store."""

    def __init__(self, conn: psycopg.Connection[Any], before_store: Any) -> None:
        super().__init__(conn)
        self.before_store = before_store

    def _store(self, key: Key, tables: dict[int, pa.Table]) -> None:
        self.before_store()
        super()._store(key, tables)


def _insert_bar(conn: psycopg.Connection[Any], minute: int, close: str) -> None:
    conn.execute(
        "INSERT INTO candles (exchange, symbol, timeframe, ts, source, open, high, low, close,"
        " volume, closed, event_ts, recv_ts) VALUES ('binance', 'BTC-USDT', '1m', %s,"
        " 'exchange', 1, 1, 1, %s, 1, true, %s, %s)",
        (at(minute), D(close), at(minute), at(minute)),
    )


def test_writer_committing_between_snapshot_and_store_wins(
    vaults: tuple[Vault, Vault], db_url: str
) -> None:
    cached, raw = vaults
    with psycopg.connect(db_url, autocommit=True) as writer:
        _insert_bar(writer, 0, "1")
        cached.blocks = _RacingBlocks(cached._conn, lambda: _insert_bar(writer, 1, "2"))
        first = cached.candles(*MARKET, "1m", at(0), at(DAY_MIN), format="arrow")
        assert first.num_rows == 1  # the read's own snapshot, consistent
        assert cached.blocks.store_failures == 1 and cached.blocks.stored_blocks == 0
        cached.blocks.before_store = lambda: None
        second = same_range((cached, raw), at(0), at(DAY_MIN))
        assert second.num_rows == 2 and cached.blocks.stored_blocks == 1


@pytest.mark.parametrize("commit", [False, True])
def test_writer_holding_an_uncommitted_mark_is_never_overwritten(
    vaults: tuple[Vault, Vault], db_url: str, commit: bool
) -> None:
    """The writer's mark is uncommitted when the reader stores: the store waits, then gives up
    (lock timeout) or fails (the writer commits meanwhile)."""
    cached, raw = vaults
    with psycopg.connect(db_url, autocommit=True) as setup:
        _insert_bar(setup, 0, "1")
    same_range(vaults, at(0), at(DAY_MIN))  # a clean stored frame
    with psycopg.connect(db_url, autocommit=True) as other:
        _insert_bar(other, 3, "3")  # marks the block: the next read rebuilds it
    writer = psycopg.connect(db_url)  # not autocommit: its transaction stays open
    try:

        def write_uncommitted() -> None:
            _insert_bar(writer, 1, "2")
            if commit:
                threading.Timer(0.01, writer.commit).start()

        cached.blocks = _RacingBlocks(cached._conn, write_uncommitted)
        cached.blocks.store_tail_rows = 0  # store even a one-bar tail: the race under test
        first = cached.candles(*MARKET, "1m", at(0), at(DAY_MIN), format="arrow")
        assert first.num_rows == 2  # bars 0 and 3: the writer's bar is not in the snapshot
        assert cached.blocks.store_failures == 1
        writer.commit()
        cached.blocks.before_store = lambda: None
        assert same_range((cached, raw), at(0), at(DAY_MIN)).num_rows == 3
    finally:
        writer.close()


@pytest.mark.timescaledb
async def test_timescale_reads_are_not_cached(timescale_url: str) -> None:
    """Under TimescaleDB no trigger marks blocks (block_ddl.py): reads run uncached."""
    settings = TimescaleSettings(mode="on")
    init_database(timescale_url, settings)
    async with await PostgresStore.open(timescale_url, timescale=settings, timed_flush=False) as st:
        await st.write([bar(m, f"3.{m % 10}") for m in range(DAY_MIN)])
        await st.write(make_trades(600, JAN_2024_NS + DAY_MIN * MIN))  # aggregate bars only
        await st.flush()
    with Vault.connect(url=timescale_url) as cached:
        assert cached.blocks is None
        day = cached.candles(*MARKET, "1m", at(0), at(2 * DAY_MIN), format="arrow")
        assert day.num_rows == DAY_MIN + 10
    assert blocks(timescale_url) == {}


async def test_a_version_2_database_is_upgraded(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tickvault.storage.postgres import schema

    with monkeypatch.context() as older:  # the schema an older tickvault made
        older.setattr(schema, "MIGRATIONS", schema.MIGRATIONS[:2])
        older.setattr(schema, "SCHEMA_VERSION", 2)
        assert init_database(database_url, PLAIN).applied == (1, 2)
    assert init_database(database_url, PLAIN).applied == (3,)
    async with await PostgresStore.open(database_url, timescale=PLAIN, timed_flush=False) as st:
        await write(st, [bar(m, "2.5") for m in range(10)])
    with (
        Vault.connect(url=database_url) as cached,
        Vault.connect(url=database_url, block_cache=False) as raw,
    ):
        assert same_range((cached, raw), at(0), at(DAY_MIN)).num_rows == 10
        assert blocks(database_url)[JAN1] == (10, None)


async def test_a_read_of_decades_stays_quick_and_stores_few_empty_blocks(
    store: PostgresStore, vaults: tuple[Vault, Vault], db_url: str
) -> None:
    await write(store, [bar(m, "1.25") for m in range(0, 3000, 10)])
    lo, hi = datetime(2000, 1, 1, tzinfo=UTC), datetime(2030, 1, 1, tzinfo=UTC)  # 10,958 blocks
    assert same_range(vaults, lo, hi).num_rows == 300
    assert len(blocks(db_url)) <= 3 + 2 * MAX_EMPTY_STORED  # two cached reads so far
    started = time.perf_counter()  # most blocks still missing: built again, each one empty
    assert vaults[0].candles(*MARKET, "1m", lo, hi, format="arrow").num_rows == 300
    assert time.perf_counter() - started < 5  # 0.5 s here; per-block Arrow work would be minutes


# -- blocks held by the reader (held_blocks.py) ------------------------------------------------


async def test_held_blocks_skip_the_frame_until_the_row_changes(
    store: PostgresStore, vaults: tuple[Vault, Vault], db_url: str
) -> None:
    """A repeat read gets no frame (the reader holds that row version); any write to the row —
    another reader's store, a writer's mark, an edit by hand — sends the new frame."""
    bars = history()
    await write(store, bars)
    hole = next(m for m in range(DAY_MIN) if JAN_2024_NS + m * MIN not in {c.ts_ns for c in bars})
    day = (at(0), at(DAY_MIN))
    cached = vaults[0]
    assert cached.blocks is not None
    first = same_range(vaults, *day)  # cold: built, stored, held under the stored version
    same_latest(vaults, 500)
    decoded = cached.blocks.decoded_frames
    for _ in range(3):
        assert same_range(vaults, *day).equals(first)
        same_latest(vaults, 500)
    assert cached.blocks.decoded_frames == decoded  # nothing sent twice
    assert cached.candles(*MARKET, "1m", *day, format="arrow") is cached.candles(
        *MARKET, "1m", *day, format="arrow"
    )  # the same rows: the same (immutable) result

    with Vault.connect(url=db_url) as other:  # another process: it rebuilds what a write marks
        await write(store, [bar(hole, "1.25")])
        rebuilt = other.candles(*MARKET, "1m", *day, format="arrow")
        assert other.blocks is not None and other.blocks.stored_blocks == 1
    # the row has a version this reader never held: the frame comes, and the new bar with it
    got = same_range(vaults, *day)
    assert got.equals(rebuilt) and not got.equals(first)
    assert cached.blocks.decoded_frames == decoded + 1
    same_range(vaults, at(DAY_MIN), at(2 * DAY_MIN))  # built, stored and held: no frame sent
    with psycopg.connect(db_url, autocommit=True) as conn:  # by hand, built_at untouched
        conn.execute(
            "UPDATE candle_blocks SET frame = (SELECT frame FROM candle_blocks"
            " WHERE block_start = %s) WHERE block_start = %s",
            (at(DAY_MIN), at(0)),
        )
    assert same_range(vaults, *day).equals(rebuilt)
    # the other day's frame was sent and refused (twice: the first look, then the rebuild's own
    # snapshot); the rebuilt frame is held again
    assert cached.blocks.decoded_frames == decoded + 3
    same_range(vaults, *day)
    assert cached.blocks.decoded_frames == decoded + 3


async def test_polars_frames_of_repeat_reads_are_independent(
    store: PostgresStore, vaults: tuple[Vault, Vault]
) -> None:
    await write(store, history())
    cached, raw = vaults
    first = cached.latest_candles(*MARKET, "1m", 500)
    first[0, "trade_count"] = 123456  # the caller's change stays the caller's
    first.insert_column(0, first["close"].alias("mine"))
    again = cached.latest_candles(*MARKET, "1m", 500)
    assert again is not first and "mine" not in again.columns
    assert again.equals(raw.latest_candles(*MARKET, "1m", 500))


async def test_held_blocks_are_bounded(store: PostgresStore, db_url: str) -> None:
    await write(store, history())
    with (
        Vault.connect(url=db_url) as cached,
        Vault.connect(url=db_url, block_cache=False) as raw,
    ):
        cached.blocks = CandleBlocks(cached._conn, held_bytes=300_000)  # about one block
        for _ in range(2):
            for d in range(4):
                same_range((cached, raw), at(d * DAY_MIN), at((d + 1) * DAY_MIN))
            assert 0 < cached.blocks.held.bytes <= 300_000 and len(cached.blocks.held) <= 2
        cached.blocks = CandleBlocks(cached._conn, held_bytes=0)  # holds nothing: always sent
        for _ in range(2):
            same_range((cached, raw), at(0), at(2 * DAY_MIN))
        # 2 rounds x 2 blocks x 2 reads (same_range reads Arrow, then polars)
        assert cached.blocks.decoded_frames == 8 and len(cached.blocks.held) == 0


async def test_results_kept_for_repeat_reads_stay_within_the_byte_budget(
    store: PostgresStore, vaults: tuple[Vault, Vault]
) -> None:
    """Repeat-read results (and the block tables they pin, held or dropped) and their polars
    frames are bounded in bytes, not only in count: 256 distinct 3-day reads pinned 178 MB
    beside a 1 MB held budget."""
    await write(store, history())
    cached = vaults[0]
    budget = 1 << 20
    cached.blocks = CandleBlocks(cached._conn, budget)
    cached._frames = FrameMemo(max_bytes=budget)
    gc.collect()
    base = pa.total_allocated_bytes()
    for i in range(256):
        cached.candles(*MARKET, "1m", at(-10 + i), at(3 * DAY_MIN + i))
    gc.collect()
    assert pa.total_allocated_bytes() - base < 4 * budget
    assert cached._frames.bytes <= budget
    # a repeat read is still served from the kept result while it fits
    got = cached.candles(*MARKET, "1m", at(10), at(20), format="arrow")
    assert cached.candles(*MARKET, "1m", at(10), at(20), format="arrow") is got


async def test_a_reader_following_a_live_stream_reads_only_the_new_bars(
    store: PostgresStore, vaults: tuple[Vault, Vault], db_url: str
) -> None:
    """After each write the reader holding the block gets no frame: it keeps what it holds
    below the mark and reads the bars from ``dirty_from`` on; a short tail is held, not stored
    (no frame rewritten per write); a long one is stored. Every result equals the uncached
    read; another reader (no held table) still gets the stored frame and the tail."""
    bars = history()
    await write(store, bars)
    cached = vaults[0]
    assert cached.blocks is not None
    day4 = (at(3 * DAY_MIN), at(4 * DAY_MIN))  # one bar so far, at minute 100
    same_range(vaults, *day4)
    same_latest(vaults, 500)
    decoded, stored = cached.blocks.decoded_frames, cached.blocks.stored_blocks
    tails = cached.blocks.tail_reads
    # a clean newest block: the first look brings no bars beside the block rows
    assert cached.blocks._newest_blocks((*MARKET, "1m"), 500, tail=True)[2] == []
    minute = 3 * DAY_MIN + 100
    for i in range(30):  # a forming bar moves; every third write a new bar opens
        minute += i % 3 == 0
        forming = bar(minute, f"{41000 + i}.{i:02d}", closed=False)
        later = msgspec.structs.replace(forming, ts_ns=forming.open_ns + (i % 3 + 1) * NS)
        await write(store, [later])  # a later event time: the stored forming bar is replaced
        same_latest(vaults, 500)
        got = same_range(vaults, *day4)
        assert cached.blocks.decoded_frames == decoded and cached.blocks.stored_blocks == stored
        # no write since: the held whole block serves the repeat read (the same result)
        assert cached.candles(*MARKET, "1m", *day4, format="arrow") is got
    # each latest read after a write: one round trip (first look + the bars from the mark on)
    assert cached.blocks.tail_reads == tails + 30
    with Vault.connect(url=db_url) as other:  # holds nothing: decodes the frame, reads the tail
        assert other.candles(*MARKET, "1m", *day4, format="arrow").equals(got)
        assert other.blocks is not None and other.blocks.decoded_frames == 1
    # a tail as long as STORE_TAIL_ROWS: the block is stored again
    cached.blocks.store_tail_rows = 5
    await write(store, [bar(minute + k, "42000.5") for k in range(1, 7)])
    same_range(vaults, *day4)
    assert cached.blocks.stored_blocks == stored + 1 and cached.blocks.decoded_frames == decoded
