"""What the I/O layer needs from storage, as small Protocols.

The PostgreSQL/Redis store implements them (directly or through a thin adapter); tests and the
command line use the small implementations in :mod:`tickvault.exchanges.io.stores`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from tickvault.model import DecodeError, Gap, MarketEvent


class EventSink(Protocol):
    async def write(self, events: Sequence[MarketEvent]) -> None:
        """Accept events (may buffer). Writes must be idempotent: a re-sent batch changes nothing."""
        ...

    async def flush(self) -> None:
        """Return once everything written so far is durable."""
        ...


class GapSink(Protocol):
    async def record_gaps(self, gaps: Sequence[Gap]) -> None: ...


class ErrorSink(Protocol):
    async def record_errors(self, errors: Sequence[DecodeError]) -> None:
        """Messages that could not be decoded, kept whole (the quarantine)."""
        ...


@dataclass(frozen=True, slots=True)
class Checkpoint:
    cursor: str | None  # opaque resume position; None once the stream's range is complete
    last_ts_ns: int | None  # newest event time written so far


class CheckpointStore(Protocol):
    """Backfill progress per (exchange, symbol, kind); ``kind`` is ``trades``/``candles:1m``."""

    async def load(self, exchange: str, symbol: str, kind: str) -> Checkpoint | None: ...

    async def save(
        self, exchange: str, symbol: str, kind: str, cursor: str | None, last_ts_ns: int | None
    ) -> None: ...


@dataclass(slots=True)
class Sinks:
    """Where a collector's output goes."""

    events: EventSink
    gaps: GapSink
    errors: ErrorSink
