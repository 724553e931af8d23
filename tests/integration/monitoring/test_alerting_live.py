"""The live chain on real servers: tickvault /metrics -> Prometheus (the real rule files, with
``for:`` shortened) -> Alertmanager (the real routing and inhibition, webhook URLs pointed
here) -> tickvault's /alerts webhook. Also checks the exporters' series names used by rules
and dashboards against the real exporters."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from prometheus_client import CollectorRegistry
from promql import EXPORTER_METRICS

from tickvault.monitoring.metrics import Metrics
from tickvault.monitoring.server import MonitoringServer
from tickvault.storage.embedded import free_port

DEPLOY = Path(__file__).resolve().parents[3] / "deploy"


def binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (scripts/bootstrap.sh installs it)")
    return path


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """Start server processes; each is stopped (by its own pid) at the end of the test."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        log = open(tmp_path / f"{Path(args[0]).name}-{len(procs)}.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen(
            args, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
        )
        log.close()
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


async def wait_for(
    session: aiohttp.ClientSession, url: str, ok: Callable[[Any], bool], timeout_s: float
) -> Any:
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        try:
            async with session.get(url) as resp:
                last = await resp.json() if "json" in resp.content_type else await resp.text()
                if resp.status == 200 and ok(last):
                    return last
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.25)
    raise AssertionError(f"timed out waiting on {url}; last answer: {str(last)[-3000:]}")


def short_for_rules(out_dir: Path) -> None:
    """The real rule files, with every ``for:`` shortened so a live test takes seconds."""
    out_dir.mkdir()
    for path in (DEPLOY / "prometheus" / "rules").glob("*.yml"):
        data = yaml.safe_load(path.read_text())
        for group in data["groups"]:
            for rule in group["rules"]:
                if "for" in rule:
                    rule["for"] = "1s"
        (out_dir / path.name).write_text(yaml.safe_dump(data))


def alertmanager_config(webhook_url: str) -> dict[str, Any]:
    """The real config, with webhooks pointed at the test's server and short group timers."""
    config: dict[str, Any] = yaml.safe_load(
        (DEPLOY / "alertmanager" / "alertmanager.yml").read_text()
    )
    routes = [config["route"], *config["route"]["routes"]]
    for route in routes:
        route.update(group_wait="0s", group_interval="1s")
    for receiver in config["receivers"]:
        for hook in receiver["webhook_configs"]:
            hook["url"] = webhook_url
    return config


