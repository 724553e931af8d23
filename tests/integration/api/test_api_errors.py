"""Errors: 400 naming the parameter, 404, 503 when storage is down, never a traceback."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tickvault.monitoring.metrics import Metrics
from tickvault.storage.embedded import free_port

from .conftest import ApiClient, start_client

BTC_1M = {"exchange": "binance", "symbol": "BTC-USDT", "timeframe": "1m"}


# (path, parameters, the parameter the message must name, what it must say)
CASES: list[tuple[str, dict[str, str], str, str]] = [
        ("/v1/candles/latest", {"symbol": "BTC-USDT", "timeframe": "1m"}, "exchange", "missing"),
        ("/v1/candles/latest", {**BTC_1M, "exchange": "bitmex"}, "exchange", "unknown exchange"),
        ("/v1/candles/latest", {**BTC_1M, "symbol": "BTCUSDT"}, "symbol", "BASE-QUOTE"),
        ("/v1/candles/latest", {**BTC_1M, "timeframe": "7m"}, "timeframe", "unknown timeframe"),
        ("/v1/candles/latest", {**BTC_1M, "n": "0"}, "n", "out of range 1..100000"),
        ("/v1/candles/latest", {**BTC_1M, "n": "ten"}, "n", "not an integer"),
        ("/v1/candles/latest", {**BTC_1M, "symbl": "x"}, "symbl", "unknown parameter"),
        ("/v1/candles", BTC_1M, "start", "missing"),
        ("/v1/candles", {**BTC_1M, "start": "yesterday"}, "start", "not an ISO-8601"),
        ("/v1/candles", {**BTC_1M, "start": "2024-02-01", "end": "2024-01-01"}, "end",
         "not after start"),
        ("/v1/candles", {**BTC_1M, "start": "2024-01-01", "source": "mine"}, "source",
         "not one of auto, exchange, derived"),
        ("/v1/trades", {"exchange": "kraken", "symbol": "BTC-USD", "start": "9" * 30}, "start",
         "out of range"),
        ("/v1/book", {"exchange": "kraken", "symbol": "BTC-USD"}, "at", "missing"),
        ("/v1/signals", {**BTC_1M, "n": "5000"}, "n", "out of range 1..1000"),
        ("/v1/quality", {"exchange": "kraken", "symbol": "BTC-USD", "channel": "x"}, "channel",
         "not one of"),
        ("/v1/stream", {"latest": "orders", "exchange": "kraken", "symbol": "BTC-USD"}, "latest",
         "not one of trade, book, ticker"),
]  # fmt: skip


async def test_bad_parameters_are_400_naming_the_parameter(api: ApiClient) -> None:
    for path, params, param, detail in CASES:
        resp = await api.get(path, params=params)
        body = await resp.json()
        assert resp.status == 400, (path, params, body)
        assert set(body) == {"error"}
        assert body["error"].startswith(f"parameter '{param}': "), body
        assert detail in body["error"] and "\n" not in body["error"], body


async def test_unknown_endpoint_and_kind_are_json_404(api: ApiClient) -> None:
    for path in ("/v1/latest/orders?exchange=kraken&symbol=BTC-USD", "/v2/candles"):
        resp = await api.get(path)
        assert resp.status == 404
        assert (await resp.json())["error"].startswith("no endpoint GET /v")


def closed_port() -> int:
    port = free_port()
    with socket.socket() as sock:  # nothing listens there: connection refused at once
        assert sock.connect_ex(("127.0.0.1", port)) != 0
    return port


@pytest.fixture
async def down_api(metrics: Metrics) -> AsyncIterator[ApiClient]:
    db = f"postgresql://postgres@127.0.0.1:{closed_port()}/postgres"
    cache = f"redis://127.0.0.1:{closed_port()}/0"
    client = await start_client(db, cache, metrics, pg_timeout_s=0.5)
    yield client
    await client.close()


async def get(client: ApiClient, path: str, **params: Any) -> tuple[int, Any]:
    resp = await client.get(path, params=params)
    return resp.status, await resp.json()


async def test_storage_unreachable_is_503_with_a_clear_message(down_api: ApiClient) -> None:
    status, body = await get(down_api, "/v1/candles", **BTC_1M, start="2024-01-01")
    assert status == 503
    assert body["error"].startswith("PostgreSQL at postgresql://127.0.0.1:")
    assert "is unreachable (no connection within 0.5 s)" in body["error"]
    status, body = await get(down_api, "/v1/candles/latest", **BTC_1M)
    assert status == 503 and body["error"].startswith("Redis at redis://127.0.0.1:")
    for kind in ("trade", "book", "ticker"):
        status, body = await get(
            down_api, f"/v1/latest/{kind}", exchange="kraken", symbol="BTC-USD"
        )
        assert status == 503 and "Redis at redis://127.0.0.1:" in body["error"]
        assert "is unreachable" in body["error"] and "Traceback" not in body["error"]
    status, body = await get(down_api, "/v1/status")
    assert status == 503 and set(body) == {"error"}
    # Bad parameters are still 400: they are checked before storage is touched.
    status, body = await get(down_api, "/v1/candles/latest", **{**BTC_1M, "n": "-1"})
    assert status == 400
    # The process itself is alive, and not ready.
    status, body = await get(down_api, "/health")
    assert status == 200
    status, body = await get(down_api, "/ready")
    assert status == 503 and not body["checks"]["postgres"]["ok"]
    assert "unreachable" in body["checks"]["redis"]["detail"]
    ws = await down_api.ws_connect("/v1/stream")
    ack = await ws.receive_json(timeout=3)
    assert ack["type"] == "subscribed" and ack["relay"] == "disconnected"
    await ws.close()


async def test_missing_schema_is_503_naming_the_fix(
    database_url: str, redis_url: str, metrics: Metrics
) -> None:
    client = await start_client(database_url, redis_url, metrics)  # no `tickvault init` here
    try:
        status, body = await get(client, "/v1/trades", exchange="kraken", symbol="BTC-USD",
                                 start="2024-01-01")  # fmt: skip
        assert status == 503 and "run `tickvault init` first" in body["error"]
    finally:
        await client.close()
