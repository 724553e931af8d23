"""The I/O layer's counters as Prometheus metrics, through the facade (``get_metrics()``).

The I/O code only bumps plain integers on :class:`IoCounters` (no metrics library on the hot
path). :class:`IoMetricsExporter` turns them into the facade's series: cumulative values become
counter increments (the exporter remembers what it already published), current values set
gauges. Call :meth:`publish` at any time (before a scrape, at the end of a run) or let
:meth:`run` do it every ``interval_s``.

| IoCounters | metric |
|---|---|
| ``ws_open`` | ``tickvault_websocket_connections`` |
| ``reconnect_reasons`` | ``tickvault_websocket_reconnects_total{reason=closed|timeout}`` |
| ``messages_by_channel`` | ``tickvault_messages_received_total{channel}`` |
| ``rest_status`` | ``tickvault_rest_requests_total{status}``, 418/429 also ``tickvault_rest_bans_total`` |
| ``weight_used`` / ``weight_limit`` | ``tickvault_rest_weight_used`` / ``tickvault_rest_weight_limit`` |
| ``resyncs_by_symbol`` | ``tickvault_book_resyncs_total{symbol}`` |
| ``gaps_by_stream`` | ``tickvault_gaps_found_total{symbol,channel,reason}``; reason ``checksum`` also ``tickvault_book_checksum_failures_total`` |
| ``decode_errors`` | ``tickvault_decode_errors_total{reason}`` |
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping

from prometheus_client import Counter

from tickvault.exchanges.io.counters import IoCounters, registered
from tickvault.monitoring.metrics import Metrics, get_metrics


class IoMetricsExporter:
    def __init__(
        self,
        metrics: Metrics | None = None,
        sources: Callable[[], Mapping[str, IoCounters]] = registered,
    ) -> None:
        self.metrics = metrics if metrics is not None else get_metrics()
        self.sources = sources  # default: every exchange's process-wide counters
        self._published: dict[tuple[str, ...], int] = {}

    def publish(self) -> None:
        for exchange, counters in self.sources().items():
            self.publish_exchange(exchange, counters)

    def publish_exchange(self, exchange: str, c: IoCounters) -> None:
        m = self.metrics
        m.websocket_connections(exchange).set(c.ws_open)
        for reason, total in c.reconnect_reasons.items():
            self._add(m.websocket_reconnects(exchange, reason), ("rc", exchange, reason), total)
        for channel, total in c.messages_by_channel.items():
            self._add(m.messages_received(exchange, channel), ("msg", exchange, channel), total)
        responses = [
            (status, self._delta(("rest", exchange, str(status)), total))
            for status, total in sorted(c.rest_status.items())
        ]
        calls = [status for status, new in responses for _ in range(new)]
        for index, status in enumerate(calls):  # the facade counts one response per call
            last = index == len(calls) - 1  # the weight gauge goes with the newest answer
            weight = c.weight_used if last and c.weight_used else None
            m.rest_response(exchange, status, weight_used=weight)
        m.rest_weight_limit(exchange).set(c.weight_limit)
        for symbol, total in c.resyncs_by_symbol.items():
            self._add(m.book_resyncs(exchange, symbol), ("resync", exchange, symbol), total)
        for (symbol, channel, reason), total in c.gaps_by_stream.items():
            key = ("gap", exchange, symbol, channel, reason)
            new = self._delta(key, total)
            if new:
                m.gaps_found(exchange, symbol, channel, reason).inc(new)
                if reason == "checksum":
                    m.book_checksum_failures(exchange, symbol).inc(new)
        for reason, total in c.decode_errors.items():
            self._add(m.decode_errors(exchange, reason), ("decode", exchange, reason), total)

    async def run(self, interval_s: float = 5.0) -> None:
        """Publish every ``interval_s`` until cancelled (and once more on the way out)."""
        try:
            while True:
                self.publish()
                await asyncio.sleep(interval_s)
        finally:
            self.publish()

    # -- helpers ---------------------------------------------------------------------------

    def _delta(self, key: tuple[str, ...], total: int) -> int:
        new = total - self._published.get(key, 0)
        if new <= 0:
            return 0
        self._published[key] = total
        return new

    def _add(self, counter: Counter, key: tuple[str, ...], total: int) -> None:
        new = self._delta(key, total)
        if new:
            counter.inc(new)
