"""Versioned migrations and the ``init`` that applies them.

``migrate`` runs every pending migration inside ONE transaction, holding an advisory lock so two
``tickvault init`` at once cannot both apply it: either the whole schema version lands, or
nothing does. Applied versions are rows of ``tv_schema_version``; running ``init`` again applies
nothing new (it only re-syncs policies and creates partitions ahead).

The storage mode (TimescaleDB or plain PostgreSQL) is chosen once, when version 1 is applied,
and recorded in ``tv_meta``: the tables were built for it and it cannot change afterwards.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from tickvault.config import TimescaleSettings
from tickvault.errors import SchemaError, StorageError
from tickvault.storage.postgres import block_ddl, ddl, timescale
from tickvault.storage.postgres.connection import (
    connect_sync,
    describe_error,
    missing_schema,
    redact,
)
from tickvault.storage.postgres.partitions import AHEAD_PARTITIONS, PARTITION_SQL
from tickvault.storage.postgres.timescale import Statement

_LOCK_KEY = 0x7476_5F69  # "tv_i": serializes concurrent migrations
_TS_FIX = (
    "install TimescaleDB on the server and add it to shared_preload_libraries, or set"
    ' timescale.mode = "auto" (or "off") to use native partitioning'
)


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    statements: Callable[[bool, TimescaleSettings], list[Statement]]


def _split(script: str) -> list[Statement]:
    """A script of plain DDL as one composable (psycopg sends it as a single simple query)."""
    return [sql.SQL(script)]  # type: ignore[arg-type]


def _v1(timescaledb: bool, settings: TimescaleSettings) -> list[Statement]:
    out = _split(ddl.META_TABLES)
    for create in ddl.TIME_SERIES_TABLES.values():
        suffix = "" if timescaledb else " PARTITION BY RANGE (ts)"
        out += _split(create + suffix + ";")
    if timescaledb:
        out += timescale.hypertable_statements(settings)
    else:
        out += _split(PARTITION_SQL)
        for table, field in ddl.TIME_SERIES.items():
            out.append(
                sql.SQL(
                    "INSERT INTO tv_partitioning (parent, interval_s) "
                    "SELECT {table}, extract(epoch FROM {chunk}::interval)::bigint"
                ).format(table=sql.Literal(table), chunk=sql.Literal(getattr(settings, field)))
            )
    out += _split(ddl.TIME_SERIES_INDEXES)
    out += _split(ddl.PLAIN_TABLES)
    out += _split(ddl.FIRST_LAST_AGGREGATES)
    ensure = "" if timescaledb else ddl.ENSURE_CANDLE_PARTITIONS
    out += _split(ddl.REFRESH_FUNCTION.replace("{ensure}", ensure))
    if timescaledb:
        out += timescale.cagg_statements()
    return out


def _v2(timescaledb: bool, settings: TimescaleSettings) -> list[Statement]:
    # Gap repair: how often a repair was tried, when last, and "failed" (retried later).
    return _split(
        "ALTER TABLE gaps ADD COLUMN attempt_count integer NOT NULL DEFAULT 0,"
        " ADD COLUMN attempted_at timestamptz;"
        "ALTER TABLE gaps DROP CONSTRAINT gaps_status_check;"
        "ALTER TABLE gaps ADD CONSTRAINT gaps_status_check CHECK (status IN"
        " ('open', 'repairing', 'repaired', 'failed', 'unrepairable'));"
    )


def _v3(timescaledb: bool, settings: TimescaleSettings) -> list[Statement]:
    # Candle blocks: the columnar read cache inside PostgreSQL and the triggers keeping it exact.
    return _split(block_ddl.migration_sql(timescaledb))


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "base schema", _v1),
    Migration(2, "gap repair attempts", _v2),
    Migration(3, "candle blocks", _v3),
)
SCHEMA_VERSION = MIGRATIONS[-1].version


@dataclass(frozen=True)
class InitResult:
    timescaledb: bool
    version: int
    applied: tuple[int, ...]  # versions applied by this run (empty when already current)
    note: str = ""  # why TimescaleDB is off when it was available, etc.


def _table_exists(conn: psycopg.Connection[Any], name: str) -> bool:
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone()
    return bool(row and row[0])


def current_version(conn: psycopg.Connection[Any]) -> int | None:
    """The applied schema version, or None when the database has no tickvault schema."""
    if not _table_exists(conn, "tv_schema_version"):
        return None
    row = conn.execute("SELECT max(version) FROM tv_schema_version").fetchone()
    return int(row[0]) if row and row[0] is not None else None


def require_current(version: int | None, url: str) -> None:
    """Raise a :class:`SchemaError` naming the fix unless the schema is this tickvault's."""
    if version is None or version == 0:
        raise missing_schema(url)
    if version < SCHEMA_VERSION:
        raise SchemaError(
            f"database {redact(url)} has schema version {version}, this tickvault needs "
            f"{SCHEMA_VERSION}; run `tickvault init` to upgrade it"
        )
    if version > SCHEMA_VERSION:
        raise SchemaError(
            f"database {redact(url)} has schema version {version}, newer than this "
            f"tickvault's {SCHEMA_VERSION}; upgrade tickvault"
        )


