"""Resource allocation of a tickvault host, and the server settings that follow from it.

One table (:data:`ALLOCATION`) splits a host's cores and memory between the parts of the stack.
Everything else is derived from it: PostgreSQL/TimescaleDB settings from the database's share,
Redis settings from Redis's share, and the Docker Compose CPU and memory limits (the
``--compose-env`` block of ``deploy/.env``). Change the table and all three move together.

Pure arithmetic: :func:`detect_host` is the only function that looks at the machine.
Memory sizes are binary (1 GB = 1024 MB = 1024**3 bytes), as PostgreSQL and Docker read them.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import psutil

from tickvault.errors import UsageError

MB = 1024**2
GB = 1024**3
DEFAULT_HOST_CORES = 128  # the reference host of the design, used for deploy/env.example
DEFAULT_HOST_MEMORY_GB = 256


@dataclass(frozen=True, slots=True)
class Share:
    cpu: float  # fraction of the host's cores
    memory: float  # fraction of the host's memory


# The design's split. What is left (6.25 % CPU, 3.125 % memory) stays with the OS and page cache.
ALLOCATION: dict[str, Share] = {
    "timescaledb": Share(0.25, 0.25),
    "redis": Share(0.125, 0.5),
    "collectors": Share(0.25, 0.125),
    "processing": Share(0.25, 0.0625),
    "monitoring": Share(0.0625, 0.03125),
}

# Compose services and where their limits come from: (env prefix, allocation part, fraction of it).
# The monitoring share is divided between its six services, Prometheus getting the most (TSDB).
COMPOSE_SERVICES: tuple[tuple[str, str, float], ...] = (
    ("TIMESCALEDB", "timescaledb", 1.0),
    ("REDIS", "redis", 1.0),
    ("COLLECTOR", "collectors", 1.0),
    ("API", "processing", 1.0),
    ("PROMETHEUS", "monitoring", 0.5),
    ("GRAFANA", "monitoring", 0.2),
    ("ALERTMANAGER", "monitoring", 0.1),
    ("NODE_EXPORTER", "monitoring", 0.2 / 3),
    ("POSTGRES_EXPORTER", "monitoring", 0.2 / 3),
    ("REDIS_EXPORTER", "monitoring", 0.2 / 3),
)
MIN_CPUS = 0.01  # Docker refuses smaller CPU quotas
MIN_MEMORY = 32 * MB


@dataclass(frozen=True, slots=True)
class Host:
    cores: float
    memory_bytes: int

    def __post_init__(self) -> None:
        if not self.cores > 0:
            raise UsageError(f"cores must be positive, got {self.cores}")
        if self.memory_bytes < 1 * GB:
            raise UsageError(f"memory must be at least 1 GB, got {self.memory_bytes / GB:g} GB")

    @classmethod
    def of(cls, cores: float, memory_gb: float) -> Host:
        return cls(cores, int(memory_gb * GB))


@dataclass(frozen=True, slots=True)
class Budget:
    cpus: float
    memory_bytes: int


def detect_host() -> Host:
    """Cores this process may use (cgroup affinity) and the machine's physical memory."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return Host(float(cores or 1), int(psutil.virtual_memory().total))


def allocate(host: Host) -> dict[str, Budget]:
    return {
        part: Budget(host.cores * share.cpu, int(host.memory_bytes * share.memory))
        for part, share in ALLOCATION.items()
    }


def size(n_bytes: int) -> str:
    """PostgreSQL size literal: whole GB when exact, else whole MB (rounded down, at least 1)."""
    if n_bytes >= GB and n_bytes % GB == 0:
        return f"{n_bytes // GB}GB"
    return f"{max(1, n_bytes // MB)}MB"


