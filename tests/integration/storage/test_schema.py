"""Migrations, partitions (ahead of time, on demand) and partition-drop retention."""

from __future__ import annotations

import psycopg
import pytest

from tickvault.config import TimescaleSettings
from tickvault.errors import SchemaError, StorageError
from tickvault.storage.postgres import PostgresStore
from tickvault.storage.postgres.connection import check_server_version
from tickvault.storage.postgres.schema import SCHEMA_VERSION, init_database

from .helpers import NS, PLAIN, count, make_trades

TABLES = (
    "trades", "candles", "book_snapshots", "tickers", "instruments", "quarantine",
    "ingest_checkpoints", "quality_metrics", "features", "signals", "gaps", "audit_log",
    "candle_blocks",
)  # fmt: skip


def test_init_is_idempotent_and_records_the_version(database_url: str) -> None:
    first = init_database(database_url, PLAIN)
    assert first.applied == (1, 2, 3) and first.version == SCHEMA_VERSION and not first.timescaledb
    second = init_database(database_url, PLAIN)
    assert second.applied == () and second.version == SCHEMA_VERSION
    assert count(database_url, "SELECT count(*) FROM tv_schema_version") == 3
    assert count(database_url, "SELECT max(version) FROM tv_schema_version") == SCHEMA_VERSION
    with psycopg.connect(database_url) as conn:
        for table in TABLES:
            assert conn.execute("SELECT to_regclass(%s)", (table,)).fetchone() != (None,), table
        kinds = conn.execute(
            "SELECT DISTINCT data_type FROM information_schema.columns WHERE table_schema ="
            " 'public' AND (column_name LIKE '%%ts' OR column_name LIKE '%%_at')"
            " AND table_name NOT LIKE '%%\\_p2%%'"
        ).fetchall()
    assert kinds == [("timestamp with time zone",)]  # TIMESTAMPTZ everywhere
    # one audit row for the one migration that ran
    assert count(database_url, "SELECT count(*) FROM audit_log") == 1


def test_failed_migration_leaves_nothing_behind(database_url: str) -> None:
    # mode "on" without a usable TimescaleDB fails inside the migration transaction
    with pytest.raises(SchemaError, match="TimescaleDB"):
        init_database(database_url, TimescaleSettings(mode="on"))
    with psycopg.connect(database_url) as conn:
        tables = conn.execute(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
        ).fetchone()
    assert tables == (0,)


def test_bad_chunk_interval_rolls_back(database_url: str) -> None:
    with pytest.raises(StorageError, match="nothing was changed"):
        init_database(database_url, TimescaleSettings(mode="off", trades_chunk="5 minutes"))
    assert count(database_url, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == 0


def test_old_servers_are_refused() -> None:
    with pytest.raises(StorageError, match="PostgreSQL 14 is too old"):
        check_server_version(140011)
    check_server_version(150004)


def test_partitions_exist_ahead_of_now(db_url: str) -> None:
    # yesterday, today and 3 days ahead for the daily tables
    ahead = count(
        db_url,
        "SELECT count(*) FROM tv_partitions WHERE parent = 'trades' AND range_start > now()",
    )
    assert ahead == 3
    assert count(db_url, "SELECT count(*) FROM tv_partitions WHERE parent = 'candles'") >= 2


async def test_partitions_created_on_demand_for_old_data(db_url: str) -> None:
    jan_2024 = make_trades(10, step_ns=3600 * NS)  # 2024-01-01 00:00 .. 09:00
    mar_2024 = make_trades(5, start_ns=1_709_251_200 * NS, first_id=100)  # 2024-03-01
    store = await PostgresStore.open(db_url, timescale=PLAIN, timed_flush=False)
    try:
        await store.write(jan_2024 + mar_2024)
        await store.flush()
    finally:
        await store.close()
    names = {
        r[0]
        for r in psycopg.connect(db_url)
        .execute("SELECT name FROM tv_partitions WHERE parent = 'trades'")
        .fetchall()
    }
    assert {"trades_p20240101", "trades_p20240301"} <= names
    assert count(db_url, "SELECT count(*) FROM trades_p20240101") == 10
    assert count(db_url, "SELECT count(*) FROM trades_p20240301") == 5
    assert store.stats.partitions_created == 2


async def test_retention_drops_old_partitions_and_writer_recovers(db_url: str) -> None:
    settings = TimescaleSettings(mode="off", retention_trades="30 days")
    store = await PostgresStore.open(db_url, timescale=settings, timed_flush=False)
    try:
        await store.write(make_trades(3))  # 2024-01-01: far older than 30 days
        await store.flush()
        dropped = await store.maintain()
        assert "trades_p20240101" in dropped
        assert count(db_url, "SELECT count(*) FROM trades") == 0
        assert count(db_url, "SELECT (to_regclass('trades_p20240101') IS NULL)::int") == 1
        # partitions for recent data are kept
        assert count(db_url, "SELECT count(*) FROM tv_partitions WHERE parent = 'trades'") >= 4
        # a late write into the dropped range recreates its partition instead of failing
        await store.write(make_trades(2))
        await store.flush()
        assert count(db_url, "SELECT count(*) FROM trades") == 2
    finally:
        await store.close()
