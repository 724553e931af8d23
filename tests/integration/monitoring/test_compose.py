"""deploy/docker-compose.yml validated offline with docker-compose v1 (``config``)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tickvault.config import load_settings
from tickvault.monitoring.tune import Host, compose_env, compose_env_block, replace_block

DEPLOY = Path(__file__).resolve().parents[3] / "deploy"
SECRETS = {
    "POSTGRES_PASSWORD": "pg-test-secret",
    "REDIS_PASSWORD": "redis-test-secret",
    "GRAFANA_ADMIN_PASSWORD": "gf-test-secret",
}


def with_passwords(text: str) -> str:
    for key, value in SECRETS.items():
        text = text.replace(f"\n{key}=\n", f"\n{key}={value}\n")
    return text


@pytest.fixture(scope="module")
def compose_runs(
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, subprocess.CompletedProcess[str]]:
    """``docker-compose config`` on three copies of deploy/, run in parallel (each takes ~2 s):
    no .env at all, env.example copied with empty passwords, and a complete .env tuned for a
    2-core / 24 GB host."""
    exe = shutil.which("docker-compose")
    if exe is None:
        pytest.skip("docker-compose (v1) is not installed (scripts/bootstrap.sh installs it)")
    example = (DEPLOY / "env.example").read_text()
    envs = {
        "missing": None,
        "empty_passwords": example,
        "small_host": with_passwords(replace_block(example, compose_env_block(Host.of(2, 24)))),
    }
    clean_env = {
        k: v
        for k, v in os.environ.items()
        if not re.match(r"[A-Z_]*(PASSWORD|CPUS|MEMORY)|PG_|TS_|REDIS_", k)
    }
    procs = {}
    for name, env_text in envs.items():
        copy = tmp_path_factory.mktemp(name) / "deploy"
        shutil.copytree(DEPLOY, copy, ignore=shutil.ignore_patterns(".env"))
        if env_text is not None:
            (copy / ".env").write_text(env_text)
        procs[name] = subprocess.Popen(
            [exe, "-f", str(copy / "docker-compose.yml"), "config"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=clean_env,
        )
    results = {}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=60)
        results[name] = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    return results


def test_compose_fails_without_the_env_file_or_with_empty_passwords(
    compose_runs: dict[str, subprocess.CompletedProcess[str]],
) -> None:
    for name in ("missing", "empty_passwords"):
        run = compose_runs[name]
        assert run.returncode != 0, name
        assert "set POSTGRES_PASSWORD in deploy/.env" in run.stderr, run.stderr


@pytest.fixture(scope="module")
def config(compose_runs: dict[str, subprocess.CompletedProcess[str]]) -> dict[str, Any]:
    run = compose_runs["small_host"]
    assert run.returncode == 0, run.stderr
    data: dict[str, Any] = yaml.safe_load(run.stdout)
    return data


EXPECTED_SERVICES = {
    "timescaledb",
    "redis",
    "collector",
    "api",
    "prometheus",
    "alertmanager",
    "grafana",
    "node-exporter",
    "postgres-exporter",
    "redis-exporter",
}
LIMIT_PREFIX = {
    "timescaledb": "TIMESCALEDB",
    "redis": "REDIS",
    "collector": "COLLECTOR",
    "api": "API",
    "prometheus": "PROMETHEUS",
    "alertmanager": "ALERTMANAGER",
    "grafana": "GRAFANA",
    "node-exporter": "NODE_EXPORTER",
    "postgres-exporter": "POSTGRES_EXPORTER",
    "redis-exporter": "REDIS_EXPORTER",
}


def command(service: dict[str, Any]) -> str:
    cmd = service["command"]
    return cmd if isinstance(cmd, str) else " ".join(cmd)


def test_services_limits_follow_the_allocation(config: dict[str, Any]) -> None:
    services = config["services"]
    assert set(services) == EXPECTED_SERVICES
    env = compose_env(Host.of(2, 24))
    for name, prefix in LIMIT_PREFIX.items():
        assert float(services[name]["cpus"]) == float(env[f"{prefix}_CPUS"]), name
        assert services[name]["mem_limit"] == env[f"{prefix}_MEMORY"], name
    assert (
        services["timescaledb"]["cpus"] == 0.5 and services["timescaledb"]["mem_limit"] == "6144m"
    )
    assert services["redis"]["mem_limit"] == "12288m"
    pg_command = command(services["timescaledb"])
    assert "-c shared_buffers=1536MB" in pg_command and "-c max_worker_processes=12" in pg_command
    assert "--maxmemory 9216mb" in command(services["redis"])


def test_ports_volumes_images_health(config: dict[str, Any]) -> None:
    for name, service in config["services"].items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), (name, port)
        assert "healthcheck" in service and service["healthcheck"]["test"], name
        image = service["image"]
        assert re.fullmatch(r"[\w./-]+:[\w.-]+", image) and not image.endswith(":latest"), image
        for volume in service.get("volumes", []):
            source, _target, *mode = str(volume).split(":")
            if source.startswith("/"):  # bind mounts are configuration, read-only
                assert mode and mode[0].startswith("ro"), (name, volume)
            else:
                assert source in config["volumes"], (name, volume)
    redis_cmd = command(config["services"]["redis"])
    assert "--appendonly yes" in redis_cmd and '--save "3600 1 300 100 60 10000"' in redis_cmd
    pg_volume = config["services"]["timescaledb"]["volumes"][0]
    assert pg_volume.startswith("timescaledb-data:")
    assert config["services"]["timescaledb"]["image"].startswith("timescale/timescaledb:")
    assert config["services"]["redis"]["image"].startswith("redis:7.")


def test_no_default_passwords_and_secrets_come_from_env(config: dict[str, Any]) -> None:
    text = yaml.safe_dump(config)
    for secret in SECRETS.values():
        assert secret in text  # interpolated from .env, nowhere else
    compose_text = (DEPLOY / "docker-compose.yml").read_text()
    for key in SECRETS:
        assert f"${{{key}:-" not in compose_text  # no fallback value for any password
    example = (DEPLOY / "env.example").read_text()
    for key in SECRETS:
        assert f"\n{key}=\n" in example


def test_monitoring_targets_are_compose_services(config: dict[str, Any]) -> None:
    services = config["services"]
    prom = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    for job in prom["scrape_configs"]:
        for static in job["static_configs"]:
            for target in static["targets"]:
                host = target.split(":")[0]
                assert host == "localhost" or host in services, (job["job_name"], target)
    am = yaml.safe_load((DEPLOY / "alertmanager" / "alertmanager.yml").read_text())
    for receiver in am["receivers"]:
        for hook in receiver["webhook_configs"]:
            assert re.match(r"http://(\w+):9108/alerts$", hook["url"])
            assert hook["url"].split("/")[2].split(":")[0] in services


def test_env_example_carries_the_reference_host_block() -> None:
    example = (DEPLOY / "env.example").read_text()
    assert compose_env_block(Host.of(128, 256)) in example
    required = set(re.findall(r"\$\{(\w+):\?", (DEPLOY / "docker-compose.yml").read_text()))
    defined = set(re.findall(r"^(\w+)=", example, re.M))
    assert required <= defined, required - defined


def test_tickvault_toml_of_the_stack_is_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("TICKVAULT_"):
            monkeypatch.delenv(key)
    settings = load_settings(DEPLOY / "tickvault.toml")
    assert [f.exchange for f in settings.feeds] == ["binance", "coinbase", "kraken"]
