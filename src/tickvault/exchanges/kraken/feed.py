"""The per-connection Kraken state machine: decoder + books + forming candles.

Books: a snapshot (re)builds the book, each update is applied, truncated to the subscribed
depth and verified against Kraken's CRC32 (v2 snapshots carry a checksum too). A mismatch
counts ``checksum_failures``, emits a :class:`Gap` and asks the I/O layer to resync the
symbol (``resync_messages``: unsubscribe + subscribe, which brings a fresh snapshot); the
updates that arrive before that snapshot cannot be applied and are counted in
``skipped_updates``. Book events: :class:`BookSnapshot` for snapshots, :class:`BookDelta`
for updates, whose level lists are the message's levels followed by explicit deletes
(size 0) of levels the depth truncation dropped, so a consumer replaying deltas holds
exactly this book.

Candles: Kraken's ``ohlc`` channel has no "closed" flag. A bar is known to be final when a
message with a newer ``interval_begin`` arrives for the same symbol and interval; the
previous bar is then emitted once more with ``closed=True`` before the new, forming one.
A bar older than the forming one (a snapshot after a reconnect) is final by definition.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from decimal import Decimal

import msgspec

from tickvault.exchanges.base import FeedCounters, FeedOutput
from tickvault.exchanges.kraken.book import Book, KrakenBook
from tickvault.exchanges.kraken.checksum import digits
from tickvault.exchanges.kraken.decode import decode_message
from tickvault.exchanges.kraken.decode_v1 import trades_v1
from tickvault.exchanges.kraken.fast_v2 import V2Fast
from tickvault.exchanges.kraken.symbols import SymbolMap, price_decimals, qty_decimals
from tickvault.exchanges.kraken.wire import (
    EXCHANGE,
    BookMessage,
    CandleUpdate,
    WireError,
    error,
    seconds_text_ns,
)
from tickvault.exchanges.numbers import CACHE_MAX, plain_decimal
from tickvault.exchanges.trade_ids import TradeIdTracker
from tickvault.model import (
    BookDelta,
    BookSnapshot,
    Candle,
    CandleSource,
    Gap,
    Instrument,
    Level,
    Trade,
    decimal_str,
)

try:  # the compiled core (setup.py builds it); without it the pure-Python paths below
    from tickvault.exchanges.kraken._fast import KrakenBook as CompiledBook
    from tickvault.exchanges.kraken._fast import V1Fast

    COMPILED = True
except ImportError:  # pragma: no cover - exercised where the extension is not built
    COMPILED = False

BOOK_DEPTHS = (10, 25, 100, 500, 1000)
_ZERO_SIZE = Decimal(0)
_ARRAY_START = ("[", b"[")
_v1_decoder = msgspec.json.Decoder(float_hook=Decimal)  # as decode_v1's
_UPDATE_KEYS = frozenset({"a", "b", "c"})
# Plain (hence valid, non-negative) wire strings -> (Decimal, checksum digits): for such a
# string ``digits`` of the text equals ``level_token``'s digits of its Decimal.
_PLAIN: dict[str, tuple[Decimal, str]] = {}


def _plain(text: str) -> tuple[Decimal, str] | None:
    found = _PLAIN.get(text)
    if found is None:
        value = plain_decimal(text)
        if value is None:
            return None
        if len(_PLAIN) >= CACHE_MAX:
            _PLAIN.clear()
        found = _PLAIN[text] = (value, digits(text))
    return found


def _v1_rows(rows: object, levels: list[Level], tokens: list[str]) -> int | None:
    """Append the levels of one v1 side and their checksum tokens; the newest level time (ns),
    or None when anything is not the plain shape (the general decoder then decides)."""
    if type(rows) is not list:
        return None
    ts_ns = 0
    plain_get = _PLAIN.get
    for row in rows:
        if type(row) is not list or len(row) < 3:
            return None
        price_text, qty_text, time_text = row[0], row[1], row[2]
        if type(price_text) is not str or type(qty_text) is not str or type(time_text) is not str:
            return None
        price = plain_get(price_text) or _plain(price_text)
        qty = plain_get(qty_text) or _plain(qty_text)
        if price is None or qty is None:
            return None
        whole, _, fraction = time_text.partition(".")
        if len(fraction) == 6 and whole.isdigit() and fraction.isdigit() and time_text.isascii():
            row_ns = int(whole + fraction) * 1000  # the usual microsecond stamp
        else:
            try:
                row_ns = seconds_text_ns(time_text)
            except WireError:
                return None
        if row_ns > ts_ns:
            ts_ns = row_ns
        levels.append((price[0], qty[0]))
        tokens.append(price[1] + qty[1])
    return ts_ns


def _v1_update(
    payloads: list[object],
) -> tuple[list[Level], list[Level], list[str], list[str], int, int] | None:
    """A v1 book update's levels (asks and bids in wire order), tokens, time and checksum."""
    if not payloads:
        return None
    bids: list[Level] = []
    asks: list[Level] = []
    bid_tokens: list[str] = []
    ask_tokens: list[str] = []
    ts_ns = 0
    for payload in payloads:
        if type(payload) is not dict or not payload.keys() <= _UPDATE_KEYS:
            return None
        for key, levels, tokens in (("a", asks, ask_tokens), ("b", bids, bid_tokens)):
            if key in payload:
                side_ns = _v1_rows(payload[key], levels, tokens)
                if side_ns is None:
                    return None
                ts_ns = max(ts_ns, side_ns)
    checksum_text = payloads[-1].get("c")  # type: ignore[attr-defined]
    if type(checksum_text) is not str or not (checksum_text.isdigit() and checksum_text.isascii()):
        return None
    return bids, asks, bid_tokens, ask_tokens, ts_ns, int(checksum_text)


