"""WS /v1/stream: signals published to Redis reach the subscribed clients, filtered."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import aiohttp
import pytest

from tickvault.model import Side, Trade
from tickvault.storage.redis_cache import AsyncRedisCache, RedisCache

from .conftest import ApiClient

JAN1 = 1_704_067_200 * 1_000_000_000


async def next_frame(ws: aiohttp.ClientWebSocketResponse, timeout_s: float = 3.0) -> Any:
    msg = await ws.receive(timeout=timeout_s)
    assert msg.type == aiohttp.WSMsgType.TEXT, msg
    return msg.json()


async def test_signal_published_to_redis_reaches_filtered_clients(
    api: ApiClient, redis_url: str
) -> None:
    btc = await api.ws_connect("/v1/stream?exchange=binance&symbol=BTC-USDT")
    anything = await api.ws_connect("/v1/stream")
    ack = await next_frame(btc)
    assert ack["type"] == "subscribed" and ack["relay"] == "connected"
    assert ack["filter"]["symbol"] == "BTC-USDT" and ack["filter"]["timeframe"] is None
    assert (await next_frame(anything))["type"] == "subscribed"

    cache = AsyncRedisCache(redis_url)
    eth_signal = {"exchange": "binance", "symbol": "ETH-USDT", "timeframe": "1m", "rule": "x"}
    btc_signal = {"exchange": "binance", "symbol": "BTC-USDT", "timeframe": "1m",
                  "rule": "ema_cross_12_26", "direction": "buy", "value": 1.25}  # fmt: skip
    await cache.push_signals([("binance", "ETH-USDT", "1m", eth_signal)])
    await cache.push_signals([("binance", "BTC-USDT", "1m", btc_signal)])
    # The filtered client sees only BTC; the unfiltered one sees both, in order.
    assert await next_frame(btc) == {"type": "signal", "data": btc_signal}
    assert await next_frame(anything) == {"type": "signal", "data": eth_signal}
    assert await next_frame(anything) == {"type": "signal", "data": btc_signal}

    # Re-subscribing replaces the filter.
    await btc.send_json({"op": "subscribe", "exchange": "binance", "symbol": "ETH-USDT"})
    assert (await next_frame(btc))["filter"]["symbol"] == "ETH-USDT"
    await cache.push_signals([("binance", "ETH-USDT", "1m", eth_signal)])
    assert await next_frame(btc) == {"type": "signal", "data": eth_signal}
    # A bad message gets an error frame naming the problem; the connection stays.
    await btc.send_json({"op": "subscribe", "timeframe": "7m"})
    error = await next_frame(btc)
    assert error["type"] == "error" and error["error"].startswith("parameter 'timeframe'")
    await btc.send_str("not json")
    assert (await next_frame(btc))["error"] == "parameter 'message': not JSON"
    await cache.close()
    await btc.close()
    await anything.close()


async def test_latest_values_stream_when_they_change(api: ApiClient, redis_url: str) -> None:
    ws = await api.ws_connect("/v1/stream?exchange=kraken&symbol=BTC-USD&latest=trade")
    assert (await next_frame(ws))["type"] == "subscribed"
    trade = Trade("kraken", "BTC-USD", "1", Decimal("42000.10"), Decimal("0.5"), Side.BUY,
                  JAN1, JAN1)  # fmt: skip
    RedisCache(redis_url).write_events([trade])
    frame = await next_frame(ws)
    assert frame["type"] == "latest" and frame["kind"] == "trade"
    assert frame["data"]["price"] == "42000.10" and frame["data"]["trade_id"] == "1"
    RedisCache(redis_url).write_events([trade])  # same value again: no frame
    with pytest.raises(asyncio.TimeoutError):
        await ws.receive(timeout=0.3)
    await ws.close()


async def test_bad_stream_filter_is_refused_before_upgrade(api: ApiClient) -> None:
    resp = await api.get("/v1/stream", params={"latest": "trade"})
    assert resp.status == 400
    assert await resp.json() == {"error": "parameter 'latest': needs exchange and symbol"}
