"""What the I/O layer needs from storage, as small Protocols.

Method names follow the PostgreSQL store (``write``/``flush``, ``record_gaps``, ``quarantine``,
``load_checkpoint``/``save_checkpoint``) so it plugs in as is; tests and the command line use the
small implementations in :mod:`tickvault.exchanges.io.stores`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import msgspec

from tickvault.model import DecodeError, Gap, MarketEvent


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


class Checkpoint(msgspec.Struct, frozen=True):
    """Backfill progress of one stream: everything in [since_ns, until_ns) up to ``cursor`` is
    stored; ``done`` once the whole range is. Same fields as the PostgreSQL store's record."""

    exchange: str
    symbol: str
    kind: str  # ``trades`` or ``candles:<timeframe>``
    cursor: str | None  # the adapter's opaque cursor of the next page
    since_ns: int | None = None
    until_ns: int | None = None
    last_ns: int | None = None  # newest event time stored so far
    done: bool = False


class CheckpointStore(Protocol):
    async def load_checkpoint(self, exchange: str, symbol: str, kind: str) -> Checkpoint | None: ...

    async def save_checkpoint(self, cp: Checkpoint) -> None: ...


@dataclass(slots=True)
class Sinks:
    """Where a collector's output goes."""

    events: EventSink
    gaps: GapSink
    errors: ErrorSink
