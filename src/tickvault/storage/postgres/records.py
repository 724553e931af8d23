"""Records of the non-market tables (quarantine, checkpoints, gaps, quality, features, signals).

Plain ``msgspec.Struct``s with integer-nanosecond times like the market model; the store turns
them into rows. ``QuarantineRecord.from_event`` keeps a rejected event whole (as JSON) so
nothing rejected is lost.
"""

from __future__ import annotations

from typing import Any

import msgspec

from tickvault.model import DecodeError, MarketEvent

_json = msgspec.json.Encoder(decimal_format="string")


class QuarantineRecord(msgspec.Struct, frozen=True):
    exchange: str
    reason: str
    detail: str
    raw: str
    recv_ns: int
    symbol: str | None = None
    channel: str | None = None

    @classmethod
    def from_decode_error(cls, err: DecodeError) -> QuarantineRecord:
        return cls(
            err.exchange, err.reason, err.detail, err.raw, err.recv_ns, err.symbol, err.channel
        )

    @classmethod
    def from_event(cls, event: MarketEvent, reason: str, detail: str) -> QuarantineRecord:
        """A validated-and-rejected event, kept as its JSON encoding."""
        channel = type(event).__name__.lower()
        raw = _json.encode(event).decode()
        return cls(event.exchange, reason, detail, raw, event.recv_ns, event.symbol, channel)


class Checkpoint(msgspec.Struct, frozen=True):
    """Backfill progress of one (exchange, symbol, kind); ``cursor`` is the adapter's opaque text."""

    exchange: str
    symbol: str
    kind: str
    cursor: str | None
    since_ns: int | None = None
    until_ns: int | None = None
    last_ns: int | None = None  # newest exchange time stored so far
    done: bool = False


class GapRecord(msgspec.Struct, frozen=True):
    id: int
    exchange: str
    symbol: str
    channel: str
    from_ns: int
    to_ns: int
    reason: str
    detected_ns: int
    status: str  # open | repairing | repaired | failed (retried later) | unrepairable
    repaired_ns: int | None = None
    detail: str | None = None
    attempts: int = 0  # repairs tried that failed
    attempted_ns: int | None = None  # when a repair was last started


class QualityMetric(msgspec.Struct, frozen=True):
    exchange: str
    symbol: str
    metric: str  # e.g. completeness, latency_p99_ms, duplicates
    ts_ns: int  # window start
    value: float
    detail: dict[str, Any] | None = None


class FeatureValue(msgspec.Struct, frozen=True):
    """One indicator value (``rsi_14`` of the 1h bar opening at ``ts_ns``); None when undefined."""

    exchange: str
    symbol: str
    timeframe: str
    name: str
    ts_ns: int
    value: float | None


class FeatureRevision(FeatureValue, frozen=True):
    """A recomputed indicator value that replaces the stored one (a bar revised by late
    trades: ``IndicatorEngine.revise``); live ``FeatureValue`` rows never overwrite."""


class Signal(msgspec.Struct, frozen=True):
    exchange: str
    symbol: str
    timeframe: str
    name: str
    ts_ns: int
    value: float | None = None
    side: str | None = None  # long | short | flat, when the signal has a direction
    detail: dict[str, Any] | None = None


GAP_STATUSES = ("open", "repairing", "repaired", "failed", "unrepairable")
