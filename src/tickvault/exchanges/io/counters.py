"""Plain counters of the I/O layer, one :class:`IoCounters` per exchange.

They are ordinary integers and floats on a dataclass so the I/O code stays free of any metrics
library; the monitoring module exports :func:`snapshot` (or reads the objects directly) as
Prometheus counters/gauges labelled by exchange.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TypeVar


@dataclass(slots=True)
class IoCounters:
    # REST
    rest_requests: int = 0  # requests sent (each retry counts again)
    rest_retries: int = 0  # timeouts, connection errors and 5xx retried
    rest_timeouts: int = 0
    rest_server_errors: int = 0  # 5xx answers
    rate_limited: int = 0  # 429 answers
    bans: int = 0  # 418 answers (IP banned)
    weight_requested: int = 0  # sum of RestRequest.weight granted by the budget
    weight_used: int = 0  # last weight the exchange reported (X-MBX-USED-WEIGHT-1M), a gauge
    weight_limit: int = 0  # weight the exchange allows per window (exchangeInfo), a gauge
    in_band_limited: int = 0  # rate-limit answers inside a 200 body (Kraken), also in rate_limited
    rest_status: dict[int, int] = field(default_factory=dict)  # answers by HTTP status
    budget_wait_s: float = 0.0  # time spent waiting for the shared budget or a ban to end
    rest_bytes: int = 0
    # WebSocket
    ws_connects: int = 0  # connections opened (first ones, reconnects and rollovers)
    ws_reconnects: int = 0  # connections opened after a drop or a silent feed
    ws_open: int = 0  # connections open now, a gauge
    reconnect_reasons: dict[str, int] = field(default_factory=dict)  # closed | timeout
    ws_rollovers: int = 0  # planned replacements before the max lifetime (no gap)
    ws_overlap_duplicates: int = 0  # messages both sockets of a rollover delivered (emitted once)
    ws_silences: int = 0  # watchdog fired: no message for silence_timeout_s
    ws_messages: int = 0
    ws_bytes: int = 0
    ws_sent: int = 0  # messages we sent (subscriptions, resync, application pings)
    # messages by the channel of their first event (trades, book, ticker, candles); "control"
    # for messages without events (acks, heartbeats, pongs, undecodable ones)
    messages_by_channel: dict[str, int] = field(default_factory=dict)
    resyncs_rest: int = 0  # book snapshots fetched over REST
    resync_failures: int = 0  # REST snapshot requests that failed (each is asked again)
    resyncs_ws: int = 0  # books resynced by messages on the socket
    resyncs_by_symbol: dict[str, int] = field(default_factory=dict)
    gaps: int = 0  # Gap records produced (disconnects, sequence gaps, ...)
    gaps_by_stream: dict[tuple[str, str, str], int] = field(default_factory=dict)  # sym, ch, why
    decode_errors: dict[str, int] = field(default_factory=dict)  # by reason
    # Collector queue (backpressure)
    queue_waits: int = 0  # puts that found the queue full and had to wait
    queue_wait_s: float = 0.0
    queue_depth_max: int = 0
    events_out: int = 0
    errors_out: int = 0
    # Raw capture
    captured: int = 0


_K = TypeVar("_K")
_REGISTRY: dict[str, IoCounters] = {}


def counters_for(exchange: str) -> IoCounters:
    """The process-wide counters of one exchange (created on first use)."""
    counters = _REGISTRY.get(exchange)
    if counters is None:
        counters = _REGISTRY[exchange] = IoCounters()
    return counters


def registered() -> dict[str, IoCounters]:
    """Every exchange's counters object (the metrics exporter reads them)."""
    return dict(_REGISTRY)


def snapshot() -> dict[str, dict[str, object]]:
    """{exchange: {counter: value}} for exporters and status output."""
    return {name: asdict(counters) for name, counters in _REGISTRY.items()}


def bump(table: dict[_K, int], key: _K, by: int = 1) -> None:
    table[key] = table.get(key, 0) + by
