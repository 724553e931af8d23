"""Every read endpoint over real HTTP on loopback, against real PostgreSQL and Redis.

Rows go in through the real writers (PostgresStore, RedisCache); the expected JSON is written
out by hand, so decimal strings are checked exactly as the exchange would have sent them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import psycopg

from tickvault.model import BookSnapshot, Candle, CandleSource, Side, Ticker, Trade
from tickvault.monitoring.metrics import Metrics
from tickvault.storage.postgres import FeatureValue, PostgresStore, QualityMetric, Signal
from tickvault.storage.redis_cache import AsyncRedisCache, RedisCache
from tickvault.storage.redis_cache import FeatureValue as CachedFeature

from .conftest import ApiClient

D = Decimal
NS = 1_000_000_000
MIN = 60 * NS
JAN1 = 1_704_067_200 * NS  # 2024-01-01T00:00:00Z
Get = Callable[..., Any]
BTC = {"exchange": "binance", "symbol": "BTC-USDT"}
BTC_1M = {**BTC, "timeframe": "1m"}


def bar(minute: int, o: str, c: str, volume: str, **extra: Any) -> Candle:
    ts = JAN1 + minute * MIN
    return Candle(
        "binance", "BTC-USDT", "1m", ts, D(o), D(o) + 10, D(c) - 10, D(c), D(volume), True,
        ts + MIN, ts + MIN + 5, **extra,
    )  # fmt: skip


BARS = [
    bar(0, "42000.10", "42005.25", "1.50000000", trade_count=12, quote_volume=D("63007.875"),
        buy_volume=D("0.00000100")),
    bar(1, "42005.25", "42001.0", "0.2"),
    bar(2, "42001.0", "41999.99", "3.000", source=CandleSource.DERIVED),
]  # fmt: skip
BAR0 = {
    "ts": "2024-01-01T00:00:00Z", "open": "42000.10", "high": "42010.10", "low": "41995.25",
    "close": "42005.25", "volume": "1.50000000", "closed": True, "source": "exchange",
    "trade_count": 12, "quote_volume": "63007.875", "vwap": None, "buy_volume": "0.00000100",
    "sell_volume": None,
}  # fmt: skip
CLOSES = ["42005.25", "42001.0", "41999.99"]


async def load_bars(store: PostgresStore) -> None:
    await store.write(BARS)
    await store.flush()


async def test_candles_range_exact_decimals(store: PostgresStore, get_json: Get) -> None:
    await load_bars(store)
    body = await get_json("/v1/candles", **BTC_1M, start="2024-01-01", end="2024-01-01T00:03Z")
    assert body["source"] == "postgres" and body["count"] == 3 and not body["truncated"]
    assert body["candles"][0] == BAR0
    assert [c["close"] for c in body["candles"]] == CLOSES
    assert [c["source"] for c in body["candles"]] == ["exchange", "exchange", "derived"]
    # half-open range, ns-integer times, the row limit
    body = await get_json("/v1/candles", **BTC_1M, start=JAN1 + MIN, end=JAN1 + 2 * MIN)
    assert [c["ts"] for c in body["candles"]] == ["2024-01-01T00:01:00Z"]
    body = await get_json("/v1/candles", **BTC_1M, start="2024-01-01", limit=2)
    assert body["count"] == 2 and body["truncated"]
    body = await get_json("/v1/candles", **BTC_1M, start="2024-01-01", source="derived")
    assert [c["close"] for c in body["candles"]] == ["41999.99"]


async def test_latest_candles_miss_falls_back_then_hits(
    store: PostgresStore, get_json: Get, metrics: Metrics, redis_url: str
) -> None:
    await load_bars(store)
    first = await get_json("/v1/candles/latest", **BTC_1M, n=2)
    assert first["source"] == "postgres"
    assert [c["close"] for c in first["candles"]] == CLOSES[1:]
    second = await get_json("/v1/candles/latest", **BTC_1M, n=2)
    assert second["source"] == "redis"
    assert second["candles"] == first["candles"]  # same JSON from either store
    all_three = await get_json("/v1/candles/latest", **BTC_1M, n=3)
    assert all_three["candles"][0] == BAR0
    hits = metrics.value("tickvault_cache_requests_total", cache="candles", result="hit")
    misses = metrics.value("tickvault_cache_requests_total", cache="candles", result="miss")
    assert (hits, misses) == (1, 2)  # n=3 was more than Redis held: a miss, then refilled
    assert len(RedisCache(redis_url).latest_candles("binance", "BTC-USDT", "1m", 10)) == 3
    # A live update written to Redis is what the API serves next.
    RedisCache(redis_url).write_events([bar(2, "42001.0", "41980.5", "4.000")])
    live = await get_json("/v1/candles/latest", **BTC_1M, n=3)
    assert live["source"] == "redis" and live["candles"][-1]["close"] == "41980.5"
    # More than Redis keeps (500 by default) goes straight to PostgreSQL.
    deep = await get_json("/v1/candles/latest", **BTC_1M, n=501)
    assert deep["source"] == "postgres" and deep["count"] == 3


async def test_trades_range_and_limit(store: PostgresStore, get_json: Get) -> None:
    trades = [
        Trade("binance", "BTC-USDT", str(1000 + i), D(price), D(size), side, JAN1 + i * NS,
              JAN1 + i * NS + 7_000_000)
        for i, (price, size, side) in enumerate([
            ("42000.10", "0.00100000", Side.BUY), ("42000.2", "1", Side.SELL),
            ("41999.00", "0.5", Side.UNKNOWN),
        ])
    ]  # fmt: skip
    await store.write(trades)
    await store.flush()
    body = await get_json("/v1/trades", **BTC, start="2024-01-01", end="2024-01-02")
    assert body["count"] == 3 and not body["truncated"]
    assert body["trades"][0] == {
        "ts": "2024-01-01T00:00:00Z", "trade_id": "1000", "price": "42000.10",
        "size": "0.00100000", "side": "buy", "recv_ts": "2024-01-01T00:00:00.007000Z",
    }  # fmt: skip
    assert [t["price"] for t in body["trades"]] == ["42000.10", "42000.2", "41999.00"]
    limited = await get_json("/v1/trades", **BTC, start="2024-01-01", limit=1)
    assert limited["count"] == 1 and limited["truncated"]


def book(ts_ns: int, bid: str, sequence: int) -> BookSnapshot:
    return BookSnapshot(
        "binance", "BTC-USDT", ((D(bid), D("1.5")), (D("42000.00"), D("0.250"))),
        ((D("42000.20"), D("3")),), ts_ns, ts_ns + 1000, sequence,
    )  # fmt: skip


async def test_book_at_a_time(store: PostgresStore, get_json: Get) -> None:
    await store.write([book(JAN1, "42000.10", 7), book(JAN1 + MIN, "42000.15", 9)])
    await store.flush()
    body = await get_json("/v1/book", **BTC, at="2024-01-01T00:00:30Z")
    assert body["book"] == {
        "ts": "2024-01-01T00:00:00Z", "sequence": 7,
        "bids": [["42000.10", "1.5"], ["42000.00", "0.250"]], "asks": [["42000.20", "3"]],
    }  # fmt: skip
    later = await get_json("/v1/book", **BTC, at="2024-01-02")
    assert later["book"]["sequence"] == 9 and later["book"]["bids"][0][0] == "42000.15"
    missing = await get_json("/v1/book", status=404, **BTC, at="2023-12-31")
    assert "no book snapshot" in missing["error"]


async def test_latest_values_redis_first_postgres_behind(
    store: PostgresStore, get_json: Get, metrics: Metrics, redis_url: str
) -> None:
    old_trade = Trade("binance", "BTC-USDT", "7", D("41000.50"), D("0.010"), Side.SELL, JAN1, JAN1)
    ticker = Ticker("binance", "BTC-USDT", JAN1, JAN1 + 5, D("42000.10"), D("2.0"),
                    D("42000.20"), D("0.5"), D("42000.15"))  # fmt: skip
    await store.write([old_trade, ticker, book(JAN1, "42000.10", 7)])
    await store.flush()
    for kind in ("trade", "ticker", "book"):
        body = await get_json(f"/v1/latest/{kind}", **BTC)
        assert body["source"] == "postgres", kind
    body = await get_json("/v1/latest/trade", **BTC)
    assert body["data"] == {
        "ts": "2024-01-01T00:00:00Z", "trade_id": "7", "price": "41000.50", "size": "0.010",
        "side": "sell", "recv_ts": "2024-01-01T00:00:00Z",
    }  # fmt: skip
    ticker_body = await get_json("/v1/latest/ticker", **BTC)
    assert ticker_body["data"]["bid_price"] == "42000.10"
    assert ticker_body["data"]["last_price"] == "42000.15"
    assert ticker_body["data"]["volume_24h"] is None
    # The collector writes newer values to Redis: they win.
    new_trade = Trade("binance", "BTC-USDT", "8", D("42100.00"), D("0.5"), Side.BUY,
                      JAN1 + MIN, JAN1 + MIN + 1_500)  # fmt: skip
    RedisCache(redis_url).write_events([new_trade, book(JAN1 + MIN, "42000.15", 9), ticker])
    body = await get_json("/v1/latest/trade", **BTC)
    assert body["source"] == "redis" and body["data"]["price"] == "42100.00"
    assert body["data"]["recv_ts"] == "2024-01-01T00:01:00.000001Z"
    book_body = await get_json("/v1/latest/book", **BTC)
    assert book_body["source"] == "redis" and book_body["data"]["sequence"] == 9
    assert book_body["data"]["asks"] == [["42000.20", "3"]]
    assert (await get_json("/v1/latest/ticker", **BTC))["data"] == ticker_body["data"]
    counts = [
        metrics.value("tickvault_cache_requests_total", cache="latest_trade", result=result)
        for result in ("hit", "miss")
    ]
    assert counts == [1, 2]
    gone = await get_json("/v1/latest/trade", status=404, exchange="kraken", symbol="BTC-USD")
    assert gone["error"] == "no trade stored for kraken BTC-USD"


async def test_features_signals_quality(
    store: PostgresStore, get_json: Get, redis_url: str
) -> None:
    await store.write_features([
        FeatureValue("binance", "BTC-USDT", "1m", "rsi_14", JAN1, 40.0),
        FeatureValue("binance", "BTC-USDT", "1m", "rsi_14", JAN1 + MIN, 55.5),
        FeatureValue("binance", "BTC-USDT", "1m", "ema_12", JAN1 + MIN, 42001.25),
    ])  # fmt: skip
    await store.flush()
    await store.write_signals([
        Signal("binance", "BTC-USDT", "1m", "ema_cross_12_26", JAN1 + MIN, 1.5, "long"),
    ])  # fmt: skip
    await store.write_quality([
        QualityMetric("binance", "BTC-USDT", "completeness", JAN1, 0.5),
        QualityMetric("binance", "BTC-USDT", "completeness", JAN1 + MIN, 0.99, {"missing": 1}),
    ])  # fmt: skip
    body = await get_json("/v1/features", **BTC_1M)
    assert body["source"] == "postgres"
    assert body["features"] == {
        "ema_12": {"ts": "2024-01-01T00:01:00Z", "value": 42001.25},
        "rsi_14": {"ts": "2024-01-01T00:01:00Z", "value": 55.5},
    }
    body = await get_json("/v1/signals", **BTC_1M)
    assert body["source"] == "postgres"
    assert body["signals"] == [{"ts": "2024-01-01T00:01:00Z", "name": "ema_cross_12_26",
                                "value": 1.5, "side": "long", "detail": None}]  # fmt: skip
    body = await get_json("/v1/quality", **BTC)
    assert body["scores"] == {}
    assert body["metrics"] == {
        "completeness": {"ts": "2024-01-01T00:01:00Z", "value": 0.99, "detail": {"missing": 1}}
    }

    cache = AsyncRedisCache(redis_url)
    await cache.set_features("binance", "BTC-USDT", "1m", {"rsi_14": CachedFeature(JAN1, 61.0)})
    await cache.push_signals([("binance", "BTC-USDT", "1m", {"rule": "a", "dir": "buy"}),
                              ("binance", "BTC-USDT", "1m", {"rule": "b", "dir": "sell"})])  # fmt: skip
    await cache.set_quality("binance", "BTC-USDT", "trades", {"score": 0.97, "worst": "timeliness"})
    await cache.close()
    body = await get_json("/v1/features", **BTC_1M)
    assert body == {**BTC_1M, "source": "redis",
                    "features": {"rsi_14": {"ts": "2024-01-01T00:00:00Z", "value": 61.0}}}  # fmt: skip
    body = await get_json("/v1/signals", **BTC_1M, n=1)
    assert body["source"] == "redis" and body["signals"] == [{"rule": "b", "dir": "sell"}]
    body = await get_json("/v1/quality", **BTC, channel="trades")
    assert body["scores"] == {"trades": {"score": 0.97, "worst": "timeliness"}}


async def test_status_and_monitoring_routes(
    store: PostgresStore, get_json: Get, api: ApiClient
) -> None:
    await load_bars(store)
    await get_json("/v1/candles/latest", **BTC_1M, n=3)
    body = await get_json("/v1/status")
    tables = {t["table"]: t for t in body["postgres"]["tables"]}
    assert tables["candles"]["rows"] == 3 and tables["candles"]["newest"] == "2024-01-01T00:02:00Z"
    assert body["postgres"]["schema_version"] >= 1 and body["postgres"]["timescaledb"] is False
    # the refilled candle key, its frame version and change log, the counter
    assert body["redis"]["keys"] == 4
    assert body["candle_cache"] == {"hits": 0, "misses": 1, "hit_ratio": 0.0}
    resp = await api.get("/metrics")
    text = await resp.text()
    assert 'tickvault_cache_requests_total{cache="candles",result="miss"} 1.0' in text
    assert (await get_json("/health"))["status"] == "alive"
    ready = await get_json("/ready")
    assert ready["ready"] is True and set(ready["checks"]) == {"postgres", "redis"}


async def test_blocking_reads_do_not_stall_the_event_loop(
    store: PostgresStore, db_url: str, api: ApiClient
) -> None:
    """A read stuck on a table lock waits in a worker thread; /health answers meanwhile."""
    await load_bars(store)
    with psycopg.connect(db_url) as locker:
        locker.execute("LOCK TABLE trades IN ACCESS EXCLUSIVE MODE")
        stuck = asyncio.create_task(api.get("/v1/trades", params={**BTC, "start": "2024-01-01"}))
        await asyncio.sleep(0.3)
        assert not stuck.done()
        # Were the loop blocked by the stuck read, /health could not answer before the lock
        # is released below: the bounded wait would fail instead of hanging.
        health = await asyncio.wait_for(api.get("/health"), timeout=5)
        assert health.status == 200
        latest = await api.get("/v1/candles/latest", params={**BTC_1M, "n": "1"})
        assert latest.status == 200  # other reads use other pooled connections
        locker.rollback()
    resp = await stuck
    assert resp.status == 200 and (await resp.json())["count"] == 0
