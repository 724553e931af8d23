"""The Redis hot cache against a real Redis server."""

from __future__ import annotations

import asyncio
import threading
from decimal import Decimal

import msgspec
import polars as pl
import pyarrow as pa
import redis

from tickvault.config import CacheSettings
from tickvault.model import BookSnapshot, Candle, CandleSource, Side, Ticker, Trade
from tickvault.storage import redis_frames as frames
from tickvault.storage.postgres.reader import CANDLE_COLUMNS
from tickvault.storage.redis_cache import (
    AsyncRedisCache,
    CachedReader,
    FeatureValue,
    RedisCache,
)

MIN_NS = 60_000_000_000


def candle(i: int, close: str = "100.10", closed: bool = True) -> Candle:
    price = Decimal(close)
    return Candle(
        "binance", "BTC-USDT", "1m", i * MIN_NS, price, price, price, price,
        Decimal("1.50000000"), closed, i * MIN_NS, i * MIN_NS + 5,
    )  # fmt: skip


def test_candles_capped_ordered_and_exact(redis_url: str) -> None:
    cache = RedisCache(redis_url, CacheSettings(candles_kept=5))
    cache.write_events([candle(i) for i in range(8)])
    got = cache.latest_candles("binance", "BTC-USDT", "1m", 10)
    assert [c.open_ns for c in got] == [i * MIN_NS for i in range(3, 8)]
    assert got[-1].volume == Decimal("1.50000000") and str(got[-1].close) == "100.10"
    ttl = cache.client.ttl(cache.keys.candles("binance", "BTC-USDT", "1m"))
    assert 0 < ttl <= CacheSettings().candle_ttl_s


