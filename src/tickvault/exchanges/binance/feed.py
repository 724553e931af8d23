"""The pure state of one Binance WebSocket connection: decoder + verified books + counters.

Book output: after every applied diff event (and once after a snapshot brings a book live)
the feed emits a :class:`~tickvault.model.BookSnapshot` of the top ``book_depth`` levels with
``sequence`` = the book's update id. No :class:`~tickvault.model.BookDelta` is emitted: storage
gets the top-N picture directly, and a delta deep in the book that never reaches the top N
costs nothing downstream.

Snapshot requests: a book asks for a REST snapshot (``FeedOutput.resync``) when its first diff
event has been buffered, after a gap or crossed book, after a snapshot too old to bridge, and
on disconnect. While a request is outstanding it is not repeated. The I/O layer should fetch
once the (new) connection is open: Binance's procedure is "buffer first, then snapshot"; a
snapshot taken too early is detected and simply asked for again.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from tickvault.exchanges.base import FeedCounters, FeedOutput
from tickvault.exchanges.binance import schemas
from tickvault.exchanges.binance.book import BookSync, DepthEvent, SyncStatus
from tickvault.exchanges.binance.decode import (
    VALID_DECIMALS,
    Decoder,
    _dec,
    _Reject,
    decode_levels,
    parse_depth_snapshot,
)
from tickvault.exchanges.binance.symbols import EXCHANGE, SymbolMap
from tickvault.exchanges.trade_ids import TradeIdTracker
from tickvault.model import BookSnapshot, DecodeError, Gap, Instrument, Ticker, decimal_str

try:  # the compiled fast path (binance/_fast.pyx), when the package was built with it
    from tickvault.exchanges.binance import _fast as compiled_fast_path
except ImportError:  # pragma: no cover - a source tree without the built extension
    compiled_fast_path = None  # type: ignore[assignment]

NS_PER_MS = 1_000_000
# Combined-stream suffixes the fast path handles: 1 = diff depth, 2 = bookTicker.
_FAST_STREAMS = {"depth": 1, "depth@100ms": 1, "depth@1000ms": 1, "bookTicker": 2}


class BinanceFeed:
    """Implements :class:`tickvault.exchanges.base.FeedState` for Binance Spot."""

    def __init__(self, instruments: Sequence[Instrument], book_depth: int) -> None:
        if book_depth < 1:
            raise ValueError("book_depth must be at least 1")
        self.counters = FeedCounters()
        self.book_depth = book_depth
        self.symbols = SymbolMap(instruments)
        self.decoder = Decoder(self.symbols)
        self.error_counts: dict[str, int] = {}  # decode errors by reason
        self.stale_events = 0  # diff events older than the book, ignored
        self.server_shutdown_ns: int | None = None  # last serverShutdown: reconnect soon
        self._books: dict[str, BookSync] = {}
        self._awaiting: set[str] = set()  # snapshot requested, not yet received
        self._last_seen: dict[tuple[str, str], int] = {}  # (symbol, channel) -> last ts_ns
        # The fast path handles the common, valid messages (diff depth, bookTicker in the
        # combined-stream envelope) with the same results as the general decoder; it gives up
        # (None) before touching any state on anything else. Off only in tests comparing both.
        self.fast_path = True
        # The compiled fast path (same results, in C) when built; False selects the Python one.
        self.compiled = compiled_fast_path is not None
        self._trade_ids = TradeIdTracker(EXCHANGE)

    # -- FeedState ---------------------------------------------------------------------

    def on_message(self, raw: bytes | str, recv_ns: int) -> FeedOutput:
        self.counters.messages += 1
        if self.fast_path:
            fast = self._fast_message(raw, recv_ns)
            if fast is not None:
                return fast
        return self._general_message(raw, recv_ns)

    if compiled_fast_path is not None:  # the same method in C, with the compiled fast path
        on_message = compiled_fast_path.on_message

    def _general_message(self, raw: bytes | str, recv_ns: int) -> FeedOutput:
        """Any message, through the general decoder."""
        decoded = self.decoder.decode(raw, recv_ns)
        out = FeedOutput(events=decoded.events, errors=decoded.errors)
        if decoded.events:
            self.counters.sequence_gaps += self._trade_ids.check(decoded.events, out.gaps)
        if decoded.errors:
            self._count_errors(decoded.errors)
        if decoded.stream is not None:
            ts_ns = decoded.ts_ns
            self._last_seen[decoded.stream] = recv_ns if ts_ns is None else ts_ns
        if decoded.shutdown_ns is not None:
            self.server_shutdown_ns = decoded.shutdown_ns
        if decoded.depth is not None:
            symbol, event = decoded.depth
            sync = self._books.get(symbol)
            if sync is None:
                sync = self._books[symbol] = BookSync()
            self._handle(symbol, sync, sync.on_event(event), out, event, recv_ns)
        return out

    def on_rest_snapshot(self, symbol: str, raw: bytes | str, recv_ns: int) -> FeedOutput:
        out = FeedOutput()
        instrument = self.symbols.by_symbol.get(symbol) or self.symbols.by_id.get(symbol)
        text = raw if isinstance(raw, str) else raw.decode("utf-8", "replace")
        if instrument is None:
            error = DecodeError(
                EXCHANGE, "unknown_symbol", f"snapshot for unknown symbol {symbol!r}",
                text, recv_ns, symbol, "book",
            )  # fmt: skip
            out.errors.append(error)
            self._count_errors(out.errors)
            return out
        symbol = instrument.symbol
        self._awaiting.discard(symbol)
        try:
            last_update_id, bids, asks = parse_depth_snapshot(raw)
        except ValueError as exc:
            reason, _, detail = str(exc).partition(": ")
            out.errors.append(DecodeError(EXCHANGE, reason, detail, text, recv_ns, symbol, "book"))
            self._count_errors(out.errors)
            self._request(symbol, out)
            return out
        sync = self._books.get(symbol)
        if sync is None:
            sync = self._books[symbol] = BookSync()
        status = sync.on_snapshot(last_update_id, bids, asks)
        if status is SyncStatus.UNEXPECTED_SNAPSHOT:
            detail = f"book already live at update id {sync.update_id}; snapshot ignored"
            error = DecodeError(
                EXCHANGE, "unexpected_snapshot", detail, text, recv_ns, symbol, "book"
            )
            out.errors.append(error)
            self._count_errors(out.errors)
            return out
        self._handle(symbol, sync, status, out, None, recv_ns)
        return out

    def on_disconnect(self, recv_ns: int) -> FeedOutput:
        out = FeedOutput()
        self._trade_ids.reset()
        for (symbol, channel), last_ns in self._last_seen.items():
            out.gaps.append(Gap(EXCHANGE, symbol, channel, last_ns, recv_ns, "disconnect"))
            self._last_seen[(symbol, channel)] = recv_ns
        for symbol, sync in self._books.items():
            sync.reset()
            self.counters.resyncs += 1
            self._awaiting.discard(symbol)
            self._request(symbol, out)
        return out

    def books(self) -> dict[str, tuple[list[tuple[str, str]], list[tuple[str, str]]]]:
        result: dict[str, tuple[list[tuple[str, str]], list[tuple[str, str]]]] = {}
        for symbol, sync in self._books.items():
            if not sync.synced:
                result[symbol] = ([], [])
                continue
            book = sync.book
            bids = book.bids.highest(len(book.bids))
            asks = book.asks.lowest(len(book.asks))
            result[symbol] = (
                [(decimal_str(p), decimal_str(s)) for p, s in bids],
                [(decimal_str(p), decimal_str(s)) for p, s in asks],
            )
        return result

    # -- fast path ---------------------------------------------------------------------

    def _fast_message(self, raw: bytes | str, recv_ns: int) -> FeedOutput | None:
        """Diff depth and bookTicker without the general decoder's bookkeeping, or None."""
        try:
            head = schemas.INCOMING.decode(raw)
        except msgspec.DecodeError:
            return None
        stream = head.stream
        data = head.data
        if stream is msgspec.UNSET or data is msgspec.UNSET:
            return None
        kind = _FAST_STREAMS.get(stream.partition("@")[2])
        if kind == 1:
            try:
                depth = schemas.DEPTH_UPDATE.decode(data)
                instrument = self.symbols.by_id.get(depth.symbol)
                if instrument is None:
                    return None
                bids = decode_levels(depth.bids)
                asks = decode_levels(depth.asks)
            except (msgspec.DecodeError, _Reject):
                return None
            symbol = instrument.symbol
            ts_ns = depth.event_ms * NS_PER_MS
            event = DepthEvent(
                depth.first_update_id, depth.last_update_id, ts_ns, recv_ns, bids, asks
            )
            self._last_seen[(symbol, "book")] = ts_ns
            sync = self._books.get(symbol)
            if sync is None:
                sync = self._books[symbol] = BookSync()
            out = FeedOutput()
            self._handle(symbol, sync, sync.on_event(event), out, event, recv_ns)
            return out
        if kind == 2:
            try:
                bbo = schemas.BOOK_TICKER.decode(data)
                instrument = self.symbols.by_id.get(bbo.symbol)
                if instrument is None:
                    return None
                known = VALID_DECIMALS.get  # Decimal("0") is falsy: _dec then finds it again
                bid_price = known(bbo.bid_price) or _dec(bbo.bid_price)
                bid_size = known(bbo.bid_qty) or _dec(bbo.bid_qty)
                ask_price = known(bbo.ask_price) or _dec(bbo.ask_price)
                ask_size = known(bbo.ask_qty) or _dec(bbo.ask_qty)
            except (msgspec.DecodeError, _Reject):
                return None
            symbol = instrument.symbol
            self._last_seen[(symbol, "ticker")] = recv_ns  # spot bookTicker has no time
            ticker = Ticker(
                EXCHANGE, symbol, recv_ns, recv_ns, bid_price, bid_size, ask_price, ask_size
            )
            return FeedOutput([ticker])
        return None

    # -- helpers -----------------------------------------------------------------------

    def book_sync(self, symbol: str) -> BookSync | None:
        return self._books.get(symbol)

    def _count_errors(self, errors: list[DecodeError]) -> None:
        self.counters.decode_errors += len(errors)
        counts = self.error_counts
        for error in errors:
            counts[error.reason] = counts.get(error.reason, 0) + 1

    def _request(self, symbol: str, out: FeedOutput) -> None:
        if symbol not in self._awaiting:
            self._awaiting.add(symbol)
            out.resync.append(symbol)

    def _handle(
        self,
        symbol: str,
        sync: BookSync,
        status: SyncStatus,
        out: FeedOutput,
        event: DepthEvent | None,
        recv_ns: int,
    ) -> None:
        if status is SyncStatus.APPLIED or status is SyncStatus.SYNCED:
            bids, asks = sync.book.top(self.book_depth)
            ts_ns = sync.last_ts_ns if sync.last_ts_ns is not None else recv_ns
            out.events.append(
                BookSnapshot(EXCHANGE, symbol, bids, asks, ts_ns, recv_ns, sync.update_id)
            )
        elif status is SyncStatus.BUFFERED:
            self._request(symbol, out)
        elif status is SyncStatus.STALE:
            self.stale_events += 1
        elif status is SyncStatus.GAP or status is SyncStatus.CROSSED:
            if status is SyncStatus.GAP:
                self.counters.sequence_gaps += 1
                reason = "sequence_gap"
            else:
                self.counters.crossed_books += 1
                reason = "crossed_book"
            self.counters.resyncs += 1
            to_ns = event.ts_ns if event is not None else recv_ns
            from_ns = sync.gap_from_ns if sync.gap_from_ns is not None else to_ns
            out.gaps.append(Gap(EXCHANGE, symbol, "book", from_ns, to_ns, reason))
            self._awaiting.discard(symbol)
            self._request(symbol, out)
        elif status is SyncStatus.STALE_SNAPSHOT:
            self.counters.resyncs += 1
            self._request(symbol, out)
        # WAITING: the snapshot is kept until an event bridges it.
