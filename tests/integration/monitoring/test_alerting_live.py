"""The live chain on real servers: tickvault /metrics -> Prometheus (the real rule files, with
``for:`` shortened) -> Alertmanager (the real routing and inhibition, webhook URLs pointed
here) -> tickvault's /alerts webhook. Also checks the exporters' series names used by rules
and dashboards against the real exporters."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from live_kit import (
    Spawn,
    alertmanager_config,
    binary,
    prometheus_config,
    short_rules,
    wait_for,
)
from prometheus_client import CollectorRegistry
from promql import EXPORTER_METRICS

from tickvault.monitoring.metrics import Metrics
from tickvault.monitoring.server import MonitoringServer
from tickvault.storage.embedded import free_port


def sample_names(text: str) -> set[str]:
    """Series names as PromQL sees them (the exposition's sample lines, parsed as written)."""
    return set(re.findall(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]", text, re.M))


@pytest.fixture
async def tickvault_server() -> AsyncIterator[MonitoringServer]:
    async with MonitoringServer(Metrics(CollectorRegistry()), port=0, probe_interval_s=None) as srv:
        yield srv


async def test_metric_to_prometheus_to_alertmanager_to_webhook(
    tmp_path: Path,
    spawn: Spawn,
    tickvault_server: MonitoringServer,
) -> None:
    prometheus, alertmanager = binary("prometheus"), binary("prometheus-alertmanager")
    metrics = tickvault_server.metrics
    prom_port, am_port = free_port(), free_port()
    am_yml = tmp_path / "alertmanager.yml"
    am_yml.write_text(
        yaml.safe_dump(alertmanager_config(f"http://127.0.0.1:{tickvault_server.port}/alerts"))
    )
    short_rules(tmp_path / "rules")
    prom_yml = tmp_path / "prometheus.yml"
    prom_yml.write_text(
        yaml.safe_dump(prometheus_config(tmp_path / "rules", am_port, tickvault_server.port))
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
    spawn: Spawn, pg_server_url: str, redis_server_url: str
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
