"""The bench's per-hop latency record (runner/latency.py): hops add up to the total."""

from __future__ import annotations

from decimal import Decimal

from tickvault.model import Side, Trade
from tickvault.runner.latency import HOPS, LatencyTrace

MS = 1_000_000


def trade(i: int, ts_ms: int, recv_ms: int) -> Trade:
    return Trade(
        "binance",
        "BTC-USDT",
        str(i),
        Decimal("1"),
        Decimal("1"),
        Side.BUY,
        ts_ms * MS,
        recv_ms * MS,
    )


def test_hops_of_each_trade_add_up_to_its_age_when_stored() -> None:
    trace = LatencyTrace()
    # exchange time 0..99 ms, received 20 ms later, staged at 130, handed on at 140, written
    # from 150 to 160 ms: venue 20, collect 130 - recv, stages 10, queue 10, write 10.
    trades = [trade(i, i, i + 20) for i in range(100)]
    trace.record("redis", trades, 130 * MS, 140 * MS, 150 * MS, 160 * MS)
    summary = trace.summary("redis")
    assert summary is not None and summary.trades == 100
    assert summary.p50_ms["venue"] == summary.p99_ms["venue"] == 20
    assert (summary.p50_ms["stages"], summary.p50_ms["queue"], summary.p50_ms["write"]) == (
        10,
        10,
        10,
    )
    assert summary.p50_ms["received"] + summary.p50_ms["venue"] == summary.p50_ms["total"]
    slowest = summary.slowest_ms  # the oldest trade: 160 ms old, 20 + 110 + 10 + 10 + 10
    assert slowest["collect"] == 110 and sum(slowest[h] for h in HOPS) == slowest["total"] == 160
    assert trace.summary("postgres") is None
    trace.clear()
    assert trace.summary("redis") is None
