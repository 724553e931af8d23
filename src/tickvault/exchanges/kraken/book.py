"""One Kraken L2 book: apply levels in order, truncate to the subscribed depth, checksum.

Kraken's rules (v1 and v2 alike): apply every level of a message in array order (later
entries are newer), quantity 0 deletes the level (deleting an absent level is fine), and
after each message cut each side back to the subscribed depth, because Kraken sends no
delete for a level that merely falls out of scope. Only then is the checksum computed.

Each side keeps dicts ``price -> qty`` and ``price -> checksum token`` and an ascending list of
prices (``bisect``); asks are best at the front, bids best at the back. The checksum token of a
level is formatted once, when the level is written, so a checksum costs one join and one
CRC32 rather than 40 decimal formattings.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Protocol

from tickvault.exchanges.kraken.checksum import CHECKSUM_LEVELS, checksum_of_tokens, level_token
from tickvault.model import Level

_ZERO = Decimal(0)


class _Side:
    __slots__ = ("prices", "sizes", "tokens")

    def __init__(self) -> None:
        self.sizes: dict[Decimal, Decimal] = {}
        self.tokens: dict[Decimal, str] = {}  # checksum token of each level
        self.prices: list[Decimal] = []  # ascending

    def clear(self) -> None:
        self.sizes.clear()
        self.tokens.clear()
        self.prices.clear()

    def set(self, price: Decimal, qty: Decimal, token: str) -> None:
        if price not in self.sizes:
            insort(self.prices, price)
        self.sizes[price] = qty
        self.tokens[price] = token

    def delete(self, price: Decimal) -> None:
        if self.sizes.pop(price, None) is not None:
            del self.tokens[price]
            del self.prices[bisect_left(self.prices, price)]

    def drop(self, prices: list[Decimal]) -> None:
        for price in prices:
            del self.sizes[price]
            del self.tokens[price]


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

    def apply_tokens(
        self,
        bids: Sequence[Level],
        asks: Sequence[Level],
        bid_tokens: Sequence[str],
        ask_tokens: Sequence[str],
    ) -> None:
        """:meth:`apply` with each level's checksum token given by the caller (the v1 fast path
        takes them from the wire strings, which is what :func:`level_token` gives for them)."""
        for side, levels, tokens in (
            (self._bids, bids, bid_tokens),
            (self._asks, asks, ask_tokens),
        ):
            sizes = side.sizes
            side_tokens = side.tokens
            prices = side.prices
            for (price, qty), token in zip(levels, tokens, strict=True):
                if qty:
                    if price not in sizes:
                        insort(prices, price)
                    sizes[price] = qty
                    side_tokens[price] = token
                elif sizes.pop(price, None) is not None:
                    del side_tokens[price]
                    del prices[bisect_left(prices, price)]

    def truncate(self) -> tuple[list[Decimal], list[Decimal]]:
        """Cut each side to the depth; returns the prices dropped as (bids, asks)."""
        dropped_bids: list[Decimal] = []
        dropped_asks: list[Decimal] = []
        excess = len(self._bids.prices) - self.depth
        if excess > 0:  # worst bids are the lowest, at the front
            dropped_bids = self._bids.prices[:excess]
            del self._bids.prices[:excess]
            self._bids.drop(dropped_bids)
        excess = len(self._asks.prices) - self.depth
        if excess > 0:  # worst asks are the highest, at the back
            dropped_asks = self._asks.prices[-excess:]
            del self._asks.prices[-excess:]
            self._asks.drop(dropped_asks)
        return dropped_bids, dropped_asks

    def _token(self, price: Decimal, qty: Decimal) -> str:
        return level_token(price, qty, self.price_decimals, self.qty_decimals)

    def checksum(self) -> int:
        """Kraken's CRC32 of the current top 10 asks and bids (unsigned)."""
        asks = self._asks
        bids = self._bids
        ask_tokens = map(asks.tokens.__getitem__, asks.prices[:CHECKSUM_LEVELS])
        bid_tokens = map(bids.tokens.__getitem__, bids.prices[: -CHECKSUM_LEVELS - 1 : -1])
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
        sizes = self._bids.sizes
        return [(p, sizes[p]) for p in reversed(prices)]

    def asks(self, limit: int | None = None) -> list[Level]:
        """Asks best (lowest) first."""
        if limit is not None and limit <= 0:
            return []
        prices = self._asks.prices if limit is None else self._asks.prices[:limit]
        sizes = self._asks.sizes
        return [(p, sizes[p]) for p in prices]

    def __len__(self) -> int:
        return len(self._bids.prices) + len(self._asks.prices)


class Book(Protocol):
    """What the feed needs of a book: :class:`KrakenBook` or its compiled twin
    (``_fast.KrakenBook``, see docs/replay.md "Compiled fast paths")."""

    depth: int
    price_decimals: int | None
    qty_decimals: int | None
    synced: bool

    def reset(self) -> None: ...
    def load_snapshot(self, bids: Iterable[Level], asks: Iterable[Level]) -> None: ...
    def apply(self, bids: Iterable[Level], asks: Iterable[Level]) -> None: ...
    def truncate(self) -> tuple[list[Decimal], list[Decimal]]: ...
    def checksum(self) -> int: ...
    def is_crossed(self) -> bool: ...
    def bids(self, limit: int | None = None) -> list[Level]: ...
    def asks(self, limit: int | None = None) -> list[Level]: ...
    def __len__(self) -> int: ...
