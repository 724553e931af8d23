"""The maintenance jobs of ``PostgresStore``, apart from its writing: derived-candle refresh,
partitions ahead of time and retention."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import psycopg

from tickvault.config import TimescaleSettings
from tickvault.errors import StorageError
from tickvault.model import timeframe_ns
from tickvault.storage.postgres.connection import connect_kwargs, describe_error
from tickvault.storage.postgres.partitions import us_to_datetime

if TYPE_CHECKING:
    from psycopg_pool import AsyncConnectionPool


class MaintenanceMethods:
    url: str
    timescaledb: bool
    timescale: TimescaleSettings
    _pool: AsyncConnectionPool[Any]
    _known: dict[str, set[int]]  # partition starts the writer believes exist, per table

    async def refresh_derived_candles(
        self,
        timeframe: str,
        start_ns: int,
        end_ns: int,
        exchange: str | None = None,
        symbol: str | None = None,
    ) -> int:
        """Rebuild derived candles from stored trades for [start, end); returns bars changed."""
        step_s = timeframe_ns(timeframe) // 1_000_000_000
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT tv_refresh_derived_candles(%s, %s, %s, %s, %s, %s)",
                (
                    timeframe,
                    step_s,
                    us_to_datetime(start_ns // 1000),
                    us_to_datetime(-(-end_ns // 1000)),
                    exchange,
                    symbol,
                ),
            )
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def maintain(self) -> list[str]:
        """Partitions ahead of time and retention by partition drop (plain PostgreSQL)."""
        from tickvault.storage.postgres.schema import apply_policies, drop_expired_partitions

        def run() -> list[str]:
            with psycopg.connect(self.url, **connect_kwargs()) as conn, conn.transaction():
                apply_policies(conn, self.timescaledb, self.timescale)
                return [] if self.timescaledb else drop_expired_partitions(conn, self.timescale)

        try:
            dropped = await asyncio.to_thread(run)
        except psycopg.Error as exc:
            raise StorageError(f"storage maintenance failed: {describe_error(exc)}") from None
        if dropped:
            for known in self._known.values():
                known.clear()
        return dropped
