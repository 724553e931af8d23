"""Allocation arithmetic for the reference hosts, and the ``tickvault tune`` command."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from tickvault.cli import _register, app
from tickvault.errors import UsageError
from tickvault.monitoring.tune import (
    ALLOCATION,
    GB,
    Host,
    allocate,
    compose_env,
    postgres_settings,
    redis_settings,
    replace_block,
)

BIG = Host.of(128, 256)
SMALL = Host.of(2, 24)


def test_allocation_leaves_headroom_for_the_os() -> None:
    assert sum(s.cpu for s in ALLOCATION.values()) == pytest.approx(0.9375)
    assert sum(s.memory for s in ALLOCATION.values()) == pytest.approx(0.96875)
    budgets = allocate(BIG)
    assert budgets["timescaledb"].cpus == 32 and budgets["timescaledb"].memory_bytes == 64 * GB
    assert budgets["redis"].cpus == 16 and budgets["redis"].memory_bytes == 128 * GB
    assert budgets["collectors"].cpus == 32 and budgets["collectors"].memory_bytes == 32 * GB
    assert budgets["processing"].cpus == 32 and budgets["processing"].memory_bytes == 16 * GB
    assert budgets["monitoring"].cpus == 8 and budgets["monitoring"].memory_bytes == 8 * GB


def test_postgres_settings_128_cores_256_gb() -> None:
    pg = postgres_settings(BIG)
    # TimescaleDB share: 32 cores, 64 GB.
    assert pg["shared_buffers"] == "16GB"  # 25 % of 64 GB
    assert pg["effective_cache_size"] == "48GB"  # 75 % of 64 GB
    # (64 - 16) GB / (100 connections * 3) / 16 workers per gather = 10.24 MB -> 10MB
    assert pg["work_mem"] == "10MB"
    assert pg["maintenance_work_mem"] == "2GB"  # 64 GB / 16 = 4 GB, capped at 2 GB
    assert pg["max_parallel_workers"] == "32"
    assert pg["max_parallel_workers_per_gather"] == "16"
    assert pg["max_parallel_maintenance_workers"] == "4"
    assert pg["timescaledb.max_background_workers"] == "16"
    assert pg["max_worker_processes"] == "51"  # 32 parallel + 16 background + 3
    assert (pg["min_wal_size"], pg["max_wal_size"]) == ("2GB", "8GB")  # 64 GB / 8
    redis = redis_settings(BIG)
    assert redis["maxmemory"] == "98304mb"  # 75 % of 128 GB
    assert redis["maxmemory-policy"] == "volatile-lru"
    assert redis["io-threads"] == "8"


def test_postgres_settings_2_cores_24_gb() -> None:
    pg = postgres_settings(SMALL)
    # TimescaleDB share: 0.5 core (counted as 1), 6 GB.
    assert pg["shared_buffers"] == "1536MB"
    assert pg["effective_cache_size"] == "4608MB"
    assert pg["work_mem"] == "15MB"  # 4.5 GB / 300 = 15.36 MB, no parallel query
    assert pg["maintenance_work_mem"] == "384MB"  # 6 GB / 16
    assert pg["max_parallel_workers"] == "1"
    assert pg["max_parallel_workers_per_gather"] == "0"
    assert pg["timescaledb.max_background_workers"] == "8"
    assert pg["max_worker_processes"] == "12"
    assert (pg["min_wal_size"], pg["max_wal_size"]) == ("512MB", "2GB")  # floor of 2 GB
    redis = redis_settings(SMALL)
    assert redis["maxmemory"] == "9216mb"  # 75 % of 12 GB
    assert redis["io-threads"] == "1"


def test_compose_limits_follow_the_allocation() -> None:
    big, small = compose_env(BIG), compose_env(SMALL)
    assert (big["TIMESCALEDB_CPUS"], big["TIMESCALEDB_MEMORY"]) == ("32", "65536m")
    assert (big["REDIS_CPUS"], big["REDIS_MEMORY"]) == ("16", "131072m")
    assert (big["COLLECTOR_CPUS"], big["COLLECTOR_MEMORY"]) == ("32", "32768m")
    assert (big["API_CPUS"], big["API_MEMORY"]) == ("32", "16384m")
    monitoring = [
        p
        for p in (
            "PROMETHEUS",
            "GRAFANA",
            "ALERTMANAGER",
            "NODE_EXPORTER",
            "POSTGRES_EXPORTER",
            "REDIS_EXPORTER",
        )
    ]
    assert sum(float(big[f"{p}_CPUS"]) for p in monitoring) == pytest.approx(8, abs=0.03)
    assert sum(int(big[f"{p}_MEMORY"][:-1]) for p in monitoring) == pytest.approx(8192, abs=3)
    assert big["PG_SHARED_BUFFERS"] == "16GB" and big["TS_MAX_BACKGROUND_WORKERS"] == "16"
    assert big["REDIS_MAXMEMORY"] == "98304mb"
    assert (small["TIMESCALEDB_CPUS"], small["TIMESCALEDB_MEMORY"]) == ("0.5", "6144m")
    assert small["NODE_EXPORTER_CPUS"] == "0.01"  # Docker's smallest quota, not 0.0083
    assert small["TIMESCALEDB_SHM_SIZE"] == "768m"


def test_bad_hosts_are_refused() -> None:
    with pytest.raises(UsageError, match="cores must be positive"):
        Host.of(0, 16)
    with pytest.raises(UsageError, match="at least 1 GB"):
        Host.of(4, 0.5)
    with pytest.raises(UsageError, match="max_connections"):
        postgres_settings(BIG, max_connections=2)


def test_env_file_block_is_replaced_not_duplicated() -> None:
    block_a = "# >>> tickvault tune --compose-env\nA=1\n# <<< tickvault tune --compose-env\n"
    block_b = "# >>> tickvault tune --compose-env\nA=2\n# <<< tickvault tune --compose-env\n"
    text = replace_block("POSTGRES_PASSWORD=x", block_a)
    assert text == "POSTGRES_PASSWORD=x\n" + block_a
    text = replace_block(text + "TAIL=1\n", block_b)
    assert text == "POSTGRES_PASSWORD=x\n" + block_b + "TAIL=1\n"


def test_cli(tmp_path: Path) -> None:
    _register()
    runner = CliRunner()
    out = runner.invoke(app, ["tune", "--cores", "128", "--memory-gb", "256"])
    assert out.exit_code == 0, out.output
    assert "shared_buffers = 16GB" in out.output and "maxmemory 98304mb" in out.output
    env = tmp_path / ".env"
    env.write_text("POSTGRES_PASSWORD=s3cret\n")
    for cores in ("2", "4"):
        args = [
            "tune",
            "--cores",
            cores,
            "--memory-gb",
            "24",
            "--compose-env",
            "--output",
            str(env),
        ]
        out = runner.invoke(app, args)
        assert out.exit_code == 0, out.output
    text = env.read_text()
    assert text.startswith("POSTGRES_PASSWORD=s3cret\n# >>> tickvault tune --compose-env (host: 4")
    assert text.count("TIMESCALEDB_CPUS=") == 1 and "TIMESCALEDB_CPUS=1\n" in text
    out = runner.invoke(app, ["tune", "--output", str(env)])
    assert out.exit_code != 0
