"""Write deploy/grafana/dashboards/*.json: ``python deploy/grafana/generate_dashboards.py``.

The dashboards are data; this file is their source. Each panel is (title, unit, queries) with
queries as (PromQL, legend). A test regenerates them and compares, and checks every query's
syntax (promtool) and metric names (against tickvault.monitoring.metrics and the exporters).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

DATASOURCE = {"type": "prometheus", "uid": "prometheus"}
RATE = "[$__rate_interval]"
EX = 'exchange=~"$exchange"'
Query = tuple[str, str]
Panel = tuple[str, str, list[Query]]


def q(expr: str, legend: str = "") -> Query:
    return (expr, legend)


def quantiles(metric: str, by: str) -> list[Query]:
    return [
        q(f"histogram_quantile({p}, sum by (le, {by}) (rate({metric}_bucket{RATE})))", f"p{int(float(p) * 100)} {{{{{by}}}}}")
        for p in ("0.5", "0.95", "0.99")
    ]


HOST: list[Panel] = [
    ("Host CPU busy", "percent", [q(f'100 * (1 - avg by (instance) (rate(node_cpu_seconds_total{{mode="idle"}}{RATE})))', "{{instance}}")]),
    ("Host memory used", "percent", [q("100 * (1 - node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes)", "{{instance}}")]),
    ("Disk used", "percent", [q('100 * (1 - node_filesystem_avail_bytes{fstype!~"tmpfs|ramfs|overlay|squashfs|nsfs"} / node_filesystem_size_bytes{fstype!~"tmpfs|ramfs|overlay|squashfs|nsfs"})', "{{instance}} {{mountpoint}}")]),
    ("Firing alerts", "none", [q('count by (alertname, severity) (ALERTS{alertstate="firing"})', "{{alertname}} ({{severity}})")]),
]

OVERVIEW: list[Panel] = [
    ("Messages received /s", "ops", [q(f"sum by (exchange) (rate(tickvault_messages_received_total{RATE}))", "{{exchange}}")]),
    ("Events out /s by stage", "ops", [q(f"sum by (stage) (rate(tickvault_events_out_total{RATE}))", "{{stage}}")]),
    ("Decode errors /s", "ops", [q(f"sum by (exchange, reason) (rate(tickvault_decode_errors_total{RATE}))", "{{exchange}} {{reason}}")]),
    ("Rejects /s", "ops", [q(f"sum by (stage, reason) (rate(tickvault_rejects_total{RATE}))", "{{stage}} {{reason}}")]),
    ("Quarantine size", "short", [q("sum by (exchange) (tickvault_quarantine_records)", "{{exchange}}")]),
    ("Queue depth", "short", [q("sum by (stage) (tickvault_queue_depth_items)", "{{stage}}")]),
    ("Spilled to disk", "Bps", [q(f"sum by (stage) (rate(tickvault_queue_spilled_bytes_total{RATE}))", "{{stage}}")]),
    ("Batch size (rows)", "short", quantiles("tickvault_batch_size_rows", "stage")),
    ("tickvault CPU (cores)", "short", [q(f'rate(process_cpu_seconds_total{{job="tickvault"}}{RATE})', "{{service}}")]),
    ("tickvault memory", "bytes", [q('process_resident_memory_bytes{job="tickvault"}', "{{service}}")]),
    ("Scrape targets up", "none", [q("up", "{{job}} {{instance}}")]),
    *HOST,
]

FEEDS: list[Panel] = [
    ("WebSocket connections", "short", [q(f"sum by (exchange) (tickvault_websocket_connections{{{EX}}})", "{{exchange}}")]),
    ("Reconnects /s", "ops", [q(f"sum by (exchange, reason) (rate(tickvault_websocket_reconnects_total{{{EX}}}{RATE}))", "{{exchange}} {{reason}}")]),
    ("Messages /s by channel", "ops", [q(f"sum by (exchange, channel) (rate(tickvault_messages_received_total{{{EX}}}{RATE}))", "{{exchange}} {{channel}}")]),
    ("Decode errors /s", "ops", [q(f"sum by (exchange, reason) (rate(tickvault_decode_errors_total{{{EX}}}{RATE}))", "{{exchange}} {{reason}}")]),
    ("Book resyncs /s", "ops", [q(f"sum by (exchange, symbol) (rate(tickvault_book_resyncs_total{{{EX}}}{RATE}))", "{{exchange}} {{symbol}}")]),
    ("Checksum failures /s", "ops", [q(f"sum by (exchange, symbol) (rate(tickvault_book_checksum_failures_total{{{EX}}}{RATE}))", "{{exchange}} {{symbol}}")]),
    ("Gaps /s", "ops", [
        q(f"sum by (exchange) (rate(tickvault_gaps_found_total{{{EX}}}{RATE}))", "found {{exchange}}"),
        q(f"sum by (exchange) (rate(tickvault_gaps_repaired_total{{{EX}}}{RATE}))", "repaired {{exchange}}"),
        q(f"sum by (exchange) (rate(tickvault_gap_repair_failures_total{{{EX}}}{RATE}))", "failed {{exchange}}"),
    ]),
    ("Gaps pending repair", "short", [q(f"sum by (exchange, channel) (tickvault_gaps_pending{{{EX}}})", "{{exchange}} {{channel}}")]),
    ("REST weight used", "percentunit", [q(f"tickvault_rest_weight_used{{{EX}}} / tickvault_rest_weight_limit{{{EX}}}", "{{exchange}}")]),
    ("REST requests /s by status", "ops", [q(f"sum by (exchange, status) (rate(tickvault_rest_requests_total{{{EX}}}{RATE}))", "{{exchange}} {{status}}")]),
    ("REST 429 / 418 in the last hour", "short", [q(f"sum by (exchange, status) (increase(tickvault_rest_bans_total{{{EX}}}[1h]))", "{{exchange}} {{status}}")]),
    ("Seconds since last event received", "s", [q(f'max by (exchange, channel) (tickvault_stream_freshness_seconds{{stage="received",{EX}}})', "{{exchange}} {{channel}}")]),
]

QUALITY: list[Panel] = [
    ("Quality score per stream", "percentunit", [q(f"tickvault_quality_score{{{EX}}}", "{{exchange}} {{symbol}} {{channel}}")]),
    ("Lowest 10 streams", "percentunit", [q(f"bottomk(10, tickvault_quality_score{{{EX}}})", "{{exchange}} {{symbol}} {{channel}}")]),
    ("Score components (mean over streams)", "percentunit", [q(f"avg by (exchange, component) (tickvault_quality_component_score{{{EX}}})", "{{exchange}} {{component}}")]),
    ("Streams below 0.8", "short", [q(f"count by (exchange) (tickvault_quality_score{{{EX}}} < 0.8)", "{{exchange}}")]),
    ("Freshness: seconds since last event", "s", [q(f"max by (exchange, stage) (tickvault_stream_freshness_seconds{{{EX}}})", "{{exchange}} {{stage}}")]),
    ("Stalest streams (stored)", "s", [q(f'topk(10, tickvault_stream_freshness_seconds{{stage="stored",{EX}}})', "{{exchange}} {{symbol}} {{channel}}")]),
    ("Rejects /s by reason", "ops", [q(f"sum by (exchange, reason) (rate(tickvault_rejects_total{{{EX}}}{RATE}))", "{{exchange}} {{reason}}")]),
    ("Quarantine size", "short", [q(f"tickvault_quarantine_records{{{EX}}}", "{{exchange}}")]),
]

STORAGE: list[Panel] = [
    ("Storage reachable (tickvault probe)", "none", [q("tickvault_storage_up", "{{backend}} {{service}}")]),
    ("Write latency", "s", quantiles("tickvault_write_latency_seconds", "sink")),
    ("Batches written /s", "ops", [q(f"sum by (sink, table) (rate(tickvault_write_latency_seconds_count{RATE}))", "{{sink}} {{table}}")]),
    ("Write errors /s", "ops", [q(f"sum by (sink, reason) (rate(tickvault_write_errors_total{RATE}))", "{{sink}} {{reason}}")]),
    ("Writer backlog (rows)", "short", [q("tickvault_writer_backlog_rows", "{{sink}}")]),
    ("tickvault cache hit ratio", "percentunit", [q(f'sum by (cache) (rate(tickvault_cache_requests_total{{result="hit"}}{RATE})) / sum by (cache) (rate(tickvault_cache_requests_total{RATE}))', "{{cache}}")]),
    ("PostgreSQL up", "none", [q("pg_up", "{{instance}}")]),
    ("Database size", "bytes", [q("pg_database_size_bytes", "{{datname}}")]),
    ("PostgreSQL connections", "short", [q("sum by (datname) (pg_stat_database_numbackends)", "{{datname}}")]),
    ("Transactions /s", "ops", [q(f"sum by (datname) (rate(pg_stat_database_xact_commit{RATE}))", "{{datname}}")]),
    ("PostgreSQL buffer hit ratio", "percentunit", [q(f"sum by (datname) (rate(pg_stat_database_blks_hit{RATE})) / (sum by (datname) (rate(pg_stat_database_blks_hit{RATE})) + sum by (datname) (rate(pg_stat_database_blks_read{RATE})))", "{{datname}}")]),
    ("Deadlocks", "short", [q(f"sum by (datname) (increase(pg_stat_database_deadlocks{RATE}))", "{{datname}}")]),
    ("Redis up", "none", [q("redis_up", "{{instance}}")]),
    ("Redis memory", "bytes", [q("redis_memory_used_bytes", "used"), q("redis_memory_max_bytes", "maxmemory")]),
    ("Redis keyspace hit ratio", "percentunit", [q(f"rate(redis_keyspace_hits_total{RATE}) / (rate(redis_keyspace_hits_total{RATE}) + rate(redis_keyspace_misses_total{RATE}))", "{{instance}}")]),
    ("Redis evictions /s", "ops", [q(f"rate(redis_evicted_keys_total{RATE})", "{{instance}}")]),
    ("Redis commands /s", "ops", [q(f"rate(redis_commands_processed_total{RATE})", "{{instance}}")]),
    ("Redis clients", "short", [q("redis_connected_clients", "{{instance}}")]),
    ("Redis persistence OK (RDB, AOF)", "none", [q("redis_rdb_last_bgsave_status", "rdb"), q("redis_aof_last_bgrewrite_status", "aof")]),
]

DASHBOARDS: dict[str, tuple[str, str, list[Panel], bool]] = {
    # file stem: (uid, title, panels, has the exchange variable)
    "pipeline-overview": ("tv-overview", "tickvault / Pipeline overview", OVERVIEW, False),
    "feed-health": ("tv-feeds", "tickvault / Feed health per exchange", FEEDS, True),
    "data-quality": ("tv-quality", "tickvault / Data quality", QUALITY, True),
    "storage-cache": ("tv-storage", "tickvault / Storage and cache", STORAGE, False),
}


def exchange_variable() -> dict[str, Any]:
    query = "label_values(tickvault_messages_received_total, exchange)"
    return {
        "name": "exchange",
        "label": "Exchange",
        "type": "query",
        "datasource": DATASOURCE,
        "query": {"query": query, "refId": "exchange"},
        "definition": query,
        "includeAll": True,
        "allValue": ".*",
        "multi": True,
        "current": {"text": "All", "value": "$__all"},
        "refresh": 2,
    }


def dashboard(uid: str, title: str, panels: list[Panel], variable: bool) -> dict[str, Any]:
    built = []
    for index, (panel_title, unit, queries) in enumerate(panels):
        built.append(
            {
                "id": index + 1,
                "type": "timeseries",
                "title": panel_title,
                "datasource": DATASOURCE,
                "gridPos": {"h": 8, "w": 12, "x": 12 * (index % 2), "y": 8 * (index // 2)},
                "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
                "options": {"legend": {"displayMode": "list", "placement": "bottom"}},
                "targets": [
                    {"refId": chr(ord("A") + n), "datasource": DATASOURCE, "expr": expr, "legendFormat": legend}
                    for n, (expr, legend) in enumerate(queries)
                ],
            }
        )
    return {
        "uid": uid,
        "title": title,
        "tags": ["tickvault"],
        "timezone": "utc",
        "schemaVersion": 39,
        "version": 1,
        "editable": False,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": [exchange_variable()] if variable else []},
        "panels": built,
    }


def render() -> dict[str, str]:
    """File name -> JSON text of every dashboard."""
    return {
        f"{stem}.json": json.dumps(dashboard(*spec), indent=2) + "\n"
        for stem, spec in DASHBOARDS.items()
    }


if __name__ == "__main__":
    out = Path(__file__).parent / "dashboards"
    for name, text in render().items():
        (out / name).write_text(text)
        print(f"wrote {out / name}", file=sys.stderr)
