"""The Kraken ticker's running window equals a rescan of the last trades, whatever the mix of
valid and injected trades and however many arrive between two updates."""

from __future__ import annotations

import random

import pytest

from tickvault.exchanges.sim.market import SimTrade
from tickvault.exchanges.sim.trade_window import TradeWindow


def _rescan(trades: list[SimTrade], size: int) -> tuple[int, int, int, int, int, int]:
    valid = [t for t in trades[-size:] if t.injected is None]
    return (
        valid[0].price,
        valid[-1].price,
        min(t.price for t in valid),
        max(t.price for t in valid),
        sum(t.qty for t in valid),
        sum(t.price * t.qty for t in valid),
    )


@pytest.mark.parametrize("size", [50, 64, 300, 1000])
def test_running_window_equals_rescan(size: int) -> None:
    rng = random.Random(size)
    trades: list[SimTrade] = []
    window = TradeWindow(size=size)
    price = 10_000
    for step in range(400):
        for _ in range(rng.choice((0, 1, 3, 20, 120, 1500))):  # bursts longer than the window
            price += rng.randint(-5, 5)
            injected = "far_price" if rng.random() < 0.1 else None
            trades.append(SimTrade(len(trades), step, price, rng.randint(1, 9), "buy", 0, injected))
        window.update(trades)
        if not any(t.injected is None for t in trades[-size:]):
            with pytest.raises(IndexError):
                _ = window.first
            continue
        got = (window.first, window.last, window.low, window.high, window.volume, window.notional)
        assert got == _rescan(trades, size)
