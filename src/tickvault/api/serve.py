"""Assembling and running the API process (``tickvault api``)."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import signal

from aiohttp import web

from tickvault.api.app import create_app
from tickvault.api.backend import ApiBackend
from tickvault.api.stream import StreamHub
from tickvault.config import Settings
from tickvault.errors import ConfigError
from tickvault.monitoring.checks import postgres_check, redis_check
from tickvault.monitoring.metrics import Metrics, get_metrics
from tickvault.monitoring.server import DEFAULT_METRICS_PORT, MonitoringServer, start_best_effort
from tickvault.storage.redis_keys import Keys
from tickvault.storage.urls import StorageUrls

log = logging.getLogger("tickvault.api")


def build(
    settings: Settings,
    urls: StorageUrls,
    *,
    host: str = "127.0.0.1",
    metrics: Metrics | None = None,
    pg_timeout_s: float = 3.0,
    latest_interval_s: float = 0.25,
) -> tuple[web.Application, MonitoringServer]:
    """The API app and its monitoring server (whose handlers the app also serves)."""
    metrics = metrics or get_metrics()
    backend = ApiBackend(
        urls.database_url,
        urls.redis_url,
        settings.cache,
        metrics,
        pg_timeout_s=pg_timeout_s,
        embedded=urls.embedded,
    )
    hub = StreamHub(
        urls.redis_url, Keys(settings.cache.key_prefix), latest_interval_s=latest_interval_s
    )
    monitoring = MonitoringServer(
        metrics,
        host=host,
        port=settings.metrics_port if settings.metrics_port is not None else DEFAULT_METRICS_PORT,
        ready_checks={
            "postgres": postgres_check(urls.database_url, metrics),
            "redis": redis_check(urls.redis_url, metrics),
        },
    )
    return create_app(backend, hub, monitoring), monitoring


async def serve(settings: Settings, urls: StorageUrls, host: str, port: int) -> None:
    """Serve until SIGINT/SIGTERM. The monitoring port (``metrics_port``) is served as well
    when configured, as every long-running tickvault process does; its failure to bind is
    logged, not fatal."""
    app, monitoring = build(settings, urls, host=host)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        why = "the port is already in use" if exc.errno == errno.EADDRINUSE else exc.strerror
        raise ConfigError(
            f"cannot serve the API on {host}:{port}: {why} (choose another with --port)"
        ) from None
    separate = settings.metrics_port is not None and settings.metrics_port != port
    if separate:
        await start_best_effort(monitoring)
    where = ", ".join(f"{name} embedded" for name in urls.embedded) or "configured storage"
    print(f"tickvault api on http://{host}:{port} ({where}); Ctrl-C to stop", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(sig)
        if separate:
            await monitoring.stop()
        await runner.cleanup()
