"""A reader following a live stream splices in the bars written since its held version
(``redis_frames.splice``): every spliced table must equal the full rebuild of the sorted set at
that moment — values, row order and column types — and whatever the change log cannot vouch
for must take the full rebuild. Against a real Redis server."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import msgspec
import polars as pl
import pyarrow as pa
import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tickvault.config import CacheSettings
from tickvault.model import Candle, CandleSource
from tickvault.storage import redis_frames as frames
from tickvault.storage.redis_cache import AsyncRedisCache, RedisCache, candles_table

MIN_NS = 60_000_000_000
STREAM = ("binance", "BTC-USDT", "1m")


def bar(i: int, close: str = "100.10", closed: bool = True, **extra: object) -> Candle:
    price = Decimal(close)
    candle = Candle(
        *STREAM, i * MIN_NS, price, price, price, price, Decimal("1.50000000"), closed,
        i * MIN_NS, i * MIN_NS + 5,
    )  # fmt: skip
    return msgspec.structs.replace(candle, **extra) if extra else candle


def rebuilt(cache: RedisCache) -> pa.Table:
    """The full rebuild of the stream's sorted set now (what a reader with nothing held and
    no stored frame would build)."""
    raw: list[bytes] = cache.client.zrange(cache.keys.candles(*STREAM), 0, -1)  # type: ignore[assignment]
    return candles_table(raw)


def check(cache: RedisCache) -> pa.Table:
    """A read by ``cache`` equals the full rebuild, schema included; so does the polars frame
    it holds with it (built here when missing, so that the next splices splice it too)."""
    table = cache.candles_table(*STREAM)
    full = rebuilt(cache)
    assert table.schema == full.schema
    assert table.equals(full)
    held = cache._held.get(STREAM, touch=False)
    if held is not None and held.table is table:
        check_frame(held.polars(), full)
    return table


def check_frame(frame: pl.DataFrame, full: pa.Table) -> None:
    """A polars frame equals ``pl.from_arrow`` of the full rebuild: values and dtypes."""
    expected = pl.from_arrow(full)
    assert isinstance(expected, pl.DataFrame)
    assert frame.schema == expected.schema
    assert frame.equals(expected)


def reads(cache: RedisCache) -> tuple[int, int, int, int]:
    return cache.held_reads, cache.spliced_reads, cache.blob_reads, cache.full_reads


def write_history(url: str, settings: CacheSettings, events: list[Candle]) -> None:
    async def run() -> None:
        client = AsyncRedisCache(url, settings)
        try:
            await client.write_history(events)
        finally:
            await client.close()

    asyncio.run(run())


def test_forming_bar_updates_and_new_bars_are_spliced(redis_url: str) -> None:
    cache = RedisCache(redis_url, CacheSettings(candles_kept=50))
    cache.write_events([bar(i, f"{100 + i}.25") for i in range(20)])
    check(cache)
    assert reads(cache) == (0, 0, 0, 1)
    for n in range(12):  # the forming bar moves; every fourth time a new bar opens after it
        i = 20 + n // 4
        cache.write_events([bar(i, f"{200 + n}.5{n % 3}", closed=False)])
        table = check(cache)
        assert table.num_rows == i + 1
    assert reads(cache) == (0, 12, 0, 1)
    assert check(cache) is cache.candles_table(*STREAM)  # unchanged: the held table itself
    assert cache.held_reads == 2
    frame = cache.latest_candles_frame(*STREAM, 3, format="arrow")
    assert [str(v) for v in frame.column("close").to_pylist()] == ["203.50", "207.51", "211.52"]


def test_several_writes_between_reads_one_splice(redis_url: str) -> None:
    cache = RedisCache(redis_url, CacheSettings(candles_kept=50))
    cache.write_events([bar(i) for i in range(10)])
    check(cache)
    cache.write_events([bar(12, "1.5")])
    cache.write_events([bar(9, "2.25", closed=False), bar(10, "3")])
    cache.write_events([bar(11, "4.125")])
    assert check(cache).num_rows == 13
    assert reads(cache) == (0, 1, 0, 1)


def test_history_filling_a_hole_in_the_middle_is_spliced(redis_url: str) -> None:
    settings = CacheSettings(candles_kept=50)
    cache = RedisCache(redis_url, settings)
    cache.write_events([bar(i, f"{i}.5") for i in range(20) if i not in (7, 8)])
    assert check(cache).num_rows == 18
    write_history(redis_url, settings, [bar(8, "88.125"), bar(3, "33")])  # a hole, a revision
    table = check(cache)
    assert table.num_rows == 19
    assert table.column("ts").cast(pa.int64()).to_pylist()[7:9] == [
        8 * MIN_NS // 1000,
        9 * MIN_NS // 1000,
    ]
    write_history(redis_url, settings, [bar(7, "77")])
    assert check(cache).num_rows == 20
    write_history(redis_url, settings, [bar(-5, "1")])  # older than the oldest: not added
    assert check(cache).num_rows == 20
    assert reads(cache) == (0, 3, 0, 1)


def test_the_cap_trims_the_oldest_rows_of_a_spliced_table(redis_url: str) -> None:
    cache = RedisCache(redis_url, CacheSettings(candles_kept=10))
    cache.write_events([bar(i, f"{i}.5") for i in range(10)])
    check(cache)
    cache.write_events([bar(10, "10.5"), bar(11, "11.5"), bar(12, "12.5")])
    table = check(cache)
    assert table.column("ts").cast(pa.int64()).to_pylist() == [
        i * MIN_NS // 1000 for i in range(3, 13)
    ]
    cache.write_events([bar(i, "1") for i in range(13, 40)])  # more new bars than the cap
    assert check(cache).num_rows == 10
    cache.write_events([bar(1, "1")])  # a late bar older than all kept ones: trimmed at once
    assert check(cache).num_rows == 10
    assert reads(cache) == (0, 3, 0, 1)


def test_decimal_types_follow_the_kept_and_new_bars(redis_url: str) -> None:
    """The frame takes the scale and digits of the most precise bar: a spliced table narrows
    when that bar is trimmed away or replaced, widens for a more precise one, and keeps the
    empty columns' type until a value comes — as the full rebuild does."""
    cache = RedisCache(redis_url, CacheSettings(candles_kept=5))
    cache.write_events([bar(0, "12345.123456"), *(bar(i, f"{i}.5") for i in range(1, 5))])
    assert check(cache).schema.field("close").type == pa.decimal128(11, 6)
    cache.write_events([bar(5, "6.5")])  # the precise, large bar trimmed away
    assert check(cache).schema.field("close").type == pa.decimal128(2, 1)
    cache.write_events([bar(5, "6.50")])  # same value, one more digit in its text
    assert check(cache).schema.field("close").type == pa.decimal128(3, 2)
    cache.write_events([bar(5, "-0.5")])
    assert check(cache).schema.field("close").type == pa.decimal128(2, 1)
    derived = bar(6, "7.5", source=CandleSource.DERIVED, trade_count=3,
                  vwap=Decimal("7.123"), buy_volume=Decimal("0.00000000"))  # fmt: skip
    cache.write_events([derived])  # the empty columns get values (one "0E-8")
    table = check(cache)
    assert table.schema.field("vwap").type == pa.decimal128(4, 3)
    assert table.schema.field("quote_volume").type == pa.decimal128(1, 0)
    cache.write_events([bar(i, "1.5") for i in range(7, 12)])  # and lose them again
    assert check(cache).schema.field("vwap").type == pa.decimal128(1, 0)
    assert reads(cache) == (0, 5, 0, 1)


