"""The simulated market stays realistic however many events it is driven through.

Before the fix, levels taken near the top were refilled at the deep end and in-spread levels
landed anywhere in the spread, so at high event counts the ETH books stretched: spreads of 9-48 %
and trade-to-trade jumps over 5 % (which validation then quarantined as outliers).
"""

from __future__ import annotations

import pytest

from tickvault.exchanges.sim.market import Market
from tickvault.exchanges.sim.spec import market_seed, market_spec

STEP_US = 20_000  # the simulator's default 0.02 s tick
START_US = 1_700_000_000_000_000


def _replay(book: dict[bool, dict[int, int]], changes: list[tuple[bool, int, int]]) -> None:
    for is_bid, price, qty in changes:
        if qty:
            book[is_bid][price] = qty
        else:
            del book[is_bid][price]


@pytest.mark.parametrize(
    ("exchange", "symbol"),
    [
        ("binance", "ETH-USDT"),
        ("coinbase", "ETH-USD"),
        ("kraken", "BTC-USD"),
        ("binance", "XRP-USDT"),
    ],
)
def test_high_rate_keeps_spread_jumps_and_reach_bounded(exchange: str, symbol: str) -> None:
    spec = market_spec(exchange, symbol)
    market = Market(spec, market_seed(1, exchange, symbol))
    market.history(START_US - 3_600_000_000, START_US, 500_000)
    bids, asks = market.top(1000)
    book = {True: dict(bids), False: dict(asks)}
    anchor = spec.start_price * 10**spec.price_decimals
    # 1500 steps of 200 events = 300 000 events: 10 000 events/s per market for 30 s
    now_us, last_price, mids, trades = START_US, 0, [], 0
    for _ in range(1500):
        tick = market.advance(now_us, now_us + STEP_US, 200, 0.3)
        now_us += STEP_US
        _replay(book, tick.changes)
        best_bid, best_ask = max(book[True]), min(book[False])
        assert (best_bid, best_ask) == (market.best_bid(), market.best_ask())
        assert 0 < best_ask - best_bid <= max(3, round(anchor * 6e-5))  # <= 3 spacings
        assert (best_ask - best_bid) / best_bid < 0.0005  # a tight spread at every price
        assert 40 <= len(book[True]) <= 60 and 40 <= len(book[False]) <= 60
        # each side stays within its window of the best: no stretched books
        assert best_bid - min(book[True]) <= market.window
        assert max(book[False]) - best_ask <= market.window
        for trade in tick.trades:
            assert trade.price > 0 and trade.qty > 0
            if last_price:
                assert abs(trade.price - last_price) / last_price < 0.001
            last_price = trade.price
            trades += 1
        mids.append((best_bid + best_ask) / 2)
    assert trades > 80_000
    assert market.update_id == tick.last_update_id
    # a random walk: it moves, but stays within a few per cent of where it started
    assert max(mids) - min(mids) > 5 * market.spacing
    assert all(abs(mid / anchor - 1) < 0.03 for mid in mids)


def test_every_trade_hits_the_best_level_of_the_book_it_left() -> None:
    """One event per call: each trade takes its quantity from the opposite side's best level."""
    market = Market(market_spec("binance", "ETH-USDT"), seed=11)
    now_us, checked = START_US, 0
    for _ in range(60_000):
        before_bid, before_ask = market.best_bid(), market.best_ask()
        level_qty = {True: market.bids[before_bid], False: market.asks[before_ask]}
        tick = market.advance(now_us, now_us + 100, 1, 0.3)
        now_us += 100
        for trade in tick.trades:
            hits_bid = trade.side == "sell"
            assert trade.price == (before_bid if hits_bid else before_ask)
            # the first change is the hit level shrinking by exactly the traded quantity
            assert tick.changes[0] == (hits_bid, trade.price, level_qty[hits_bid] - trade.qty)
            checked += 1
        assert market.best_bid() < market.best_ask()
    assert checked > 15_000
