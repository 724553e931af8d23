"""/metrics, /health and /ready for ``tickvault run`` (best effort: never stops the pipeline)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tickvault.monitoring.checks import feeds_check, postgres_check, redis_check
from tickvault.monitoring.server import MonitoringServer, start_best_effort
from tickvault.storage.urls import StorageUrls

if TYPE_CHECKING:
    from tickvault.runner.app import Runner


async def start_monitoring(runner: Runner, port: int, urls: StorageUrls) -> MonitoringServer | None:
    metrics = runner.metrics
    server = MonitoringServer(
        metrics,
        port=port,
        ready_checks={
            "postgres": postgres_check(urls.database_url, metrics),
            "redis": redis_check(urls.redis_url, metrics),
            "feeds": feeds_check(metrics, [feed.exchange for feed in runner.feeds]),
        },
    )
    return await start_best_effort(server)
