"""The monitoring HTTP server every long-running tickvault process runs (aiohttp).

* ``GET /metrics``  Prometheus text format of the process's registry;
* ``GET /health``   200 while the process is alive (liveness: the event loop answers);
* ``GET /ready``    200 when every ready check passes, else 503 with the failing checks named
  (readiness: storage reachable, feeds connected);
* ``POST /alerts``  an Alertmanager webhook receiver: each alert is logged and counted, the
  latest ones are listed by ``GET /alerts``.

Ready checks are async callables that return normally when ready and raise with a readable
message when not. They run with a timeout on each ``/ready`` request and in a background probe,
so gauges such as ``tickvault_storage_up`` stay current even when nobody asks.

Monitoring must never stop the pipeline: :func:`start_best_effort` logs a port conflict and
returns None instead of raising, and nothing here is called on the data path.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import errno
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from tickvault.errors import ConfigError
from tickvault.monitoring.metrics import Metrics

log = logging.getLogger("tickvault.monitoring")

ReadyCheck = Callable[[], Awaitable[None]]
DEFAULT_METRICS_PORT = 9108


@dataclass(frozen=True, slots=True)
class CheckResult:
    name: str
    ok: bool
    detail: str
    duration_s: float


class MonitoringServer:
    """Serves /metrics, /health, /ready and /alerts for one process."""

    def __init__(
        self,
        metrics: Metrics,
        *,
        host: str = "127.0.0.1",
        port: int = DEFAULT_METRICS_PORT,
        ready_checks: Mapping[str, ReadyCheck] | None = None,
        check_timeout_s: float = 2.0,
        probe_interval_s: float | None = 15.0,
        port_source: str = "metrics_port",
        alerts_kept: int = 200,
    ) -> None:
        self.metrics = metrics
        self.host = host
        self.requested_port = port
        self.ready_checks = dict(ready_checks or {})
        self.check_timeout_s = check_timeout_s
        self.probe_interval_s = probe_interval_s
        self.port_source = port_source  # named in the port-in-use error: where the port came from
        self.alerts: collections.deque[dict[str, Any]] = collections.deque(maxlen=alerts_kept)
        self._runner: web.AppRunner | None = None
        self._probe_task: asyncio.Task[None] | None = None
        self._started_s = time.monotonic()
        self.port = port

    # -- lifecycle -----------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/health", self._health)
        app.router.add_get("/ready", self._ready)
        app.router.add_post("/alerts", self._alerts_in)
        app.router.add_get("/alerts", self._alerts_list)
        return app

    async def start(self) -> None:
        """Bind and serve; a port already in use raises ConfigError naming where it was set."""
        runner = web.AppRunner(self.app(), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.requested_port, reuse_address=False)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            if exc.errno == errno.EADDRINUSE:
                raise ConfigError(
                    f"metrics port {self.requested_port} on {self.host} is already in use "
                    f"(set by {self.port_source}); stop the process holding it or choose "
                    f"another port"
                ) from None
            raise ConfigError(
                f"cannot serve metrics on {self.host}:{self.requested_port} "
                f"(set by {self.port_source}): {exc.strerror or exc}"
            ) from None
        self._runner = runner
        sockets = [s for srv in runner.sites for s in _site_sockets(srv)]
        if sockets:
            self.port = int(sockets[0].getsockname()[1])
        if self.probe_interval_s and self.ready_checks:
            self._probe_task = asyncio.create_task(self._probe_forever(self.probe_interval_s))
        log.info("monitoring on http://%s:%d (/metrics /health /ready)", self.host, self.port)

    async def stop(self) -> None:
        if self._probe_task is not None:
            self._probe_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._probe_task
            self._probe_task = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> MonitoringServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- checks --------------------------------------------------------------------------------

    async def run_checks(self) -> list[CheckResult]:
        """Run every ready check concurrently, each bounded by the timeout; never raises."""
        return list(await asyncio.gather(*(self._one(n, c) for n, c in self.ready_checks.items())))

    async def _one(self, name: str, check: ReadyCheck) -> CheckResult:
        start = time.monotonic()
        try:
            await asyncio.wait_for(check(), self.check_timeout_s)
        except TimeoutError:
            detail = f"no answer within {self.check_timeout_s:g} s"
            return CheckResult(name, False, detail, time.monotonic() - start)
        except Exception as exc:  # a check failing is data for /ready, not a crash
            return CheckResult(
                name, False, str(exc) or type(exc).__name__, time.monotonic() - start
            )
        return CheckResult(name, True, "ok", time.monotonic() - start)

    async def _probe_forever(self, interval_s: float) -> None:
        while True:
            results = await self.run_checks()
            for result in results:
                if not result.ok:
                    log.warning("not ready: %s: %s", result.name, result.detail)
            await asyncio.sleep(interval_s)

    # -- handlers ------------------------------------------------------------------------------

    async def _metrics(self, request: web.Request) -> web.Response:
        body = generate_latest(self.metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _health(self, request: web.Request) -> web.Response:
        uptime_s = round(time.monotonic() - self._started_s, 3)
        return web.json_response({"status": "alive", "uptime_s": uptime_s})

    async def _ready(self, request: web.Request) -> web.Response:
        results = await self.run_checks()
        ready = all(r.ok for r in results)
        body = {
            "ready": ready,
            "checks": {
                r.name: {"ok": r.ok, "detail": r.detail, "duration_s": round(r.duration_s, 4)}
                for r in results
            },
        }
        return web.json_response(body, status=200 if ready else 503)

    async def _alerts_in(self, request: web.Request) -> web.Response:
        try:
            payload = await request.json()
            alerts = payload["alerts"]
            if not isinstance(alerts, list):
                raise TypeError("alerts is not a list")
        except (ValueError, KeyError, TypeError) as exc:
            return web.json_response({"error": f"not an Alertmanager webhook: {exc}"}, status=400)
        for alert in alerts:
            labels = alert.get("labels", {}) if isinstance(alert, dict) else {}
            name = str(labels.get("alertname", "unknown"))
            severity = str(labels.get("severity", "none"))
            status = str(alert.get("status", "unknown")) if isinstance(alert, dict) else "unknown"
            self.metrics.alert_received(name, severity, status)
            summary = alert.get("annotations", {}).get("summary", "") if labels else ""
            level = logging.ERROR if severity == "critical" else logging.WARNING
            log.log(level, "alert %s %s [%s] %s %s", status, name, severity, summary, labels)
            self.alerts.append({"received_s": time.time(), **alert})
        return web.json_response({"received": len(alerts)})

    async def _alerts_list(self, request: web.Request) -> web.Response:
        return web.json_response({"alerts": list(self.alerts)})


def _site_sockets(site: web.BaseSite) -> list[Any]:
    server = getattr(site, "_server", None)
    return list(getattr(server, "sockets", None) or [])


async def start_best_effort(server: MonitoringServer) -> MonitoringServer | None:
    """Start ``server``; on failure log the reason and return None so the pipeline runs on."""
    try:
        await server.start()
    except ConfigError as exc:
        log.error("monitoring disabled: %s", exc)
        return None
    return server
