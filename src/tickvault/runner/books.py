"""Book deltas → stored book snapshots (a transform stage; pure, no I/O, no clock).

Coinbase and Kraken send a snapshot, then deltas; Binance's feed already emits top-N
snapshots. Storage keeps snapshots only (``book_snapshots``), so the runner keeps an L2 book per
stream from the validated snapshot + deltas and emits its top ``depth`` levels at most once per
``interval_ns`` of exchange time per stream (the newest state wins), plus once more on
:meth:`flush` at shutdown. A feed snapshot replaces the state and is stored cut to ``depth``.
Rebuilding needs the snapshot the deltas apply to: Kraken's feed keeps its deltas within the
subscribed depth; Coinbase's deltas cover the whole book, so the runner asks that feed for
full snapshots (``feeds.FULL_BOOK_VENUES``).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from decimal import Decimal

import msgspec

from tickvault.model import BookDelta, BookSnapshot, Level

_ZERO = Decimal(0)


class _Book:
    __slots__ = ("asks", "bids", "dirty", "emitted_ns", "last")

    def __init__(self) -> None:
        self.bids: dict[Decimal, Decimal] = {}
        self.asks: dict[Decimal, Decimal] = {}
        self.dirty = False
        self.emitted_ns = 0  # exchange time of the last snapshot stored
        self.last: BookDelta | None = None


def _apply(side: dict[Decimal, Decimal], levels: tuple[Level, ...]) -> None:
    for price, size in levels:
        if size == _ZERO:
            side.pop(price, None)
        else:
            side[price] = size


class BookKeeper:
    def __init__(self, depth: int = 10, interval_ns: int = 100_000_000) -> None:
        self.depth = depth
        self.interval_ns = interval_ns
        self.deltas_without_snapshot = 0  # deltas seen before any snapshot of their stream
        self._books: dict[tuple[str, str], _Book] = {}

    def update(self, events: Iterable[BookSnapshot | BookDelta]) -> list[BookSnapshot]:
        """Apply a batch; returns the snapshots to store (feed snapshots and sampled books)."""
        out: list[BookSnapshot] = []
        touched: dict[tuple[str, str], _Book] = {}
        for event in events:
            key = (event.exchange, event.symbol)
            if type(event) is BookSnapshot:
                book = self._books[key] = _Book()
                book.bids = dict(event.bids)
                book.asks = dict(event.asks)
                book.emitted_ns = event.ts_ns
                touched.pop(key, None)
                if len(event.bids) > self.depth or len(event.asks) > self.depth:
                    event = msgspec.structs.replace(
                        event, bids=event.bids[: self.depth], asks=event.asks[: self.depth]
                    )
                out.append(event)
                continue
            found = self._books.get(key)
            if found is None:
                self.deltas_without_snapshot += 1
                continue
            book = found
            assert type(event) is BookDelta
            _apply(book.bids, event.bids)
            _apply(book.asks, event.asks)
            book.dirty = True
            book.last = event
            touched[key] = book
        for key, book in touched.items():
            last = book.last
            if last is not None and last.ts_ns - book.emitted_ns >= self.interval_ns:
                out.append(self._snapshot(key, book, last))
        return out

    def flush(self) -> list[BookSnapshot]:
        """Snapshots of every book changed since it was last emitted."""
        return [
            self._snapshot(key, book, book.last)
            for key, book in self._books.items()
            if book.dirty and book.last is not None
        ]

    def _snapshot(self, key: tuple[str, str], book: _Book, last: BookDelta) -> BookSnapshot:
        book.dirty = False
        book.emitted_ns = last.ts_ns
        depth = self.depth
        bids = [(p, book.bids[p]) for p in heapq.nlargest(depth, book.bids)]
        asks = [(p, book.asks[p]) for p in heapq.nsmallest(depth, book.asks)]
        return BookSnapshot(
            key[0],
            key[1],
            tuple(bids),
            tuple(asks),
            last.ts_ns,
            last.recv_ns,
            sequence=last.last_sequence,
            checksum=last.checksum,
        )
