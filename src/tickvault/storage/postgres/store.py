"""``PostgresStore``: the asynchronous, batched, idempotent writer of every tickvault table.

Market events (and feature values) are buffered per table and written in batches — when a
table's buffer reaches ``writer.batch_rows``, and every ``writer.flush_interval_s`` — by
``COPY`` straight into the table; only if that hits a unique violation (a row already stored,
or twice in the batch) is the batch written through a staging table and ``INSERT .. ON
CONFLICT`` instead (``rows.py``). After a batch with duplicates the next one of that table goes
straight to staging (replays come in runs); a batch without duplicates re-enables COPY.

Memory is bounded: rows buffered plus rows being written never exceed
``writer.max_buffered_rows``; ``write`` waits (backpressure) until a batch completes. Up to
``_CONCURRENCY`` batches are written at once, so Python encodes while PostgreSQL inserts.

Durability contract: ``write`` only buffers. ``await store.flush()`` returns once every row
handed to ``write`` before it is committed, or raises :class:`StorageError`; rows of a failed
batch go back to the buffer, so a later ``flush`` tries them again. Failed writes are retried
``writer.retries`` times with backoff on a fresh connection (idempotency makes that harmless).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import operator
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from tickvault.config import TimescaleSettings, WriterSettings
from tickvault.errors import StorageError
from tickvault.model import BookSnapshot, Candle, Ticker, Trade
from tickvault.storage.postgres import quarantine
from tickvault.storage.postgres.connection import (
    check_server_version,
    connect_kwargs,
    describe_error,
    redact,
)
from tickvault.storage.postgres.partitions import partition_start_us, us_to_datetime
from tickvault.storage.postgres.records import FeatureValue
from tickvault.storage.postgres.rows import EVENT_TABLES, SPECS, TableSpec, copy_direct, copy_staged
from tickvault.storage.postgres.store_maintenance import MaintenanceMethods
from tickvault.storage.postgres.store_records import RecordMethods
from tickvault.storage.postgres.stored_schema import read_stored_schema

log = logging.getLogger(__name__)

_CONCURRENCY = 2  # batches written at once (the pool holds one more for record methods)
# How long a write waits for a pooled connection. A healthy pool hands one over at once; a
# longer wait means the server is unreachable, which callers (the runner's ResilientSink)
# must learn in seconds, not after psycopg_pool's default 30 s per attempt.
_CONNECTION_WAIT_S = 3.0
_RETRYABLE = (psycopg.OperationalError, pg_errors.DeadlockDetected, pg_errors.SerializationFailure)

Writable = Trade | Candle | BookSnapshot | Ticker | FeatureValue


@dataclass
class TableStats:
    rows_in: int = 0  # rows handed to write()
    rows_inserted: int = 0  # new rows committed
    rows_duplicate: int = 0  # rows committed as no-ops (already stored)
    batches: int = 0
    retries: int = 0
    direct_batches: int = 0  # written by COPY straight into the table
    staged_batches: int = 0  # written through the staging table (duplicates, or after them)
    conflicts: int = 0  # direct COPYs rolled back by a unique violation, then staged


@dataclass
class WriterStats:
    tables: dict[str, TableStats] = field(default_factory=lambda: {t: TableStats() for t in SPECS})
    partitions_created: int = 0


class PostgresStore(RecordMethods, MaintenanceMethods):
    """Open with ``await PostgresStore.open(url)``; use as ``async with``; close flushes."""

    def __init__(
        self,
        url: str,
        pool: AsyncConnectionPool[Any],
        writer: WriterSettings,
        timescale: TimescaleSettings,
        timescaledb: bool,
        partition_intervals: dict[str, int],
    ) -> None:
        self.url = url
        self._pool = pool
        self.writer = writer
        self.timescale = timescale
        self.timescaledb = timescaledb
        self._intervals = partition_intervals  # table -> seconds (plain PostgreSQL only)
        self._known: dict[str, set[int]] = {t: set() for t in SPECS}  # partition starts (µs)
        self._buffers: dict[str, list[Any]] = {t: [] for t in SPECS}  # events, not yet sent
        # Try the direct COPY first? Off for a table after a batch with duplicates, back on
        # after one without. ``optimistic_copy = False`` forces the staged path (benchmarks).
        self._direct: dict[str, bool] = {t: True for t in SPECS}
        self.optimistic_copy = True
        self._inflight: set[asyncio.Task[None]] = set()
        self._inflight_rows = 0
        self._errors: list[BaseException] = []
        self._slots = asyncio.Semaphore(_CONCURRENCY)
        self._ticker: asyncio.Task[None] | None = None
        self.stats = WriterStats()

    # -- lifecycle ---------------------------------------------------------------------------

    @classmethod
    async def open(
        cls,
        url: str,
        writer: WriterSettings | None = None,
        timescale: TimescaleSettings | None = None,
        *,
        timed_flush: bool = True,
    ) -> PostgresStore:
        """Connect, check the schema, and start the timed flush (unless ``timed_flush=False``)."""

        async def configure(conn: psycopg.AsyncConnection[Any]) -> None:
            check_server_version(conn.info.server_version)
            async with conn.transaction():
                for spec in SPECS.values():
                    await conn.execute(spec.create_stage_sql())
                await conn.execute(quarantine.CREATE_STAGE_SQL)

        pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
            url,
            min_size=1,
            max_size=_CONCURRENCY + 1,
            kwargs=connect_kwargs(),
            configure=configure,
            check=AsyncConnectionPool.check_connection,
            open=False,
            name="tickvault-writer",
            timeout=_CONNECTION_WAIT_S,
        )
        try:
            await pool.open(wait=True, timeout=10)
            async with pool.connection() as conn:
                schema = await read_stored_schema(conn, url)
        except psycopg.Error as exc:
            await pool.close()
            raise StorageError(
                f"cannot connect to PostgreSQL at {redact(url)}: {describe_error(exc)}"
            ) from None
        except BaseException:
            await pool.close()
            raise
        store = cls(
            url,
            pool,
            writer or WriterSettings(),
            timescale or TimescaleSettings(),
            schema.timescaledb,
            schema.partition_intervals,
        )
        if timed_flush:
            store._ticker = asyncio.create_task(store._timed_flush(), name="tickvault-flush")
        return store

    async def close(self) -> None:
        """Flush what is buffered, then close the connections."""
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None
        try:
            await self.flush()
        finally:
            await self._pool.close()

    async def __aenter__(self) -> PostgresStore:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- writing market events -----------------------------------------------------------------

    @property
    def buffered_rows(self) -> int:
        return sum(len(b) for b in self._buffers.values())

    async def write(self, events: Iterable[Writable]) -> None:
        """Buffer events (Trade, Candle, BookSnapshot, Ticker, FeatureValue) for writing."""
        self._raise_failed()
        touched: set[str] = set()
        last_type: type | None = None
        buffer: list[Any] = []
        for event in events:
            if type(event) is not last_type:  # a call usually carries one kind of event
                table = EVENT_TABLES.get(type(event))
                if table is None:
                    raise TypeError(f"PostgresStore cannot store {type(event).__name__} events")
                last_type, buffer = type(event), self._buffers[table]
                touched.add(table)
            buffer.append(event)
        for table in touched:
            stats = self.stats.tables[table]
            buffer = self._buffers[table]
            while len(buffer) >= self.writer.batch_rows:
                batch, buffer[:] = (
                    buffer[: self.writer.batch_rows],
                    buffer[self.writer.batch_rows :],
                )
                stats.rows_in += len(batch)
                await self._launch(table, batch)
        # Backpressure: wait for batches in flight until we are under the memory bound.
        while (
            self._inflight
            and self.buffered_rows + self._inflight_rows > self.writer.max_buffered_rows
        ):
            await asyncio.wait(self._inflight, return_when=asyncio.FIRST_COMPLETED)
        self._raise_failed()

    async def write_features(self, values: Iterable[FeatureValue]) -> None:
        await self.write(values)

    async def flush(self) -> None:
        """Return once everything written so far is committed; raise if any of it failed."""
        for table, buffer in self._buffers.items():
            if buffer:
                batch = buffer[:]
                buffer.clear()
                self.stats.tables[table].rows_in += len(batch)
                await self._launch(table, batch)
        while self._inflight:
            await asyncio.wait(set(self._inflight))
        self._raise_failed()

    async def _launch(self, table: str, batch: list[Any]) -> None:
        await self._slots.acquire()
        self._inflight_rows += len(batch)
        task = asyncio.create_task(self._write_batch(table, batch))
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)

    async def _write_batch(self, table: str, batch: list[Any]) -> None:
        spec = SPECS[table]
        try:
            inserted = await self._with_retries(spec, batch)
            stats = self.stats.tables[table]
            stats.batches += 1
            stats.rows_inserted += inserted
            stats.rows_duplicate += len(batch) - inserted
        except BaseException as exc:
            # Nothing acknowledged may vanish: the rows go back to be written by a later flush.
            self._buffers[table][:0] = batch
            self.stats.tables[table].rows_in -= len(batch)
            self._errors.append(exc)
        finally:
            self._inflight_rows -= len(batch)
            self._slots.release()

    def _raise_failed(self) -> None:
        if self._errors:
            first = self._errors[0]
            self._errors.clear()
            if isinstance(first, StorageError):
                raise first
            if isinstance(first, asyncio.CancelledError):
                raise StorageError("a write was cancelled; its rows are buffered again")
            raise StorageError(f"write failed: {describe_error(first)}") from first

    async def _with_retries(self, spec: TableSpec, batch: list[Any]) -> int:
        attempt = 0
        stats = self.stats.tables[spec.table]
        while True:
            try:
                if not self.timescaledb:
                    await self._ensure_partitions(spec, batch)
                async with self._pool.connection() as conn:
                    if self.optimistic_copy and self._direct[spec.table]:
                        if await copy_direct(conn, spec, batch):
                            stats.direct_batches += 1
                            return len(batch)
                        stats.conflicts += 1
                    inserted = await copy_staged(conn, spec, batch)
                    stats.staged_batches += 1
                    self._direct[spec.table] = inserted == len(batch)
                    return inserted
            except pg_errors.DiskFull as exc:
                # Not retried: a full disk does not empty itself in seconds. The COPY (or the
                # staged insert) ran in one transaction, so nothing of the batch is stored; its
                # rows go back to the buffer and a later flush, once there is space, writes them.
                raise StorageError(
                    f"writing {len(batch)} rows to {spec.table} failed, none stored: "
                    f"{describe_error(exc)}"
                ) from None
            except PoolTimeout:  # no server to retry against: report the outage now
                raise StorageError(
                    f"writing {len(batch)} rows to {spec.table} failed: PostgreSQL unreachable"
                    f" (no connection within {_CONNECTION_WAIT_S:g} s)"
                ) from None
            except _RETRYABLE as exc:
                reason = describe_error(exc)
            except pg_errors.CheckViolation as exc:
                # "no partition of relation found for row": a partition we believed in is gone
                # (dropped by retention); forget the cache and create it again.
                if self.timescaledb or "partition" not in str(exc):
                    raise StorageError(
                        f"writing {spec.table} failed: {describe_error(exc)}"
                    ) from None
                self._known[spec.table].clear()
                reason = describe_error(exc)
            except psycopg.Error as exc:
                raise StorageError(
                    f"writing {len(batch)} rows to {spec.table} failed: {describe_error(exc)}"
                ) from None
            if attempt >= self.writer.retries:
                raise StorageError(
                    f"writing {len(batch)} rows to {spec.table} failed after "
                    f"{attempt + 1} attempts: {reason}"
                )
            attempt += 1
            stats.retries += 1
            log.warning("retrying %s batch (attempt %d): %s", spec.table, attempt, reason)
            await asyncio.sleep(min(0.05 * 2**attempt, 5.0))

    async def _ensure_partitions(self, spec: TableSpec, batch: Sequence[Any]) -> None:
        step = self._intervals[spec.table] * 1_000_000
        times_us = [ts_ns // 1000 for ts_ns in map(operator.attrgetter(spec.ts_attr), batch)]
        first, last = min(times_us), max(times_us)
        if first - first % step == last - last % step:  # the usual case: one partition
            starts = {first - first % step}
        else:
            starts = {t - t % step for t in times_us}
        missing = starts - self._known[spec.table]
        if not missing:
            return
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT tv_ensure_partitions(%s, %s)",
                (spec.table, [us_to_datetime(s) for s in sorted(missing)]),
            )
            row = await cur.fetchone()
            self.stats.partitions_created += int(row[0]) if row else 0
        self._known[spec.table] |= missing

    async def _timed_flush(self) -> None:
        while True:
            await asyncio.sleep(self.writer.flush_interval_s)
            try:
                await self.flush()
            except StorageError as exc:  # surfaced again by the next write()/flush()
                self._errors.append(exc)
                log.warning("timed flush failed: %s", exc)

    async def replace_features(self, values: Sequence[FeatureValue]) -> int:
        """Store recomputed features, replacing the values stored for the same bars (the live
        writer never overwrites a feature); returns rows inserted or changed."""
        if not values:
            return 0
        spec = SPECS["features"]
        if not self.timescaledb:
            await self._ensure_partitions(spec, values)
        targets = "exchange, symbol, timeframe, name, ts, value"
        try:
            async with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
                async with cur.copy(spec.copy_sql()) as copy:
                    copy.set_types(spec.types)
                    for v in values:
                        await copy.write_row(spec.to_row(v))
                await cur.execute(
                    f"INSERT INTO features AS f ({targets}) SELECT DISTINCT ON (exchange, symbol,"
                    " timeframe, name, ts_us) exchange, symbol, timeframe, name,"
                    " TIMESTAMPTZ '1970-01-01 00:00:00+00' + ts_us * INTERVAL '1 microsecond',"
                    f" value FROM {spec.stage} ORDER BY exchange, symbol, timeframe, name, ts_us"
                    " ON CONFLICT (exchange, symbol, timeframe, name, ts) DO UPDATE"
                    " SET value = EXCLUDED.value WHERE f.value IS DISTINCT FROM EXCLUDED.value"
                )
                changed: int = max(cur.rowcount, 0)
                return changed
        except psycopg.Error as exc:
            raise StorageError(f"writing features failed: {describe_error(exc)}") from None


__all__ = ["PostgresStore", "TableStats", "WriterStats", "partition_start_us"]
