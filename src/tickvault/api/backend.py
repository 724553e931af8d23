"""Storage access of the API: Redis first, PostgreSQL behind it, never on the event loop.

The drivers used here are synchronous (psycopg with a ``psycopg_pool.ConnectionPool``, the
``RedisCache`` and ``CachedReader`` of the storage layer), so every read runs in a small thread
pool sized to the connection pool: the event loop only parses parameters, awaits, and writes
responses. A read that would wait for a PostgreSQL connection longer than ``pg_timeout_s`` (the
server is down) fails as a :class:`StorageError`, which the app answers with HTTP 503.

Cache lookups are counted in ``tickvault_cache_requests{cache, result}``.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any, Literal, TypeVar

import msgspec
import psycopg
import redis
from psycopg_pool import ConnectionPool, PoolTimeout

from tickvault.api import pg, shapes
from tickvault.api.shapes import Json
from tickvault.config import CacheSettings
from tickvault.errors import StorageError, TickvaultError
from tickvault.model import BookSnapshot, Candle, Ticker, Trade
from tickvault.monitoring.checks import redact_url
from tickvault.monitoring.metrics import Metrics
from tickvault.query import Vault
from tickvault.storage.postgres.connection import (
    check_server_version,
    connect_kwargs,
    describe_error,
)
from tickvault.storage.postgres.schema import current_version, require_current, stored_mode
from tickvault.storage.redis_cache import CachedReader, RedisCache

T = TypeVar("T")
LatestKind = Literal["trade", "book", "ticker"]
LATEST_KINDS: tuple[LatestKind, ...] = ("trade", "book", "ticker")
QUALITY_CHANNELS = ("trades", "book", "candles", "ticker")
LATEST_TYPES: dict[str, type[Trade | BookSnapshot | Ticker]] = {
    "trade": Trade,
    "book": BookSnapshot,
    "ticker": Ticker,
}


class NotFound(TickvaultError):
    """Nothing stored for what was asked (HTTP 404)."""


def _configure(conn: psycopg.Connection[Any]) -> None:
    check_server_version(conn.info.server_version)


class ApiBackend:
    """Reads for the API handlers; ``await backend.<read>(...)`` from the event loop."""

    def __init__(
        self,
        database_url: str,
        redis_url: str,
        cache: CacheSettings,
        metrics: Metrics,
        *,
        pool_size: int = 4,
        pg_timeout_s: float = 3.0,
        embedded: tuple[str, ...] = (),
    ) -> None:
        self.database_url = database_url
        self.redis_url = redis_url
        self.metrics = metrics
        self.embedded = embedded
        self.pg_timeout_s = pg_timeout_s
        self.pool: ConnectionPool[Any] = ConnectionPool(
            database_url,
            min_size=1,
            max_size=pool_size,
            kwargs={**connect_kwargs(), "autocommit": True},
            configure=_configure,
            timeout=pg_timeout_s,
            open=False,
            name="tickvault-api",
        )
        # Two spare threads so Redis-only reads still run while every connection is busy.
        self.executor = ThreadPoolExecutor(pool_size + 2, thread_name_prefix="tickvault-api")
        self.cache = RedisCache(redis_url, cache)
        self.reader = CachedReader(self.cache, self._candles_for_cache)
        self._timescaledb: bool | None = None  # read once from the schema
        self._local = threading.local()

    def open(self) -> None:
        """Start connecting in the background: the API starts (and says 503) without storage."""
        self.pool.open(wait=False)

    def close(self) -> None:
        self.pool.close()
        self.executor.shutdown(wait=True)
        self.cache.close()

    async def run(self, call: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, functools.partial(call, *args))

    # -- in worker threads ---------------------------------------------------------------------

    def _pg(self, call: Callable[..., T], *args: Any) -> T:
        """``call(conn, *args)`` on a pooled connection; driver failures → StorageError."""
        try:
            with self.pool.connection() as conn:
                if self._timescaledb is None:
                    require_current(current_version(conn), self.database_url)
                    self._timescaledb = stored_mode(conn)
                return call(conn, *args)
        except PoolTimeout:
            raise StorageError(
                f"PostgreSQL at {redact_url(self.database_url)} is unreachable "
                f"(no connection within {self.pg_timeout_s:g} s)"
            ) from None
        except psycopg.Error as exc:
            raise StorageError(f"PostgreSQL query failed: {describe_error(exc)}") from None

    def _redis(self, call: Callable[..., T], *args: Any) -> T:
        try:
            return call(*args)
        except (redis.RedisError, OSError) as exc:
            raise StorageError(
                f"Redis at {redact_url(self.redis_url)} is unreachable: {exc}"
            ) from None

    def _candles_for_cache(
        self, exchange: str, symbol: str, timeframe: str, n: int
    ) -> list[Candle]:
        """CachedReader's fallback: called only on a miss, which it notes for the metrics."""
        self._local.missed = True
        market = (exchange, symbol, timeframe)
        rows = self._pg(lambda conn: pg.latest_candle_rows(conn, self._ts(), market, n))
        return [pg.candle_event(market, row) for row in rows]

    def _ts(self) -> bool:
        return bool(self._timescaledb)

    def _latest_candles(self, market: tuple[str, str, str], n: int) -> tuple[list[Json], str]:
        if n > self.cache.settings.candles_kept:  # more than Redis ever holds: no lookup
            rows = self._pg(lambda conn: pg.latest_candle_rows(conn, self._ts(), market, n))
            return [shapes.candle_from_row(r) for r in rows], "postgres"
        self._local.missed = False
        bars = self.reader.latest_candles(*market, n)  # raises StorageError itself
        hit = not self._local.missed
        self.metrics.cache_lookup("candles", hit)
        return [shapes.candle_from_event(c) for c in bars], "redis" if hit else "postgres"

    def _latest(self, kind: LatestKind, market: tuple[str, str]) -> tuple[Json | None, str]:
        key = {"trade": self.cache.keys.trade, "book": self.cache.keys.book,
               "ticker": self.cache.keys.ticker}[kind](*market)  # fmt: skip
        event = self._redis(self.cache.latest, LATEST_TYPES[kind], key)
        self.metrics.cache_lookup(f"latest_{kind}", event is not None)
        if event is not None:
            return shapes.latest_from_event(event), "redis"
        if kind == "trade":
            return self._pg(pg.latest_trade, market), "postgres"
        if kind == "ticker":
            return self._pg(pg.latest_ticker, market), "postgres"
        return self._pg(pg.book, market, None), "postgres"

    def _features(self, market: tuple[str, str, str]) -> tuple[dict[str, Json], str]:
        cached = self._redis(self.cache.features, *market)
        self.metrics.cache_lookup("features", bool(cached))
        if cached:
            return {
                name: {"ts": shapes.iso_ns(v.ts_ns), "value": v.value}
                for name, v in sorted(cached.items())
            }, "redis"
        return self._pg(pg.features, market), "postgres"

    def _signals(self, market: tuple[str, str, str], n: int) -> tuple[list[Any], str]:
        key = self.cache.keys.signals(*market)
        raw: list[bytes | str] = self._redis(self.cache.client.lrange, key, 0, n - 1)
        self.metrics.cache_lookup("signals", bool(raw))
        if raw:
            return [json_or_text(item) for item in raw], "redis"
        return self._pg(pg.signals, market, n), "postgres"

    def _quality(self, market: tuple[str, str], channels: tuple[str, ...]) -> Json:
        keys = [self.cache.keys.quality(*market, channel) for channel in channels]
        raw: list[bytes | str | None] = self._redis(self.cache.client.mget, keys)
        scores = {ch: json_or_text(v) for ch, v in zip(channels, raw, strict=True) if v}
        metrics = self._pg(pg.quality_metrics, market)
        return {"scores": scores, "metrics": metrics}

    def _status(self) -> Json:
        def pg_status(conn: psycopg.Connection[Any]) -> Json:
            st = Vault(conn, self.database_url, embedded="postgres" in self.embedded).status()
            tables = [
                {"table": t.table, "rows": t.rows, "estimated": t.estimated,
                 "newest": None if t.newest is None else shapes.iso(t.newest)}
                for t in st.tables
            ]  # fmt: skip
            return {
                "url": st.url, "embedded": st.embedded, "server_version": st.server_version,
                "timescaledb": st.timescaledb, "schema_version": st.schema_version,
                "tables": tables,
            }  # fmt: skip

        postgres = self._pg(pg_status)
        keys = self._redis(self.cache.client.dbsize)
        stats = self.reader.stats
        return {
            "postgres": postgres,
            "redis": {
                "url": redact_url(self.redis_url),
                "embedded": "redis" in self.embedded,
                "keys": keys,
            },
            "candle_cache": {
                "hits": stats.hits, "misses": stats.misses,
                "hit_ratio": round(stats.hit_ratio, 4),
            },
        }  # fmt: skip

    # -- the handlers' surface -----------------------------------------------------------------

    async def candles(
        self,
        market: tuple[str, str, str],
        span: tuple[datetime, datetime],
        source: str,
        limit: int,
    ) -> tuple[list[Json], bool]:
        def read(conn: psycopg.Connection[Any]) -> tuple[list[Json], bool]:
            return pg.candles(conn, self._ts(), market, span, source, limit)

        return await self.run(self._pg, read)

    async def latest_candles(self, market: tuple[str, str, str], n: int) -> tuple[list[Json], str]:
        return await self.run(self._latest_candles, market, n)

    async def trades(
        self, market: tuple[str, str], span: tuple[datetime, datetime], limit: int
    ) -> tuple[list[Json], bool]:
        return await self.run(self._pg, pg.trades, market, span, limit)

    async def book(self, market: tuple[str, str], at: datetime) -> Json:
        found: Json | None = await self.run(self._pg, pg.book, market, at)
        if found is None:
            raise NotFound(f"no book snapshot of {' '.join(market)} at or before {at.isoformat()}")
        return found

    async def latest(self, kind: LatestKind, market: tuple[str, str]) -> tuple[Json, str]:
        found, source = await self.run(self._latest, kind, market)
        if found is None:
            raise NotFound(f"no {kind} stored for {' '.join(market)}")
        return found, source

    async def features(self, market: tuple[str, str, str]) -> tuple[dict[str, Json], str]:
        return await self.run(self._features, market)

    async def signals(self, market: tuple[str, str, str], n: int) -> tuple[list[Any], str]:
        return await self.run(self._signals, market, n)

    async def quality(self, market: tuple[str, str], channels: tuple[str, ...]) -> Json:
        return await self.run(self._quality, market, channels)

    async def status(self) -> Json:
        return await self.run(self._status)


def json_or_text(raw: bytes | str) -> Any:
    """A cached JSON value as it was written; text when it is not JSON (kept, not dropped)."""
    try:
        return msgspec.json.decode(raw)
    except msgspec.DecodeError:
        return raw if isinstance(raw, str) else raw.decode("utf-8", "replace")
