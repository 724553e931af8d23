"""Test helpers: the metric names a PromQL expression refers to, and the names available."""

from __future__ import annotations

import re

from prometheus_client import CollectorRegistry

from tickvault.monitoring.metrics import Metrics

# Series the exporters in deploy/ provide that rules and dashboards use. test_exporters_live
# checks each against the real exporters, so a renamed series fails a test, not a dashboard.
EXPORTER_METRICS: dict[str, frozenset[str]] = {
    "node": frozenset(
        {
            "node_cpu_seconds_total",
            "node_memory_MemAvailable_bytes",
            "node_memory_MemTotal_bytes",
            "node_filesystem_avail_bytes",
            "node_filesystem_size_bytes",
            "node_load1",
            "node_network_receive_bytes_total",
            "node_network_transmit_bytes_total",
            "node_disk_read_bytes_total",
            "node_disk_written_bytes_total",
        }
    ),
    "postgres": frozenset(
        {
            "pg_up",
            "pg_database_size_bytes",
            "pg_stat_database_numbackends",
            "pg_stat_database_xact_commit",
            "pg_stat_database_blks_hit",
            "pg_stat_database_blks_read",
            "pg_stat_database_deadlocks",
        }
    ),
    "redis": frozenset(
        {
            "redis_up",
            "redis_memory_used_bytes",
            "redis_memory_max_bytes",
            "redis_connected_clients",
            "redis_keyspace_hits_total",
            "redis_keyspace_misses_total",
            "redis_evicted_keys_total",
            "redis_commands_processed_total",
            "redis_rdb_last_bgsave_status",
            "redis_aof_last_bgrewrite_status",
        }
    ),
}
PROMETHEUS_BUILTIN = frozenset({"up", "scrape_duration_seconds", "ALERTS"})


def known_metric_names() -> frozenset[str]:
    tickvault = Metrics(CollectorRegistry()).sample_names()
    exporters = frozenset().union(*EXPORTER_METRICS.values())
    return tickvault | exporters | PROMETHEUS_BUILTIN


_KEYWORDS = frozenset(
    {"and", "or", "unless", "bool", "offset", "inf", "nan", "Inf", "NaN", "by", "without", "on"}
    | {"ignoring", "group_left", "group_right"}
)


def metric_names(expr: str) -> set[str]:
    """Metric names in ``expr``: identifiers that are not functions, keywords or label names."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings (label values, regexes)
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # range and subquery durations
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    names = set()
    for match in re.finditer(r"(?<![\w.$])[A-Za-z_:][A-Za-z0-9_:]*", text):
        token = match.group()
        if text[match.end() :].lstrip().startswith("(") or token in _KEYWORDS:
            continue
        names.add(token)
    return names
