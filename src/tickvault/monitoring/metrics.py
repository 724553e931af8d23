"""Every tickvault metric, defined once, behind a small typed facade.

Names are ``tickvault_<what>_<unit>`` (counters end in ``_total``); label sets are fixed and use
the same words everywhere: ``exchange``, ``symbol``, ``channel``, ``stage``, then a ``reason`` or
``sink`` where the metric needs one. Components never build metric objects themselves; they ask
the facade for a labelled child::

    m = get_metrics()
    m.messages_received("binance", "trades").inc()
    m.event_seen("binance", "BTC-USDT", "trades", "stored", ts_ns)
    with m.write_latency("postgres", "trades").time(): ...

Each :class:`Metrics` owns its own :class:`CollectorRegistry` (never prometheus-client's global
one), so a test builds an isolated instance and a process has exactly one (:func:`get_metrics`).
Updating a metric is an in-memory operation: it never blocks or fails because monitoring is
down, so the pipeline keeps running whatever happens to Prometheus.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from tickvault import __version__

Kind = Literal["counter", "gauge", "histogram"]
# Freshness is measured where data arrives and where it is stored: "received" goes stale when
# an exchange goes quiet, "stored" also when storage is down (the alert inhibition relies on it).
FreshnessStage = Literal["received", "stored"]

BATCH_ROWS_BUCKETS = (1, 10, 100, 500, 1_000, 5_000, 10_000, 50_000, 100_000, 500_000)
LATENCY_S_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


@dataclass(frozen=True, slots=True)
class MetricSpec:
    name: str  # family name; counters are exposed as <name>_total
    kind: Kind
    help: str
    labels: tuple[str, ...]

    def sample_names(self) -> tuple[str, ...]:
        """Every series name this metric puts on /metrics (what PromQL can refer to)."""
        if self.kind == "counter":
            return (f"{self.name}_total", f"{self.name}_created")
        if self.kind == "histogram":
            base = self.name
            return (f"{base}_bucket", f"{base}_sum", f"{base}_count", f"{base}_created")
        return (self.name,)


# Series produced by ProcessCollector (Linux) on every tickvault process: CPU and memory.
PROCESS_SAMPLE_NAMES = (
    "process_cpu_seconds_total",
    "process_resident_memory_bytes",
    "process_virtual_memory_bytes",
    "process_start_time_seconds",
    "process_open_fds",
    "process_max_fds",
)


class _FreshnessCollector(Collector):
    """Last event time per stream, and its age computed at scrape time (not at update time,
    so a stream that stops sending keeps getting older on every scrape)."""

    LABELS = ("exchange", "symbol", "channel", "stage")

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._last_s: dict[tuple[str, str, str, str], float] = {}
        self._lock = threading.Lock()

    def seen(self, key: tuple[str, str, str, str], ts_s: float) -> None:
        with self._lock:
            # Out-of-order events never move freshness backwards.
            if ts_s > self._last_s.get(key, float("-inf")):
                self._last_s[key] = ts_s

    def forget(self, key: tuple[str, str, str, str]) -> None:
        with self._lock:
            self._last_s.pop(key, None)

    def collect(self) -> Iterable[Metric]:
        with self._lock:
            items = list(self._last_s.items())
        now_s = self._clock()
        last = GaugeMetricFamily(
            "tickvault_last_event_timestamp_seconds",
            "Event time of the newest event per stream and stage (Unix seconds).",
            labels=self.LABELS,
        )
        age = GaugeMetricFamily(
            "tickvault_stream_freshness_seconds",
            "Seconds since the newest event per stream and stage, at scrape time.",
            labels=self.LABELS,
        )
        for key, ts_s in items:
            last.add_metric(list(key), ts_s)
            age.add_metric(list(key), max(0.0, now_s - ts_s))
        yield last
        yield age


FRESHNESS_SPECS = (
    MetricSpec("tickvault_last_event_timestamp_seconds", "gauge", "", _FreshnessCollector.LABELS),
    MetricSpec("tickvault_stream_freshness_seconds", "gauge", "", _FreshnessCollector.LABELS),
)


class Metrics:
    """All metrics of one process, registered in one registry."""

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        clock: Callable[[], float] = time.time,
        process_metrics: bool = True,
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.specs: list[MetricSpec] = list(FRESHNESS_SPECS)
        c, g, h = self._counter, self._gauge, self._histogram
        # -- feeds
        self._messages_received = c(
            "tickvault_messages_received", "Raw messages received.", ("exchange", "channel")
        )
        self._decode_errors = c(
            "tickvault_decode_errors", "Messages that failed to decode.", ("exchange", "reason")
        )
        self._ws_connections = g(
            "tickvault_websocket_connections", "Open WebSocket connections.", ("exchange",)
        )
        self._ws_reconnects = c(
            "tickvault_websocket_reconnects", "WebSocket reconnects.", ("exchange", "reason")
        )
        self._book_resyncs = c(
            "tickvault_book_resyncs", "Order books rebuilt from a snapshot.", ("exchange", "symbol")
        )
        self._checksum_failures = c(
            "tickvault_book_checksum_failures",
            "Order book checksum mismatches.",
            ("exchange", "symbol"),
        )
        gap_labels = ("exchange", "symbol", "channel")
        self._gaps_found = c("tickvault_gaps_found", "Gaps detected.", (*gap_labels, "reason"))
        self._gaps_repaired = c("tickvault_gaps_repaired", "Gaps repaired from REST.", gap_labels)
        self._gap_repair_failures = c(
            "tickvault_gap_repair_failures", "Gap repair attempts that failed.", gap_labels
        )
        self._gaps_pending = g("tickvault_gaps_pending", "Gaps not repaired yet.", gap_labels)
        self._late_trades = c(
            "tickvault_late_trades",
            "Trades that arrived after their derived bar closed (revised: the bar was revised;"
            " too_late: older than the late window, a gap whose repair rebuilds the bars).",
            ("exchange", "reason"),
        )
        # -- REST
        self._rest_requests = c(
            "tickvault_rest_requests", "REST requests by HTTP status.", ("exchange", "status")
        )
        self._rest_weight_used = g(
            "tickvault_rest_weight_used",
            "Request weight used in the current window.",
            ("exchange",),
        )
        self._rest_weight_limit = g(
            "tickvault_rest_weight_limit", "Request weight allowed per window.", ("exchange",)
        )
        self._rest_bans = c(
            "tickvault_rest_bans",
            "Rate-limit refusals (HTTP 429) and bans (HTTP 418).",
            ("exchange", "status"),
        )
        # -- pipeline stages
        self._events_out = c(
            "tickvault_events_out", "Events emitted by a stage.", ("exchange", "channel", "stage")
        )
        self._rejects = c(
            "tickvault_rejects", "Records rejected to quarantine.", ("exchange", "stage", "reason")
        )
        self._quarantine = g(
            "tickvault_quarantine_records", "Records held in quarantine.", ("exchange",)
        )
        self._queue_depth = g(
            "tickvault_queue_depth_items", "Items waiting in a queue.", ("stage",)
        )
        self._spilled = c("tickvault_queue_spilled_bytes", "Bytes spilled to disk.", ("stage",))
        self._batch_rows = h(
            "tickvault_batch_size_rows", "Rows per batch.", ("stage",), BATCH_ROWS_BUCKETS
        )
        # -- quality
        stream = ("exchange", "symbol", "channel")
        self._quality = g("tickvault_quality_score", "Quality score 0..1 per stream.", stream)
        self._quality_component = g(
            "tickvault_quality_component_score",
            "Quality score components 0..1 per stream.",
            (*stream, "component"),
        )
        # -- storage and cache
        self._write_latency = h(
            "tickvault_write_latency_seconds",
            "Time to write one batch.",
            ("sink", "table"),
            LATENCY_S_BUCKETS,
        )
        self._write_errors = c("tickvault_write_errors", "Failed writes.", ("sink", "reason"))
        self._writer_backlog = g(
            "tickvault_writer_backlog_rows", "Rows buffered, not yet written.", ("sink",)
        )
        self._storage_up = g(
            "tickvault_storage_up", "1 when the storage backend answers, else 0.", ("backend",)
        )
        self._cache_requests = c(
            "tickvault_cache_requests", "Cache lookups by result (hit/miss).", ("cache", "result")
        )
        # -- monitoring itself
        self._alerts_received = c(
            "tickvault_alerts_received",
            "Alert notifications received on the /alerts webhook.",
            ("alertname", "severity", "status"),
        )
        self._build_info = g("tickvault_build_info", "Always 1; the version label.", ("version",))
        self._build_info.labels(__version__).set(1)

        self._freshness = _FreshnessCollector(clock)
        self.registry.register(self._freshness)
        if process_metrics:
            ProcessCollector(registry=self.registry)

    # -- definitions ---------------------------------------------------------------------------

    def _counter(self, name: str, help_: str, labels: tuple[str, ...]) -> Counter:
        self.specs.append(MetricSpec(name, "counter", help_, labels))
        return Counter(name, help_, labels, registry=self.registry)

    def _gauge(self, name: str, help_: str, labels: tuple[str, ...]) -> Gauge:
        self.specs.append(MetricSpec(name, "gauge", help_, labels))
        return Gauge(name, help_, labels, registry=self.registry)

    def _histogram(
        self, name: str, help_: str, labels: tuple[str, ...], buckets: tuple[float, ...]
    ) -> Histogram:
        self.specs.append(MetricSpec(name, "histogram", help_, labels))
        return Histogram(name, help_, labels, registry=self.registry, buckets=buckets)

    def sample_names(self) -> frozenset[str]:
        """Every series name a tickvault process can expose (dashboards and rules use these)."""
        names = {n for spec in self.specs for n in spec.sample_names()}
        return frozenset(names | set(PROCESS_SAMPLE_NAMES))

    def value(self, name: str, **labels: str) -> float | None:
        """Current value of one series, or None when it does not exist (for checks and tests)."""
        return self.registry.get_sample_value(name, labels)

    # -- declaring what will be counted ----------------------------------------------------------

    def declare_stream(self, exchange: str, symbol: str, channel: str) -> None:
        """Create a subscribed stream's counters at 0. A counter whose first sample is already
        1 shows no ``increase()`` in Prometheus, so the first 429 or failed repair would never
        alert; declaring them at subscription time avoids that."""
        for status in ("418", "429"):
            self._rest_bans.labels(exchange, status)
        self._gaps_repaired.labels(exchange, symbol, channel)
        self._gap_repair_failures.labels(exchange, symbol, channel)
        self._gaps_pending.labels(exchange, symbol, channel)
        self._messages_received.labels(exchange, channel)

    # -- feeds ---------------------------------------------------------------------------------

    def messages_received(self, exchange: str, channel: str) -> Counter:
        return self._messages_received.labels(exchange, channel)

    def decode_errors(self, exchange: str, reason: str) -> Counter:
        return self._decode_errors.labels(exchange, reason)

    def websocket_connections(self, exchange: str) -> Gauge:
        return self._ws_connections.labels(exchange)

    def websocket_reconnects(self, exchange: str, reason: str) -> Counter:
        return self._ws_reconnects.labels(exchange, reason)

    def book_resyncs(self, exchange: str, symbol: str) -> Counter:
        return self._book_resyncs.labels(exchange, symbol)

    def book_checksum_failures(self, exchange: str, symbol: str) -> Counter:
        return self._checksum_failures.labels(exchange, symbol)

    def gaps_found(self, exchange: str, symbol: str, channel: str, reason: str) -> Counter:
        return self._gaps_found.labels(exchange, symbol, channel, reason)

    def late_trades(self, exchange: str, reason: str) -> Counter:
        return self._late_trades.labels(exchange, reason)

    def gaps_repaired(self, exchange: str, symbol: str, channel: str) -> Counter:
        return self._gaps_repaired.labels(exchange, symbol, channel)

    def gap_repair_failures(self, exchange: str, symbol: str, channel: str) -> Counter:
        return self._gap_repair_failures.labels(exchange, symbol, channel)

    def gaps_pending(self, exchange: str, symbol: str, channel: str) -> Gauge:
        return self._gaps_pending.labels(exchange, symbol, channel)

    # -- REST ----------------------------------------------------------------------------------

    def rest_response(self, exchange: str, status: int, weight_used: int | None = None) -> None:
        """Count one REST response; 418/429 also count as a ban/refusal."""
        self._rest_requests.labels(exchange, str(status)).inc()
        if status in (418, 429):
            self._rest_bans.labels(exchange, str(status)).inc()
        if weight_used is not None:
            self._rest_weight_used.labels(exchange).set(weight_used)

    def rest_weight_limit(self, exchange: str) -> Gauge:
        return self._rest_weight_limit.labels(exchange)

    # -- pipeline stages -----------------------------------------------------------------------

    def events_out(self, exchange: str, channel: str, stage: str) -> Counter:
        return self._events_out.labels(exchange, channel, stage)

    def rejects(self, exchange: str, stage: str, reason: str) -> Counter:
        return self._rejects.labels(exchange, stage, reason)

    def quarantine_records(self, exchange: str) -> Gauge:
        return self._quarantine.labels(exchange)

    def queue_depth(self, stage: str) -> Gauge:
        return self._queue_depth.labels(stage)

    def spilled_bytes(self, stage: str) -> Counter:
        return self._spilled.labels(stage)

    def batch_rows(self, stage: str) -> Histogram:
        return self._batch_rows.labels(stage)

    # -- quality and freshness -----------------------------------------------------------------

    def quality(
        self, exchange: str, symbol: str, channel: str, score: float, components: dict[str, float]
    ) -> None:
        """Publish one stream's quality score and the components it was computed from."""
        self._quality.labels(exchange, symbol, channel).set(score)
        for component, value in components.items():
            self._quality_component.labels(exchange, symbol, channel, component).set(value)

    def event_seen(
        self, exchange: str, symbol: str, channel: str, stage: FreshnessStage, ts_ns: int
    ) -> None:
        """The newest event of a stream reached ``stage``; ``ts_ns`` is its event time."""
        self._freshness.seen((exchange, symbol, channel, stage), ts_ns / 1e9)

    def forget_stream(
        self, exchange: str, symbol: str, channel: str, stage: FreshnessStage
    ) -> None:
        """Stop reporting a stream that was unsubscribed (so it does not alert as stale)."""
        self._freshness.forget((exchange, symbol, channel, stage))

    # -- storage and cache ---------------------------------------------------------------------

    def write_latency(self, sink: str, table: str) -> Histogram:
        return self._write_latency.labels(sink, table)

    def write_errors(self, sink: str, reason: str) -> Counter:
        return self._write_errors.labels(sink, reason)

    def writer_backlog(self, sink: str) -> Gauge:
        return self._writer_backlog.labels(sink)

    def storage_up(self, backend: str) -> Gauge:
        return self._storage_up.labels(backend)

    def cache_lookup(self, cache: str, hit: bool) -> None:
        self._cache_requests.labels(cache, "hit" if hit else "miss").inc()

    def alert_received(self, alertname: str, severity: str, status: str) -> None:
        self._alerts_received.labels(alertname, severity, status).inc()


_default: Metrics | None = None
_default_lock = threading.Lock()


def get_metrics() -> Metrics:
    """The process's metrics (created on first use, with process CPU and memory)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Metrics()
        return _default
