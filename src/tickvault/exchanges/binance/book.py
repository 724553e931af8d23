"""One symbol's verified L2 book, kept with Binance's official diff-depth procedure. Pure.

Synchronisation (Binance Spot ``web-socket-streams.md``, "How to manage a local order book
correctly"):

1. Diff events are buffered from the moment the stream opens, before any snapshot.
2. A REST snapshot (``lastUpdateId``) arrives. Buffered events with ``u <= lastUpdateId`` are
   dropped. The first remaining event must satisfy ``U <= lastUpdateId + 1 <= u``; when
   ``U > lastUpdateId + 1`` the snapshot is older than the stream can bridge and a new one is
   needed. (The docs phrase this step as "``lastUpdateId`` < first buffered ``U``"; the
   ``U <= lastUpdateId + 1`` form is the exact continuity condition and agrees with it except
   for ``lastUpdateId == U - 1``, which is continuous and accepted here.)
   A snapshot that arrives before any event (or newer than every buffered one) is kept and
   checked against the next events.
3. Once synced, every event must continue the chain: ``U == previous u + 1``. ``u <= current
   id`` is a stale event and is ignored; anything else is a gap: the book is discarded and the
   caller fetches a new snapshot (the event that revealed the gap starts the new buffer).
4. Quantities are absolute; quantity 0 deletes the level (deleting an absent level is fine).
5. After every applied event the book must not be crossed (best bid < best ask); a crossed
   book is treated like a gap.

Levels are ``dict`` price -> level plus a sorted list of prices (``bisect``): O(1) size updates,
O(log n) search plus a memmove for a new or removed price, and top-N reads by slicing.
"""

from __future__ import annotations

import enum
from bisect import bisect_left, insort
from collections import deque
from collections.abc import Iterable
from decimal import Decimal

import msgspec

from tickvault.model import Level

# Bound on events buffered while waiting for a snapshot; older ones are dropped first (a
# snapshot is then only usable if it is newer than the oldest kept event, which step 2 checks).
MAX_BUFFERED_EVENTS = 10_000


class SideLevels:
    """One side of a book: levels by price and the prices in ascending order.

    A level is stored as the ``(price, size)`` tuple the decoder built, so a top-N read is a
    C-level ``map`` over a slice of the price list, with no tuple built per read.
    """

    __slots__ = ("levels", "prices")

    def __init__(self) -> None:
        self.levels: dict[Decimal, Level] = {}
        self.prices: list[Decimal] = []

    @property
    def sizes(self) -> dict[Decimal, Decimal]:
        """Size by price (a copy; for inspection)."""
        return {price: level[1] for price, level in self.levels.items()}

    def set(self, price: Decimal, size: Decimal) -> None:
        self.update(((price, size),))

    def update(self, levels: Iterable[Level]) -> None:
        """Apply absolute sizes in order; size 0 deletes (an absent level is fine)."""
        book = self.levels
        prices = self.prices
        for level in levels:
            price = level[0]
            if level[1]:
                old = book.get(price)
                if old is None:
                    insort(prices, price)
                    book[price] = level
                elif old[0] is price:  # the usual case: one Decimal object per wire string
                    book[price] = level
                else:  # keep the first spelling of the price (0.3521 == 0.35210000)
                    book[price] = (old[0], level[1])
            elif book.pop(price, None) is not None:
                del prices[bisect_left(prices, price)]

    def replace(self, levels: Iterable[Level]) -> None:
        book: dict[Decimal, Level] = {}
        for level in levels:
            price = level[0]
            if not level[1]:
                continue
            old = book.get(price)
            book[price] = level if old is None or old[0] is price else (old[0], level[1])
        self.levels = book
        self.prices = sorted(book)

    def lowest(self, count: int) -> tuple[Level, ...]:
        return tuple(map(self.levels.__getitem__, self.prices[:count]))

    def highest(self, count: int) -> tuple[Level, ...]:
        return tuple(map(self.levels.__getitem__, self.prices[: -count - 1 : -1]))

    def __len__(self) -> int:
        return len(self.prices)


