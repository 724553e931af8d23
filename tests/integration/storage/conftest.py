"""Storage fixtures: an initialized database, event factories, and an optional TimescaleDB server.

The TimescaleDB server is started only for tests marked ``timescaledb`` and only when the
extension is installed (``TICKVAULT_TEST_TIMESCALE_URL`` names an existing one); otherwise those
tests are skipped.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psycopg
import pytest

from tickvault.config import WriterSettings
from tickvault.errors import EmbeddedServerError
from tickvault.storage.embedded import EmbeddedPostgres
from tickvault.storage.postgres import PostgresStore
from tickvault.storage.postgres.schema import init_database

from .helpers import PLAIN


@pytest.fixture
def db_url(database_url: str) -> str:
    """A fresh database with the tickvault schema (plain PostgreSQL mode)."""
    init_database(database_url, PLAIN)
    return database_url


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[PostgresStore]:
    st = await PostgresStore.open(db_url, WriterSettings(batch_rows=1000), PLAIN, timed_flush=False)
    yield st
    await st.close()


def _timescale_available(url: str) -> bool:
    with psycopg.connect(url) as conn:
        return (
            conn.execute(
                "SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'"
            ).fetchone()
            is not None
        )


@pytest.fixture(scope="session")
def timescale_server_url(pg_server_url: str) -> Iterator[str]:
    given = os.environ.get("TICKVAULT_TEST_TIMESCALE_URL")
    if given:
        yield given
        return
    if not _timescale_available(pg_server_url):
        pytest.skip("TimescaleDB extension is not installed on this machine")
    root = Path(tempfile.mkdtemp(prefix="tickvault-ts-", dir="/tmp"))
    os.chmod(root, 0o755)
    server = EmbeddedPostgres(root / "postgres", durable=False, timescaledb=True)
    try:
        server.start()
    except EmbeddedServerError as exc:
        server.stop()
        pytest.skip(f"cannot start PostgreSQL with TimescaleDB preloaded: {exc}")
    yield server.url
    server.stop()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def timescale_url(timescale_server_url: str) -> Iterator[str]:
    name = f"tv_ts_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(timescale_server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = timescale_server_url.rpartition("/")[0]
    yield f"{base}/{name}"
    with psycopg.connect(timescale_server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
