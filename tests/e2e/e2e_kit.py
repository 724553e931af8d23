"""End-to-end kit: the in-process simulator over real loopback sockets driving a real Runner
into real PostgreSQL and Redis (the ``database_url``/``redis_url`` fixtures)."""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg

from tickvault.config import FeedSettings, Settings
from tickvault.exchanges.io import ws_policy
from tickvault.exchanges.sim import SimConfig, Simulator
from tickvault.model import NS_PER_S
from tickvault.monitoring.metrics import Metrics
from tickvault.runner.app import Runner, RunOptions

SYMBOL = "BTC-USDT"
CHANNELS = ["trades", "book", "candles", "ticker"]
During = Callable[[Simulator, Runner], Awaitable[None]]


@dataclass
class Run:
    runner: Runner
    truth_trades: list[dict[str, Any]]
    truth_book: dict[str, Any]
    url: str
    wire_ids: dict[str, str]  # truth trade id -> id on the wire (Binance aggTrade ids)
    frozen_while_running: int = 0  # objects in the GC's permanent generation during the run


def ns(ts: datetime) -> int:
    delta = ts - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400_000_000 + delta.seconds * 1_000_000 + delta.microseconds) * 1000


def settings_for(
    exchange: str, endpoints: Any, database_url: str, redis_url: str, tmp: Path
) -> Settings:
    return Settings(
        database_url=database_url,
        redis_url=redis_url,
        data_dir=tmp,
        feeds=[FeedSettings(exchange=exchange, symbols=[SYMBOL], channels=CHANNELS)],  # type: ignore[arg-type]
        endpoints=endpoints,
        timeframes=["1s", "5s", "1m"],
    )


async def wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def trades_in(runner: Runner, exchange: str) -> int:
    return runner.stats.validated.get((exchange, "trades"), 0)


async def run_pipeline(
    exchange: str,
    database_url: str,
    redis_url: str,
    tmp: Path,
    *,
    rate: float = 600.0,
    feed_s: float = 1.0,
    during: During | None = None,
    settle_s: float = 1.0,
) -> Run:
    """Collect for ``feed_s`` (then ``during``), pause the market, let the last messages in,
    and stop the runner (its drain is part of what is tested)."""
    config = SimConfig(symbols=[SYMBOL], exchanges=(exchange,), rate=rate, history_s=60)
    async with Simulator(config) as sim:
        settings = settings_for(exchange, sim.endpoints, database_url, redis_url, tmp)
        # A dropped connection comes back after ~0.1 s instead of the production 0.5 s.
        policy = ws_policy(exchange).with_(reconnect_base_s=0.05, reconnect_cap_s=0.2)
        options = RunOptions(
            spill_dir=tmp / "spill", quality_interval_s=1.0, ws_policies={exchange: policy}
        )
        runner = Runner(settings, options, metrics=Metrics(process_metrics=False))
        task = asyncio.create_task(runner.run())
        try:
            await asyncio.wait_for(runner.wait_started(), 30)
            frozen = gc.get_freeze_count()
            await wait_for(lambda: trades_in(runner, exchange) > 0, 15, "the first trades")
            await asyncio.sleep(feed_s)
            if during is not None:
                await during(sim, runner)
            sim.rate = 0  # the market stops: the last book state is final
            await asyncio.sleep(settle_s)
        finally:
            runner.stop()
            await asyncio.wait_for(task, 60)
        # Binance streams aggTrade: one trade per aggregate in the simulator, its own id.
        market = sim.market(exchange, SYMBOL)
        wire_ids = (
            {str(t.trade_id): str(t.agg_id) for t in market.trades} if exchange == "binance" else {}
        )
        return Run(runner, sim.truth_trades(exchange, SYMBOL), sim.truth_book(exchange, SYMBOL, 10),
                   database_url, wire_ids, frozen)  # fmt: skip


def stored_trades(
    conn: psycopg.Connection[Any], exchange: str, symbol: str = SYMBOL
) -> list[tuple[Any, ...]]:
    rows = conn.execute(
        "SELECT trade_id, price, size, side, ts FROM trades WHERE exchange = %s AND symbol = %s"
        " ORDER BY ts, trade_id::numeric",
        (exchange, symbol),
    ).fetchall()
    return [(tid, p, s, side, ns(ts)) for tid, p, s, side, ts in rows]


def truth_rows(run: Run, first_ns: int, last_ns: int) -> list[tuple[Any, ...]]:
    """Truth trades in [first, last] as stored rows (times at storage resolution, µs; prices
    and sizes as numbers: Binance prints 8 decimals where the truth prints the tick's)."""
    return [
        (run.wire_ids.get(t["trade_id"], t["trade_id"]), Decimal(t["price"]), Decimal(t["size"]),
         t["side"], t["ts_ns"] // 1000 * 1000)
        for t in run.truth_trades
        if first_ns <= t["ts_ns"] // 1000 * 1000 <= last_ns
    ]  # fmt: skip


def bucket_bars(trades: list[tuple[Any, ...]], seconds: int) -> dict[int, tuple[Decimal, ...]]:
    """OHLCV + count per bucket, from trades in arrival (id) order."""
    bars: dict[int, list[Any]] = {}
    step = seconds * NS_PER_S
    for _, price, size, _, ts_ns in sorted(trades, key=lambda t: (t[4], int(t[0]))):
        p, s = price, size
        bar = bars.get(ts_ns - ts_ns % step)
        if bar is None:
            bars[ts_ns - ts_ns % step] = [p, p, p, p, s, 1]
        else:
            bar[1], bar[2], bar[3] = max(bar[1], p), min(bar[2], p), p
            bar[4] += s
            bar[5] += 1
    return {k: tuple(v) for k, v in bars.items()}