def stored_mode(conn: psycopg.Connection[Any]) -> bool:
    row = conn.execute("SELECT value FROM tv_meta WHERE key = 'timescaledb'").fetchone()
    return bool(row and row[0] == "on")


def _choose_mode(conn: psycopg.Connection[Any], mode: str) -> tuple[bool, str]:
    """Decide TimescaleDB on/off for a new schema; creates the extension when it is used."""
    if mode == "off":
        return False, "TimescaleDB disabled by settings (timescale.mode = off)"
    available = conn.execute(
        "SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'"
    ).fetchone()
    if not available:
        if mode == "on":
            raise SchemaError(
                "timescale.mode is 'on' but the server has no timescaledb extension installed; "
                + _TS_FIX
            )
        return False, "TimescaleDB not installed on the server: using native partitioning"
    preload = conn.execute("SELECT current_setting('shared_preload_libraries')").fetchone()
    if not preload or "timescaledb" not in str(preload[0]):
        # CREATE EXTENSION would end the session with a FATAL error: check first.
        message = "TimescaleDB installed but not in shared_preload_libraries"
        if mode == "on":
            raise SchemaError(f"cannot enable TimescaleDB: {message}; {_TS_FIX}")
        return False, f"{message}: using native partitioning"
    try:
        with conn.transaction():  # a savepoint: a refused extension must not abort the migration
            conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
    except psycopg.Error as exc:
        if mode == "on":
            raise SchemaError(
                f"cannot enable TimescaleDB: {describe_error(exc)}; {_TS_FIX}"
            ) from None
        return False, f"TimescaleDB available but not usable ({describe_error(exc)})"
    return True, ""


def migrate(conn: psycopg.Connection[Any], settings: TimescaleSettings) -> InitResult:
    """Apply pending migrations atomically; idempotent. ``conn`` must not be in a transaction."""
    note = ""
    try:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
            version = current_version(conn)
            if version is None:
                use_ts, note = _choose_mode(conn, settings.mode)
            else:
                use_ts = stored_mode(conn)
            if version is not None and version > SCHEMA_VERSION:
                require_current(version, conn.info.dbname)
            applied: list[int] = []
            for migration in MIGRATIONS:
                if version is not None and migration.version <= version:
                    continue
                for statement in migration.statements(use_ts, settings):
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO tv_schema_version (version, name) VALUES (%s, %s)",
                    (migration.version, migration.name),
                )
                applied.append(migration.version)
            if applied:
                conn.execute(
                    "INSERT INTO tv_meta (key, value) VALUES ('timescaledb', %s) "
                    "ON CONFLICT (key) DO NOTHING",
                    ("on" if use_ts else "off",),
                )
                conn.execute(
                    "INSERT INTO audit_log (actor, action, detail) VALUES "
                    "('tickvault init', 'schema_migrated', %s)",
                    (Jsonb({"versions": applied, "timescaledb": use_ts}),),
                )
            apply_policies(conn, use_ts, settings)
    except psycopg.Error as exc:
        raise StorageError(
            f"schema migration failed, nothing was changed: {describe_error(exc)}"
        ) from None
    return InitResult(use_ts, SCHEMA_VERSION, tuple(applied), note)


def apply_policies(
    conn: psycopg.Connection[Any], use_ts: bool, settings: TimescaleSettings
) -> None:
    """Retention policies (TimescaleDB) or partitions ahead of time (plain PostgreSQL)."""
    if use_ts:
        for statement in timescale.retention_statements(settings):
            conn.execute(statement)
        return
    conn.execute(
        "SELECT tv_ensure_partition_range(parent, now() - make_interval(secs => interval_s),"
        " now() + make_interval(secs => interval_s * %s)) FROM tv_partitioning",
        (AHEAD_PARTITIONS,),
    )


def drop_expired_partitions(
    conn: psycopg.Connection[Any], settings: TimescaleSettings
) -> list[str]:
    """Plain-PostgreSQL retention: drop partitions wholly older than each table's retention."""
    dropped: list[str] = []
    for table, field in ddl.RETENTION.items():
        keep = getattr(settings, field)
        if keep is None:
            continue
        rows = conn.execute(
            "SELECT tv_drop_partitions_before(%s, now() - %s::interval)", (table, keep)
        ).fetchall()
        dropped += [str(r[0]) for r in rows]
    return dropped


def init_database(url: str, settings: TimescaleSettings) -> InitResult:
    """``tickvault init``: connect, migrate, disconnect."""
    with connect_sync(url, autocommit=True) as conn:
        return migrate(conn, settings)
