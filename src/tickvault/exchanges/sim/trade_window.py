"""Running statistics of a market's most recent trades (the Kraken ticker's stand-in for 24 h
figures), kept up to date as trades are appended instead of rescanning thousands of trades on
every tick: that rescan was most of the Kraken venue's cost per message."""

from __future__ import annotations

from collections import deque

from tickvault.exchanges.sim.market import SimTrade


class TradeWindow:
    """The valid (not injected) trades among the last ``size`` of a trade list: first and last
    price, low, high, volume and price x volume. Call :meth:`update` with the whole list; only
    the trades appended since the last call are folded in."""

    def __init__(self, size: int = 5000) -> None:
        self.size = size
        self.seen = 0  # trades of the list already folded in
        self.valid: deque[tuple[int, int, int]] = deque()  # (index, price, qty)
        self.lows: deque[tuple[int, int]] = deque()  # (index, price), prices ascending
        self.highs: deque[tuple[int, int]] = deque()  # (index, price), prices descending
        self.volume = 0
        self.notional = 0  # sum of price x qty

    def update(self, trades: list[SimTrade]) -> None:
        n = len(trades)
        valid, lows, highs = self.valid, self.lows, self.highs
        for i in range(max(self.seen, n - self.size), n):
            t = trades[i]
            if t.injected is not None:
                continue
            price = t.price
            valid.append((i, price, t.qty))
            self.volume += t.qty
            self.notional += price * t.qty
            while lows and lows[-1][1] >= price:
                lows.pop()
            lows.append((i, price))
            while highs and highs[-1][1] <= price:
                highs.pop()
            highs.append((i, price))
        self.seen = n
        oldest = n - self.size
        while valid and valid[0][0] < oldest:
            _, price, qty = valid.popleft()
            self.volume -= qty
            self.notional -= price * qty
        while lows and lows[0][0] < oldest:
            lows.popleft()
        while highs and highs[0][0] < oldest:
            highs.popleft()

    @property
    def first(self) -> int:
        return self.valid[0][1]

    @property
    def last(self) -> int:
        return self.valid[-1][1]

    @property
    def low(self) -> int:
        return self.lows[0][1]

    @property
    def high(self) -> int:
        return self.highs[0][1]
