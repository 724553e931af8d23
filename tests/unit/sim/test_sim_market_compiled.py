"""The compiled generator (``sim/_market.pyx``) and the pure-Python one make the same market
from the same seed: same history, ticks, trades, books, ids and injected bad values."""

from __future__ import annotations

import pytest

from tickvault.exchanges.sim.market import Market
from tickvault.exchanges.sim.spec import market_seed, market_spec

START_US = 1_700_000_000_000_000


@pytest.mark.parametrize(
    ("exchange", "symbol"),
    [("binance", "BTC-USDT"), ("kraken", "ETH-USD"), ("coinbase", "XRP-USD")],
)
def test_compiled_and_pure_generators_agree(exchange: str, symbol: str) -> None:
    pytest.importorskip("tickvault.exchanges.sim._market", reason="sim/_market.pyx not built")
    spec = market_spec(exchange, symbol)
    seed = market_seed(3, exchange, symbol)
    compiled, pure = Market(spec, seed), Market(spec, seed)
    compiled.history(START_US - 600_000_000, START_US, 500_000)
    pure.history_python(START_US - 600_000_000, START_US, 500_000)
    now = START_US
    for step in range(400):
        if step in (50, 51, 300):
            for market in (compiled, pure):
                market.pending_bad.extend(["negative_price", "zero_size"])
        events = (0, 1, 7, 300)[step % 4]
        a = compiled.advance(now, now + 20_000, events, 0.3)
        b = pure.advance_python(now, now + 20_000, events, 0.3)
        assert a == b, step
        now += 20_000
    assert compiled.trades == pure.trades
    assert compiled.trade_ts == pure.trade_ts
    assert (compiled.bids, compiled.asks) == (pure.bids, pure.asks)
    assert (compiled.bid_prices, compiled.ask_prices) == (pure.bid_prices, pure.ask_prices)
    assert compiled.update_id == pure.update_id
    assert compiled.last_ts_us == pure.last_ts_us
    assert any(t.injected for t in compiled.trades)
