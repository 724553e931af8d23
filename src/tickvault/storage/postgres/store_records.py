"""The low-volume tables of ``PostgresStore``: written directly (no buffering), each idempotent.

instruments (upsert), quarantine (binary COPY, keyed on what arrived, when, why), ingest checkpoints
(save/load), gaps (record/list/mark), quality metrics (upsert per window), signals (a signal
emitted is a fact: insert once), audit log (append).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg.types.json import Jsonb

from tickvault.errors import StorageError
from tickvault.model import Candle, CandleSource, DecodeError, Gap, Instrument
from tickvault.storage.postgres.connection import describe_error
from tickvault.storage.postgres.partitions import us_to_datetime
from tickvault.storage.postgres.quarantine import copy_quarantine
from tickvault.storage.postgres.records import (
    GAP_STATUSES,
    Checkpoint,
    GapRecord,
    QualityMetric,
    QuarantineRecord,
    Signal,
)

if TYPE_CHECKING:
    from psycopg_pool import AsyncConnectionPool


def _dt(ts_ns: int | None) -> datetime | None:
    return None if ts_ns is None else us_to_datetime(ts_ns // 1000)


def _ns(value: datetime | None) -> int | None:
    if value is None:
        return None
    delta = value - us_to_datetime(0)
    return (delta.days * 86_400_000_000 + delta.seconds * 1_000_000 + delta.microseconds) * 1000


class RecordMethods:
    _pool: AsyncConnectionPool[Any]

    async def _many(self, what: str, query: str, rows: Sequence[tuple[Any, ...]]) -> int:
        if not rows:
            return 0
        try:
            async with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
                await cur.executemany(query, rows)
                count: int = max(cur.rowcount, 0)
                return count
        except psycopg.Error as exc:
            raise StorageError(f"writing {what} failed: {describe_error(exc)}") from None

    async def _fetch(self, query: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        try:
            async with self._pool.connection() as conn:
                cur = await conn.execute(query, params)
                rows: list[tuple[Any, ...]] = await cur.fetchall()
                return rows
        except psycopg.Error as exc:
            raise StorageError(f"reading failed: {describe_error(exc)}") from None

    async def upsert_instruments(self, instruments: Iterable[Instrument]) -> int:
        rows = [
            (i.exchange, i.symbol, i.exchange_symbol, i.base, i.quote, i.tick_size, i.lot_size,
             i.status, i.ws_symbol, list(i.aliases))
            for i in instruments
        ]  # fmt: skip
        return await self._many(
            "instruments",
            "INSERT INTO instruments AS i (exchange, symbol, exchange_symbol, base, quote, "
            "tick_size, lot_size, status, ws_symbol, aliases) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (exchange, symbol) DO UPDATE SET exchange_symbol = EXCLUDED.exchange_symbol,"
            " base = EXCLUDED.base, quote = EXCLUDED.quote, tick_size = EXCLUDED.tick_size,"
            " lot_size = EXCLUDED.lot_size, status = EXCLUDED.status,"
            " ws_symbol = EXCLUDED.ws_symbol, aliases = EXCLUDED.aliases, updated_at = now() "
            "WHERE (i.exchange_symbol, i.base, i.quote, i.tick_size, i.lot_size, i.status,"
            " i.ws_symbol, i.aliases) IS DISTINCT FROM (EXCLUDED.exchange_symbol, EXCLUDED.base,"
            " EXCLUDED.quote, EXCLUDED.tick_size, EXCLUDED.lot_size, EXCLUDED.status,"
            " EXCLUDED.ws_symbol, EXCLUDED.aliases)",
            rows,
        )

    async def quarantine(self, records: Iterable[QuarantineRecord | DecodeError]) -> int:
        """Store rejected input with its reason and raw payload; returns rows newly stored.

        Binary COPY through a staging table (``quarantine.py``): a burst of rejects costs one
        round trip, and a record stored before is not stored again."""
        batch = [
            QuarantineRecord.from_decode_error(r) if isinstance(r, DecodeError) else r
            for r in records
        ]
        if not batch:
            return 0
        try:
            async with self._pool.connection() as conn:
                return await copy_quarantine(conn, batch)
        except psycopg.Error as exc:
            raise StorageError(f"writing quarantine failed: {describe_error(exc)}") from None

    async def list_quarantine(
        self, exchange: str | None = None, limit: int = 100
    ) -> list[QuarantineRecord]:
        rows = await self._fetch(
            "SELECT exchange, reason, detail, raw, recv_ts, symbol, channel FROM quarantine "
            "WHERE %s::text IS NULL OR exchange = %s ORDER BY recv_ts DESC LIMIT %s",
            (exchange, exchange, limit),
        )
        return [QuarantineRecord(r[0], r[1], r[2], r[3], _ns(r[4]) or 0, r[5], r[6]) for r in rows]

    async def save_checkpoint(self, cp: Checkpoint) -> None:
        await self._many(
            "checkpoint",
            "INSERT INTO ingest_checkpoints (exchange, symbol, kind, cursor, since_ts, until_ts,"
            " last_ts, done, updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, now()) "
            "ON CONFLICT (exchange, symbol, kind) DO UPDATE SET cursor = EXCLUDED.cursor,"
            " since_ts = EXCLUDED.since_ts, until_ts = EXCLUDED.until_ts,"
            " last_ts = EXCLUDED.last_ts, done = EXCLUDED.done, updated_at = now()",
            [(cp.exchange, cp.symbol, cp.kind, cp.cursor, _dt(cp.since_ns), _dt(cp.until_ns),
              _dt(cp.last_ns), cp.done)],
        )  # fmt: skip

    async def load_checkpoint(self, exchange: str, symbol: str, kind: str) -> Checkpoint | None:
        rows = await self._fetch(
            "SELECT cursor, since_ts, until_ts, last_ts, done FROM ingest_checkpoints "
            "WHERE exchange = %s AND symbol = %s AND kind = %s",
            (exchange, symbol, kind),
        )
        if not rows:
            return None
        c, since, until, last, done = rows[0]
        return Checkpoint(exchange, symbol, kind, c, _ns(since), _ns(until), _ns(last), done)

    async def record_gaps(self, gaps: Iterable[Gap], detail: str | None = None) -> list[int]:
        """Store detected gaps (a gap seen twice is stored once); returns their ids."""
        ids: list[int] = []
        try:
            async with self._pool.connection() as conn, conn.transaction():
                for g in gaps:
                    cur = await conn.execute(
                        "INSERT INTO gaps AS g (exchange, symbol, channel, from_ts, to_ts, reason,"
                        " detail) VALUES (%s, %s, %s, %s, %s, %s, %s) "
                        "ON CONFLICT (exchange, symbol, channel, from_ts, to_ts) "
                        "DO UPDATE SET reason = g.reason RETURNING id",
                        (g.exchange, g.symbol, g.channel, _dt(g.from_ns), _dt(g.to_ns), g.reason,
                         detail),
                    )  # fmt: skip
                    row = await cur.fetchone()
                    assert row is not None
                    ids.append(int(row[0]))
        except psycopg.Error as exc:
            raise StorageError(f"recording gaps failed: {describe_error(exc)}") from None
        return ids

    async def list_gaps(
        self, exchange: str | None = None, symbol: str | None = None, status: str | None = None
    ) -> list[GapRecord]:
        rows = await self._fetch(
            "SELECT id, exchange, symbol, channel, from_ts, to_ts, reason, detected_at, status,"
            " repaired_at, detail, attempt_count, attempted_at FROM gaps"
            " WHERE (%s::text IS NULL OR exchange = %s)"
            " AND (%s::text IS NULL OR symbol = %s) AND (%s::text IS NULL OR status = %s)"
            " ORDER BY from_ts, id",
            (exchange, exchange, symbol, symbol, status, status),
        )
        return [
            GapRecord(r[0], r[1], r[2], r[3], _ns(r[4]) or 0, _ns(r[5]) or 0, r[6],
                      _ns(r[7]) or 0, r[8], _ns(r[9]), r[10], r[11], _ns(r[12]))
            for r in rows
        ]  # fmt: skip

    async def mark_gap(
        self, gap_id: int, status: str = "repaired", detail: str | None = None
    ) -> None:
        """Set a gap's status: ``repairing`` stamps the attempt time, ``failed`` counts one more
        failed attempt, ``repaired`` stamps the repair time."""
        if status not in GAP_STATUSES:
            raise ValueError(f"unknown gap status {status!r}; known: {', '.join(GAP_STATUSES)}")
        done = await self._many(
            "gap status",
            "UPDATE gaps SET status = %s, detail = coalesce(%s, detail), repaired_at ="
            " CASE WHEN %s = 'repaired' THEN now() ELSE repaired_at END,"
            " attempt_count = attempt_count + CASE WHEN %s = 'failed' THEN 1 ELSE 0 END,"
            " attempted_at = CASE WHEN %s = 'repairing' THEN now() ELSE attempted_at END"
            " WHERE id = %s",
            [(status, detail, status, status, status, gap_id)],
        )
        if done == 0:
            raise StorageError(f"no gap with id {gap_id}")

    async def write_quality(self, metrics: Iterable[QualityMetric]) -> int:
        rows = [
            (m.exchange, m.symbol, m.metric, _dt(m.ts_ns), m.value,
             None if m.detail is None else Jsonb(m.detail))
            for m in metrics
        ]  # fmt: skip
        return await self._many(
            "quality metrics",
            "INSERT INTO quality_metrics AS q (exchange, symbol, metric, ts, value, detail) "
            "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (exchange, symbol, metric, ts) "
            "DO UPDATE SET value = EXCLUDED.value, detail = EXCLUDED.detail "
            "WHERE (q.value, q.detail) IS DISTINCT FROM (EXCLUDED.value, EXCLUDED.detail)",
            rows,
        )

    async def write_signals(self, signals: Iterable[Signal]) -> int:
        rows = [
            (s.exchange, s.symbol, s.timeframe, s.name, _dt(s.ts_ns), s.value, s.side,
             None if s.detail is None else Jsonb(s.detail))
            for s in signals
        ]  # fmt: skip
        return await self._many(
            "signals",
            "INSERT INTO signals (exchange, symbol, timeframe, name, ts, value, side, detail) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (exchange, symbol, name, timeframe, ts) DO NOTHING",
            rows,
        )

    # -- recomputation after a gap repair ------------------------------------------------------

    async def closed_candles(
        self,
        exchange: str,
        symbol: str,
        timeframe: str,
        source: str,
        since_ns: int,
        until_ns: int | None = None,
    ) -> list[Candle]:
        """Stored closed bars of one stream and source with open time in [since, until)."""
        rows = await self._fetch(
            "SELECT ts, open, high, low, close, volume, event_ts, recv_ts, trade_count,"
            " quote_volume, vwap, buy_volume, sell_volume FROM candles"
            " WHERE exchange = %s AND symbol = %s AND timeframe = %s AND source = %s AND closed"
            " AND ts >= %s AND (%s::timestamptz IS NULL OR ts < %s) ORDER BY ts",
            (exchange, symbol, timeframe, source, _dt(since_ns), _dt(until_ns), _dt(until_ns)),
        )
        kind = CandleSource(source)
        return [
            Candle(exchange, symbol, timeframe, _ns(r[0]) or 0, r[1], r[2], r[3], r[4], r[5],
                   True, _ns(r[6]) or 0, _ns(r[7]) or 0, kind, r[8], r[9], r[10], r[11], r[12])
            for r in rows
        ]  # fmt: skip

    async def vwap_sums(
        self,
        exchange: str,
        symbol: str,
        timeframe: str,
        source: str,
        since_ns: int,
        until_ns: int,
    ) -> tuple[float, float]:
        """(sum of typical price x volume, sum of volume) over stored closed bars with open time
        in [since, until): a session VWAP's state at ``until``."""
        rows = await self._fetch(
            "SELECT coalesce(sum((high + low + close) / 3 * volume), 0)::float8,"
            " coalesce(sum(volume), 0)::float8 FROM candles"
            " WHERE exchange = %s AND symbol = %s AND timeframe = %s AND source = %s AND closed"
            " AND ts >= %s AND ts < %s",
            (exchange, symbol, timeframe, source, _dt(since_ns), _dt(until_ns)),
        )
        return float(rows[0][0]), float(rows[0][1])

    async def features_at(
        self, exchange: str, symbol: str, timeframe: str, ts_ns: int
    ) -> dict[str, float]:
        """Stored feature values of one bar (open time ``ts_ns``), by name."""
        rows = await self._fetch(
            "SELECT name, value FROM features WHERE exchange = %s AND symbol = %s"
            " AND timeframe = %s AND ts = %s",
            (exchange, symbol, timeframe, _dt(ts_ns)),
        )
        return {str(r[0]): float(r[1]) for r in rows}

    async def audit(self, actor: str, action: str, detail: dict[str, Any] | None = None) -> None:
        await self._many(
            "audit log",
            "INSERT INTO audit_log (actor, action, detail) VALUES (%s, %s, %s)",
            [(actor, action, None if detail is None else Jsonb(detail))],
        )
