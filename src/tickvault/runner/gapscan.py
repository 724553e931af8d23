"""Holes the feeds cannot report themselves, found in storage and recorded as gaps.

**Restart rule.** A runner that was killed (``kill -9``, power loss) or stopped for a while
recorded no gap for the time nobody collected. So at start, for every (exchange, symbol) and
every channel collected, the newest row stored *received before this session began* is the
hole's start, and the first row *received in this session* is its end: one ``disconnect`` gap
per channel, recorded once that first row is stored. Trades and the exchange's candles (of the
live candle timeframe) come back from REST through gap repair; order books and tickers have no
REST history, so their holes are recorded already marked ``unrepairable`` with the reason (the
live book was rebuilt from a fresh snapshot; what happened meanwhile is not recoverable).
Whatever the dead process had received but not stored lies inside the hole. With nothing stored
before, there is nothing to repair. A hole longer than ``repair.restart_lookback_s`` is clipped
to that much recent history: older history is a ``tickvault backfill``.

**Candle holes.** Every round, the closed bars of ``repair.candle_scan_timeframe`` in the last
``repair.candle_scan_window_s`` are checked for missing bars between stored ones: derived bars
(a hole means no trade stored there: a ``missing_candle`` gap on ``trades``) and the exchange's
own bars on venues that publish a bar for every interval, empty or not (Binance, Kraken; a gap
on ``candles``). A quiet market also leaves derived holes; its repair finds no trades and
simply marks the gap repaired. Each hole is recorded once per process (the table keeps it once
anyway: its key is exchange, symbol, channel, from, to).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import psycopg

from tickvault.config import Settings
from tickvault.errors import StorageError
from tickvault.model import NS_PER_S, Gap, timeframe_ns
from tickvault.monitoring.metrics import Metrics
from tickvault.runner.repair import LIVE_CANDLE_TIMEFRAME, unrepairable_reason
from tickvault.storage.postgres import PostgresStore
from tickvault.storage.postgres.connection import connect_kwargs, describe_error
from tickvault.storage.postgres.partitions import us_to_datetime

if TYPE_CHECKING:
    from tickvault.runner.feeds import Feed

log = logging.getLogger(__name__)

# Venues whose candle stream has a bar for every interval (Coinbase omits empty ones).
DENSE_CANDLE_VENUES = ("binance", "kraken")

# Where the restart rule looks for each channel: table, and a condition on its rows (the
# exchange's own bars of the live candle timeframe, %(timeframe)s).
RESTART_PROBES: dict[str, tuple[str, str]] = {
    "trades": ("trades", ""),
    "candles": ("candles", " AND source = 'exchange' AND timeframe = %(timeframe)s"),
    "book": ("book_snapshots", ""),
    "ticker": ("tickers", ""),
}


def _newest_before(channel: str) -> str:
    table, where = RESTART_PROBES[channel]
    return (
        f"SELECT ts FROM {table} WHERE exchange = %(exchange)s AND symbol = %(symbol)s{where}"
        " AND recv_ts < %(start)s ORDER BY ts DESC LIMIT 1"
    )


def _first_since(channel: str) -> str:
    table, where = RESTART_PROBES[channel]
    return (
        f"SELECT ts FROM {table} WHERE exchange = %(exchange)s AND symbol = %(symbol)s{where}"
        " AND ts > %(since)s AND recv_ts >= %(start)s ORDER BY ts LIMIT 1"
    )


_HOLES = (
    "SELECT ts, next_ts FROM (SELECT ts, lead(ts) OVER (ORDER BY ts) AS next_ts FROM candles"
    " WHERE exchange = %s AND symbol = %s AND timeframe = %s AND source = %s AND closed"
    " AND ts >= %s) bars WHERE next_ts > ts + %s * interval '1 second'"
)


def _dt(ts_ns: int) -> datetime:
    return us_to_datetime(ts_ns // 1000)


def _ns(value: datetime) -> int:
    delta = value - us_to_datetime(0)
    return (delta.days * 86_400_000_000 + delta.seconds * 1_000_000 + delta.microseconds) * 1000


class GapScanner:
    def __init__(
        self,
        store: PostgresStore,
        settings: Settings,
        streams: Sequence[tuple[str, str, Sequence[str]]],
        session_start_ns: int,
        metrics: Metrics | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.session_start_ns = session_start_ns
        self.metrics = metrics
        # streams: (exchange, symbol, channels collected)
        self.trade_streams = [(e, s) for e, s, channels in streams if "trades" in channels]
        self.restart_streams = [
            (e, s, c) for e, s, channels in streams for c in channels if c in RESTART_PROBES
        ]
        self.candle_streams = [
            (e, s) for e, s, channels in streams
            if "candles" in channels and e in DENSE_CANDLE_VENUES
        ]  # fmt: skip
        self._previous: dict[tuple[str, str, str], int] | None = None  # restart holes to close
        self._recorded: set[tuple[str, str, str, int, int]] = set()

    async def scan(self, now_ns: int) -> list[Gap]:
        """Record the restart and candle holes found now; returns the new gaps."""
        try:
            async with await psycopg.AsyncConnection.connect(
                self.store.url, autocommit=True, **connect_kwargs()
            ) as conn:
                found = await self._restart_holes(conn, now_ns)
                found += await self._candle_holes(conn, now_ns)
        except psycopg.Error as exc:
            raise StorageError(f"scanning for gaps failed: {describe_error(exc)}") from None
        fresh = [g for g in found if _key(g) not in self._recorded]
        if fresh:
            ids = await self.store.record_gaps(fresh, detail="found in storage")
            self._recorded.update(_key(g) for g in fresh)
            for gap_id, g in zip(ids, fresh, strict=True):
                why = unrepairable_reason(g.channel)
                if why is not None:  # recorded, not silently ignored, and never retried
                    await self.store.mark_gap(gap_id, "unrepairable", why)
            for g in fresh:
                log.info("gap found: %s %s %s %s", g.exchange, g.symbol, g.channel, g.reason)
                if self.metrics is not None:
                    self.metrics.gaps_found(g.exchange, g.symbol, g.channel, g.reason).inc()
        return fresh

    async def _one(
        self, conn: psycopg.AsyncConnection[Any], query: str, params: dict[str, Any]
    ) -> Any:
        cur = await conn.execute(query, params)
        row = await cur.fetchone()
        return None if row is None else row[0]

    async def _restart_holes(self, conn: psycopg.AsyncConnection[Any], now_ns: int) -> list[Gap]:
        start = _dt(self.session_start_ns)
        if self._previous is None:
            floor_ns = now_ns - int(self.settings.repair.restart_lookback_s * NS_PER_S)
            self._previous = {}
            for exchange, symbol, channel in self.restart_streams:
                newest = await self._one(
                    conn, _newest_before(channel), _params(exchange, symbol, start)
                )
                if newest is not None:
                    self._previous[(exchange, symbol, channel)] = max(_ns(newest), floor_ns)
        gaps = []
        for (exchange, symbol, channel), from_ns in list(self._previous.items()):
            params = _params(exchange, symbol, start, since=_dt(from_ns))
            first = await self._one(conn, _first_since(channel), params)
            if first is not None:
                gaps.append(Gap(exchange, symbol, channel, from_ns, _ns(first), "disconnect"))
                del self._previous[(exchange, symbol, channel)]
        return gaps

    async def _candle_holes(self, conn: psycopg.AsyncConnection[Any], now_ns: int) -> list[Gap]:
        repair = self.settings.repair
        timeframe = repair.candle_scan_timeframe
        if timeframe is None:
            return []
        step_ns = timeframe_ns(timeframe)
        since = _dt(now_ns - int(repair.candle_scan_window_s * NS_PER_S))
        step_s = step_ns // NS_PER_S
        scans: list[tuple[str, str, str, str]] = []
        if timeframe in self.settings.timeframes:
            scans += [(e, s, "derived", "trades") for e, s in self.trade_streams]
        scans += [
            (e, s, "exchange", "candles")
            for e, s in self.candle_streams
            if LIVE_CANDLE_TIMEFRAME.get(e) == timeframe
        ]
        gaps = []
        for exchange, symbol, source, channel in scans:
            cur = await conn.execute(_HOLES, (exchange, symbol, timeframe, source, since, step_s))
            for open_ts, next_ts in await cur.fetchall():
                gaps.append(
                    Gap(exchange, symbol, channel, _ns(open_ts) + step_ns, _ns(next_ts),
                        "missing_candle")
                )  # fmt: skip
        return gaps


def _params(exchange: str, symbol: str, start: datetime, **more: Any) -> dict[str, Any]:
    timeframe = LIVE_CANDLE_TIMEFRAME.get(exchange, "1m")
    return {"exchange": exchange, "symbol": symbol, "start": start, "timeframe": timeframe,
            **more}  # fmt: skip


def streams_of(feeds: Sequence[Feed]) -> list[tuple[str, str, Sequence[str]]]:
    return [(f.exchange, i.symbol, f.settings.channels) for f in feeds for i in f.instruments]


def _key(gap: Gap) -> tuple[str, str, str, int, int]:
    return gap.exchange, gap.symbol, gap.channel, gap.from_ns, gap.to_ns
