"""Quarantine rows by binary COPY: staged, then ``INSERT .. ON CONFLICT`` on the table's key.

Rejected input can come in bursts as large as the feed itself (a venue sending garbage, an
outlier storm), so it takes the writer's staged path rather than ``executemany`` (one round
trip and one index probe per row, measured in ``bench/quarantine.py``). The batch is binary-
COPYed into a per-connection temporary table (no constraints, ``ON COMMIT DELETE ROWS``), then
moved in one statement keyed like the table's unique index ``(exchange, recv_ts, reason,
md5(raw))``: a re-sent record, or the same record twice in a batch, is stored once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg

from tickvault.storage.postgres.records import QuarantineRecord

STAGE = "tv_stage_quarantine"
_COLUMNS = (
    ("exchange", "text"), ("symbol", "text"), ("channel", "text"), ("reason", "text"),
    ("detail", "text"), ("raw", "text"), ("recv_us", "int8"),
)  # fmt: skip

CREATE_STAGE_SQL = (
    f"CREATE TEMP TABLE IF NOT EXISTS {STAGE} ("
    + ", ".join(f"{c} {t}" for c, t in _COLUMNS)
    + ") ON COMMIT DELETE ROWS"
)
_COPY_SQL = f"COPY {STAGE} ({', '.join(c for c, _ in _COLUMNS)}) FROM STDIN (FORMAT BINARY)"
_INSERT_SQL = (
    "INSERT INTO quarantine (exchange, symbol, channel, reason, detail, raw, recv_ts) "
    "SELECT exchange, symbol, channel, reason, detail, raw,"
    " TIMESTAMPTZ '1970-01-01 00:00:00+00' + recv_us * INTERVAL '1 microsecond'"
    f" FROM {STAGE} ON CONFLICT (exchange, recv_ts, reason, md5(raw)) DO NOTHING"
)
_TYPES = [t for _, t in _COLUMNS]


def quarantine_row(q: QuarantineRecord) -> tuple[Any, ...]:
    # TIMESTAMPTZ keeps microseconds: the key compares recv_ts at that resolution.
    return (q.exchange, q.symbol, q.channel, q.reason, q.detail, q.raw, q.recv_ns // 1000)


async def copy_quarantine(
    conn: psycopg.AsyncConnection[Any], records: Sequence[QuarantineRecord]
) -> int:
    """Store the records not stored yet, in one transaction; returns how many were new.

    ``conn`` must have the staging table (``CREATE_STAGE_SQL``: the store's pool creates it on
    every new connection)."""
    async with conn.transaction(), conn.cursor() as cur:
        async with cur.copy(_COPY_SQL) as copy:
            copy.set_types(_TYPES)
            for record in records:
                await copy.write_row(quarantine_row(record))
        await cur.execute(_INSERT_SQL)
        return max(cur.rowcount, 0)
