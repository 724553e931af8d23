"""Helpers of the connector tests: the simulator as the exchange, real PostgreSQL and Redis.

Everything runs over loopback sockets with the real adapters, the real I/O layer and the real
store; the simulator's ground truth is what the stored rows are compared with.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

import httpx
import psycopg

from tickvault.config import TimescaleSettings, WriterSettings
from tickvault.exchanges.base import ExchangeAdapter, get_adapter
from tickvault.exchanges.binance.adapter import BinanceAdapter
from tickvault.exchanges.io.backfill import Backfiller, TaskProgress
from tickvault.exchanges.io.counters import IoCounters
from tickvault.exchanges.io.instruments import fetch_instruments
from tickvault.exchanges.io.policy import RestPolicy, WsPolicy, rest_policy, ws_policy
from tickvault.exchanges.io.ratelimit import RedisBudget
from tickvault.exchanges.io.rest import RestClient
from tickvault.exchanges.io.storage import StoreSink
from tickvault.exchanges.sim import SimConfig, Simulator
from tickvault.storage.postgres import PostgresStore

ANCHOR_NS = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z: fixed, reproducible history
HISTORY_S = 900
SINCE_NS = ANCHOR_NS - HISTORY_S * 1_000_000_000
PLAIN = TimescaleSettings(mode="off")
EXCHANGES = ("binance", "coinbase", "kraken")

# REST figures sized to the simulator's limits, which the tests set (Kraken 10 req/s instead of
# the real 1 req/s, so a test takes seconds); the simulator enforces whatever it is given.
SIM_KRAKEN_RPS = 10.0


def sim_config(**overrides: Any) -> SimConfig:
    values: dict[str, Any] = {
        "symbols": ["BTC-USDT"],
        "rate": 0.0,
        "history_s": HISTORY_S,
        "anchor_ns": ANCHOR_NS,
        "tick_s": 0.01,
        "kraken_rps": SIM_KRAKEN_RPS,
    }
    values.update(overrides)
    return SimConfig(**values)


def sim_rest_policy(exchange: str, **changes: Any) -> RestPolicy:
    policy = rest_policy(exchange).with_(
        timeout_s=5.0, max_retries=3, backoff_base_s=0.05, backoff_cap_s=0.3
    )
    if exchange == "kraken":
        policy = policy.with_(limit=int(SIM_KRAKEN_RPS), safety=0.9, throttle_wait_s=1.0)
    return policy.with_(**changes) if changes else policy


def sim_ws_policy(exchange: str, **changes: Any) -> WsPolicy:
    return ws_policy(exchange).with_(
        silence_timeout_s=5.0, reconnect_base_s=0.1, reconnect_cap_s=0.5, **changes
    )


@dataclass
class HttpLog:
    """Every request/response of a RestClient as seen on the wire (monotonic times)."""

    entries: list[tuple[float, str, int]] = field(default_factory=list)  # (t, path, status)

    def client(self) -> httpx.AsyncClient:
        async def on_response(response: httpx.Response) -> None:
            self.entries.append((time.monotonic(), response.url.path, response.status_code))

        return httpx.AsyncClient(timeout=5.0, event_hooks={"response": [on_response]})

    def statuses(self) -> list[int]:
        return [status for _, _, status in self.entries]


def rest_client(
    sim: Simulator,
    exchange: str,
    redis_url: str,
    *,
    counters: IoCounters | None = None,
    policy: RestPolicy | None = None,
    http: httpx.AsyncClient | None = None,
) -> RestClient:
    policy = policy or sim_rest_policy(exchange)
    budget = RedisBudget(redis_url, exchange, policy.budget, policy.window_s)
    return RestClient(
        exchange,
        sim.endpoints[exchange].rest_url,
        budget,
        policy,
        counters=counters if counters is not None else IoCounters(),
        http=http,
    )


async def open_store(db_url: str, batch_rows: int = 5000) -> PostgresStore:
    return await PostgresStore.open(
        db_url, WriterSettings(batch_rows=batch_rows), PLAIN, timed_flush=False
    )


def _ns(value: datetime) -> int:
    return int(value.timestamp()) * 1_000_000_000 + value.microsecond * 1000


def stored_trades(
    db_url: str, exchange: str, symbol: str
) -> list[tuple[str, int, Decimal, Decimal, str]]:
    with psycopg.connect(db_url) as conn:
        rows = conn.execute(
            "SELECT trade_id, ts, price, size, side FROM trades WHERE exchange = %s AND symbol = %s"
            " ORDER BY ts, trade_id",
            (exchange, symbol),
        ).fetchall()
    return [(r[0], _ns(r[1]), r[2], r[3], r[4]) for r in rows]


def truth_trades(
    sim: Simulator,
    exchange: str,
    symbol: str,
    since_ns: int | None = None,
    until_ns: int | None = None,
    *,
    published_order: bool = False,
) -> list[tuple[str, int, Decimal, Decimal, str]]:
    """The simulator's trades as the connector stores them. Binance is collected and backfilled
    as aggregate trades (``@aggTrade``, ``/api/v3/aggTrades``), so its id is the aggregate id.
    Sorted by (time, id), or in the order the venue published them (``published_order``)."""
    agg_ids = {str(t.trade_id): str(t.agg_id) for t in sim.market(exchange, symbol).trades}
    rows = []
    for t in sim.truth_trades(exchange, symbol, since_ns, until_ns):
        trade_id = agg_ids[t["trade_id"]] if exchange == "binance" else t["trade_id"]
        rows.append((trade_id, t["ts_ns"], Decimal(t["price"]), Decimal(t["size"]), t["side"]))
    return rows if published_order else sorted(rows, key=lambda r: (r[1], r[0]))


def stored_candles(
    db_url: str, exchange: str, symbol: str, timeframe: str
) -> list[tuple[Any, ...]]:
    with psycopg.connect(db_url) as conn:
        rows = conn.execute(
            "SELECT ts, open, high, low, close, volume, trade_count, closed FROM candles"
            " WHERE exchange = %s AND symbol = %s AND timeframe = %s ORDER BY ts",
            (exchange, symbol, timeframe),
        ).fetchall()
    return [(_ns(r[0]), *r[1:]) for r in rows]


def truth_candles(
    sim: Simulator, exchange: str, symbol: str, timeframe: str, since_ns: int, until_ns: int
) -> list[tuple[Any, ...]]:
    return [
        (c["open_ns"], Decimal(c["open"]), Decimal(c["high"]), Decimal(c["low"]),
         Decimal(c["close"]), Decimal(c["volume"]), c["trade_count"], c["closed"])
        for c in sim.truth_candles(exchange, symbol, timeframe, since_ns, until_ns)
    ]  # fmt: skip


def count(db_url: str, sql: str, *params: Any) -> int:
    with psycopg.connect(db_url) as conn:
        row = conn.execute(sql, params).fetchone()
    return int(row[0]) if row else 0


SYMBOLS = ["BTC-USDT", "ETH-USDT"]
KINDS = ["trades", "candles:1m"]


def adapter_for(exchange: str, page_limit: int = 500) -> ExchangeAdapter:
    # Binance pages of 500 so a 15-minute history takes a few pages (real default: 1000).
    return BinanceAdapter(page_limit=page_limit) if exchange == "binance" else get_adapter(exchange)


async def run_backfill(
    sim: Simulator,
    exchange: str,
    db_url: str,
    redis_url: str,
    *,
    counters: IoCounters | None = None,
    progress: list[TaskProgress] | None = None,
    on_page: Callable[[TaskProgress], None] | None = None,
    http_log: HttpLog | None = None,
    symbols: list[str] = SYMBOLS,
    kinds: list[str] = KINDS,
    policy: RestPolicy | None = None,
    page_limit: int = 500,
) -> list[TaskProgress]:
    adapter = adapter_for(exchange, page_limit)
    store = await open_store(db_url)
    http = http_log.client() if http_log is not None else None
    rest = rest_client(sim, exchange, redis_url, counters=counters, http=http, policy=policy)
    try:
        target = StoreSink(store)
        instruments = await fetch_instruments(adapter, rest, symbols, target)

        def report(p: TaskProgress) -> None:
            if progress is not None:
                progress.append(p)
            if on_page is not None:
                on_page(p)

        runner = Backfiller(
            adapter, rest, target, target, errors=target, progress=report, concurrency=2
        )
        return await runner.run(instruments, kinds, SINCE_NS, ANCHOR_NS)
    finally:
        await rest.aclose()
        await rest.budget.close()
        await store.close()
        if http is not None:
            await http.aclose()


def assert_equals_truth(
    sim: Simulator,
    exchange: str,
    db_url: str,
    symbols: list[str] = SYMBOLS,
    kinds: list[str] = KINDS,
) -> None:
    for symbol in symbols:
        stored = stored_trades(db_url, exchange, symbol)
        truth = truth_trades(sim, exchange, symbol, SINCE_NS, ANCHOR_NS)
        assert len(truth) > 1000
        assert stored == truth
        if "candles:1m" not in kinds:
            continue
        candles = stored_candles(db_url, exchange, symbol, "1m")
        expected = truth_candles(sim, exchange, symbol, "1m", SINCE_NS, ANCHOR_NS)
        assert len(expected) == 15
        if exchange == "coinbase":  # Coinbase candles carry no trade count
            expected = [(*c[:6], None, c[7]) for c in expected]
        if exchange == "kraken":
            # Kraken candles are built from the trades (OHLC serves only the latest 720 bars):
            # the newest bar cannot be known closed before a later trade shows up.
            assert [c[:7] for c in candles] == [c[:7] for c in expected]
            assert all(c[7] for c in candles[:-1])
        else:
            assert candles == expected
