"""What the I/O layer needs from storage, as small Protocols.

Method names follow the PostgreSQL store (``write``/``flush``, ``record_gaps``, ``quarantine``,
``load_checkpoint``/``save_checkpoint``) so it plugs in as is; tests and the command line use the
small implementations in :mod:`tickvault.exchanges.io.stores`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from tickvault.model import DecodeError, Gap, Instrument, MarketEvent

# Backfill progress of one stream: everything in [since_ns, until_ns) up to ``cursor`` is stored;
# ``done`` once the whole range is. The PostgreSQL store's own record, so both sides agree.
from tickvault.storage.postgres.records import Checkpoint


class EventSink(Protocol):
    async def write(self, events: Sequence[MarketEvent]) -> None:
        """Accept events (may buffer). Writes must be idempotent: a re-sent batch changes nothing."""
        ...

    async def flush(self) -> None:
        """Return once everything written so far is durable."""
        ...


class GapSink(Protocol):
    async def record_gaps(self, gaps: Sequence[Gap]) -> object: ...


class ErrorSink(Protocol):
    async def quarantine(self, records: Sequence[DecodeError]) -> object:
        """Messages that could not be decoded, kept whole with their reason."""
        ...


class CheckpointStore(Protocol):
    async def load_checkpoint(self, exchange: str, symbol: str, kind: str) -> Checkpoint | None: ...

    async def save_checkpoint(self, cp: Checkpoint) -> None: ...


class InstrumentStore(Protocol):
    async def upsert_instruments(self, instruments: Sequence[Instrument]) -> int: ...


@dataclass(slots=True)
class Sinks:
    """Where a collector's output goes."""

    events: EventSink
    gaps: GapSink
    errors: ErrorSink


__all__ = [
    "Checkpoint",
    "CheckpointStore",
    "ErrorSink",
    "EventSink",
    "GapSink",
    "InstrumentStore",
    "Sinks",
]
