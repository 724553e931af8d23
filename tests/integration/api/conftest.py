"""API fixtures: a schema'd database and an empty Redis, the app on a real loopback port."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry

from tickvault.api.serve import build
from tickvault.config import Settings, TimescaleSettings, WriterSettings
from tickvault.monitoring.metrics import Metrics
from tickvault.storage.postgres import PostgresStore
from tickvault.storage.postgres.schema import init_database
from tickvault.storage.urls import StorageUrls

PLAIN = TimescaleSettings(mode="off")
ApiClient = TestClient[web.Request, web.Application]


@pytest.fixture
def db_url(database_url: str) -> str:
    init_database(database_url, PLAIN)
    return database_url


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[PostgresStore]:
    st = await PostgresStore.open(db_url, WriterSettings(batch_rows=1000), PLAIN, timed_flush=False)
    yield st
    await st.close()


@pytest.fixture
def metrics() -> Metrics:
    return Metrics(CollectorRegistry(), process_metrics=False)


async def start_client(
    database_url: str, redis_url: str, metrics: Metrics, **kwargs: Any
) -> ApiClient:
    settings = Settings(database_url=database_url, redis_url=redis_url)
    app, _ = build(settings, StorageUrls(database_url, redis_url, ()), metrics=metrics, **kwargs)
    client: ApiClient = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    return client


@pytest.fixture
async def api(db_url: str, redis_url: str, metrics: Metrics) -> AsyncIterator[ApiClient]:
    client = await start_client(db_url, redis_url, metrics, latest_interval_s=0.05)
    yield client
    await client.close()


@pytest.fixture
def get_json(api: ApiClient) -> Callable[..., Any]:
    async def get(path: str, status: int = 200, **params: Any) -> Any:
        resp = await api.get(path, params={k: str(v) for k, v in params.items()})
        body = await resp.json()
        assert resp.status == status, body
        return body

    return get
