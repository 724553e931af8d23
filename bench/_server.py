"""Shared bench plumbing: a database to run in (given URL, or a throwaway embedded server)."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg

from tickvault.config import TimescaleSettings
from tickvault.storage.embedded import EmbeddedPostgres
from tickvault.storage.postgres.schema import init_database


@contextlib.contextmanager
def bench_database(url: str | None, timescale: TimescaleSettings) -> Iterator[str]:
    """A fresh database with the tickvault schema; dropped (and the server stopped) after."""
    server: EmbeddedPostgres | None = None
    root: Path | None = None
    if url is None:
        root = Path(tempfile.mkdtemp(prefix="tickvault-bench-", dir="/tmp"))
        os.chmod(root, 0o755)
        server = EmbeddedPostgres(root / "postgres", durable=False)
        url = server.start()
    name = f"tv_bench_{uuid.uuid4().hex[:10]}"
    base = url.rpartition("/")[0]
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    db_url = f"{base}/{name}"
    try:
        init_database(db_url, timescale)
        yield db_url
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if server is not None:
            server.stop()
        if root is not None:
            shutil.rmtree(root, ignore_errors=True)
