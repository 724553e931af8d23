"""The PostgreSQL store seen through the I/O layer's Protocols (``sinks.py``).

:class:`PostgresStore` already has the methods by name (``write``/``flush``, ``record_gaps``,
``quarantine``, checkpoints, ``upsert_instruments``); this thin wrapper adds what the feeds need:

* only storable events go to the store. Feeds also emit :class:`BookDelta` (Kraken, Coinbase),
  which has no table: the book's state is stored as snapshots. Deltas are counted, not stored;
  ``kinds`` narrows further (a collector that stores trades only, say);
* counts of what went where, for status output and tests.

Writes stay idempotent (natural keys), so a page re-sent after a resume or a message seen twice
during a WebSocket rollover changes nothing in the tables.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from tickvault.exchanges.io.sinks import Checkpoint, Sinks
from tickvault.model import (
    BookSnapshot,
    Candle,
    DecodeError,
    Gap,
    Instrument,
    MarketEvent,
    Ticker,
    Trade,
)
from tickvault.storage.postgres import PostgresStore

Storable = Trade | Candle | BookSnapshot | Ticker
STORABLE: tuple[type[Storable], ...] = (Trade, Candle, BookSnapshot, Ticker)


@dataclass(slots=True)
class StoreCounts:
    written: dict[str, int] = field(default_factory=dict)  # by event type
    not_stored: int = 0  # deltas and kinds left out
    gaps: int = 0
    quarantined: int = 0
    checkpoints: int = 0


class StoreSink:
    """Events, gaps, decode errors and checkpoints into one :class:`PostgresStore`."""

    def __init__(self, store: PostgresStore, kinds: Sequence[type[Storable]] = STORABLE) -> None:
        unknown = [k for k in kinds if k not in STORABLE]
        if unknown:
            raise ValueError(f"the store has no table for {unknown}")
        self.store = store
        self.kinds = tuple(kinds)
        self.counts = StoreCounts()

    def sinks(self) -> Sinks:
        return Sinks(events=self, gaps=self, errors=self)

    async def write(self, events: Sequence[MarketEvent]) -> None:
        keep: list[Storable] = [e for e in events if isinstance(e, self.kinds)]
        self.counts.not_stored += len(events) - len(keep)
        written = self.counts.written
        for event in keep:
            name = type(event).__name__
            written[name] = written.get(name, 0) + 1
        if keep:
            await self.store.write(keep)

    async def flush(self) -> None:
        await self.store.flush()

    async def record_gaps(self, gaps: Sequence[Gap]) -> list[int]:
        self.counts.gaps += len(gaps)
        return await self.store.record_gaps(gaps)

    async def quarantine(self, records: Sequence[DecodeError]) -> int:
        self.counts.quarantined += len(records)
        return await self.store.quarantine(records)

    async def load_checkpoint(self, exchange: str, symbol: str, kind: str) -> Checkpoint | None:
        return await self.store.load_checkpoint(exchange, symbol, kind)

    async def save_checkpoint(self, cp: Checkpoint) -> None:
        self.counts.checkpoints += 1
        await self.store.save_checkpoint(cp)

    async def upsert_instruments(self, instruments: Sequence[Instrument]) -> int:
        return await self.store.upsert_instruments(instruments)
