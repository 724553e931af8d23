"""Helpers of the live alerting tests: the Debian Prometheus/Alertmanager binaries, the
project's rule and routing files rewritten for second-scale timers, a webhook receiver, and
polling with deadlines (never a fixed sleep that races a loaded machine)."""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp import web

DEPLOY = Path(__file__).resolve().parents[3] / "deploy"
# The staleness rules' threshold as written in deploy/prometheus/rules/data.yml (seconds).
STALENESS_RULES = ("DataStale", "FeedSilent")
Spawn = Callable[..., subprocess.Popen[bytes]]  # the `spawn` fixture (conftest.py)
_STALENESS_EXPR = re.compile(r"^(tickvault_stream_freshness_seconds\{[^}]*\}) > 300$")


def binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (scripts/bootstrap.sh installs it)")
    return path


async def wait_for(
    session: aiohttp.ClientSession, url: str, ok: Callable[[Any], bool], timeout_s: float
) -> Any:
    """GET ``url`` until it answers 200 with a body ``ok`` accepts; fail with the last answer."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        try:
            async with session.get(url) as resp:
                last = await resp.json() if "json" in resp.content_type else await resp.text()
                if resp.status == 200 and ok(last):
                    return last
        except aiohttp.ClientError as exc:
            last = exc
        await asyncio.sleep(0.25)
    raise AssertionError(f"timed out waiting on {url}; last answer: {str(last)[-3000:]}")


async def poll(
    check: Callable[[], Awaitable[Any] | Any], timeout_s: float, what: str, step_s: float = 0.2
) -> Any:
    """Call ``check`` until it returns something truthy; fail naming ``what`` after the timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if isinstance(result, Awaitable):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")
        await asyncio.sleep(step_s)


def short_rules(out_dir: Path, *, staleness_s: float | None = None) -> None:
    """The real rule files with every ``for:`` set to 1 s, and (if ``staleness_s``) the 300 s
    threshold of DataStale and FeedSilent replaced by ``staleness_s``. Nothing else changes:
    expressions, labels and annotations are the project's. A rule whose expression no longer
    has that shape fails here, so the test cannot silently check something else."""
    out_dir.mkdir()
    rewritten: set[str] = set()
    for path in (DEPLOY / "prometheus" / "rules").glob("*.yml"):
        data = yaml.safe_load(path.read_text())
        for group in data["groups"]:
            for rule in group["rules"]:
                if "for" in rule:
                    rule["for"] = "1s"
                if staleness_s is not None and rule.get("alert") in STALENESS_RULES:
                    match = _STALENESS_EXPR.match(rule["expr"].strip())
                    assert match, f"{rule['alert']}: unexpected expression {rule['expr']!r}"
                    rule["expr"] = f"{match.group(1)} > {staleness_s:g}"
                    rewritten.add(rule["alert"])
        (out_dir / path.name).write_text(yaml.safe_dump(data))
    if staleness_s is not None:
        assert rewritten == set(STALENESS_RULES), rewritten


def alertmanager_config(webhook_url: str) -> dict[str, Any]:
    """The real config (routes, receivers, inhibitions), with every webhook pointed at
    ``webhook_url`` and the group timers at 0 s wait / 1 s interval."""
    config: dict[str, Any] = yaml.safe_load(
        (DEPLOY / "alertmanager" / "alertmanager.yml").read_text()
    )
    for route in [config["route"], *config["route"]["routes"]]:
        route.update(group_wait="0s", group_interval="1s")
    for receiver in config["receivers"]:
        for hook in receiver["webhook_configs"]:
            hook["url"] = webhook_url
    return config


def prometheus_config(
    rules_dir: Path, alertmanager_port: int, tickvault_port: int, interval: str = "1s"
) -> dict[str, Any]:
    """Scrape one tickvault process (job ``tickvault``, as in deploy/) and evaluate the rules."""
    return {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "rule_files": [str(rules_dir / "*.yml")],
        "alerting": {
            "alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{alertmanager_port}"]}]}]
        },
        "scrape_configs": [
            {
                "job_name": "tickvault",
                "static_configs": [
                    {"targets": [f"127.0.0.1:{tickvault_port}"], "labels": {"service": "collector"}}
                ],
            }
        ],
    }


@dataclass
class Webhook:
    """An Alertmanager webhook receiver on loopback: keeps every alert of every notification."""

    alerts: list[dict[str, Any]] = field(default_factory=list)
    notifications: int = 0
    port: int = 0
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self._receive)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _receive(self, request: web.Request) -> web.Response:
        payload = await request.json()
        self.notifications += 1
        for alert in payload["alerts"]:
            self.alerts.append({"received_s": time.time(), **alert})
        return web.json_response({"ok": True})

    def matching(self, alertname: str, status: str, **labels: str) -> list[dict[str, Any]]:
        return [
            a
            for a in self.alerts
            if a["labels"].get("alertname") == alertname
            and a["status"] == status
            and all(a["labels"].get(k) == v for k, v in labels.items())
        ]
