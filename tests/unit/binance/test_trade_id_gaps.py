"""Missed trades on a live connection are found from aggregate-trade ids (real recording)."""

from __future__ import annotations

from tickvault.exchanges.binance.adapter import ADAPTER
from tickvault.model import Instrument, Trade

from .helpers import records

STREAMS = "streams_2021-08-14.jsonl"


def _replay(instruments: list[Instrument], skip: int | None = None):  # type: ignore[no-untyped-def]
    feed = ADAPTER.new_feed(instruments, 10)
    trades: list[Trade] = []
    gaps = []
    seen = 0
    for record in records(STREAMS):
        if record.kind != "ws":
            continue
        if "aggTrade" in record.raw:
            seen += 1
            if seen == skip:
                continue
        out = feed.on_message(record.raw, record.ts_ns)
        trades += [e for e in out.events if isinstance(e, Trade)]
        gaps += [g for g in out.gaps if g.channel == "trades"]
    return feed, trades, gaps


def test_recorded_trades_are_contiguous(instruments: list[Instrument]) -> None:
    feed, trades, gaps = _replay(instruments)
    assert len(trades) == 28  # every aggTrade of the recording, 4 symbols
    assert gaps == [] and feed.counters.sequence_gaps == 0


def test_a_dropped_trade_message_is_a_gap_between_its_neighbours(
    instruments: list[Instrument],
) -> None:
    _, all_trades, _ = _replay(instruments)
    by_symbol: dict[str, list[Trade]] = {}
    for trade in all_trades:
        by_symbol.setdefault(trade.symbol, []).append(trade)
    # Drop a message in the middle of the busiest symbol's trades.
    symbol, series = max(by_symbol.items(), key=lambda item: len(item[1]))
    victim = series[len(series) // 2]
    index = all_trades.index(victim) + 1  # 1-based position among aggTrade messages
    feed, trades, gaps = _replay(instruments, skip=index)
    assert victim not in trades
    before, after = series[series.index(victim) - 1], series[series.index(victim) + 1]
    assert len(gaps) == 1 and feed.counters.sequence_gaps == 1
    gap = gaps[0]
    assert (gap.symbol, gap.reason) == (symbol, "sequence_gap")
    assert (gap.from_ns, gap.to_ns) == (before.ts_ns, after.ts_ns)