@pytest.mark.parametrize("small", ["1E+2", "1E-7", "1.0E-7", "0E-8", "-2.5E-9"])
def test_values_in_exponent_form_are_written_out_and_spliced(redis_url: str, small: str) -> None:
    """A Decimal's text below 1e-6 (or with a positive exponent) has an exponent (``1E-7``):
    the cached JSON carries it so. Full rebuild and splice both write it out positionally
    first, as PostgreSQL prints it (``0.0000001``): the same exact value and scale either way
    (the full rebuild raised ArrowInvalid on ``1E-7`` before: its scale was read as 0)."""
    cache = RedisCache(redis_url, CacheSettings(candles_kept=5))
    cache.write_events([bar(i, f"{i}.5") for i in range(5)])
    check(cache)
    cache.write_events([bar(5, "1.5", vwap=Decimal(small))])
    table = check(cache)
    assert table.column("vwap")[-1].as_py() == Decimal(small)
    assert reads(cache) == (0, 1, 0, 1)  # spliced
    cache.write_events([bar(6, "1.5")])
    check(cache)
    assert reads(cache) == (0, 2, 0, 1)


def test_a_log_that_no_longer_reaches_back_is_rebuilt(redis_url: str) -> None:
    cache = RedisCache(redis_url, CacheSettings(candles_kept=500))
    cache.write_events([bar(i) for i in range(10)])
    check(cache)
    for i in range(frames.CHANGE_LOG_KEPT):  # as many bumps as the log keeps: still covered
        cache.write_events([bar(10 + i, "2.5")])
    check(cache)
    assert reads(cache) == (0, 1, 0, 1)
    for i in range(frames.CHANGE_LOG_KEPT + 1):  # one more: the first is gone from the log
        cache.write_events([bar(100 + i, "3.5")])
    check(cache)
    assert reads(cache) == (0, 1, 0, 2)
    log = cache.keys.frame_log(*STREAM)
    assert cache.client.zcard(log) == frames.CHANGE_LOG_KEPT
    version_ttl = cache.client.pttl(cache.keys.frame_version(*STREAM))
    assert 0 < cache.client.pttl(log) <= version_ttl + 50