def postgres_settings(host: Host, max_connections: int = 100) -> dict[str, str]:
    """postgresql.conf values for the TimescaleDB share of ``host``."""
    if max_connections < 10:
        raise UsageError(f"max_connections must be at least 10, got {max_connections}")
    budget = allocate(host)["timescaledb"]
    memory = budget.memory_bytes
    cores = max(1, math.floor(budget.cpus))
    shared_buffers = memory // 4  # the usual 25 %: the rest is for work_mem and the page cache
    per_gather = cores // 2  # 0 on one core: parallel query only costs there
    # pgtune's rule: what shared_buffers leaves, over ~3 sort/hash nodes per connection, over the
    # processes one parallel query may run in; never below PostgreSQL's own default.
    work_mem = max(4 * MB, (memory - shared_buffers) // (max_connections * 3) // max(1, per_gather))
    ts_workers = max(8, cores // 2)  # compression, retention, continuous-aggregate jobs
    max_wal = min(16 * GB, max(2 * GB, memory // 8))  # fewer checkpoints under steady ingest
    return {
        "max_connections": str(max_connections),
        "shared_buffers": size(shared_buffers),
        "effective_cache_size": size(memory * 3 // 4),
        "work_mem": size(work_mem),
        "maintenance_work_mem": size(min(2 * GB, memory // 16)),
        "max_worker_processes": str(cores + ts_workers + 3),
        "max_parallel_workers": str(cores),
        "max_parallel_workers_per_gather": str(per_gather),
        "max_parallel_maintenance_workers": str(min(4, per_gather)),
        "timescaledb.max_background_workers": str(ts_workers),
        "wal_buffers": "16MB",
        "min_wal_size": size(max_wal // 4),
        "max_wal_size": size(max_wal),
        "checkpoint_timeout": "15min",
        "checkpoint_completion_target": "0.9",
        "wal_compression": "on",
        "random_page_cost": "1.1",  # SSD storage assumed
        "effective_io_concurrency": "256",
    }


def redis_settings(host: Host) -> dict[str, str]:
    """redis.conf values for the Redis share of ``host``.

    maxmemory is 75 % of the share: an RDB save or AOF rewrite forks, and copy-on-write pages
    plus fragmentation need the rest. ``volatile-lru`` evicts only keys with a TTL (the cache),
    never the TTL-less streams that connect processes in the scale-out deployment.
    """
    budget = allocate(host)["redis"]
    return {
        "maxmemory": f"{budget.memory_bytes * 3 // 4 // MB}mb",
        "maxmemory-policy": "volatile-lru",
        "io-threads": str(max(1, min(8, math.floor(budget.cpus) - 1))),
        "appendonly": "yes",
        "appendfsync": "everysec",
        "save": "3600 1 300 100 60 10000",
    }


def _pg_env_name(key: str) -> str:
    if key.startswith("timescaledb."):
        return "TS_" + key.removeprefix("timescaledb.").upper()
    return "PG_" + key.upper()


def compose_env(host: Host, max_connections: int = 100) -> dict[str, str]:
    """Variables for deploy/.env: limits per compose service, then the server settings."""
    budgets = allocate(host)
    env: dict[str, str] = {}
    for prefix, part, fraction in COMPOSE_SERVICES:
        cpus = max(MIN_CPUS, round(budgets[part].cpus * fraction, 2))
        memory = max(MIN_MEMORY, int(budgets[part].memory_bytes * fraction))
        env[f"{prefix}_CPUS"] = f"{cpus:g}"
        env[f"{prefix}_MEMORY"] = f"{memory // MB}m"
    db_memory = budgets["timescaledb"].memory_bytes
    # Parallel query workers share memory through /dev/shm; Docker's 64 MB default is too small.
    env["TIMESCALEDB_SHM_SIZE"] = f"{min(8 * GB, max(256 * MB, db_memory // 8)) // MB}m"
    for key, value in postgres_settings(host, max_connections).items():
        env[_pg_env_name(key)] = value
    redis = redis_settings(host)
    env["REDIS_MAXMEMORY"] = redis["maxmemory"]
    env["REDIS_MAXMEMORY_POLICY"] = redis["maxmemory-policy"]
    env["REDIS_IO_THREADS"] = redis["io-threads"]
    return env


BEGIN_MARK = "# >>> tickvault tune --compose-env"
END_MARK = "# <<< tickvault tune --compose-env"


def compose_env_block(host: Host, max_connections: int = 100) -> str:
    header = f"{BEGIN_MARK} (host: {host.cores:g} cores, {host.memory_bytes / GB:g} GB)"
    lines = [header, *(f"{k}={v}" for k, v in compose_env(host, max_connections).items())]
    return "\n".join([*lines, END_MARK]) + "\n"


def replace_block(text: str, block: str) -> str:
    """``text`` with its generated block replaced by ``block`` (appended when absent)."""
    start = text.find(BEGIN_MARK)
    end = text.find(END_MARK, start)
    if start == -1 or end == -1:
        sep = "" if not text or text.endswith("\n") else "\n"
        return text + sep + block
    end = text.find("\n", end)
    tail = "" if end == -1 else text[end + 1 :]
    return text[:start] + block + tail