def sample_names(text: str) -> set[str]:
    """Series names as PromQL sees them (the exposition's sample lines, parsed as written)."""
    return set(re.findall(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]", text, re.M))


@pytest.fixture
async def tickvault_server() -> AsyncIterator[MonitoringServer]:
    async with MonitoringServer(Metrics(CollectorRegistry()), port=0, probe_interval_s=None) as srv:
        yield srv


async def test_metric_to_prometheus_to_alertmanager_to_webhook(
    tmp_path: Path,
    spawn: Callable[..., subprocess.Popen[bytes]],
    tickvault_server: MonitoringServer,
) -> None:
    prometheus, alertmanager = binary("prometheus"), binary("prometheus-alertmanager")
    metrics = tickvault_server.metrics
    prom_port, am_port = free_port(), free_port()
    am_yml = tmp_path / "alertmanager.yml"
    am_yml.write_text(
        yaml.safe_dump(alertmanager_config(f"http://127.0.0.1:{tickvault_server.port}/alerts"))
    )
    short_for_rules(tmp_path / "rules")
    prom_yml = tmp_path / "prometheus.yml"
    prom_yml.write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(tmp_path / "rules" / "*.yml")],
                "alerting": {
                    "alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{am_port}"]}]}]
                },
                "scrape_configs": [
                    {
                        "job_name": "tickvault",
                        "static_configs": [
                            {
                                "targets": [f"127.0.0.1:{tickvault_server.port}"],
                                "labels": {"service": "collector"},
                            }
                        ],
                    }
                ],
            }
        )
    )
    spawn(
        alertmanager,
        f"--config.file={am_yml}",
        f"--storage.path={tmp_path / 'am'}",
        f"--web.listen-address=127.0.0.1:{am_port}",
        "--cluster.listen-address=",
    )
    spawn(
        prometheus,
        f"--config.file={prom_yml}",
        f"--storage.tsdb.path={tmp_path / 'prom'}",
        f"--web.listen-address=127.0.0.1:{prom_port}",
    )
    # A healthy stream, and one whose newest stored event is 10 minutes old.
    now_ns = time.time_ns()
    metrics.messages_received("binance", "trades").inc(42)
    metrics.storage_up("postgres").set(1)
    metrics.event_seen("binance", "BTC-USDT", "trades", "stored", now_ns)
    metrics.event_seen("kraken", "ETH-USD", "book", "stored", now_ns - 600 * 10**9)
    prom, am = f"http://127.0.0.1:{prom_port}", f"http://127.0.0.1:{am_port}"

    def received(name: str) -> list[dict[str, Any]]:
        return [a for a in tickvault_server.alerts if a["labels"]["alertname"] == name]

    async with aiohttp.ClientSession() as session:
        await wait_for(session, f"{am}/-/ready", lambda _: True, 20)
        await wait_for(session, f"{prom}/-/ready", lambda _: True, 20)
        # Prometheus scraped the real server: the counter value arrived.
        query = f"{prom}/api/v1/query?query=tickvault_messages_received_total"
        answer = await wait_for(session, query, lambda r: r["data"]["result"], 20)
        assert answer["data"]["result"][0]["value"][1] == "42"

        # DataStale fires for the old stream only and reaches the webhook through "warning".
        for _ in range(120):
            if received("DataStale"):
                break
            await asyncio.sleep(0.25)
        stale = received("DataStale")
        assert stale, "DataStale never reached the webhook"
        assert {a["labels"]["exchange"] for a in stale} == {"kraken"}
        assert stale[0]["labels"]["severity"] == "warning" and stale[0]["status"] == "firing"
        assert "no data stored for kraken ETH-USD book" in stale[0]["annotations"]["summary"]

        # Storage goes down: StorageDown is delivered and silences DataStale (inhibition).
        metrics.storage_up("postgres").set(0)
        suppressed = await wait_for(
            session,
            f"{am}/api/v2/alerts?filter=alertname%3D%22DataStale%22",
            lambda alerts: bool(alerts) and alerts[0]["status"]["state"] == "suppressed",
            30,
        )
        assert suppressed[0]["status"]["inhibitedBy"], suppressed
        for _ in range(40):
            if received("StorageDown"):
                break
            await asyncio.sleep(0.25)
        down = received("StorageDown")
        assert down and down[0]["labels"]["backend"] == "postgres"
        assert down[0]["labels"]["severity"] == "critical"
    assert metrics.value(
        "tickvault_alerts_received_total",
        alertname="DataStale",
        severity="warning",
        status="firing",
    )


async def test_exporters_provide_the_series_rules_and_dashboards_use(
    spawn: Callable[..., subprocess.Popen[bytes]], pg_server_url: str, redis_server_url: str
) -> None:
    node = binary("prometheus-node-exporter")
    pg = binary("prometheus-postgres-exporter")
    redis_exp = binary("prometheus-redis-exporter")
    ports = {"node": free_port(), "postgres": free_port(), "redis": free_port()}
    spawn(node, f"--web.listen-address=127.0.0.1:{ports['node']}")
    dsn = pg_server_url + ("&" if "?" in pg_server_url else "?") + "sslmode=disable"
    spawn(pg, f"--web.listen-address=127.0.0.1:{ports['postgres']}", env={"DATA_SOURCE_NAME": dsn})
    spawn(
        redis_exp,
        "-redis.addr",
        redis_server_url.rsplit("/", 1)[0],
        "-web.listen-address",
        f"127.0.0.1:{ports['redis']}",
    )
    async with aiohttp.ClientSession() as session:
        for job, port in ports.items():
            # postgres_exporter fills in its pg_stat_* series from the second scrape on.
            text = await wait_for(
                session,
                f"http://127.0.0.1:{port}/metrics",
                lambda t, job=job: EXPORTER_METRICS[job] <= sample_names(t),
                20,
            )
            if job in ("postgres", "redis"):  # connected to the real servers
                up = "pg_up" if job == "postgres" else "redis_up"
                assert re.search(rf"^{up} 1(\.0)?$", text, re.M), text[-500:]
