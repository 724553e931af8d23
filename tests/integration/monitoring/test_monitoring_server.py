"""The monitoring HTTP server on real loopback sockets, checks against real PostgreSQL/Redis."""

from __future__ import annotations

import asyncio
import logging
import socket

import aiohttp
import pytest
from prometheus_client import CollectorRegistry

from tickvault.errors import ConfigError
from tickvault.monitoring.checks import feeds_check, postgres_check, redis_check
from tickvault.monitoring.metrics import Metrics
from tickvault.monitoring.server import MonitoringServer, start_best_effort
from tickvault.storage.embedded import free_port


@pytest.fixture
def metrics() -> Metrics:
    return Metrics(CollectorRegistry())


async def get(port: int, path: str) -> tuple[int, str]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}{path}") as resp,
    ):
        return resp.status, await resp.text()


async def test_metrics_endpoint_serves_increments(metrics: Metrics) -> None:
    async with MonitoringServer(metrics, port=0, probe_interval_s=None) as server:
        assert server.port > 0
        metrics.messages_received("binance", "trades").inc(5)
        metrics.write_latency("postgres", "trades").observe(0.003)
        status, text = await get(server.port, "/metrics")
        assert status == 200
        assert 'tickvault_messages_received_total{channel="trades",exchange="binance"} 5.0' in text
        assert 'tickvault_write_latency_seconds_count{sink="postgres",table="trades"} 1.0' in text
        assert "process_resident_memory_bytes" in text
        metrics.messages_received("binance", "trades").inc()
        _, text = await get(server.port, "/metrics")
        assert 'tickvault_messages_received_total{channel="trades",exchange="binance"} 6.0' in text
        status, body = await get(server.port, "/health")
        assert status == 200 and '"alive"' in body


async def test_ready_reports_each_check(
    metrics: Metrics, database_url: str, redis_url: str
) -> None:
    dead_port = free_port()

    async def slow() -> None:
        await asyncio.sleep(5)

    checks = {
        "postgres": postgres_check(database_url, metrics),
        "redis": redis_check(redis_url, metrics),
    }
    async with MonitoringServer(metrics, port=0, ready_checks=checks, probe_interval_s=None) as srv:
        status, body = await get(srv.port, "/ready")
        assert status == 200, body
        assert metrics.value("tickvault_storage_up", backend="postgres") == 1
        assert metrics.value("tickvault_storage_up", backend="redis") == 1

    checks = {
        "postgres": postgres_check(f"postgresql://u:secret@127.0.0.1:{dead_port}/x", metrics),
        "redis": redis_check(f"redis://:secret@127.0.0.1:{dead_port}/0", metrics),
        "feeds": feeds_check(metrics, ["binance", "kraken"]),
        "slow": slow,
    }
    metrics.websocket_connections("binance").set(1)
    async with MonitoringServer(
        metrics, port=0, ready_checks=checks, check_timeout_s=0.5, probe_interval_s=None
    ) as srv:
        status, body = await get(srv.port, "/ready")
    assert status == 503
    assert f"PostgreSQL at postgresql://127.0.0.1:{dead_port}/x unreachable" in body
    assert f"Redis at redis://127.0.0.1:{dead_port}/0 unreachable" in body
    assert (
        "no WebSocket connection to kraken" in body
        and "binance" not in body.split("kraken")[0][-40:]
    )
    assert "no answer within 0.5 s" in body
    assert "secret" not in body
    assert metrics.value("tickvault_storage_up", backend="postgres") == 0
    assert metrics.value("tickvault_storage_up", backend="redis") == 0


async def test_background_probe_keeps_storage_gauge_current(metrics: Metrics) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    async with MonitoringServer(
        metrics, port=0, ready_checks={"redis": redis_check(dead, metrics)}, probe_interval_s=0.05
    ):
        for _ in range(100):
            if metrics.value("tickvault_storage_up", backend="redis") == 0:
                break
            await asyncio.sleep(0.02)
    assert metrics.value("tickvault_storage_up", backend="redis") == 0


async def test_port_in_use_is_a_clear_error_and_best_effort_keeps_going(
    metrics: Metrics, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        server = MonitoringServer(metrics, port=port, port_source="metrics_port in /etc/tv.toml")
        with pytest.raises(ConfigError) as err:
            await server.start()
        assert str(err.value) == (
            f"metrics port {port} on 127.0.0.1 is already in use (set by metrics_port in "
            "/etc/tv.toml); stop the process holding it or choose another port"
        )
        with caplog.at_level(logging.ERROR, logger="tickvault.monitoring"):
            assert await start_best_effort(MonitoringServer(metrics, port=port)) is None
        assert "monitoring disabled" in caplog.text and str(port) in caplog.text
    # The pipeline's metrics still work without a server.
    metrics.messages_received("binance", "trades").inc()


async def test_alert_webhook_logs_and_counts(
    metrics: Metrics, caplog: pytest.LogCaptureFixture
) -> None:
    payload = {
        "version": "4",
        "status": "firing",
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": "StorageDown", "severity": "critical", "backend": "redis"},
                "annotations": {"summary": "redis is down"},
            }
        ],
    }
    async with MonitoringServer(metrics, port=0, probe_interval_s=None) as server:
        url = f"http://127.0.0.1:{server.port}/alerts"
        async with aiohttp.ClientSession() as session:
            with caplog.at_level(logging.WARNING, logger="tickvault.monitoring"):
                async with session.post(url, json=payload) as resp:
                    assert resp.status == 200
            async with session.post(url, data=b"not json") as resp:
                assert resp.status == 400
            async with session.get(url) as resp:
                listed = (await resp.json())["alerts"]
    assert [a["labels"]["alertname"] for a in listed] == ["StorageDown"]
    assert "alert firing StorageDown [critical] redis is down" in caplog.text
    assert (
        metrics.value(
            "tickvault_alerts_received_total",
            alertname="StorageDown",
            severity="critical",
            status="firing",
        )
        == 1
    )
