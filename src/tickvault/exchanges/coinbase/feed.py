"""The pure per-connection state machine of a Coinbase WebSocket (either dialect).

Continuity rules:

* **Advanced** ``sequence_num`` counts every message on the connection: it must be the previous
  value + 1. Anything else is a gap: a :class:`Gap` for every stream seen so far, every book
  resyncs (resubscribe -> fresh snapshot), ``sequence_gaps`` + 1.
* **Exchange** ``sequence`` is per product and shared by all channels (a ``ticker`` repeats its
  ``match``'s number), so it is checked per (product, channel): a number not above the last one
  is a duplicate or out of order and is ignored (``stale_messages``). With only ``matches``
  subscribed the numbers legitimately skip (the ``full`` feed's other messages use them), so
  missed trades are found from ``trade_id``, which is contiguous per product: a jump gives a
  ``sequence_gap`` Gap. ``ticker`` batches cascading matches, so it has no gap check.
* Books (both): an update for a book without a snapshot, a crossed book, or a book message that
  failed to decode -> resync that book; updates are ignored until the new snapshot arrives.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import msgspec

from tickvault.exchanges.base import FeedCounters, FeedOutput
from tickvault.exchanges.coinbase.book import L2Book
from tickvault.exchanges.coinbase.decode import (
    EXCHANGE,
    NOT_NEGATIVE,
    POSITIVE,
    BadMessage,
    BookOp,
    Decoded,
    error,
    level,
    parse_time_ns,
)
from tickvault.exchanges.coinbase.decode_advanced import decode_advanced, trades_of
from tickvault.exchanges.coinbase.decode_exchange import decode_exchange
from tickvault.exchanges.coinbase.schemas import AdvL2Message, AdvTradesMessage, Probe
from tickvault.exchanges.coinbase.symbols import SymbolMap
from tickvault.exchanges.trade_ids import TradeIdTracker
from tickvault.model import BookDelta, BookSnapshot, Candle, Gap, Instrument, Level, Trade

try:  # the compiled fast path (coinbase/_fast.pyx), when the package was built with it
    from tickvault.exchanges.coinbase import _fast as compiled_fast_path
except ImportError:  # pragma: no cover - a source tree without the built extension
    compiled_fast_path = None  # type: ignore[assignment]

_probe = msgspec.json.Decoder(Probe)
_fast = msgspec.json.Decoder(AdvL2Message | AdvTradesMessage)


def decode_message(raw: bytes | str, recv_ns: int, symbols: SymbolMap) -> Decoded:
    """One WebSocket message -> :class:`Decoded`; never raises. The dialect is read from the
    message itself: an Advanced Trade envelope has a ``channel``, an Exchange message a ``type``,
    so one feed replays captures of both."""
    out = Decoded()
    try:
        probe = _probe.decode(raw)
    except msgspec.ValidationError as exc:
        out.errors.append(error(raw, recv_ns, "schema", str(exc)))
        return out
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        out.errors.append(error(raw, recv_ns, "malformed_json", str(exc)))
        return out
    if probe.channel is not None:
        out.dialect = "advanced"
        decode_advanced(raw, recv_ns, symbols, out)
    elif probe.type is not None:
        out.dialect = "exchange"
        decode_exchange(probe.type, probe.product_id, raw, recv_ns, symbols, out)
    else:
        out.errors.append(error(raw, recv_ns, "unknown_type", "neither `type` nor `channel`"))
    return out


class CandleCloser:
    """Advanced ``candles``: the bucket being updated every second is open; it is closed (emitted
    once more with ``closed=True``) when an update for a newer bucket arrives."""

    def __init__(self) -> None:
        self._open: dict[str, Candle] = {}

    def update(self, candle: Candle) -> list[Candle]:
        current = self._open.get(candle.symbol)
        if current is not None and candle.open_ns < current.open_ns:
            return []  # an older bucket replayed (snapshot after resubscribe): already seen
        self._open[candle.symbol] = candle
        if current is not None and candle.open_ns > current.open_ns:
            return [msgspec.structs.replace(current, closed=True), candle]
        return [candle]


class CoinbaseFeed:
    """Implements :class:`tickvault.exchanges.base.FeedState` for both Coinbase feeds."""

    def __init__(self, instruments: Sequence[Instrument], book_depth: int) -> None:
        self.symbols = SymbolMap(instruments)
        self.book_depth = book_depth
        self.counters = FeedCounters()
        self.stale_messages = 0  # Exchange duplicates / out-of-order, ignored on purpose
        self.ignored_updates = 0  # book updates while waiting for a resync snapshot
        self._books: dict[str, L2Book] = {}
        self._awaiting: set[str] = set()  # resync requested, no snapshot yet
        self._sequence_num: int | None = None
        self._ex_sequence: dict[tuple[str, str], int] = {}
        self._trade_ids = TradeIdTracker(EXCHANGE)  # trade_id is contiguous per product
        self._last_ns: dict[tuple[str, str], int] = {}  # (symbol, channel) -> last event ns
        self._candles = CandleCloser()
        # The fast path decodes valid Advanced l2_data / market_trades envelopes in one pass
        # with the same checks; on anything else it gives up (None) before touching state and
        # the general decoder runs. Off only in tests comparing both.
        self._fast_path = True
        # The compiled fast path (same results, in C) when built; False selects the Python one.
        self.compiled = compiled_fast_path is not None

    @property
    def fast_path(self) -> bool:
        return self._fast_path

    @fast_path.setter
    def fast_path(self, on: bool) -> None:
        self._fast_path = on
        self._route()

    @property
    def compiled(self) -> bool:
        return self._compiled

    @compiled.setter
    def compiled(self, on: bool) -> None:
        if on and compiled_fast_path is None:
            raise RuntimeError("tickvault.exchanges.coinbase._fast is not built (setup.py)")
        self._compiled = on
        self._route()

    def _route(self) -> None:
        """Fast path on and compiled: ``on_message`` is the compiled entry (counts, fast path,
        else ``_general_message``), an instance attribute that saves the Python-level call and
        the switch reads per message; otherwise the method below."""
        if self._fast_path and self._compiled and compiled_fast_path is not None:
            self.__dict__["on_message"] = compiled_fast_path.entry(self)
        else:
            self.__dict__.pop("on_message", None)

    # --- FeedState -----------------------------------------------------------------------

    def on_message(self, raw: bytes | str, recv_ns: int) -> FeedOutput:
        self.counters.messages += 1
        if self._fast_path:
            fast = (
                compiled_fast_path.fast_message(self, raw, recv_ns)
                if self._compiled and compiled_fast_path is not None
                else self._fast_message(raw, recv_ns)
            )
            if fast is not None:
                return fast
        return self._general_message(raw, recv_ns)

    def _general_message(self, raw: bytes | str, recv_ns: int) -> FeedOutput:
        """Any message, through the general decoder."""
        decoded = decode_message(raw, recv_ns, self.symbols)
        out = FeedOutput(errors=decoded.errors)
        self.counters.decode_errors += len(decoded.errors)
        if decoded.sequence_num is not None:
            self._check_connection_sequence(decoded.sequence_num, decoded.ts_ns, recv_ns, out)
        if decoded.book_resync_all:
            self._resync(list(self._books) + sorted(self._awaiting), recv_ns, out, None)
        elif decoded.book_resync:
            self._resync(sorted(decoded.book_resync), recv_ns, out, None)
        for item in decoded.sequenced:
            key = (item.symbol, item.channel)
            last = self._ex_sequence.get(key)
            if last is not None and item.sequence <= last:
                self.stale_messages += 1
                continue
            self._ex_sequence[key] = item.sequence
            if item.trade_id is not None:
                gap = self._trade_ids.observe(item.symbol, item.trade_id, item.event.ts_ns)
                if gap is not None:
                    self.counters.sequence_gaps += 1
                    out.gaps.append(gap)
            self._seen(item.symbol, item.channel, item.event.ts_ns)
            out.events.append(item.event)
        for event in decoded.events:
            self._seen(
                event.symbol, "trades" if isinstance(event, Trade) else "ticker", event.ts_ns
            )
            out.events.append(event)
        for candle in decoded.candles:
            self._seen(candle.symbol, "candles", candle.ts_ns)
            out.events.extend(self._candles.update(candle))
        for op in decoded.book_ops:
            self._apply_book(op, recv_ns, out)
        return out

    def on_rest_snapshot(self, symbol: str, raw: bytes | str, recv_ns: int) -> FeedOutput:
        return FeedOutput()  # Coinbase books come from the socket (resubscribe), never REST

    def on_disconnect(self, recv_ns: int) -> FeedOutput:
        out = FeedOutput()
        for (symbol, channel), last_ns in sorted(self._last_ns.items()):
            out.gaps.append(Gap(EXCHANGE, symbol, channel, last_ns, recv_ns, "disconnect"))
        books = list(self._books) + sorted(self._awaiting - set(self._books))
        self._books.clear()
        self._awaiting.clear()
        for symbol in books:
            self.counters.resyncs += 1
            self._awaiting.add(symbol)
            out.resync.append(symbol)
        self._sequence_num = None
        self._ex_sequence.clear()
        self._trade_ids.reset()  # the disconnect gap already covers missed trades
        return out

    def books(self) -> dict[str, tuple[list[tuple[str, str]], list[tuple[str, str]]]]:
        return {s: book.top_strings(self.book_depth) for s, book in self._books.items()}

    # --- internals -----------------------------------------------------------------------

    def _seen(self, symbol: str, channel: str, ts_ns: int) -> None:
        self._last_ns[(symbol, channel)] = ts_ns

    def _fast_message(self, raw: bytes | str, recv_ns: int) -> FeedOutput | None:
        """A valid Advanced ``l2_data`` or ``market_trades`` message, or None."""
        try:
            message = _fast.decode(raw)
            ts_ns = parse_time_ns(message.timestamp)
            if type(message) is AdvL2Message:
                ops = self._fast_l2(message, ts_ns)
                if ops is None:
                    return None
                trades: list[Trade] = []
            else:
                ops = []
                trades = trades_of(message.events, self.symbols, recv_ns)
        except (msgspec.DecodeError, UnicodeDecodeError, BadMessage):
            return None
        out = FeedOutput()
        number = message.sequence_num
        previous = self._sequence_num
        if previous is not None and number == previous + 1:
            self._sequence_num = number
        else:
            self._check_connection_sequence(number, ts_ns, recv_ns, out)
        last_ns = self._last_ns
        for trade in trades:
            last_ns[(trade.symbol, "trades")] = trade.ts_ns
        out.events.extend(trades)
        for op in ops:
            self._apply_book(op, recv_ns, out)
        return out

    def _fast_l2(self, message: AdvL2Message, ts_ns: int) -> list[BookOp] | None:
        ops = []
        positive_get = POSITIVE.get
        not_negative_get = NOT_NEGATIVE.get
        for event in message.events:
            kind = event.type
            if kind != "update" and kind != "snapshot":
                return None
            symbol = self.symbols.symbol(event.product_id)
            if symbol is None:
                return None
            bids: list[Level] = []
            asks: list[Level] = []
            for update in event.updates:
                price = positive_get(update.price_level)
                size = not_negative_get(update.new_quantity)
                if price is None or size is None:
                    price, size = level(update.price_level, update.new_quantity)
                side = update.side
                if side == "bid":
                    bids.append((price, size))
                elif side == "offer":
                    asks.append((price, size))
                else:
                    return None
            ops.append(BookOp(symbol, kind == "snapshot", bids, asks, ts_ns))
        return ops

    def _check_connection_sequence(
        self, number: int, ts_ns: int | None, recv_ns: int, out: FeedOutput
    ) -> None:
        expected = None if self._sequence_num is None else self._sequence_num + 1
        self._sequence_num = number
        if expected is None or number == expected:
            return
        self.counters.sequence_gaps += 1
        to_ns = ts_ns if ts_ns is not None else recv_ns
        for (symbol, channel), last_ns in sorted(self._last_ns.items()):
            out.gaps.append(
                Gap(EXCHANGE, symbol, channel, last_ns, max(to_ns, last_ns), "sequence_gap")
            )
        self._resync(
            list(self._books) + sorted(self._awaiting - set(self._books)), recv_ns, out, None
        )

    def _resync(
        self, symbols: Iterable[str], recv_ns: int, out: FeedOutput, reason: str | None
    ) -> None:
        for symbol in dict.fromkeys(symbols):
            if symbol in out.resync:
                continue
            self._books.pop(symbol, None)
            self._awaiting.add(symbol)
            self.counters.resyncs += 1
            out.resync.append(symbol)
            if reason is not None:
                last_ns = self._last_ns.get((symbol, "book"), recv_ns)
                out.gaps.append(
                    Gap(EXCHANGE, symbol, "book", last_ns, max(recv_ns, last_ns), reason)
                )

    def _apply_book(self, op: BookOp, recv_ns: int, out: FeedOutput) -> None:
        symbol = op.symbol
        if op.snapshot:
            book = L2Book.from_snapshot(op.bids, op.asks)
            self._awaiting.discard(symbol)
            self._books[symbol] = book
        else:
            existing = self._books.get(symbol)
            if existing is None:
                if symbol in self._awaiting or symbol in out.resync:
                    self.ignored_updates += 1
                else:  # an update with no snapshot behind it: we cannot know the book
                    self._resync([symbol], recv_ns, out, None)
                return
            book = existing
            book.apply(op.bids, op.asks)
        if book.crossed():
            self.counters.crossed_books += 1
            self._resync([symbol], recv_ns, out, "crossed_book")
            return
        self._seen(symbol, "book", op.ts_ns)
        if op.snapshot:
            bids, asks = book.top(self.book_depth)
            out.events.append(BookSnapshot(EXCHANGE, symbol, bids, asks, op.ts_ns, recv_ns))
        else:
            out.events.append(
                BookDelta(EXCHANGE, symbol, tuple(op.bids), tuple(op.asks), op.ts_ns, recv_ns)
            )