def test_an_expired_version_or_log_is_rebuilt(redis_url: str) -> None:
    cache = RedisCache(redis_url, CacheSettings(candles_kept=50))
    cache.write_events([bar(i, f"{i}.5") for i in range(10)])
    check(cache)
    cache.client.delete(cache.keys.frame_version(*STREAM))  # expired, then a write
    cache.write_events([bar(10, "1")])
    check(cache)
    assert reads(cache) == (0, 0, 0, 2)
    cache.write_events([bar(11, "1")])
    cache.client.delete(cache.keys.frame_log(*STREAM))  # the log lost after a write
    cache.write_events([bar(12, "1")])
    check(cache)
    assert reads(cache) == (0, 0, 0, 3)
    cache.client.delete(cache.keys.frame_log(*STREAM))  # lost before the next write: harmless,
    cache.write_events([bar(13, "1")])  # the new entry names the version held
    check(cache)
    assert reads(cache) == (0, 1, 0, 3)
    # the whole stream expires and comes back with other bars: nothing held is kept
    for key in (cache.keys.candles(*STREAM), cache.keys.frame_version(*STREAM),
                cache.keys.frame_log(*STREAM), cache.keys.frame(*STREAM)):  # fmt: skip
        cache.client.delete(key)
    cache.write_events([bar(i, "9.75") for i in range(5, 8)])
    assert check(cache).num_rows == 3
    assert reads(cache) == (0, 1, 0, 4)


def test_a_set_evicted_under_a_live_version_is_not_spliced_into_old_rows(
    redis_url: str,
) -> None:
    """The candle set gone (maxmemory eviction) while version and log stay: the chain is
    intact, but the set's size shows the old rows are gone, so none is kept."""
    cache = RedisCache(redis_url, CacheSettings(candles_kept=50))
    cache.write_events([bar(i, f"{i}.5") for i in range(10)])
    check(cache)
    cache.client.delete(cache.keys.candles(*STREAM))
    cache.write_events([bar(10, "1"), bar(11, "2")])
    assert check(cache).num_rows == 2


def test_a_reader_from_the_blob_rebuilds_once_then_splices(redis_url: str) -> None:
    writer = RedisCache(redis_url, CacheSettings(candles_kept=50))
    writer.write_events([bar(i, f"{i}.5") for i in range(10)])
    check(writer)  # stores the blob
    cache = RedisCache(redis_url, CacheSettings(candles_kept=50))
    check(cache)
    assert reads(cache) == (0, 0, 1, 0)
    for i in range(10, 13):
        cache.write_events([bar(i, "1")])
        check(cache)
    assert reads(cache) == (0, 2, 1, 1)


