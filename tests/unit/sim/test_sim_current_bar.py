"""The simulator's incremental forming bar equals the bar computed from all its trades."""

from __future__ import annotations

from tickvault.exchanges.sim.candles import bars, current_bar
from tickvault.exchanges.sim.market import Market
from tickvault.exchanges.sim.spec import market_spec

TF_US = 60_000_000


def test_forming_bar_matches_full_recompute_across_intervals_and_bad_values() -> None:
    market = Market(market_spec("kraken", "BTC-USD"), seed=7)
    start_us = 1_700_000_000_000_000 - 1_700_000_000_000_000 % TF_US
    now_us = start_us
    checked = 0
    for step in range(400):  # 400 steps of 0.5 s: several intervals, some ticks without trades
        if step == 150:
            market.pending_bad.extend(["far_price", "zero_size"])  # left out of bars
        end_us = now_us + 500_000
        market.advance(now_us, end_us, 0 if step % 7 == 0 else 40, 0.5)
        now_us = end_us
        open_us = now_us - now_us % TF_US
        expected = bars(market, TF_US, open_us, open_us + TF_US, include_empty=True)
        assert current_bar(market, TF_US, now_us) == expected
        checked += bool(expected and expected[0].count)
    assert checked > 300
    assert any(t.injected for t in market.trades)
