"""Connecting to PostgreSQL: one place that turns driver failures into one-line errors.

Every connection runs with ``TimeZone=UTC`` so timestamps come back as UTC datetimes, and is
checked for the server version tickvault needs (15+: ``MERGE``-era partitioning features and
``date_bin`` are relied on, and 15 is what the project tests against).
"""

from __future__ import annotations

import re
from typing import Any

import psycopg

from tickvault.errors import SchemaError, StorageError

MIN_SERVER_VERSION = 150000  # PostgreSQL 15
CONNECT_TIMEOUT_S = 5
SCHEMA_TABLE = "tv_schema_version"


def redact(url: str) -> str:
    """The URL without its password, fit for messages and ``tickvault status``."""
    return re.sub(r"(://[^:/@]+):[^@/]*@", r"\1:***@", url)


def connect_kwargs() -> dict[str, Any]:
    return {"connect_timeout": CONNECT_TIMEOUT_S, "options": "-c TimeZone=UTC"}


DISK_FULL = "53100"  # SQLSTATE disk_full: the server could not extend a file
DISK_FULL_FIX = (
    "PostgreSQL's disk is full: free space on the volume of its data directory or tablespace"
    " (or move it), then run the command again"
)


def describe_error(exc: BaseException) -> str:
    """The first line of a driver error: the server's message, not a stack of context.

    A full disk names its cause and the fix, whatever the statement that hit it."""
    text = str(exc).strip().splitlines()
    first = text[0] if text else type(exc).__name__
    if getattr(exc, "sqlstate", None) == DISK_FULL:
        return f"{DISK_FULL_FIX} ({first})"
    return first


def check_server_version(version: int) -> None:
    """Refuse servers older than PostgreSQL 15 with a message naming both versions."""
    if version < MIN_SERVER_VERSION:
        major = version // 10000
        raise StorageError(
            f"PostgreSQL {major} is too old: tickvault needs PostgreSQL 15 or newer "
            "(native partitioning with date_bin, and TimescaleDB 2.9+ when used)"
        )


def connect_sync(url: str, *, autocommit: bool = False) -> psycopg.Connection[Any]:
    """A checked synchronous connection, or a one-line :class:`StorageError`."""
    try:
        conn = psycopg.connect(url, autocommit=autocommit, **connect_kwargs())
    except psycopg.Error as exc:
        raise StorageError(
            f"cannot connect to PostgreSQL at {redact(url)}: {describe_error(exc)}"
        ) from None
    try:
        check_server_version(conn.info.server_version)
    except StorageError:
        conn.close()
        raise
    return conn


async def connect_async(url: str, *, autocommit: bool = False) -> psycopg.AsyncConnection[Any]:
    """A checked asynchronous connection, or a one-line :class:`StorageError`."""
    try:
        conn = await psycopg.AsyncConnection.connect(url, autocommit=autocommit, **connect_kwargs())
    except psycopg.Error as exc:
        raise StorageError(
            f"cannot connect to PostgreSQL at {redact(url)}: {describe_error(exc)}"
        ) from None
    try:
        check_server_version(conn.info.server_version)
    except StorageError:
        await conn.close()
        raise
    return conn


def missing_schema(url: str) -> SchemaError:
    return SchemaError(
        f"database {redact(url)} has no tickvault schema; run `tickvault init` first"
    )
