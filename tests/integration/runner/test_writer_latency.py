"""The Redis writer stores live and repaired trades alike, but only live ones count as latency."""

from __future__ import annotations

import time
from decimal import Decimal
from pathlib import Path

import redis

from tickvault.config import CacheSettings
from tickvault.model import NS_PER_S, Side, Trade
from tickvault.monitoring.metrics import Metrics
from tickvault.runner.sinks import RedisSink, WriteItem, Writer
from tickvault.runner.spill import ResilientSink
from tickvault.storage.redis_cache import AsyncRedisCache
from tickvault.storage.redis_keys import Keys


def trade(symbol: str, ts_ns: int) -> Trade:
    return Trade("binance", symbol, "7", Decimal("100"), Decimal("1"), Side.BUY, ts_ns, ts_ns)


async def test_repaired_history_is_stored_but_not_counted_as_latency(
    redis_url: str, tmp_path: Path
) -> None:
    cache = AsyncRedisCache(redis_url, CacheSettings())
    writer = Writer(
        ResilientSink(RedisSink(cache), tmp_path / "spill"),
        Metrics(),
        stage="write_redis",
        backend="redis",
        linger_s=0.0,
    )
    now_ns = time.time_ns()
    hour_ago_ns = now_ns - 3600 * NS_PER_S
    await writer.put(WriteItem([trade("BTC-USDT", now_ns)]))
    await writer.put(WriteItem([trade("ETH-USDT", hour_ago_ns)], live=False))
    await writer.close()
    await writer.run()
    await cache.close()

    assert writer.stats.records == 2
    assert len(writer.stats.latency_ns) == 1  # the live trade only
    assert writer.stats.latency_ns[0] < 3600 * NS_PER_S
    keys = Keys(CacheSettings().key_prefix)
    client = redis.Redis.from_url(redis_url)
    assert client.exists(keys.trade("binance", "BTC-USDT"), keys.trade("binance", "ETH-USDT")) == 2
    client.close()
