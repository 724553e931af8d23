"""One symbol's L2 book under Coinbase rules (both feeds).

A snapshot replaces the whole book; an update carries the **absolute** new size of each changed
level, size 0 removing it (removing a level we do not hold is fine). Neither feed has a
checksum or a per-update sequence, so the only integrity check left is the book itself: a
crossed book (best bid >= best ask) means we missed something and must resync (resubscribe).

The whole book is kept (Coinbase snapshots are full depth, and deep levels move into the top);
the best prices are cached so an update costs O(levels changed), with an O(n) rescan only when
the best level itself is removed.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from decimal import Decimal

from tickvault.model import Level, decimal_str


class L2Book:
    __slots__ = ("_ask_dirty", "_best_ask", "_best_bid", "_bid_dirty", "asks", "bids")

    def __init__(self) -> None:
        self.bids: dict[Decimal, Decimal] = {}
        self.asks: dict[Decimal, Decimal] = {}
        self._best_bid: Decimal | None = None
        self._best_ask: Decimal | None = None
        self._bid_dirty = False
        self._ask_dirty = False

    @classmethod
    def from_snapshot(cls, bids: Iterable[Level], asks: Iterable[Level]) -> L2Book:
        book = cls()
        # Later rows win, as in an update; zero sizes hold no level.
        book.bids = {price: size for price, size in dict(bids).items() if size}
        book.asks = {price: size for price, size in dict(asks).items() if size}
        book._bid_dirty = book._ask_dirty = True
        return book

    def set_bid(self, price: Decimal, size: Decimal) -> None:
        if not size:
            if self.bids.pop(price, None) is not None and price == self._best_bid:
                self._bid_dirty = True
            return
        self.bids[price] = size
        if not self._bid_dirty and (self._best_bid is None or price > self._best_bid):
            self._best_bid = price

    def set_ask(self, price: Decimal, size: Decimal) -> None:
        if not size:
            if self.asks.pop(price, None) is not None and price == self._best_ask:
                self._ask_dirty = True
            return
        self.asks[price] = size
        if not self._ask_dirty and (self._best_ask is None or price < self._best_ask):
            self._best_ask = price

    def apply(self, bids: Iterable[Level], asks: Iterable[Level]) -> None:
        """``set_bid``/``set_ask`` for every level, written out with locals (the hot loop)."""
        levels, best, dirty = self.bids, self._best_bid, self._bid_dirty
        for price, size in bids:
            if size:
                levels[price] = size
                if not dirty and (best is None or price > best):
                    best = price
            elif levels.pop(price, None) is not None and price == best:
                dirty = True
        self._best_bid, self._bid_dirty = best, dirty
        levels, best, dirty = self.asks, self._best_ask, self._ask_dirty
        for price, size in asks:
            if size:
                levels[price] = size
                if not dirty and (best is None or price < best):
                    best = price
            elif levels.pop(price, None) is not None and price == best:
                dirty = True
        self._best_ask, self._ask_dirty = best, dirty

    def best_bid(self) -> Decimal | None:
        if self._bid_dirty:
            self._best_bid = max(self.bids) if self.bids else None
            self._bid_dirty = False
        return self._best_bid

    def best_ask(self) -> Decimal | None:
        if self._ask_dirty:
            self._best_ask = min(self.asks) if self.asks else None
            self._ask_dirty = False
        return self._best_ask

    def crossed(self) -> bool:
        bid, ask = self.best_bid(), self.best_ask()
        return bid is not None and ask is not None and bid >= ask

    def top(self, depth: int) -> tuple[tuple[Level, ...], tuple[Level, ...]]:
        """Best ``depth`` levels per side: bids highest first, asks lowest first."""
        bid_prices = heapq.nlargest(depth, self.bids)
        ask_prices = heapq.nsmallest(depth, self.asks)
        return (
            tuple((p, self.bids[p]) for p in bid_prices),
            tuple((p, self.asks[p]) for p in ask_prices),
        )

    def top_strings(self, depth: int) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        bids, asks = self.top(depth)
        return (
            [(decimal_str(p), decimal_str(s)) for p, s in bids],
            [(decimal_str(p), decimal_str(s)) for p, s in asks],
        )