class L2Book:
    """Price levels of one book; bids read best (highest) first, asks best (lowest) first."""

    __slots__ = ("asks", "bids")

    def __init__(self) -> None:
        self.bids = SideLevels()
        self.asks = SideLevels()

    def load(self, bids: Iterable[Level], asks: Iterable[Level]) -> None:
        self.bids.replace(bids)
        self.asks.replace(asks)

    def apply(self, bids: Iterable[Level], asks: Iterable[Level]) -> None:
        self.bids.update(bids)
        self.asks.update(asks)

    def top(self, depth: int) -> tuple[tuple[Level, ...], tuple[Level, ...]]:
        return self.bids.highest(depth), self.asks.lowest(depth)

    def crossed(self) -> bool:
        bids, asks = self.bids.prices, self.asks.prices
        return bool(bids) and bool(asks) and bids[-1] >= asks[0]

    def clear(self) -> None:
        self.bids = SideLevels()
        self.asks = SideLevels()


class DepthEvent(msgspec.Struct, gc=False):
    """A decoded ``depthUpdate``: changed levels of update ids ``first_id..last_id``.
    (A Struct: built once per message, several times cheaper than a dataclass.)"""

    first_id: int
    last_id: int
    ts_ns: int
    recv_ns: int
    bids: list[Level]
    asks: list[Level]


class SyncStatus(enum.Enum):
    BUFFERED = "buffered"  # waiting for a snapshot; event kept
    WAITING = "waiting"  # snapshot kept, no event yet bridges it
    SYNCED = "synced"  # snapshot + buffered events applied: the book is live
    APPLIED = "applied"  # live event applied
    STALE = "stale"  # event older than the book; ignored
    GAP = "gap"  # update ids skipped: book discarded, new snapshot needed
    CROSSED = "crossed"  # best bid >= best ask after an update: book discarded
    STALE_SNAPSHOT = "stale_snapshot"  # snapshot older than the first buffered event
    UNEXPECTED_SNAPSHOT = "unexpected_snapshot"  # snapshot while already synced; ignored


class BookSync:
    """The synchronisation state machine of one symbol's diff-depth book."""

    def __init__(self) -> None:
        self.book = L2Book()
        self.synced = False
        self.update_id = 0
        self.buffer: deque[DepthEvent] = deque(maxlen=MAX_BUFFERED_EVENTS)
        self.pending: tuple[int, list[Level], list[Level]] | None = None
        self.last_ts_ns: int | None = None  # exchange time of the last applied event
        self.gap_from_ns: int | None = None  # set when the book is discarded

    def reset(self) -> None:
        """Forget everything (disconnect): the next events buffer for a new snapshot."""
        self._unsync()
        self.buffer.clear()
        self.pending = None

    def _unsync(self) -> None:
        self.gap_from_ns = self.last_ts_ns
        self.synced = False
        self.book.clear()

    def on_event(self, event: DepthEvent) -> SyncStatus:
        if not self.synced:
            self.buffer.append(event)
            return self._try_sync() if self.pending is not None else SyncStatus.BUFFERED
        if event.last_id <= self.update_id:
            return SyncStatus.STALE
        if event.first_id != self.update_id + 1:
            self._unsync()
            self.buffer.append(event)
            return SyncStatus.GAP
        return self._apply(event)

    def on_snapshot(self, last_update_id: int, bids: list[Level], asks: list[Level]) -> SyncStatus:
        if self.synced:
            return SyncStatus.UNEXPECTED_SNAPSHOT
        self.pending = (last_update_id, bids, asks)
        return self._try_sync()

    def _apply(self, event: DepthEvent) -> SyncStatus:
        book = self.book
        book.apply(event.bids, event.asks)
        self.update_id = event.last_id
        self.last_ts_ns = event.ts_ns
        if book.crossed():
            self._unsync()
            return SyncStatus.CROSSED
        return SyncStatus.APPLIED

    def _try_sync(self) -> SyncStatus:
        assert self.pending is not None
        last_update_id, bids, asks = self.pending
        buffer = self.buffer
        while buffer and buffer[0].last_id <= last_update_id:
            buffer.popleft()
        if not buffer:
            return SyncStatus.WAITING
        if buffer[0].first_id > last_update_id + 1:
            self.pending = None
            return SyncStatus.STALE_SNAPSHOT
        self.pending = None
        self.book.load(bids, asks)
        self.update_id = last_update_id
        self.synced = True
        first = True
        while buffer:
            event = buffer.popleft()
            if not first and event.first_id != self.update_id + 1:
                self._unsync()
                buffer.appendleft(event)
                return SyncStatus.GAP
            first = False
            if self._apply(event) is SyncStatus.CROSSED:
                buffer.clear()
                return SyncStatus.CROSSED
        if self.book.crossed():  # a snapshot can be crossed on its own
            self._unsync()
            return SyncStatus.CROSSED
        return SyncStatus.SYNCED
