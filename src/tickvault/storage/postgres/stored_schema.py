"""What a database's tickvault schema says about itself, read once when the writer opens.

The schema version (it must be this tickvault's: :func:`~tickvault.storage.postgres.schema.
require_current`), the storage mode recorded by ``init`` (TimescaleDB or native partitioning),
and, on plain PostgreSQL, each partitioned table's partition width.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg

from tickvault.storage.postgres.connection import missing_schema
from tickvault.storage.postgres.schema import require_current


@dataclass(frozen=True)
class StoredSchema:
    timescaledb: bool
    partition_intervals: dict[str, int]  # table -> seconds (plain PostgreSQL only)


async def read_stored_schema(conn: psycopg.AsyncConnection[Any], url: str) -> StoredSchema:
    """Raises :class:`~tickvault.errors.SchemaError` (naming the fix) for a missing schema or
    one of another version; leaves ``conn`` outside any transaction."""
    cur = await conn.execute("SELECT to_regclass('tv_schema_version') IS NOT NULL")
    row = await cur.fetchone()
    if not row or not row[0]:
        raise missing_schema(url)
    cur = await conn.execute("SELECT max(version) FROM tv_schema_version")
    row = await cur.fetchone()
    require_current(int(row[0]) if row and row[0] is not None else None, url)
    cur = await conn.execute("SELECT value = 'on' FROM tv_meta WHERE key = 'timescaledb'")
    row = await cur.fetchone()
    timescaledb = bool(row and row[0])
    intervals: dict[str, int] = {}
    if not timescaledb:
        cur = await conn.execute("SELECT parent, interval_s FROM tv_partitioning")
        intervals = {str(p): int(s) for p, s in await cur.fetchall()}
    await conn.rollback()
    return StoredSchema(timescaledb, intervals)
