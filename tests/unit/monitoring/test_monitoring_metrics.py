"""The metrics facade: names, labels, isolation, freshness at scrape time."""

from __future__ import annotations

import re

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tickvault.monitoring.metrics import Metrics, get_metrics


class FakeClock:
    def __init__(self, now_s: float) -> None:
        self.now_s = now_s

    def __call__(self) -> float:
        return self.now_s


def exposition(m: Metrics) -> str:
    return generate_latest(m.registry).decode()


def test_facade_updates_appear_with_fixed_labels() -> None:
    m = Metrics(CollectorRegistry())
    m.messages_received("binance", "trades").inc(3)
    m.decode_errors("kraken", "bad_checksum_field").inc()
    m.events_out("coinbase", "book", "validate").inc(7)
    m.rejects("binance", "validate", "negative_price").inc(2)
    m.rest_response("binance", 200, weight_used=37)
    m.rest_response("binance", 429)
    m.rest_response("binance", 418)
    m.cache_lookup("latest", hit=True)
    m.cache_lookup("latest", hit=False)
    m.cache_lookup("latest", hit=True)
    m.batch_rows("validate").observe(700)
    m.quality("binance", "BTC-USDT", "trades", 0.93, {"completeness": 1.0, "timeliness": 0.8})
    text = exposition(m)
    assert 'tickvault_messages_received_total{channel="trades",exchange="binance"} 3.0' in text
    assert (
        'tickvault_decode_errors_total{exchange="kraken",reason="bad_checksum_field"} 1.0' in text
    )
    assert (
        m.value("tickvault_events_out_total", exchange="coinbase", channel="book", stage="validate")
        == 7
    )
    assert m.value("tickvault_rest_weight_used", exchange="binance") == 37
    assert m.value("tickvault_rest_bans_total", exchange="binance", status="429") == 1
    assert m.value("tickvault_rest_bans_total", exchange="binance", status="418") == 1
    assert m.value("tickvault_rest_requests_total", exchange="binance", status="200") == 1
    assert m.value("tickvault_cache_requests_total", cache="latest", result="hit") == 2
    assert m.value("tickvault_batch_size_rows_bucket", stage="validate", le="1000.0") == 1
    assert m.value("tickvault_batch_size_rows_bucket", stage="validate", le="500.0") == 0
    assert (
        m.value(
            "tickvault_quality_component_score",
            exchange="binance",
            symbol="BTC-USDT",
            channel="trades",
            component="timeliness",
        )
        == 0.8
    )
    assert 'tickvault_build_info{version="0.1.0"} 1.0' in text


def test_registries_are_isolated_and_default_is_one_per_process() -> None:
    a, b = Metrics(CollectorRegistry()), Metrics(CollectorRegistry())
    a.messages_received("binance", "trades").inc()
    assert (
        b.value("tickvault_messages_received_total", exchange="binance", channel="trades") is None
    )
    assert get_metrics() is get_metrics()


def test_freshness_is_computed_at_scrape_time_and_never_goes_back() -> None:
    clock = FakeClock(1_700_000_100.0)
    m = Metrics(CollectorRegistry(), clock=clock, process_metrics=False)
    ts_ns = 1_700_000_000 * 10**9
    m.event_seen("binance", "BTC-USDT", "trades", "stored", ts_ns)
    m.event_seen("binance", "BTC-USDT", "trades", "stored", ts_ns - 50 * 10**9)  # out of order
    labels = {"exchange": "binance", "symbol": "BTC-USDT", "channel": "trades", "stage": "stored"}
    assert m.value("tickvault_stream_freshness_seconds", **labels) == 100.0
    clock.now_s += 250
    assert m.value("tickvault_stream_freshness_seconds", **labels) == 350.0
    assert m.value("tickvault_last_event_timestamp_seconds", **labels) == 1_700_000_000.0
    m.forget_stream("binance", "BTC-USDT", "trades", "stored")
    assert m.value("tickvault_stream_freshness_seconds", **labels) is None


def test_every_exposed_series_is_declared_and_named_by_convention() -> None:
    m = Metrics(CollectorRegistry())
    # Touch every family so each one has a child on /metrics.
    m.websocket_connections("kraken").set(1)
    m.websocket_reconnects("kraken", "timeout").inc()
    m.book_resyncs("kraken", "BTC-USD").inc()
    m.book_checksum_failures("kraken", "BTC-USD").inc()
    m.gaps_found("kraken", "BTC-USD", "book", "checksum").inc()
    m.late_trades("kraken", "revised").inc()
    m.gaps_repaired("kraken", "BTC-USD", "book").inc()
    m.gap_repair_failures("kraken", "BTC-USD", "book").inc()
    m.gaps_pending("kraken", "BTC-USD", "book").set(0)
    m.rest_weight_limit("binance").set(6000)
    m.quarantine_records("kraken").set(4)
    m.queue_depth("write").set(10)
    m.spilled_bytes("write").inc(4096)
    m.write_latency("postgres", "trades").observe(0.02)
    m.write_errors("postgres", "connection").inc()
    m.writer_backlog("postgres").set(100)
    m.storage_up("postgres").set(1)
    m.alert_received("DataStale", "warning", "firing")
    m.event_seen("kraken", "BTC-USD", "book", "received", 1)
    m.quality("kraken", "BTC-USD", "book", 1.0, {"validity": 1.0})
    m.messages_received("kraken", "book").inc()
    m.decode_errors("kraken", "x").inc()
    m.events_out("kraken", "book", "decode").inc()
    m.rejects("kraken", "validate", "x").inc()
    m.rest_response("kraken", 429, 1)
    m.batch_rows("write").observe(1)
    m.cache_lookup("candles", True)
    exposed = {
        sample.name
        for family in text_string_to_metric_families(exposition(m))
        for sample in family.samples
    }
    declared = m.sample_names()
    assert exposed - declared == set(), "a series is exposed but not declared"
    tickvault_declared = {n for n in declared if n.startswith("tickvault_")}
    assert tickvault_declared - exposed == set(), "a declared series never appears"
    assert "process_cpu_seconds_total" in exposed and "process_resident_memory_bytes" in exposed
    unit = re.compile(
        r"_(total|seconds|bytes|rows|items|records|score|connections|used|limit|info|up|pending|created|bucket|sum|count)$"
    )
    for name in tickvault_declared:
        assert unit.search(name), f"{name} has no unit or kind suffix"
    for spec in m.specs:
        for label in spec.labels:
            assert label in {
                "exchange",
                "symbol",
                "channel",
                "stage",
                "reason",
                "status",
                "sink",
                "table",
                "backend",
                "cache",
                "result",
                "component",
                "alertname",
                "severity",
                "version",
            }, (spec.name, label)


def test_declared_streams_start_at_zero_so_the_first_event_shows_as_an_increase() -> None:
    m = Metrics(CollectorRegistry(), process_metrics=False)
    m.declare_stream("binance", "BTC-USDT", "trades")
    assert m.value("tickvault_rest_bans_total", exchange="binance", status="429") == 0
    assert m.value("tickvault_rest_bans_total", exchange="binance", status="418") == 0
    labels = {"exchange": "binance", "symbol": "BTC-USDT", "channel": "trades"}
    assert m.value("tickvault_gap_repair_failures_total", **labels) == 0
    m.rest_response("binance", 429)
    assert m.value("tickvault_rest_bans_total", exchange="binance", status="429") == 1
