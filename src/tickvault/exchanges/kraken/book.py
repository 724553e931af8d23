"""One Kraken L2 book: apply levels in order, truncate to the subscribed depth, checksum.

Kraken's rules (v1 and v2 alike): apply every level of a message in array order (later
entries are newer), quantity 0 deletes the level (deleting an absent level is fine), and
after each message cut each side back to the subscribed depth, because Kraken sends no
delete for a level that merely falls out of scope. Only then is the checksum computed.

Each side keeps a dict ``price -> (qty, checksum token)`` and an ascending list of prices
(``bisect``); asks are best at the front, bids best at the back. The checksum token of a
level is formatted once, when the level is written, so a checksum costs one join and one
CRC32 rather than 40 decimal formattings.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterable
from decimal import Decimal

from tickvault.exchanges.kraken.checksum import CHECKSUM_LEVELS, checksum_of_tokens, level_token
from tickvault.model import Level

_ZERO = Decimal(0)


class _Side:
    __slots__ = ("levels", "prices")

    def __init__(self) -> None:
        self.levels: dict[Decimal, tuple[Decimal, str]] = {}
        self.prices: list[Decimal] = []  # ascending

    def clear(self) -> None:
        self.levels.clear()
        self.prices.clear()

    def set(self, price: Decimal, qty: Decimal, token: str) -> None:
        if price not in self.levels:
            insort(self.prices, price)
        self.levels[price] = (qty, token)

    def delete(self, price: Decimal) -> None:
        if self.levels.pop(price, None) is not None:
            del self.prices[bisect_left(self.prices, price)]


class KrakenBook:
    """The L2 book of one symbol at one subscribed depth.

    ``price_decimals``/``qty_decimals`` (from the instrument) pad checksum text to the pair's
    precision; ``None`` uses the wire digits verbatim (the v1 rule).
    """

    __slots__ = ("_asks", "_bids", "depth", "price_decimals", "qty_decimals", "synced")

    def __init__(
        self, depth: int, price_decimals: int | None = None, qty_decimals: int | None = None
    ) -> None:
        if depth < 1:
            raise ValueError(f"book depth must be positive, got {depth}")
        self.depth = depth
        self.price_decimals = price_decimals
        self.qty_decimals = qty_decimals
        self._bids = _Side()
        self._asks = _Side()
        self.synced = False  # True between a snapshot and the next reset

    def reset(self) -> None:
        """Forget every level (a resync is pending); updates are not applicable until a snapshot."""
        self._bids.clear()
        self._asks.clear()
        self.synced = False

    def load_snapshot(self, bids: Iterable[Level], asks: Iterable[Level]) -> None:
        """Replace the whole book; the snapshot is truncated to the depth like any message."""
        self._bids.clear()
        self._asks.clear()
        self.apply(bids, asks)
        self.truncate()
        self.synced = True

    def apply(self, bids: Iterable[Level], asks: Iterable[Level]) -> None:
        """Apply levels in order (absolute quantities; 0 deletes). Call :meth:`truncate` after."""
        for side, levels in ((self._bids, bids), (self._asks, asks)):
            for price, qty in levels:
                if qty == _ZERO:
                    side.delete(price)
                else:
                    side.set(price, qty, self._token(price, qty))

    def truncate(self) -> tuple[list[Decimal], list[Decimal]]:
        """Cut each side to the depth; returns the prices dropped as (bids, asks)."""
        dropped_bids: list[Decimal] = []
        dropped_asks: list[Decimal] = []
        excess = len(self._bids.prices) - self.depth
        if excess > 0:  # worst bids are the lowest, at the front
            dropped_bids = self._bids.prices[:excess]
            del self._bids.prices[:excess]
            for price in dropped_bids:
                del self._bids.levels[price]
        excess = len(self._asks.prices) - self.depth
        if excess > 0:  # worst asks are the highest, at the back
            dropped_asks = self._asks.prices[-excess:]
            del self._asks.prices[-excess:]
            for price in dropped_asks:
                del self._asks.levels[price]
        return dropped_bids, dropped_asks

    def _token(self, price: Decimal, qty: Decimal) -> str:
        return level_token(price, qty, self.price_decimals, self.qty_decimals)

    def checksum(self) -> int:
        """Kraken's CRC32 of the current top 10 asks and bids (unsigned)."""
        asks = self._asks
        bids = self._bids
        ask_tokens = [asks.levels[p][1] for p in asks.prices[:CHECKSUM_LEVELS]]
        bid_tokens = [bids.levels[p][1] for p in reversed(bids.prices[-CHECKSUM_LEVELS:])]
        return checksum_of_tokens(ask_tokens, bid_tokens)

    def is_crossed(self) -> bool:
        """Best bid at or above best ask: impossible in a correct book."""
        return bool(self._bids.prices and self._asks.prices) and (
            self._bids.prices[-1] >= self._asks.prices[0]
        )

    def bids(self, limit: int | None = None) -> list[Level]:
        """Bids best (highest) first."""
        if limit is not None and limit <= 0:
            return []
        prices = self._bids.prices if limit is None else self._bids.prices[-limit:]
        levels = self._bids.levels
        return [(p, levels[p][0]) for p in reversed(prices)]

    def asks(self, limit: int | None = None) -> list[Level]:
        """Asks best (lowest) first."""
        if limit is not None and limit <= 0:
            return []
        prices = self._asks.prices if limit is None else self._asks.prices[:limit]
        levels = self._asks.levels
        return [(p, levels[p][0]) for p in prices]

    def __len__(self) -> int:
        return len(self._bids.prices) + len(self._asks.prices)
