"""Repaired history in the Redis cache (real server): holes filled inside the cached bars, never
a key extended backwards, exchange bars kept, forming bars ignored, latest trade only forward."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import msgspec

from tickvault.config import CacheSettings
from tickvault.model import Candle, CandleSource, Side, Trade
from tickvault.storage.redis_cache import AsyncRedisCache, RedisCache

MIN_NS = 60_000_000_000
T0 = 28_000_000  # minutes since the epoch (2023)


def bar(
    i: int, close: str, source: CandleSource = CandleSource.DERIVED, closed: bool = True
) -> Candle:
    price = Decimal(close)
    open_ns = (T0 + i) * MIN_NS
    return Candle("binance", "BTC-USDT", "1m", open_ns, price, price, price, price, Decimal(1),
                  closed, open_ns + MIN_NS - 1, open_ns + MIN_NS, source)  # fmt: skip


def trade(i: int, ts_ns: int) -> Trade:
    return Trade("binance", "BTC-USDT", str(i), Decimal("100"), Decimal("1"), Side.BUY, ts_ns,
                 ts_ns + 5)  # fmt: skip


def history(url: str, events: list[Trade | Candle]) -> int:
    async def go() -> int:
        cache = AsyncRedisCache(url, CacheSettings(candles_kept=6))
        try:
            return await cache.write_history(events)
        finally:
            await cache.close()

    return asyncio.run(go())


def closes(cache: RedisCache) -> dict[int, tuple[str, str]]:
    got = cache.latest_candles("binance", "BTC-USDT", "1m", 100)
    return {c.open_ns // MIN_NS - T0: (str(c.close), c.source.value) for c in got}


def test_repaired_bars_fill_holes_inside_the_cached_bars_only(redis_url: str) -> None:
    cache = RedisCache(redis_url, CacheSettings(candles_kept=6))
    history(redis_url, [bar(5, "1")])
    assert closes(cache) == {}  # no key: nothing to fill, nothing created
    # Live: bars 2, 3, 6 (4 and 5 lost), bar 3 from the exchange, bar 6 still forming.
    cache.write_events([bar(2, "2"), bar(3, "3", CandleSource.EXCHANGE), bar(6, "6", closed=False)])
    assert cache.candles_table("binance", "BTC-USDT", "1m").num_rows == 3  # frame stored now
    history(redis_url, [
        bar(1, "10"),  # older than the oldest cached bar: would open a hole before bar 2
        bar(3, "30"),  # a rebuilt derived bar never replaces the exchange's bar
        bar(4, "40"), bar(5, "50"),  # the holes
        bar(2, "20"),  # the repaired version of a cached bar replaces it
        bar(6, "60", closed=False),  # forming: the live feed's business
    ])  # fmt: skip
    assert closes(cache) == {
        2: ("20", "derived"), 3: ("3", "exchange"), 4: ("40", "derived"),
        5: ("50", "derived"), 6: ("6", "derived"),
    }  # fmt: skip
    frame = cache.candles_table("binance", "BTC-USDT", "1m")  # the repair reached the frame too
    assert [str(v) for v in frame.column("close").to_pylist()] == ["20", "3", "40", "50", "6"]
    # The exchange's own repaired bar does replace a derived one; the cap still holds.
    history(redis_url, [bar(4, "41", CandleSource.EXCHANGE), bar(7, "7")])
    cache.write_events([bar(8, "8"), bar(9, "9")])
    assert closes(cache) == {
        4: ("41", "exchange"), 5: ("50", "derived"), 6: ("6", "derived"),
        7: ("7", "derived"), 8: ("8", "derived"), 9: ("9", "derived"),
    }  # fmt: skip


def test_latest_trade_never_goes_back_in_time(redis_url: str) -> None:
    cache = RedisCache(redis_url)
    base = 1_700_000_000_000_000_000
    history(redis_url, [trade(1, base)])
    assert cache.latest_trade("binance", "BTC-USDT") is None  # history is never the newest
    cache.write_events([trade(5, base + 5_000)])
    history(redis_url, [trade(2, base + 2_000), trade(3, base + 4_999)])
    held = cache.latest_trade("binance", "BTC-USDT")
    assert held is not None and held.trade_id == "5"
    # A repaired trade newer than the cached one (the live write still queued) moves it on,
    # also across a power of ten (times are compared as digit strings).
    history(redis_url, [trade(6, base + 6_000)])
    held = cache.latest_trade("binance", "BTC-USDT")
    assert held is not None and held.trade_id == "6"
    cache.write_events([msgspec.structs.replace(trade(7, 999_999_999_999_999_999))])
    history(redis_url, [trade(8, 1_000_000_000_000_000_000)])
    held = cache.latest_trade("binance", "BTC-USDT")
    assert held is not None and held.trade_id == "8"
    assert (
        0 < cache.client.ttl(cache.keys.trade("binance", "BTC-USDT")) <= cache.settings.latest_ttl_s
    )
