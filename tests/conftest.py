"""Shared fixtures: real PostgreSQL and Redis servers, never mocks.

``TICKVAULT_TEST_DATABASE_URL`` / ``TICKVAULT_TEST_REDIS_URL`` name servers to use; without them
the session starts throwaway servers of its own (tickvault's embedded servers, non-durable) in a
temporary folder and stops them at the end. Each test that asks for ``database_url`` gets a
fresh, empty database; each that asks for ``redis_url`` gets an empty Redis database, one that
no other test session on the same server uses at the same time.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis

from tickvault.storage.embedded import EmbeddedPostgres, EmbeddedRedis

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="session")
def server_root() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="tickvault-test-", dir="/tmp"))
    os.chmod(root, 0o755)
    yield root


@pytest.fixture(scope="session")
def pg_server_url(server_root: Path) -> Iterator[str]:
    given = os.environ.get("TICKVAULT_TEST_DATABASE_URL")
    if given:
        yield given
        return
    # Plain PostgreSQL: the fallback path must pass every test. TimescaleDB tests start their
    # own server with the extension (tests/integration/storage/conftest.py).
    server = EmbeddedPostgres(server_root / "postgres", durable=False, timescaledb=False)
    server.start()
    yield server.url
    server.stop()


@pytest.fixture(scope="session")
def redis_server_url(server_root: Path) -> Iterator[str]:
    given = os.environ.get("TICKVAULT_TEST_REDIS_URL")
    if given:
        yield given
        return
    server = EmbeddedRedis(server_root / "redis", durable=False)
    server.start()
    yield server.url
    server.stop()


def _with_dbname(url: str, dbname: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{dbname}"


@pytest.fixture
def database_url(pg_server_url: str) -> Iterator[str]:
    """A fresh empty database on the test server, dropped afterwards."""
    name = f"tv_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield _with_dbname(pg_server_url, name)
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# Test sessions of several worktrees share one Redis server (TICKVAULT_TEST_REDIS_URL). On one
# database, one session's fixture flushed the keys of another's running test, and the Binance
# request budget of one session (keys ``tv:ratelimit:binance:*``) paced the other's requests.
# Each session claims a database of its own in db 0; from db 2 up, as db 1 was everyone's.
_CLAIM_KEY = "tickvault-test:db-claim:{}"
_CLAIM_TTL_S = 6 * 3600  # a session killed before releasing its claim frees it after this


@pytest.fixture(scope="session")
def redis_db(redis_server_url: str) -> Iterator[str]:
    """The number of this session's own database on the test Redis server."""
    client = redis.Redis.from_url(_with_dbname(redis_server_url, "0"))
    token = uuid.uuid4().hex
    try:
        databases = int(client.config_get("databases")["databases"])
    except (redis.RedisError, KeyError, ValueError):
        databases = 16  # Redis's default, when CONFIG is not allowed
    for number in range(2, databases):
        if client.set(_CLAIM_KEY.format(number), token, nx=True, ex=_CLAIM_TTL_S):
            break
    else:
        client.close()
        raise RuntimeError(f"every test database 2..{databases - 1} of Redis is claimed")
    yield str(number)
    key = _CLAIM_KEY.format(number)
    if client.get(key) == token.encode():
        client.delete(key)
    client.close()


@pytest.fixture
def redis_url(redis_server_url: str, redis_db: str) -> Iterator[str]:
    """An empty Redis database on the test server (this session's own, flushed before and
    after)."""
    url = _with_dbname(redis_server_url, redis_db)
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield url
    client.flushdb()
    client.close()


@pytest.fixture
def fixtures_dir() -> Path:
    return FIXTURES
