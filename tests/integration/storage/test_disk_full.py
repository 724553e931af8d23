"""PostgreSQL's disk fills up: one clear line naming the cause and the fix, no partial batch
stored, and the same write succeeds once there is space again (no duplicates).

A throwaway PostgreSQL server of its own keeps its catalogs and WAL in a normal folder, while
every tickvault table lives in a tablespace on a small tmpfs (``small_disk``), which the test
fills to the brim with a filler file. That is a real full disk: the server's own ``could not
extend file ... No space left on device`` (SQLSTATE 53100), not a simulated error.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from small_disk import fill, free, small_disk
from tickvault.config import WriterSettings
from tickvault.errors import StorageError
from tickvault.exchanges.sim import SimConfig, Simulator
from tickvault.storage.embedded import EmbeddedPostgres
from tickvault.storage.postgres import PostgresStore
from tickvault.storage.postgres.schema import init_database

from .helpers import PLAIN, count, make_trades

_LEAVE = 48 * 1024  # bytes left free: room for a few pages, not for a batch of trades


@dataclass
class FullDiskServer:
    url: str
    disk: Path  # the tmpfs; the tablespace ``small`` is a folder on it


@pytest.fixture(scope="module")
def full_disk_server() -> Iterator[FullDiskServer]:
    root = Path(tempfile.mkdtemp(prefix="tickvault-diskfull-", dir="/tmp"))
    os.chmod(root, 0o755)
    try:
        with small_disk(root / "disk", size_mb=24) as disk:
            space = disk / "tablespace"
            space.mkdir()
            entry = pwd.getpwnam("postgres")  # root runs the embedded server as postgres
            os.chown(space, entry.pw_uid, entry.pw_gid)
            server = EmbeddedPostgres(root / "postgres", durable=False, timescaledb=False)
            server.start()
            try:
                with psycopg.connect(server.url, autocommit=True) as conn:
                    conn.execute(f"CREATE TABLESPACE small LOCATION '{space}'")
                yield FullDiskServer(server.url, disk)
            finally:
                server.stop()  # before the unmount: the server holds files on the tmpfs
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def small_db(full_disk_server: FullDiskServer) -> Iterator[str]:
    """A database whose tables (not its catalogs) are on the small disk, schema initialized."""
    name = f"tv_full_{uuid.uuid4().hex[:12]}"
    base = full_disk_server.url.rpartition("/")[0]
    with psycopg.connect(full_disk_server.url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
        conn.execute(f'ALTER DATABASE "{name}" SET default_tablespace = small')
    url = f"{base}/{name}"
    init_database(url, PLAIN)
    yield url
    free(full_disk_server.disk)
    with psycopg.connect(full_disk_server.url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _one_line_disk_full(message: str) -> None:
    assert "\n" not in message.strip() and "Traceback" not in message
    assert "disk is full" in message and "No space left on device" in message  # the cause
    assert "free space" in message  # and the fix


def test_tables_live_on_the_small_disk(small_db: str) -> None:
    assert count(
        small_db,
        "SELECT count(*) FROM pg_class c JOIN pg_tablespace t ON t.oid = c.reltablespace"
        " WHERE t.spcname = 'small' AND c.relname LIKE 'trades%'",
    ) > 0  # fmt: skip


async def test_writer_reports_full_disk_stores_nothing_then_recovers(
    small_db: str, full_disk_server: FullDiskServer
) -> None:
    trades = make_trades(20_000)
    store = await PostgresStore.open(
        small_db, WriterSettings(batch_rows=20_000), PLAIN, timed_flush=False
    )
    try:
        fill(full_disk_server.disk, _LEAVE)
        await store.write(trades)
        with pytest.raises(StorageError) as failed:
            await store.flush()
        _one_line_disk_full(str(failed.value))
        assert "20000 rows to trades failed, none stored" in str(failed.value)
        assert count(small_db, "SELECT count(*) FROM trades") == 0  # no partial batch
        assert store.buffered_rows == 20_000  # nothing acknowledged was dropped
        # still full: fails the same way, still nothing stored
        with pytest.raises(StorageError, match="disk is full"):
            await store.flush()
        assert count(small_db, "SELECT count(*) FROM trades") == 0

        free(full_disk_server.disk)
        await store.flush()  # the same rows, now with room
        await store.write(trades[:5_000])  # and a resend of a part of them changes nothing
        await store.flush()
    finally:
        free(full_disk_server.disk)
        await store.close()
    assert count(small_db, "SELECT count(*) FROM trades") == 20_000
    assert count(small_db, "SELECT count(DISTINCT trade_id) FROM trades") == 20_000
    assert store.stats.tables["trades"].rows_inserted == 20_000


def _cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The installed entry point in a fresh process, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-c", "from tickvault.cli import main; main()", *args],
        env={**os.environ, **env, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_cli_init_on_a_full_disk(full_disk_server: FullDiskServer, tmp_path: Path) -> None:
    name = f"tv_full_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(full_disk_server.url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
        conn.execute(f'ALTER DATABASE "{name}" SET default_tablespace = small')
    url = f"{full_disk_server.url.rpartition('/')[0]}/{name}"
    env = {"TICKVAULT_DATABASE_URL": url, "TICKVAULT_DATA_DIR": str(tmp_path)}
    try:
        fill(full_disk_server.disk, 8 * 1024)
        failed = _cli(["init"], env)
        assert failed.returncode == 3, failed.stderr
        assert failed.stderr.startswith("error: schema migration failed, nothing was changed")
        _one_line_disk_full(failed.stderr)
        assert count(url, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == 0
        free(full_disk_server.disk)
        done = _cli(["init"], env)
        assert done.returncode == 0, done.stderr
        assert "applied 1, 2, 3" in done.stdout
    finally:
        free(full_disk_server.disk)
        with psycopg.connect(full_disk_server.url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class _SimThread:
    """The simulator on a loop of its own thread: the CLI process talks to it over loopback."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> Simulator:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.sim.start(), self.loop).result(30)
        return self.sim

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.sim.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def test_cli_backfill_on_a_full_disk_then_again_with_space(
    small_db: str, full_disk_server: FullDiskServer, redis_url: str, tmp_path: Path
) -> None:
    anchor_ns = 1_767_225_600_000_000_000  # 2026-01-01: a fixed, reproducible history
    sim = Simulator(
        SimConfig(symbols=["BTC-USDT"], rate=0.0, history_s=900, anchor_ns=anchor_ns, tick_s=0.01)
    )
    with _SimThread(sim):
        config = tmp_path / "tickvault.toml"
        config.write_text(
            f'database_url = "{small_db}"\nredis_url = "{redis_url}"\n'
            f'data_dir = "{tmp_path / "data"}"\n\n[endpoints.binance]\n'
            f'rest_url = "{sim.endpoints["binance"].rest_url}"\n'
            f'ws_url = "{sim.endpoints["binance"].ws_url}"\n'
        )
        args = [
            "backfill", "--config", str(config), "--exchange", "binance", "--symbols", "BTC-USDT",
            "--kinds", "trades", "--since", "2025-12-31T23:45", "--until", "2026-01-01",
        ]  # fmt: skip
        fill(full_disk_server.disk, _LEAVE)
        failed = _cli(args, {})
        assert failed.returncode == 3, failed.stdout + failed.stderr
        assert failed.stderr.startswith("error: writing ")
        _one_line_disk_full(failed.stderr)
        assert count(small_db, "SELECT count(*) FROM trades") == 0  # no partial page
        assert count(small_db, "SELECT count(*) FROM ingest_checkpoints") == 0

        free(full_disk_server.disk)
        done = _cli(args, {})
        again = _cli(args, {})  # everything done: nothing new
    assert done.returncode == 0, done.stdout + done.stderr
    assert again.returncode == 0 and "done before" in again.stdout
    # Binance history is served as aggregate trades: the stored id is the aggregate id.
    agg_ids = {str(t.trade_id): str(t.agg_id) for t in sim.market("binance", "BTC-USDT").trades}
    window = sim.truth_trades("binance", "BTC-USDT", anchor_ns - 900 * 10**9, anchor_ns)
    truth = sorted(agg_ids[t["trade_id"]] for t in window)
    with psycopg.connect(small_db) as conn:
        stored = sorted(str(r[0]) for r in conn.execute("SELECT trade_id FROM trades"))
    assert len(truth) > 1000 and stored == truth  # every trade, once
