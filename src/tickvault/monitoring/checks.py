"""Ready checks for :class:`~tickvault.monitoring.server.MonitoringServer`.

Each factory returns an async callable that returns when ready and raises with a message a
person can act on. Storage checks also set ``tickvault_storage_up{backend}``, which the
StorageDown alert watches. Messages name host and port, never credentials.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit

import psycopg
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from tickvault.monitoring.metrics import Metrics
from tickvault.monitoring.server import ReadyCheck


def redact_url(url: str) -> str:
    """``scheme://host:port/db`` without user or password."""
    parts = urlsplit(url)
    host = parts.hostname or "localhost"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def postgres_check(url: str, metrics: Metrics, timeout_s: float = 2.0) -> ReadyCheck:
    async def check() -> None:
        try:
            conn = await psycopg.AsyncConnection.connect(
                url, connect_timeout=max(1, int(timeout_s))
            )
            async with conn:
                await conn.execute("SELECT 1")
        except psycopg.Error as exc:
            metrics.storage_up("postgres").set(0)
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
            raise RuntimeError(
                f"PostgreSQL at {redact_url(url)} unreachable: {first_line}"
            ) from None
        metrics.storage_up("postgres").set(1)

    return check


def redis_check(url: str, metrics: Metrics, timeout_s: float = 2.0) -> ReadyCheck:
    async def check() -> None:
        client = aioredis.Redis.from_url(
            url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s
        )
        try:
            await client.ping()
        except (RedisError, OSError) as exc:
            metrics.storage_up("redis").set(0)
            raise RuntimeError(f"Redis at {redact_url(url)} unreachable: {exc}") from None
        finally:
            await client.aclose()
        metrics.storage_up("redis").set(1)

    return check


def feeds_check(metrics: Metrics, exchanges: Sequence[str]) -> ReadyCheck:
    """Ready when every configured exchange has at least one open WebSocket connection."""

    async def check() -> None:
        down = [
            name
            for name in exchanges
            if (metrics.value("tickvault_websocket_connections", exchange=name) or 0) < 1
        ]
        if down:
            raise RuntimeError(f"no WebSocket connection to {', '.join(down)}")

    return check