def test_a_restored_log_does_not_splice_a_lost_write(redis_url: str) -> None:
    """A Redis restarted from an older snapshot that holds the change log too: a reader that
    saw a write the restart lost must not splice onto it."""
    cache = RedisCache(redis_url, CacheSettings(candles_kept=50))
    cache.write_events([bar(i, f"{100 + i}.25") for i in range(10)])
    saved = [
        cache.keys.frame_counter,
        cache.keys.frame_version(*STREAM),
        cache.keys.candles(*STREAM),
        cache.keys.frame_log(*STREAM),
    ]
    snapshot = [(key, cache.client.dump(key), cache.client.pttl(key)) for key in saved]
    before = RedisCache(redis_url, CacheSettings(candles_kept=50))  # holds the snapshot's
    check(before)
    cache.write_events([bar(10, "1.5"), bar(3, "3.5")])  # lost by the restart
    check(cache)
    for key, dumped, ttl in snapshot:
        assert dumped is not None
        cache.client.restore(key, max(ttl, 0), dumped, replace=True)
    cache.client.delete(cache.keys.frame(*STREAM))
    cache.write_events([bar(11, "2.5")])  # a new write after the restart
    table = check(cache)
    assert table.num_rows == 11 and "1.5" not in [str(v) for v in table.column("close").to_pylist()]
    assert reads(cache)[1] == 0
    check(before)  # its version is the snapshot's: the bars since are spliced on it
    assert reads(before) == (0, 1, 0, 1)


