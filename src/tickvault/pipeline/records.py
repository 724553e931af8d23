"""Records the pipeline stages produce besides market events.

All are ``msgspec.Struct``s like the model, so sinks encode them to JSON/MessagePack or rows
without glue code. Times are integer nanoseconds (UTC); units are in the names.
"""

from __future__ import annotations

import msgspec

from tickvault.model import Candle, Trade

# Channel of an event kind, as named in FeedSettings.channels.
CHANNEL_OF_KIND: dict[str, str] = {
    "trade": "trades",
    "candle": "candles",
    "book_snapshot": "book",
    "book_delta": "book",
    "ticker": "ticker",
}


class Rejected(msgspec.Struct, frozen=True, gc=False):
    """A record validation refused: kept whole for the quarantine, counted by ``reason``.

    ``kind`` is the event's tag (``trade``, ``candle``, ...) or its Python type name when it
    is not a market event at all; ``raw`` is the event encoded as JSON.
    """

    exchange: str
    symbol: str | None
    kind: str
    reason: str  # short machine label, also the counter's label
    detail: str  # for a person
    raw: str
    ts_ns: int | None
    recv_ns: int | None

    @property
    def channel(self) -> str:
        return CHANNEL_OF_KIND.get(self.kind, "unknown")


class EmptyInterval(msgspec.Struct, frozen=True, gc=False):
    """Derived-candle buckets ``[from_open_ns, to_open_ns)`` in which no trade arrived."""

    exchange: str
    symbol: str
    timeframe: str
    from_open_ns: int
    to_open_ns: int  # exclusive: the open time of the first bucket after the empty run

    @property
    def bars(self) -> int:
        from tickvault.model import timeframe_ns

        return (self.to_open_ns - self.from_open_ns) // timeframe_ns(self.timeframe)


class ReconcileFinding(msgspec.Struct, frozen=True, gc=False):
    """A closed derived bar and the exchange's own bar differ beyond tolerance in ``field``.

    Values are decimal strings as in the bars (``None`` when one side lacks the field).
    """

    exchange: str
    symbol: str
    timeframe: str
    open_ns: int
    field: str
    derived: str | None
    exchange_value: str | None
    rel_diff: float


class Feature(msgspec.Struct, frozen=True, gc=False):
    """One indicator value of one closed bar; ``ts_ns`` is that bar's open time."""

    exchange: str
    symbol: str
    timeframe: str
    ts_ns: int
    name: str
    value: float


class Signal(msgspec.Struct, frozen=True, gc=False):
    """A rule fired on a closed bar; ``ts_ns`` is that bar's open time."""

    exchange: str
    symbol: str
    timeframe: str
    ts_ns: int
    rule: str
    direction: str  # "buy" | "sell"
    value: float
    details: dict[str, float] = {}


class QualityScore(msgspec.Struct, frozen=True, gc=False):
    """Data quality of one (exchange, symbol, channel) over the tracker's rolling window.

    Every component is in 0..1 (1 = perfect); ``score`` is their weighted mean and ``worst``
    names the lowest component. The raw figures behind the components come along.
    """

    exchange: str
    symbol: str
    channel: str
    ts_ns: int  # the "now" the score was computed at
    score: float
    completeness: float
    validity: float
    timeliness: float
    consistency: float
    uniqueness: float
    worst: str
    events: int
    rejected: int
    duplicates: int
    missing: int
    lag_p95_ns: int | None
    staleness_ns: int | None
    deviation: float | None  # relative distance of the last price from the cross-exchange median


class RepairedHistory(msgspec.Struct, frozen=True, gc=False):
    """Closed bars and trades a gap repair refetched or rebuilt, bound for the Redis cache: it
    writes them by its history rule (fill holes inside cached bars, latest values only forward),
    never as live values."""

    events: list[Trade | Candle]
