"""``tickvault run --workers 2``: two processes, the symbols shared out, one simulator over
real sockets, one PostgreSQL and Redis — every market stored once, exactly as sent."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
from e2e_kit import stored_trades

from tickvault.config import FeedSettings, Settings
from tickvault.exchanges.sim import SimConfig, Simulator
from tickvault.runner.app import RunOptions
from tickvault.runner.workers import WorkerError, Workers

pytestmark = [pytest.mark.postgres, pytest.mark.redis]
EXCHANGES = ("binance", "coinbase", "kraken")
SYMBOLS = ["BTC-USDT", "ETH-USDT"]
CHANNELS = ["trades", "book", "candles", "ticker"]


def _truth(sim: Simulator, exchange: str, symbol: str, lo: int, hi: int) -> list[tuple[Any, ...]]:
    # Binance streams aggTrade: one trade per aggregate in the simulator, its own id.
    wire = {}
    if exchange == "binance":
        wire = {str(t.trade_id): str(t.agg_id) for t in sim.market(exchange, symbol).trades}
    return [
        (wire.get(t["trade_id"], t["trade_id"]), Decimal(t["price"]), Decimal(t["size"]),
         t["side"], t["ts_ns"] // 1000 * 1000)
        for t in sim.truth_trades(exchange, symbol)
        if lo <= t["ts_ns"] // 1000 * 1000 <= hi
    ]  # fmt: skip


async def test_two_workers_store_every_market_exactly_once(
    database_url: str, redis_url: str, tmp_path: Path
) -> None:
    config = SimConfig(symbols=SYMBOLS, exchanges=EXCHANGES, rate=800, history_s=60)
    async with Simulator(config) as sim:
        settings = Settings(
            database_url=database_url, redis_url=redis_url, data_dir=tmp_path,
            feeds=[FeedSettings(exchange=e, symbols=SYMBOLS, channels=CHANNELS) for e in EXCHANGES],  # type: ignore[arg-type]
            endpoints=sim.endpoints, timeframes=["1s", "5s", "1m"],
        )  # fmt: skip
        workers = Workers(settings, RunOptions(quality_interval_s=1.0), 2)
        task = asyncio.create_task(workers.run())
        try:
            await asyncio.wait_for(workers.wait_started(), 90)
            deadline = asyncio.get_running_loop().time() + 30
            while len(workers.tally().stages.get("write_postgres", {})) < len(EXCHANGES):
                assert asyncio.get_running_loop().time() < deadline, "no trades stored"
                await asyncio.sleep(0.2)
            await asyncio.sleep(2.0)
            sim.rate = 0  # the market stops: what was sent is final
            await asyncio.sleep(1.0)
        finally:
            workers.stop()
            total = await asyncio.wait_for(task, 90)

        # One symbol per worker, every exchange of it in that worker.
        assert [{f.exchange: f.symbols for f in shard} for shard in workers.shards] == [
            {e: [symbol] for e in EXCHANGES} for symbol in SYMBOLS
        ]
        assert all(w.process.exitcode == 0 for w in workers.workers)
        assert set(total.messages) == set(EXCHANGES) and all(total.messages.values())
        assert set(total.latency_ns) == {"postgres", "redis"}
        with psycopg.connect(database_url) as conn:
            for exchange in EXCHANGES:
                for symbol in SYMBOLS:
                    stored = stored_trades(conn, exchange, symbol)
                    assert len(stored) > 20, (exchange, symbol)
                    # Row by row what the simulator sent over the window collected: nothing
                    # missing, nothing twice (both workers write into the same tables).
                    assert stored == _truth(sim, exchange, symbol, stored[0][4], stored[-1][4])
            quarantined = conn.execute("SELECT count(*) FROM quarantine").fetchone()
            assert quarantined == (0,)
            scored = conn.execute(
                "SELECT count(DISTINCT (exchange, symbol)) FROM quality_metrics"
                " WHERE metric = 'quality:trades'"
            ).fetchone()
            assert scored == (len(EXCHANGES) * len(SYMBOLS),)
    # Each worker spilled (nothing, here) into its own folder.
    assert sorted(p.name for p in (tmp_path / "spill").iterdir()) == ["worker-0", "worker-1"]
    assert not list((tmp_path / "spill").rglob("*.spill"))
    client = redis.Redis.from_url(redis_url)
    try:
        for symbol in SYMBOLS:  # both workers' streams in the hot cache
            assert client.keys(f"*candles*{symbol}*1s*"), symbol
    finally:
        client.close()


async def test_a_failing_worker_stops_the_others_and_the_run_names_it(
    database_url: str, redis_url: str, tmp_path: Path
) -> None:
    config = SimConfig(symbols=["BTC-USDT"], exchanges=("binance",), rate=200, history_s=60)
    async with Simulator(config) as sim:
        settings = Settings(
            database_url=database_url, redis_url=redis_url, data_dir=tmp_path,
            feeds=[FeedSettings(exchange="binance", symbols=["BTC-USDT", "DOGE-XYZ"])],
            endpoints=sim.endpoints,
        )  # fmt: skip
        workers = Workers(settings, RunOptions(), 2)
        with pytest.raises(WorkerError) as failed:
            await asyncio.wait_for(workers.run(), 90)
    assert str(failed.value) == "worker 1 failed: UsageError: binance does not list DOGE-XYZ"
    # The healthy worker was stopped, drained and ended cleanly.
    assert [w.process.exitcode for w in workers.workers] == [0, 1]