def test_spliced_reads_from_threads_sharing_one_cache(redis_url: str) -> None:
    import threading

    cache = RedisCache(redis_url, CacheSettings(candles_kept=30))
    cache.write_events([bar(i) for i in range(30)])
    check(cache)
    errors: list[BaseException] = []
    stop = threading.Event()

    def read() -> None:
        try:
            while not stop.is_set():
                table = cache.candles_table(*STREAM)
                assert table.num_rows == 30
        except Exception as exc:  # collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=read) for _ in range(3)]
    for t in threads:
        t.start()
    for n in range(200):
        cache.write_events([bar(30 + n // 5, f"{n}.5", closed=False)])
    stop.set()
    for t in threads:
        t.join()
    assert errors == []
    check(cache)
    assert cache.spliced_reads > 0


_DECIMAL = st.builds(
    lambda whole, places, frac, neg: Decimal(
        f"{'-' if neg else ''}{whole}.{str(frac % 10**places).zfill(places)}"
        if places
        else f"{'-' if neg else ''}{whole}"
    ),
    st.integers(0, 10**6),
    st.integers(0, 9),
    st.integers(0, 10**9),
    st.booleans(),
)
_BAR = st.builds(
    lambda i, close, closed, derived, vwap: bar(
        i,
        str(close),
        closed,
        **({"source": CandleSource.DERIVED, "trade_count": 2, "vwap": vwap} if derived else {}),
    ),
    st.integers(0, 40),
    _DECIMAL,
    st.booleans(),
    st.booleans(),
    st.one_of(st.none(), _DECIMAL, st.sampled_from([Decimal("0E-8"), Decimal("0.00000000")])),
)
_STEP = st.tuples(st.sampled_from(["live", "live", "history", "read"]), st.lists(_BAR, max_size=4))


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(_STEP, min_size=1, max_size=25))
def test_random_writes_spliced_equal_the_rebuild(
    redis_url: str, steps: list[tuple[str, list[Candle]]]
) -> None:
    """Random live and history writes (forming bars, late and new bars, decimals of every
    scale, derived bars with and without vwap) with reads in between, a small cap: every read
    equals the full rebuild."""
    redis.Redis.from_url(redis_url).flushdb()
    settings = CacheSettings(candles_kept=8)
    cache = RedisCache(redis_url, settings)
    for kind, bars in steps:
        if kind == "live" and bars:
            cache.write_events(bars)
        elif kind == "history" and bars:
            write_history(redis_url, settings, bars)
        check(cache)
    cache.close()


def held_frame(cache: RedisCache) -> frames.HeldFrame:
    held = cache._held.get(STREAM, touch=False)
    assert held is not None
    return held


def test_the_held_polars_frame_is_spliced_with_the_table(redis_url: str) -> None:
    """Once a polars read built a stream's frame, each splice splices it too (the kept rows'
    slice and the new rows), equal to converting the whole table; the chunks stay few."""
    cache = RedisCache(redis_url, CacheSettings(candles_kept=30))
    cache.write_events([bar(i, f"{100 + i}.25") for i in range(30)])
    frame = cache.latest_candles_frame(*STREAM, 10)
    check_frame(frame, rebuilt(cache).slice(20))
    for n in range(3 * frames.MAX_CHUNKS):  # forming bar updates, a new bar every third
        cache.write_events([bar(30 + n // 3, f"{200 + n}.5{n % 3}", closed=False)])
        cache.candles_table(*STREAM)  # an Arrow read: the polars frame follows all the same
        held = held_frame(cache)
        assert held.frame is not None
        assert held.frame.n_chunks() <= frames.MAX_CHUNKS
        check_frame(held.frame, rebuilt(cache))
        full = rebuilt(cache)
        check_frame(cache.latest_candles_frame(*STREAM, 7), full.slice(23))
        lo, hi = (30 + n // 3 - 12) * MIN_NS, (30 + n // 3 - 2) * MIN_NS
        check_frame(cache.candles_frame(*STREAM, lo, hi), full.slice(17, 10))
    assert cache.spliced_reads == 3 * frames.MAX_CHUNKS and cache.full_reads == 1


def test_a_more_precise_value_changes_the_polars_dtypes(redis_url: str) -> None:
    """A new bar more precise than the held ones widens the decimal types: the polars frame
    takes the full conversion's dtypes (and narrows again when that bar goes)."""
    cache = RedisCache(redis_url, CacheSettings(candles_kept=5))
    cache.write_events([bar(i, f"{i}.5") for i in range(5)])
    assert cache.latest_candles_frame(*STREAM, 5).schema["close"] == pl.Decimal(2, 1)
    cache.write_events([bar(5, "123.125", closed=False)])
    frame = cache.latest_candles_frame(*STREAM, 5)
    assert frame.schema["close"] == pl.Decimal(6, 3)
    check_frame(frame, rebuilt(cache))
    cache.write_events([bar(5, "6.5")])  # replaced: back to the narrower type
    frame = cache.latest_candles_frame(*STREAM, 5)
    assert frame.schema["close"] == pl.Decimal(2, 1)
    check_frame(frame, rebuilt(cache))
    derived = bar(6, "7.5", source=CandleSource.DERIVED, trade_count=3, vwap=Decimal("7.123"))
    cache.write_events([derived])  # an empty column gets a value
    frame = cache.latest_candles_frame(*STREAM, 5)
    assert frame.schema["vwap"] == pl.Decimal(4, 3)
    check_frame(frame, rebuilt(cache))
    assert cache.spliced_reads == 3


def test_caller_edits_never_reach_the_held_polars_frame(redis_url: str) -> None:
    """Readers get slices of the held frame: whatever a caller does to its frame (a cell set,
    a column replaced or added, rows appended) later reads and splices do not see."""
    cache = RedisCache(redis_url, CacheSettings(candles_kept=10))
    cache.write_events([bar(i, f"{i}.5") for i in range(10)])
    for step in range(3):
        mine = cache.latest_candles_frame(*STREAM, 4)
        day = cache.candles_frame(*STREAM, 0, 10**15)
        mine[0, "close"] = Decimal("1.5")
        mine.insert_column(0, pl.Series("extra", [1, 2, 3, 4]))
        day.replace_column(1, pl.Series("open", [Decimal("0.5")] * day.height))
        day.extend(day.head(1))
        assert mine[0, "close"] == Decimal("1.5") and mine.columns[0] == "extra"
        assert day.height == 11 and day["open"][5] == Decimal("0.5")
        check_frame(held_frame(cache).polars(), rebuilt(cache))
        check_frame(cache.latest_candles_frame(*STREAM, 10), rebuilt(cache))
        cache.write_events([bar(9 + step, f"{step}.75", closed=False)])  # then splice on
    check_frame(cache.latest_candles_frame(*STREAM, 10), rebuilt(cache))


def test_a_reader_from_the_blob_reads_its_polars_frame_from_the_blob(redis_url: str) -> None:
    """A new reader's polars frame comes from the blob's IPC stream (``pl.read_ipc_stream``):
    equal to converting the decoded table, null and text columns included."""
    writer = RedisCache(redis_url, CacheSettings(candles_kept=50))
    derived = bar(3, "7.5", source=CandleSource.DERIVED, trade_count=3, vwap=Decimal("7.123"))
    writer.write_events([*(bar(i, f"{i}.5") for i in range(10) if i != 3), derived])
    check(writer)  # stores the blob
    for n in (10, 4, 0):
        cache = RedisCache(redis_url, CacheSettings(candles_kept=50))
        frame = cache.latest_candles_frame(*STREAM, n)
        assert reads(cache) == (0, 0, 1, 0)
        check_frame(frame, rebuilt(cache).slice(10 - n))
        cache.close()
    empty = RedisCache(redis_url, CacheSettings(candles_kept=50))
    assert empty.latest_candles_frame("binance", "ETH-USDT", "1m", 5).height == 0


def test_a_polars_reader_splices_its_frame_alone(redis_url: str) -> None:
    """A reader that only asks for polars frames splices its frame and carries no Arrow
    table along; an Arrow read later converts the frame (to the held Arrow types) and from
    then on both are spliced. A type change on the way goes through the Arrow table."""
    cache = RedisCache(redis_url, CacheSettings(candles_kept=20))
    cache.write_events([bar(i, f"{100 + i}.25") for i in range(20)])
    cache.latest_candles_frame(*STREAM, 5)
    for n in range(6):  # forming bar updates, a new bar every other time; n == 3 widens close
        close = "7.123456" if n == 3 else f"{200 + n}.5{n}"
        cache.write_events([bar(20 + n // 2, close, closed=False)])
        frame = cache.latest_candles_frame(*STREAM, 20)
        check_frame(frame, rebuilt(cache))
        assert (held_frame(cache).built_table is None) == (n != 3)
    assert cache.spliced_reads == 6 and cache.full_reads == 1
    table = cache.candles_table(*STREAM)  # converted from the spliced polars frame
    full = rebuilt(cache)
    assert table.schema == full.schema
    assert table.equals(full)
    cache.write_events([bar(23, "9.75")])
    check(cache)
    held = held_frame(cache)
    assert held.built_table is not None and held.frame is not None
    check_frame(held.frame, rebuilt(cache))
    assert cache.spliced_reads == 7 and cache.full_reads == 1


def test_held_frames_are_bounded_in_bytes(redis_url: str) -> None:
    """A reader of many streams holds their frames within a byte budget (estimated per held
    frame), dropping the least recently read; reads stay right after a drop."""
    cache = RedisCache(redis_url, CacheSettings(candles_kept=100))
    symbols = [f"S{k}-USDT" for k in range(5)]
    for symbol in symbols:
        cache.write_events([msgspec.structs.replace(bar(i, f"{i}.5"), symbol=symbol)
                            for i in range(100)])  # fmt: skip
    cache.latest_candles_frame("binance", symbols[0], "1m", 10)
    one = held_frame_of(cache, symbols[0]).estimated_bytes()
    assert one >= 100 * 2 * 192  # both forms of 100 rows
    cache._held = frames.held_frames(max_bytes=2 * one + one // 2)
    for _ in range(2):
        for symbol in symbols:
            frame = cache.latest_candles_frame("binance", symbol, "1m", 100)
            assert frame.height == 100 and frame["close"][-1] == Decimal("99.5")
            assert len(cache._held) <= 2 and cache._held.bytes <= 2 * one + one // 2
    assert set(k[1] for k in cache._held._entries) == set(symbols[3:])


def held_frame_of(cache: RedisCache, symbol: str) -> frames.HeldFrame:
    held = cache._held.get(("binance", symbol, "1m"), touch=False)
    assert held is not None
    return held