def subscription_depth(book_depth: int) -> int:
    """The depth to subscribe: Kraken refuses depths other than 10/25/100/500/1000, so the
    smallest allowed depth holding ``book_depth`` levels (1000 at most)."""
    for depth in BOOK_DEPTHS:
        if depth >= book_depth:
            return depth
    return BOOK_DEPTHS[-1]


class KrakenFeed:
    """Pure state of one Kraken WebSocket connection (v2, or v1 for recordings)."""

    def __init__(
        self, instruments: Sequence[Instrument], book_depth: int, *, compiled: bool | None = None
    ) -> None:
        self.counters = FeedCounters()
        self.symbols = SymbolMap(instruments)
        self.depth = subscription_depth(book_depth)
        self._instruments = {i.symbol: i for i in instruments}
        self._books: dict[str, Book] = {}
        self._acked_depths: dict[str, int] = {}  # symbol -> depth the server acknowledged
        self._awaiting_snapshot: set[str] = set()  # resync requested
        self._last_ts: dict[tuple[str, str], int] = {}  # (channel, symbol) -> last event ts
        self._bars: dict[tuple[str, str], Candle] = {}  # (symbol, timeframe) -> forming bar
        self.skipped_updates = 0  # book updates between a resync request and its snapshot
        self._trade_ids = TradeIdTracker(EXCHANGE, channel="trade")
        # The compiled core (books and the v1 fast path; same results) unless it is not built
        # or ``compiled=False`` (tests comparing it with the pure-Python paths).
        self.compiled = COMPILED if compiled is None else compiled
        if self.compiled and not COMPILED:
            raise RuntimeError("tickvault.exchanges.kraken._fast is not built (setup.py)")
        self._book_type: Callable[[int, int | None, int | None], Book] = (
            CompiledBook if self.compiled else KrakenBook
        )
        # v2 trades and tickers: one fast path for both cores (it touches no book)
        self._v2 = V2Fast(self)
        self._compiled = V1Fast(self) if self.compiled else None
        self._v1 = self._compiled.message if self._compiled is not None else self._fast_v1
        # The fast paths handle valid v1 book updates, trades and tickers and v2 trades and
        # tickers with the same results as the general decoder; on anything else they give up
        # (None) before touching state. Off only in tests and benchmarks comparing both.
        self.fast_path = True

    @property
    def fast_path(self) -> bool:
        return self._fast_path

    @fast_path.setter
    def fast_path(self, on: bool) -> None:
        self._fast_path = on
        # compiled and on: ``on_message`` is the compiled entry (counts, fast path, else
        # ``_general``), an instance attribute that saves the Python-level call per message
        if on and self._compiled is not None:
            self.__dict__["on_message"] = self._compiled.on_message
        else:
            self.__dict__.pop("on_message", None)

    # --- FeedState ------------------------------------------------------------------------

    def on_message(self, raw: bytes | str, recv_ns: int) -> FeedOutput:
        self.counters.messages += 1
        if self._fast_path:
            fast = self._v1(raw, recv_ns)
            if fast is not None:
                return fast
            return self._after_v1(raw, recv_ns)
        return self._general(raw, recv_ns)

    def _after_v1(self, raw: bytes | str, recv_ns: int) -> FeedOutput:
        """A message the v1 fast path left (already counted): the v2 fast path, else the
        general decoder. The compiled v1 path calls this too."""
        fast = self._v2.message(raw, recv_ns)
        return fast if fast is not None else self._general(raw, recv_ns)

    def _general(self, raw: bytes | str, recv_ns: int) -> FeedOutput:
        """Any message through the general decoder (already counted)."""
        decoded = decode_message(raw, recv_ns, self.symbols)
        out = FeedOutput(events=decoded.events, errors=decoded.errors)
        if decoded.events:
            self.counters.sequence_gaps += self._trade_ids.check(decoded.events, out.gaps)
        for event in decoded.events:  # trades and tickers
            channel = "trade" if isinstance(event, Trade) else "ticker"
            self._last_ts[(channel, event.symbol)] = event.ts_ns
        for ws_symbol, depth in decoded.book_depths:
            instrument = self.symbols.get(ws_symbol)
            if instrument is not None:
                self._acked_depths[instrument.symbol] = depth
        for book_message in decoded.books:
            self._on_book(book_message, raw, recv_ns, out)
        for candle in decoded.candles:
            self._on_candle(candle, recv_ns, out)
        for bad in decoded.errors:
            # a book message that could not be applied leaves the book behind the venue
            if bad.channel == "book" and bad.symbol is not None:
                book = self._books.get(bad.symbol)
                if book is not None and book.synced:
                    self._resync(bad.symbol, "decode_error", recv_ns, out)
        self.counters.decode_errors += len(out.errors)
        return out

    def on_rest_snapshot(self, symbol: str, raw: bytes | str, recv_ns: int) -> FeedOutput:
        """Kraken books resync on the socket (a resubscribe brings a snapshot): REST
        snapshots are not used for the live book and are ignored here."""
        return FeedOutput()

    def on_disconnect(self, recv_ns: int) -> FeedOutput:
        out = FeedOutput()
        self._trade_ids.reset()
        for (channel, symbol), last_ns in sorted(self._last_ts.items()):
            out.gaps.append(Gap(EXCHANGE, symbol, channel, last_ns, recv_ns, "disconnect"))
        for symbol, book in sorted(self._books.items()):
            if book.synced or symbol in self._awaiting_snapshot:
                book.reset()
                self._awaiting_snapshot.add(symbol)
                self.counters.resyncs += 1
                out.resync.append(symbol)
        return out

    def books(self) -> dict[str, tuple[list[tuple[str, str]], list[tuple[str, str]]]]:
        def text(levels: list[Level]) -> list[tuple[str, str]]:
            return [(decimal_str(p), decimal_str(q)) for p, q in levels]

        return {
            symbol: (text(book.bids()), text(book.asks()))
            for symbol, book in self._books.items()
            if book.synced
        }

    def book(self, symbol: str) -> Book | None:
        return self._books.get(symbol)

    # --- fast path ------------------------------------------------------------------------

    def _fast_v1(self, raw: bytes | str, recv_ns: int) -> FeedOutput | None:
        """A valid v1 ``book-N`` update for a live v1 book, or a v1 ``trade`` message; or None."""
        if raw[:1] not in _ARRAY_START:
            return None
        try:
            message = _v1_decoder.decode(raw)
        except msgspec.DecodeError:
            return None
        if type(message) is not list or len(message) < 4:
            return None
        channel = message[-2]
        pair = message[-1]
        if type(channel) is not str or type(pair) is not str:
            return None
        instrument = self.symbols.get(pair)
        if instrument is None:
            return None
        symbol = instrument.symbol
        if channel == "trade":
            try:
                trades = trades_v1(message[1:-2], symbol, recv_ns)
            except WireError:
                return None
            last_ts = self._last_ts
            for trade in trades:
                last_ts[("trade", symbol)] = trade.ts_ns
            return FeedOutput(trades)  # type: ignore[arg-type]
        if not channel.startswith("book-") or not channel[5:].isdigit():
            return None
        book = self._books.get(symbol)
        if book is None or not book.synced or book.price_decimals is not None:
            return None
        if book.qty_decimals is not None:
            return None
        parsed = _v1_update(message[1:-2])
        if parsed is None:
            return None
        bids, asks, bid_tokens, ask_tokens, ts_ns, checksum = parsed
        update = BookMessage(symbol, False, bids, asks, checksum, ts_ns or recv_ns, version=1)
        out = FeedOutput()
        self._on_book(update, raw, recv_ns, out, (bid_tokens, ask_tokens))
        return out

    # --- books ----------------------------------------------------------------------------

    def _new_book(self, message: BookMessage) -> Book:
        depth = message.depth or self._acked_depths.get(message.symbol, self.depth)
        if message.version == 1:
            # v1 strings already carry the pair's precision
            return self._book_type(depth, None, None)
        instrument = self._instruments[message.symbol]
        return self._book_type(depth, price_decimals(instrument), qty_decimals(instrument))

    def _on_book(
        self,
        message: BookMessage,
        raw: bytes | str,
        recv_ns: int,
        out: FeedOutput,
        tokens: tuple[list[str], list[str]] | None = None,
    ) -> None:
        symbol = message.symbol
        book = self._books.get(symbol)
        if message.snapshot:
            book = self._new_book(message)
            self._books[symbol] = book
            self._awaiting_snapshot.discard(symbol)
            book.load_snapshot(message.bids, message.asks)
            dropped: tuple[list[Level], list[Level]] = ([], [])
        elif book is None or not book.synced:
            if symbol in self._awaiting_snapshot:
                self.skipped_updates += 1
            else:
                detail = "book update before any snapshot"
                out.errors.append(
                    error(raw, recv_ns, "book_not_synced", detail, symbol=symbol, channel="book")
                )
            return
        else:
            if tokens is None:
                book.apply(message.bids, message.asks)
            else:  # the pure-Python fast path, which runs on pure-Python books
                assert isinstance(book, KrakenBook)
                book.apply_tokens(message.bids, message.asks, *tokens)
            dropped_bids, dropped_asks = book.truncate()
            dropped = (
                [(p, _ZERO_SIZE) for p in dropped_bids] if dropped_bids else [],
                [(p, _ZERO_SIZE) for p in dropped_asks] if dropped_asks else [],
            )
        verified = message.checksum is not None
        if verified and book.checksum() != message.checksum:
            self.counters.checksum_failures += 1
            self._resync(symbol, "checksum", message.ts_ns, out)
            return
        if book.is_crossed():
            self.counters.crossed_books += 1
            if not verified:  # a checksum-verified crossed book is the venue's own state
                self._resync(symbol, "crossed_book", message.ts_ns, out)
                return
        if message.snapshot:
            out.events.append(
                BookSnapshot(
                    EXCHANGE,
                    symbol,
                    tuple(book.bids()),
                    tuple(book.asks()),
                    message.ts_ns,
                    recv_ns,
                    checksum=message.checksum,
                )
            )
        else:
            bids, asks = message.bids, message.asks
            out.events.append(
                BookDelta(
                    EXCHANGE,
                    symbol,
                    tuple(bids + dropped[0]) if dropped[0] else tuple(bids),
                    tuple(asks + dropped[1]) if dropped[1] else tuple(asks),
                    message.ts_ns,
                    recv_ns,
                    None,
                    None,
                    message.checksum,
                )
            )
        self._last_ts[("book", symbol)] = message.ts_ns

    def _resync(self, symbol: str, reason: str, ts_ns: int, out: FeedOutput) -> None:
        """Drop the book, report the hole, and ask for a fresh snapshot."""
        from_ns = min(self._last_ts.get(("book", symbol), ts_ns), ts_ns)
        out.gaps.append(Gap(EXCHANGE, symbol, "book", from_ns, ts_ns, reason))
        self._books[symbol].reset()
        self._awaiting_snapshot.add(symbol)
        self.counters.resyncs += 1
        out.resync.append(symbol)

    # --- candles --------------------------------------------------------------------------

    def _on_candle(self, update: CandleUpdate, recv_ns: int, out: FeedOutput) -> None:
        key = (update.symbol, update.timeframe)
        bar = Candle(
            exchange=EXCHANGE,
            symbol=update.symbol,
            timeframe=update.timeframe,
            open_ns=update.open_ns,
            open=update.open,
            high=update.high,
            low=update.low,
            close=update.close,
            volume=update.volume,
            closed=False,
            ts_ns=update.ts_ns,
            recv_ns=recv_ns,
            source=CandleSource.EXCHANGE,
            trade_count=update.trade_count,
            vwap=update.vwap,
        )
        forming = self._bars.get(key)
        if forming is not None and update.open_ns < forming.open_ns:
            out.events.append(msgspec.structs.replace(bar, closed=True))  # an old, final bar
            return
        if forming is not None and update.open_ns > forming.open_ns:
            out.events.append(msgspec.structs.replace(forming, closed=True, recv_ns=recv_ns))
        self._bars[key] = bar
        out.events.append(bar)
        self._last_ts[("candle", update.symbol)] = update.ts_ns
