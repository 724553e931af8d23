"""The compiled renderers (``sim/_render.pyx``) print exactly what the pure-Python ones do,
for real generated trades and book changes, injected bad values included."""

from __future__ import annotations

import json

import pytest

from tickvault.exchanges.sim import render
from tickvault.exchanges.sim.market import Market
from tickvault.exchanges.sim.spec import market_seed, market_spec
from tickvault.exchanges.sim.wire import price_table, rfc3339_us

START_US = 1_767_225_599_000_000  # trades straddle a second and a day boundary


@pytest.mark.parametrize(("exchange", "symbol"), [("binance", "BTC-USDT"), ("kraken", "XRP-USD")])
def test_compiled_and_pure_renderers_agree(exchange: str, symbol: str) -> None:
    compiled = pytest.importorskip("tickvault.exchanges.sim._render", reason="not built")
    spec = market_spec(exchange, symbol)
    market = Market(spec, market_seed(1, exchange, symbol))
    market.pending_bad.extend(["negative_price", "far_price", "zero_size"])
    qd, pd = spec.qty_decimals, spec.price_decimals
    now = START_US
    for _ in range(150):
        tick = market.advance(now, now + 20_000, 40, 0.3)
        now += 20_000
        trades, changes = tick.trades, tick.changes
        for out in (None, 8):
            prices = price_table(pd, out)
            for aggregate in (False, True):
                head = '{"e":"x","E":1,"s":"S","a":'
                got = compiled.binance_trades(trades, head, aggregate, prices, qd)
                assert got == render.binance_trades_python(trades, head, aggregate, prices, qd)
                for text in got:
                    json.loads(text)
        prices = price_table(pd)
        ts = rfc3339_us(tick.ts_us)
        assert compiled.coinbase_l2(changes, ts, prices, qd) == render.coinbase_l2_python(
            changes, ts, prices, qd
        )
        for fn, py in ((compiled.coinbase_trades, render.coinbase_trades_python),
                       (compiled.kraken_trades, render.kraken_trades_python)):  # fmt: skip
            assert fn(reversed(trades), "X", prices, qd) == py(reversed(trades), "X", prices, qd)
        levels = [(p, q) for _, p, q in changes]
        assert compiled.kraken_levels(levels, prices, qd) == render.kraken_levels_python(
            levels, prices, qd
        )
    assert sum(1 for t in market.trades if t.injected) == 3
