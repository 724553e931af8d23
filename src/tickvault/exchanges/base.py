"""The contract every exchange folder fulfils, and the registry that names them.

An exchange folder (``exchanges/<name>/``) holds:

* ``schemas.py``  wire formats as ``msgspec.Struct`` classes (decoding is validation);
* ``symbols.py``  instruments from the REST symbol list, exchange id <-> canonical symbol;
* ``decode.py``   pure: one raw message + receive time -> normalized events / decode errors;
* ``book.py``     pure: one symbol's L2 book state with the venue's sequence/checksum rules;
* ``feed.py``     pure: the per-connection state machine gluing decoder and books
  (:class:`FeedState`), plus subscription messages;
* ``rest.py``     pure request builders and page parsers for backfill (no HTTP client here);
* ``adapter.py``  an :class:`ExchangeAdapter` tying these together, registered in
  :data:`ADAPTERS`.

None of the pure modules opens a socket, reads a clock or touches a database: the I/O layer
(``exchanges/io``) drives them, and so do replay, tests and benchmarks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from tickvault.model import DecodeError, Gap, Instrument, MarketEvent


@dataclass(slots=True)
class FeedOutput:
    """What one raw message produced."""

    events: list[MarketEvent] = field(default_factory=list)
    errors: list[DecodeError] = field(default_factory=list)
    gaps: list[Gap] = field(default_factory=list)
    # symbols whose book must be rebuilt (Binance: fetch a REST snapshot; Kraken/Coinbase:
    # resubscribe). The I/O layer acts on them; counters live with the state.
    resync: list[str] = field(default_factory=list)

    def extend(self, other: FeedOutput) -> None:
        self.events.extend(other.events)
        self.errors.extend(other.errors)
        self.gaps.extend(other.gaps)
        self.resync.extend(other.resync)


@dataclass(slots=True)
class FeedCounters:
    messages: int = 0
    decode_errors: int = 0
    sequence_gaps: int = 0
    checksum_failures: int = 0
    resyncs: int = 0
    crossed_books: int = 0


class FeedState(Protocol):
    """Pure state of one WebSocket connection's worth of streams."""

    counters: FeedCounters

    def on_message(self, raw: bytes | str, recv_ns: int) -> FeedOutput:
        """Decode one WebSocket message and apply it to the books."""
        ...

    def on_rest_snapshot(self, symbol: str, raw: bytes | str, recv_ns: int) -> FeedOutput:
        """Feed a REST book snapshot (venues that sync books over REST; others ignore it)."""
        ...

    def on_disconnect(self, recv_ns: int) -> FeedOutput:
        """The connection dropped: every stream gets a gap and every book resyncs."""
        ...

    def books(self) -> dict[str, tuple[list[tuple[str, str]], list[tuple[str, str]]]]:
        """Current books as {symbol: (bids best first, asks best first)} of decimal strings."""
        ...


@dataclass(frozen=True, slots=True)
class RestRequest:
    """A REST call described as data: the I/O layer sends it; ``weight`` feeds the budget."""

    path: str
    params: dict[str, str]
    weight: int = 1


@dataclass(slots=True)
class BackfillPage:
    """One parsed page of REST history. ``next_cursor`` None means the range is complete.

    The cursor is opaque to everybody but the adapter (an open time, a trade id, a Kraken
    ``last`` ns stamp) and is what the checkpoint stores, so a resumed run asks for exactly the
    page that comes next.
    """

    events: list[MarketEvent]
    next_cursor: str | None
    errors: list[DecodeError] = field(default_factory=list)


class ExchangeAdapter(Protocol):
    """Everything exchange-specific, as pure functions; one instance per exchange."""

    name: str

    def instruments_request(self) -> RestRequest: ...

    def parse_instruments(self, raw: bytes | str) -> list[Instrument]: ...

    def new_feed(self, instruments: Sequence[Instrument], book_depth: int) -> FeedState: ...

    def ws_url(self, base_url: str, symbols: Sequence[str], channels: Sequence[str]) -> str: ...

    def subscribe_messages(
        self, instruments: Sequence[Instrument], channels: Sequence[str], book_depth: int
    ) -> list[str]: ...

    def book_snapshot_request(self, instrument: Instrument) -> RestRequest | None:
        """REST snapshot to sync a book, or None when the venue sends snapshots on the socket."""
        ...

    def backfill_request(
        self, instrument: Instrument, kind: str, cursor: str | None, since_ns: int, until_ns: int
    ) -> RestRequest:
        """The next history request; ``kind`` is ``trades`` or ``candles:<timeframe>``;
        ``cursor`` None starts at ``since_ns``."""
        ...

    def parse_backfill_page(
        self,
        instrument: Instrument,
        kind: str,
        raw: bytes | str,
        cursor: str | None,
        since_ns: int,
        until_ns: int,
        recv_ns: int,
    ) -> BackfillPage:
        """Events of one page inside [since_ns, until_ns), and where the next page starts."""
        ...

    def resync_messages(self, instrument: Instrument, book_depth: int) -> list[str]:
        """Messages that make the venue send a fresh book snapshot on the socket (unsubscribe +
        subscribe); empty for venues that resync over REST."""
        ...


ADAPTERS: dict[str, str] = {
    # name -> "module:attribute" of its ExchangeAdapter; adding an exchange adds one line here.
    "binance": "tickvault.exchanges.binance.adapter:ADAPTER",
    "coinbase": "tickvault.exchanges.coinbase.adapter:ADAPTER",
    "kraken": "tickvault.exchanges.kraken.adapter:ADAPTER",
}


def get_adapter(name: str) -> ExchangeAdapter:
    """The adapter for ``name``; raises ``UsageError`` naming the known exchanges."""
    import importlib

    from tickvault.errors import UsageError

    try:
        target = ADAPTERS[name]
    except KeyError:
        raise UsageError(
            f"unknown exchange {name!r}; known: {', '.join(sorted(ADAPTERS))}"
        ) from None
    module_name, _, attribute = target.partition(":")
    adapter: ExchangeAdapter = getattr(importlib.import_module(module_name), attribute)
    return adapter