def test_candle_frame_holds_the_same_exact_values_as_the_events(redis_url: str) -> None:
    cache = RedisCache(redis_url, CacheSettings(candles_kept=5))
    derived = msgspec.structs.replace(
        candle(7, "99.123456789"),
        source=CandleSource.DERIVED,
        trade_count=42,
        quote_volume=Decimal("148.6851"),
        vwap=Decimal("99.1234"),
        buy_volume=Decimal("1"),
        sell_volume=Decimal("0.50000000"),
    )
    cache.write_events([*(candle(i, f"-{i}.5") for i in range(7)), derived])
    events = cache.latest_candles("binance", "BTC-USDT", "1m", 4)
    table = cache.latest_candles_frame("binance", "BTC-USDT", "1m", 4, format="arrow")
    assert isinstance(table, pa.Table)
    assert table.schema.names == [name for name, _ in CANDLE_COLUMNS]
    assert table.schema.field("ts").type == pa.timestamp("us", tz="UTC")
    assert table.schema.field("close").type == pa.decimal128(11, 9)
    assert table.column("ts").cast(pa.int64()).to_pylist() == [c.open_ns // 1000 for c in events]
    for name in ("open", "close", "volume", "closed", "trade_count", "vwap", "sell_volume"):
        assert table.column(name).to_pylist() == [getattr(c, name) for c in events], name
    assert table.column("source").to_pylist() == ["exchange"] * 3 + ["derived"]
    frame = cache.latest_candles_frame("binance", "BTC-USDT", "1m", 4)
    assert isinstance(frame, pl.DataFrame) and frame["close"].to_list()[-1] == derived.close
    empty = cache.latest_candles_frame("binance", "ETH-USDT", "1m", 4, format="arrow")
    assert empty.num_rows == 0 and empty.schema.names == table.schema.names


def test_open_bar_update_replaces_not_duplicates(redis_url: str) -> None:
    cache = RedisCache(redis_url)
    cache.write_events([candle(1, "10", closed=False)])
    cache.write_events([candle(1, "11", closed=False), candle(1, "12", closed=True)])
    got = cache.latest_candles("binance", "BTC-USDT", "1m", 10)
    assert len(got) == 1
    assert got[0].close == Decimal("12") and got[0].closed


def test_latest_trade_book_ticker_keep_newest(redis_url: str) -> None:
    cache = RedisCache(redis_url, CacheSettings(latest_ttl_s=30))
    trades = [
        Trade("kraken", "BTC-USD", str(i), Decimal("1.0"), Decimal("2"), Side.BUY, ts, ts)
        for i, ts in enumerate([30, 10, 20])
    ]
    book = BookSnapshot(
        "kraken", "BTC-USD", ((Decimal("1"), Decimal("2")),), ((Decimal("3"), Decimal("4")),), 5, 6
    )
    tick = Ticker("kraken", "BTC-USD", 7, 8, bid_price=Decimal("0.10"), ask_price=Decimal("0.20"))
    cache.write_events([*trades, book, tick])
    latest = cache.latest_trade("kraken", "BTC-USD")
    assert latest is not None and latest.trade_id == "0"
    assert cache.latest_book("kraken", "BTC-USD") == book
    assert cache.latest_ticker("kraken", "BTC-USD") == tick
    assert 0 < cache.client.ttl(cache.keys.trade("kraken", "BTC-USD")) <= 30
    assert cache.latest_trade("kraken", "ETH-USD") is None


def test_cached_reader_falls_back_then_hits(redis_url: str) -> None:
    cache = RedisCache(redis_url)
    calls: list[int] = []
    history = [candle(i) for i in range(20)]

    def from_postgres(exchange: str, symbol: str, timeframe: str, n: int) -> list[Candle]:
        calls.append(n)
        return history[-n:]

    reader = CachedReader(cache, from_postgres)
    first = reader.latest_candles("binance", "BTC-USDT", "1m", 10)
    second = reader.latest_candles("binance", "BTC-USDT", "1m", 10)
    assert first == second == history[-10:]
    assert calls == [10]
    assert (reader.stats.hits, reader.stats.misses) == (1, 1)
    # A stream with less history than asked for is a hit once its size is known.
    short = CachedReader(cache, lambda *_: history[:0])
    assert short.latest_candles("binance", "ETH-USDT", "1m", 10) == []
    assert short.stats.misses == 1


def test_async_writes_features_signals_pubsub(redis_url: str) -> None:
    sub = redis.Redis.from_url(redis_url).pubsub()
    sub.subscribe("tv:signals")
    assert sub.get_message(timeout=1) is not None  # subscribe confirmation

    async def scenario() -> None:
        cache = AsyncRedisCache(redis_url)
        await cache.write_events([candle(1), candle(2)])
        assert [c.open_ns for c in await cache.latest_candles("binance", "BTC-USDT", "1m", 5)] == [
            MIN_NS,
            2 * MIN_NS,
        ]
        await cache.set_features("binance", "BTC-USDT", "1m", {"rsi_14": FeatureValue(9, 55.5)})
        await cache.push_signals(
            [("binance", "BTC-USDT", "1m", {"rule": "ema_cross", "dir": "buy"})]
        )
        await cache.close()

    asyncio.run(scenario())
    sync = RedisCache(redis_url)
    assert sync.features("binance", "BTC-USDT", "1m") == {"rsi_14": FeatureValue(9, 55.5)}
    message = sub.get_message(timeout=2)
    assert message is not None and b"ema_cross" in message["data"]
    stored = sync.client.lrange(sync.keys.signals("binance", "BTC-USDT", "1m"), 0, -1)
    assert len(stored) == 1


def test_a_writer_batch_of_every_kind_is_one_transaction(redis_url: str) -> None:
    """Events, features, signals and quality scores of one batch: one MULTI/EXEC, one round
    trip (each kind, each score, took one of its own and held up the next batch)."""
    sync = RedisCache(redis_url)

    def exec_calls() -> int:
        stats = sync.client.info("commandstats").get("cmdstat_exec", {})
        return int(stats.get("calls", 0))

    trade = Trade(
        "binance", "BTC-USDT", "7", Decimal("100.5"), Decimal("0.1"), Side.BUY, 5 * MIN_NS, 1
    )

    async def scenario() -> None:
        cache = AsyncRedisCache(redis_url)
        await cache.write_batch(
            [candle(1), trade],
            features={("binance", "BTC-USDT", "1m"): {"rsi_14": FeatureValue(9, 55.5)}},
            signals=[("binance", "BTC-USDT", "1m", {"rule": "ema_cross"})],
            scores=[("binance", "BTC-USDT", "trades", {"score": 0.99})],
        )
        await cache.close()

    before = exec_calls()
    asyncio.run(scenario())
    assert exec_calls() == before + 1
    assert sync.latest_trade("binance", "BTC-USDT") == trade
    assert [c.open_ns for c in sync.latest_candles("binance", "BTC-USDT", "1m", 5)] == [MIN_NS]
    assert sync.features("binance", "BTC-USDT", "1m") == {"rsi_14": FeatureValue(9, 55.5)}
    assert sync.client.llen(sync.keys.signals("binance", "BTC-USDT", "1m")) == 1
    assert sync.client.get(sync.keys.quality("binance", "BTC-USDT", "trades")) is not None


def test_derived_bar_never_replaces_the_exchange_bar(redis_url: str) -> None:
    """One bar per open time, as the query API serves them: the exchange's when it has one."""
    cache = RedisCache(redis_url)
    exchange_bar = candle(1, "100.10")
    derived_bar = msgspec.structs.replace(candle(1, "99.90"), source=CandleSource.DERIVED)
    derived_next = msgspec.structs.replace(candle(2, "99.95"), source=CandleSource.DERIVED)
    cache.write_events([exchange_bar])
    cache.write_events([derived_bar, derived_next])  # later batch
    cache.write_events([exchange_bar, derived_bar])  # same batch, derived written last
    assert cache.latest_candles("binance", "BTC-USDT", "1m", 5) == [exchange_bar, derived_next]
    exchange_next = candle(2, "99.97")
    cache.write_events([exchange_next])  # an exchange bar replaces a derived one

    async def from_async() -> list[Candle]:
        client = AsyncRedisCache(redis_url)
        try:
            await client.write_events([derived_bar])
            return await client.latest_candles("binance", "BTC-USDT", "1m", 5)
        finally:
            await client.close()

    assert asyncio.run(from_async()) == [exchange_bar, exchange_next]


def test_frame_blob_follows_every_write(redis_url: str) -> None:
    """The stored Arrow frame is reused until a write, and never serves bars older than Redis."""
    cache = RedisCache(redis_url, CacheSettings(candles_kept=50))
    cache.write_events([candle(i, f"{100 + i}.25") for i in range(10)])
    first = cache.candles_table("binance", "BTC-USDT", "1m")
    frame_key = cache.keys.frame("binance", "BTC-USDT", "1m")
    blob = cache.client.get(frame_key)
    assert blob is not None and 0 < cache.client.ttl(frame_key) <= CacheSettings().candle_ttl_s
    assert cache.candles_table("binance", "BTC-USDT", "1m").equals(first)
    assert cache.client.get(frame_key) == blob  # served, not rebuilt
    cache.write_events([candle(9, "7.5", closed=False), candle(10, "8.125")])  # update + append
    table = cache.candles_table("binance", "BTC-USDT", "1m")
    assert table.num_rows == 11
    assert [str(v) for v in table.column("close").to_pylist()[-2:]] == ["7.500", "8.125"]
    assert table.column("closed").to_pylist()[-2:] == [False, True]
    assert (cache.full_reads, cache.held_reads, cache.spliced_reads) == (1, 1, 1)
    assert cache.client.get(frame_key) == blob  # a splice stores no blob: a new reader rebuilds
    cache.forget_held()
    assert cache.candles_table("binance", "BTC-USDT", "1m").equals(table)
    assert cache.full_reads == 2 and cache.client.get(frame_key) != blob
    cache.forget_held()
    assert cache.candles_table("binance", "BTC-USDT", "1m").equals(table)
    assert cache.blob_reads == 1


def test_frame_built_before_a_write_is_not_stored(redis_url: str) -> None:
    """A reader that built its frame before a write cannot store it over the newer bars."""
    from tickvault.storage import redis_frames

    cache = RedisCache(redis_url)
    cache.write_events([candle(i) for i in range(3)])
    version_key = cache.keys.frame_version("binance", "BTC-USDT", "1m")
    frame_key = cache.keys.frame("binance", "BTC-USDT", "1m")
    old_version = cache.client.get(version_key)
    old_table = cache.candles_table("binance", "BTC-USDT", "1m")
    cache.write_events([candle(3, "55")])  # lands between the reader's build and its store
    blob = redis_frames.encode_frame(old_version, old_table)
    stored = cache.client.eval(
        redis_frames.STORE_FRAME_LUA, 2, version_key, frame_key, old_version, blob, 60
    )
    assert stored == 0
    assert cache.client.get(version_key) != old_version
    cache.client.set(frame_key, blob)  # even a stale blob put there by hand is never served
    latest = cache.latest_candles_frame("binance", "BTC-USDT", "1m", 2, format="arrow")
    assert [str(v) for v in latest.column("close").to_pylist()] == ["100.10", "55.00"]


def test_candles_frame_time_range(redis_url: str) -> None:
    cache = RedisCache(redis_url, CacheSettings(candles_kept=100))
    cache.write_events([candle(i, f"{i}.5") for i in range(60)])
    table = cache.candles_frame("binance", "BTC-USDT", "1m", 10 * MIN_NS, 20 * MIN_NS,
                                format="arrow")  # fmt: skip
    assert table.column("ts").cast(pa.int64()).to_pylist() == [
        i * MIN_NS // 1000 for i in range(10, 20)
    ]
    assert [str(v) for v in table.column("open").to_pylist()] == [f"{i}.5" for i in range(10, 20)]
    # a bound inside a bar: half-open [lo, hi) on open times
    table = cache.candles_frame("binance", "BTC-USDT", "1m", 10 * MIN_NS + 1, 12 * MIN_NS + 1,
                                format="arrow")  # fmt: skip
    assert table.column("ts").cast(pa.int64()).to_pylist() == [
        11 * MIN_NS // 1000,
        12 * MIN_NS // 1000,
    ]
    assert cache.candles_frame("binance", "ETH-USDT", "1m", 0, MIN_NS, format="arrow").num_rows == 0


def test_a_held_frame_is_used_only_while_its_version_stands(redis_url: str) -> None:
    """A reader keeps the table it decoded; a write, an expired version or a flushed server
    (its counter starting afresh) all make it read the new bars."""
    cache = RedisCache(redis_url, CacheSettings(candles_kept=50))
    cache.write_events([candle(i, f"{100 + i}.25") for i in range(10)])
    first = cache.candles_table("binance", "BTC-USDT", "1m")
    frame_key = cache.keys.frame("binance", "BTC-USDT", "1m")
    cache.client.delete(frame_key)  # the blob gone: the version alone says the table holds
    assert cache.candles_table("binance", "BTC-USDT", "1m") is first
    frame = cache.latest_candles_frame("binance", "BTC-USDT", "1m", 4)
    frame[0, "close"] = Decimal("1.00")  # the caller's copy; the next read is unchanged
    assert cache.latest_candles_frame("binance", "BTC-USDT", "1m", 4)["close"].to_list() == [
        Decimal(f"{100 + i}.25") for i in range(6, 10)
    ]

    cache.write_events([candle(10, "8.125")])
    assert cache.candles_table("binance", "BTC-USDT", "1m").num_rows == 11
    cache.client.delete(cache.keys.frame_version("binance", "BTC-USDT", "1m"))  # expired
    assert cache.candles_table("binance", "BTC-USDT", "1m").num_rows == 11

    for base in (200, 300):  # a new (or flushed) server each time: its counter starts again
        cache.client.flushdb()
        cache.write_events([candle(i, f"{base + i}.5") for i in range(11)])
        got = cache.candles_table("binance", "BTC-USDT", "1m")
        assert [str(v) for v in got.column("close").to_pylist()] == [
            f"{base + i}.5" for i in range(11)
        ]


def test_a_held_frame_is_not_mistaken_after_the_server_went_back(redis_url: str) -> None:
    """A Redis restarted from an older snapshot (RDB, AOF fsync'd each second) or a promoted
    replica that missed the last writes has an older version counter: a version a reader
    holds must not be handed out again to different bars (here the snapshot is restored by
    DUMP/RESTORE of the keys it held, as a restart would load them)."""
    cache = RedisCache(redis_url, CacheSettings(candles_kept=50))
    stream = ("binance", "BTC-USDT", "1m")
    cache.write_events([candle(i, f"{100 + i}.25") for i in range(10)])
    saved = [
        cache.keys.frame_counter,
        cache.keys.frame_version(*stream),
        cache.keys.candles(*stream),
    ]
    snapshot = [(key, cache.client.dump(key), cache.client.pttl(key)) for key in saved]
    cache.write_events([candle(10, "1.5")])  # lost by the restart
    assert cache.candles_table(*stream).num_rows == 11  # held at that version

    cache.client.delete(cache.keys.frame(*stream))
    for key, dumped, ttl in snapshot:  # the server comes back with its older snapshot
        cache.client.restore(key, max(ttl, 0), dumped, replace=True)
    cache.write_events([candle(10, "2.5")])  # a new write after the restart

    uncached = [c.close for c in cache.latest_candles(*stream, 50)]
    assert uncached[-1] == Decimal("2.5")
    assert cache.candles_table(*stream).column("close").to_pylist() == uncached


def test_frame_reads_from_threads_sharing_one_cache(redis_url: str) -> None:
    """The query API shares one RedisCache among its threads: a stream dropped from the held
    frames by one thread between another's lookup and its touch raised KeyError."""
    cache = RedisCache(redis_url, CacheSettings(candles_kept=50))
    symbols = [f"S{i}-USDT" for i in range(8)]
    cache.write_events(
        [msgspec.structs.replace(candle(i), symbol=s) for s in symbols for i in range(5)]
    )
    cache._held = frames.held_frames(size=4)  # fewer than the streams read (256 by default)
    errors: list[BaseException] = []

    def read(k: int) -> None:
        try:
            for n in range(1500):
                cache.latest_candles_frame("binance", symbols[(n + k) % 8], "1m", 3)
        except Exception as exc:  # collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=read, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_no_frame_outlives_the_candle_set(redis_url: str) -> None:
    """A history write leaves the candle set's TTL as it is; the frame version must not live
    longer, or a frame (or a held table) would serve bars the set no longer has."""
    import time

    cache = RedisCache(redis_url, CacheSettings(candles_kept=50))
    cache.write_events([candle(i, f"{100 + i}.25") for i in range(5, 10)])
    key = cache.keys.candles("binance", "BTC-USDT", "1m")
    cache.client.pexpire(key, 300)  # the live feed stopped: the set is about to expire
    asyncio.run(_write_history(redis_url, [candle(6, "106.25")]))
    assert cache.candles_table("binance", "BTC-USDT", "1m").num_rows == 5
    version_key = cache.keys.frame_version("binance", "BTC-USDT", "1m")
    assert 0 < cache.client.pttl(version_key) <= 300
    time.sleep(0.4)
    assert cache.latest_candles("binance", "BTC-USDT", "1m", 10) == []
    assert cache.candles_table("binance", "BTC-USDT", "1m").num_rows == 0


async def _write_history(url: str, events: list[Candle]) -> None:
    client = AsyncRedisCache(url, CacheSettings(candles_kept=50))
    try:
        await client.write_history(events)
    finally:
        await client.close()
