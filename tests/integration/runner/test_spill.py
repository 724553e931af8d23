"""ResilientSink against a real Redis server that is stopped and restarted mid-test."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path

import pytest
import redis

from small_disk import fill, free, small_disk
from tickvault.model import MarketEvent, Side, Trade
from tickvault.runner.spill import ResilientSink
from tickvault.storage.embedded import EmbeddedRedis
from tickvault.storage.redis_cache import AsyncRedisCache


class StreamSink:
    """Appends every trade to a Redis list: lets the test count exactly what arrived."""

    name = "redis-list"

    def __init__(self, url: str) -> None:
        self.cache = AsyncRedisCache(url)

    async def write(self, events: Sequence[MarketEvent]) -> None:
        from tickvault.errors import StorageError

        try:
            await self.cache.client.rpush(
                "arrived", *[e.trade_id for e in events if isinstance(e, Trade)]
            )  # type: ignore[misc]
        except redis.RedisError as exc:
            raise StorageError(str(exc)) from None


def trades(start: int, count: int) -> list[Trade]:
    return [
        Trade("binance", "BTC-USDT", str(i), Decimal("1.5"), Decimal("2"), Side.BUY, i, i)
        for i in range(start, start + count)
    ]


def test_outage_buffers_spills_and_replays_in_order(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path / "redis", durable=False)
    server.start()
    port = server.port

    async def scenario() -> ResilientSink:
        sink = ResilientSink(
            StreamSink(server.url), tmp_path / "spill", max_memory_rows=25, retry_interval_s=0.05
        )
        await sink.write(trades(0, 10))
        server.stop()  # the store goes away
        for start in range(10, 100, 10):
            await sink.write(trades(start, 10))  # absorbed, never raises
        assert sink.stats.backlog_rows == 90
        assert sink.stats.memory_rows == 20 and sink.stats.spilled_bytes > 0
        assert len(list((tmp_path / "spill").glob("*.spill"))) == 7
        restarted = EmbeddedRedis(tmp_path / "redis", durable=False, port=port)
        restarted.start()
        assert await sink.drain(timeout_s=10)
        await sink.write(trades(100, 5))
        await sink.close()
        # The restarted (non-durable) server lost the first 10; everything after the outage
        # arrived exactly once and in order.
        arrived = redis.Redis.from_url(restarted.url).lrange("arrived", 0, -1)
        assert [int(x) for x in arrived] == list(range(10, 105))
        restarted.stop()
        return sink

    sink = asyncio.run(scenario())
    assert sink.stats.delivered_after_outage == 90
    assert sink.stats.spilled_bytes == 0
    assert not list((tmp_path / "spill").glob("*.spill"))


def test_spill_files_survive_a_restart(tmp_path: Path, redis_url: str) -> None:
    dead = "redis://127.0.0.1:1/0"  # nothing listens on port 1

    async def first_process() -> None:
        sink = ResilientSink(StreamSink(dead), tmp_path / "spill", max_memory_rows=5)
        await sink.write(trades(0, 10))
        await sink.write(trades(10, 3))
        assert not await sink.drain(timeout_s=0.2)  # gives up: memory batches go to disk
        await sink.close()

    async def second_process() -> None:
        sink = ResilientSink(StreamSink(redis_url), tmp_path / "spill", retry_interval_s=0.05)
        assert await sink.drain(timeout_s=10)
        await sink.close()

    asyncio.run(first_process())
    assert len(list((tmp_path / "spill").glob("*.spill"))) == 2
    asyncio.run(second_process())
    arrived = redis.Redis.from_url(redis_url).lrange("arrived", 0, -1)
    assert [int(x) for x in arrived] == list(range(13))


def test_full_spill_disk_keeps_rows_in_memory_and_says_so(
    tmp_path: Path, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The spill folder's disk fills up: batches stay in memory (counted, reason logged), no
    half-written file is left, and once the store is back every row arrives once, in order."""
    dead = "redis://127.0.0.1:1/0"  # nothing listens on port 1

    async def scenario(disk: Path) -> ResilientSink:
        sink = ResilientSink(StreamSink(dead), disk / "spill", max_memory_rows=500)
        fill(disk, 64 * 1024)  # room for a few batches of 500 trades, not for 20
        for start in range(0, 10_000, 500):
            await sink.write(trades(start, 500))  # absorbed, never raises
        stats = sink.stats
        assert stats.backlog_rows == 10_000  # every row accounted for
        assert stats.spill_failures > 0 and stats.memory_rows > 500
        assert "No space left on device (disk full)" in stats.spill_error
        assert str(disk / "spill") in stats.spill_error and "free space" in stats.spill_error
        assert not list((disk / "spill").glob("*.tmp"))  # no partial spill file
        spilled = len(list((disk / "spill").glob("*.spill")))
        assert 0 < spilled < 19
        # still down at exit: drain gives up and names the rows it could not save
        assert not await sink.drain(timeout_s=0.2)
        assert stats.unsaved_rows == stats.memory_rows > 0
        free(disk)
        sink.sink = StreamSink(redis_url)  # the store is back
        sink.retry_interval_s = 0.05
        assert await sink.drain(timeout_s=30)
        await sink.close()
        return sink

    with small_disk(tmp_path / "disk", size_mb=1) as disk:
        sink = asyncio.run(scenario(disk))
        assert not list((disk / "spill").iterdir())
    arrived = redis.Redis.from_url(redis_url).lrange("arrived", 0, -1)
    assert [int(x) for x in arrived] == list(range(10_000))
    assert sink.stats.backlog_rows == 0 and sink.stats.memory_rows == 0
    assert any("lost at exit" in r.getMessage() for r in caplog.records)
