"""Fault injection: what to break, where, and for how long. See docs/simulator.md.

A fault is armed with a ``count`` (how many messages/requests/trades it affects) and/or a
``duration_s``; it matches an exchange and optionally one canonical symbol and one channel.
Consumers ask :meth:`FaultBox.take` at the point where the fault acts; every application is
counted in :attr:`FaultBox.applied` so tests can assert that the fault really fired.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from tickvault.errors import UsageError

# kind -> where it acts (documentation, and validation of the control API)
FAULT_KINDS: dict[str, str] = {
    "drop_connection": "ws: close matching connections now (count = how many, default all)",
    "drop_messages": "ws: next `count` data messages are not sent (sequence/id gap)",
    "duplicate_messages": "ws: next `count` data messages are sent twice",
    "bad_checksum": "ws, kraken: next `count` book messages carry a wrong checksum",
    "malformed_json": "ws (or rest with scope=rest): next `count` bodies are cut in half",
    "rate_limit_429": "rest: next `count` requests answered 429 (Kraken: EGeneral:Too many requests)",
    "ban_418": "rest, binance: every request 418 for `duration_s` (Retry-After = time left)",
    "slow_responses": "rest: responses delayed by `delay_s` (count or duration)",
    "stall": "market: no new events for the symbol for `duration_s`, connections stay open",
    "bad_values": "market: next `count` trades carry `mode` negative_price|far_price|zero_size",
}


@dataclass(slots=True)
class Fault:
    exchange: str
    kind: str
    count: int | None = None
    duration_s: float | None = None
    symbol: str | None = None  # canonical symbol
    channel: str | None = None  # venue channel/stream kind, e.g. "depth", "book", "matches"
    scope: str = "ws"  # malformed_json only: "ws" or "rest"
    delay_s: float = 1.0  # slow_responses
    retry_after_s: int = 1  # rate_limit_429
    mode: str = "negative_price"  # bad_values
    until_monotonic: float | None = field(default=None, repr=False)

    @classmethod
    def from_json(cls, data: dict[str, Any], default_exchange: str | None = None) -> Fault:
        known = set(cls.__dataclass_fields__) - {"until_monotonic"}
        unknown = set(data) - known
        if unknown:
            raise UsageError(f"unknown fault field(s): {', '.join(sorted(unknown))}")
        values = dict(data)
        values.setdefault("exchange", default_exchange)
        fault = cls(**values)
        fault.validate()
        return fault

    def validate(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise UsageError(f"unknown fault kind {self.kind!r}; known: {', '.join(FAULT_KINDS)}")
        if self.exchange not in ("binance", "coinbase", "kraken"):
            raise UsageError(
                f"fault needs an exchange (binance, coinbase, kraken), got {self.exchange!r}"
            )
        if self.kind == "ban_418" and self.exchange != "binance":
            raise UsageError("ban_418 exists on binance only")
        if self.kind == "bad_checksum" and self.exchange != "kraken":
            raise UsageError("bad_checksum exists on kraken only")
        if self.kind in ("stall", "ban_418") and self.duration_s is None:
            raise UsageError(f"{self.kind} needs duration_s")
        if self.kind == "bad_values" and self.mode not in (
            "negative_price",
            "far_price",
            "zero_size",
        ):
            raise UsageError(f"bad_values mode {self.mode!r}: negative_price, far_price, zero_size")
        if self.scope not in ("ws", "rest"):
            raise UsageError("scope is ws or rest")
        if self.count is None and self.duration_s is None and self.kind != "drop_connection":
            self.count = 1

    def to_json(self) -> dict[str, Any]:
        left = None
        if self.until_monotonic is not None:
            left = max(0.0, self.until_monotonic - time.monotonic())
        return {
            "exchange": self.exchange,
            "kind": self.kind,
            "count": self.count,
            "seconds_left": left,
            "symbol": self.symbol,
            "channel": self.channel,
            "scope": self.scope,
        }


class FaultBox:
    """Armed faults of all exchanges, and how often each fired."""

    def __init__(self) -> None:
        self.faults: list[Fault] = []
        self.applied: Counter[tuple[str, str]] = Counter()  # (exchange, kind) -> times

    def arm(self, fault: Fault) -> None:
        if fault.duration_s is not None:
            fault.until_monotonic = time.monotonic() + fault.duration_s
        self.faults.append(fault)

    def clear(self) -> None:
        self.faults.clear()

    def _match(
        self, exchange: str, kind: str, symbol: str | None, channel: str | None, scope: str | None
    ) -> Fault | None:
        if not self.faults:
            return None
        now = time.monotonic()
        for fault in list(self.faults):
            if fault.until_monotonic is not None and now >= fault.until_monotonic:
                self.faults.remove(fault)
                continue
            if fault.kind != kind or fault.exchange != exchange:
                continue
            if fault.symbol is not None and symbol is not None and fault.symbol != symbol:
                continue
            if fault.channel is not None and fault.channel != channel:
                continue
            if scope is not None and fault.scope != scope:
                continue
            return fault
        return None

    def active(self, exchange: str, kind: str, symbol: str | None = None) -> Fault | None:
        """A matching fault, without consuming it (duration faults: stall, ban, slow)."""
        return self._match(exchange, kind, symbol, None, None)

    def take(
        self,
        exchange: str,
        kind: str,
        symbol: str | None = None,
        channel: str | None = None,
        scope: str | None = None,
    ) -> Fault | None:
        """Consume one application of a matching fault; None when nothing is armed."""
        fault = self._match(exchange, kind, symbol, channel, scope)
        if fault is None:
            return None
        if fault.count is not None:
            fault.count -= 1
            if fault.count <= 0:
                self.faults.remove(fault)
        self.applied[(exchange, kind)] += 1
        return fault
