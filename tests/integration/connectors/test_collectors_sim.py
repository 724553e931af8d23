"""Live collectors of every exchange against the simulator, with every fault it can inject:
the book recovers to the truth, gaps are recorded, decode errors counted, nothing crashes, and
no trade reaches storage twice."""

from __future__ import annotations

import asyncio

import pytest
from collect_kit import BOOK_DEPTH, SYMBOL, Live, check_stored_trades, live_collector, stop

from tickvault.exchanges.io.exporter import IoMetricsExporter
from tickvault.exchanges.sim import Fault
from tickvault.monitoring.metrics import Metrics

# the venue channel names the simulator's message faults match
BOOK_CHANNEL = {"binance": "depth", "coinbase": "l2_data", "kraken": "book"}
TRADE_CHANNEL = {"binance": "aggTrade", "coinbase": "market_trades", "kraken": "trade"}
# Coinbase and Kraken feeds keep the top book_depth levels; Binance keeps its whole snapshot.
COMPARED_DEPTH = {"binance": None, "coinbase": BOOK_DEPTH, "kraken": BOOK_DEPTH}


async def settle_and_compare(live: Live) -> None:
    """Let a pending resync finish while the market still moves (a Binance snapshot is only
    applied once a later diff bridges it), then stop the market and compare with the truth."""
    assert await live.wait_for(lambda: bool(live.book()[0]), 5.0)
    live.sim.rate = 0.0
    depth = COMPARED_DEPTH[live.exchange]
    if not await live.wait_for(lambda: live.book_matches(depth), 5.0):
        bids, asks = live.book()
        tb, ta = live.truth_book(depth)
        raise AssertionError(
            f"book differs: bids {sorted(set(bids) ^ set(tb))[:6]} asks {sorted(set(asks) ^ set(ta))[:6]}"
            f" sizes {len(bids)}/{len(tb)} {len(asks)}/{len(ta)} counters {live.counters}"
        )


async def inject(live: Live, fault: Fault, pause_s: float = 0.3) -> None:
    """Arm a fault, wait until it has fired, then give the collector ``pause_s`` to react."""
    key = (fault.exchange, fault.kind)
    before = live.sim.faults.applied[key]
    live.sim.inject(fault)
    assert await live.wait_for(lambda: live.sim.faults.applied[key] > before, 3.0), fault
    await asyncio.sleep(pause_s)


@pytest.mark.parametrize("exchange", ["binance", "coinbase", "kraken"])
async def test_collector_recovers_from_every_fault(
    exchange: str, db_url: str, redis_url: str
) -> None:
    async with live_collector(exchange, db_url, redis_url) as live:
        assert await live.wait_for(lambda: bool(live.book()[0]) and live.sink.counts.written)
        book, trades = BOOK_CHANNEL[exchange], TRADE_CHANNEL[exchange]
        await inject(live, Fault(exchange, "drop_connection"))
        await inject(live, Fault(exchange, "drop_messages", count=1, channel=book))
        await inject(live, Fault(exchange, "duplicate_messages", count=3, channel=trades))
        await inject(live, Fault(exchange, "duplicate_messages", count=1, channel=book))
        await inject(live, Fault(exchange, "malformed_json", count=1, channel=trades))
        if exchange == "kraken":
            await inject(live, Fault(exchange, "bad_checksum", count=1))
        if exchange == "binance":  # the only venue that syncs its books over REST
            for rest_fault in (
                Fault(exchange, "slow_responses", count=1, delay_s=0.5),
                Fault(exchange, "rate_limit_429", count=1, retry_after_s=1),
                Fault(exchange, "ban_418", duration_s=1.0),
            ):
                live.sim.inject(rest_fault)
                await inject(live, Fault(exchange, "drop_messages", count=1, channel=book), 1.1)
        await settle_and_compare(live)
        await stop(live)

        applied = live.sim.faults.applied
        gaps = await live.store.list_gaps(exchange, SYMBOL)
        counters = live.counters
        quarantine = await live.store.list_quarantine(exchange)
        trades_stats = live.store.stats.tables["trades"]
    fired = {kind for (_, kind), times in applied.items() if times}
    assert fired >= {"drop_connection", "drop_messages", "duplicate_messages", "malformed_json"}, (
        applied)  # fmt: skip
    reasons = {g.reason for g in gaps}
    assert "disconnect" in reasons
    assert reasons & {"sequence_gap", "checksum"}, reasons
    assert all(g.channel and g.from_ns <= g.to_ns for g in gaps)
    if exchange == "kraken":
        assert "checksum" in reasons
    if exchange == "binance":
        assert counters.rate_limited >= 1 and counters.bans >= 1 and counters.resyncs_rest >= 4
    assert counters.ws_reconnects >= 1
    assert sum(counters.decode_errors.values()) >= 1 and len(quarantine) >= 1
    quarantined_ns = [q.recv_ns for q in quarantine]
    check_stored_trades(live, db_url, [(g.from_ns, g.to_ns) for g in gaps], quarantined_ns)
    assert trades_stats.rows_inserted > 0

    metrics = Metrics(process_metrics=False)
    IoMetricsExporter(metrics, lambda: {exchange: counters}).publish()
    value = metrics.value
    assert value("tickvault_websocket_reconnects_total", exchange=exchange, reason="closed")
    assert value("tickvault_messages_received_total", exchange=exchange, channel="trades")
    assert value("tickvault_websocket_connections", exchange=exchange) == 0  # all closed now
    assert value(
        "tickvault_gaps_found_total", exchange=exchange, symbol=SYMBOL, channel=gaps[0].channel,
        reason=gaps[0].reason,
    )  # fmt: skip
    assert sum(
        value("tickvault_decode_errors_total", exchange=exchange, reason=reason) or 0
        for reason in counters.decode_errors
    ) == sum(counters.decode_errors.values())
    assert value("tickvault_book_resyncs_total", exchange=exchange, symbol=SYMBOL)
    if exchange == "kraken":
        assert value("tickvault_book_checksum_failures_total", exchange=exchange, symbol=SYMBOL)
    if exchange == "binance":
        assert value("tickvault_rest_bans_total", exchange=exchange, status="418")
        assert value("tickvault_rest_bans_total", exchange=exchange, status="429")


async def test_binance_rollover_loses_nothing(db_url: str, redis_url: str) -> None:
    """Sockets replaced every second (Binance closes them at 24 h): no gap, no lost trade."""
    async with live_collector("binance", db_url, redis_url, max_lifetime_s=1.0) as live:
        assert await live.wait_for(lambda: live.counters.ws_rollovers >= 3, 8.0)
        # A fresh socket's book syncs on its first diff (buffer, then snapshot), so to compare
        # books the last socket must live on while the market still moves: no more rollovers.
        session = live.collector.sessions[0]
        session.policy = session.policy.with_(max_lifetime_s=None)
        rolled = live.counters.ws_rollovers
        assert await live.wait_for(lambda: live.counters.ws_rollovers > rolled, 3.0)
        await settle_and_compare(live)
        await stop(live)
        gaps = await live.store.list_gaps("binance")
        counts = check_stored_trades(live, db_url, [])
    assert gaps == [] and live.counters.gaps == 0
    assert counts["stored"] > 100
