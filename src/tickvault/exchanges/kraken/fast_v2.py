"""The fast path of v2 ``trade``, ``ticker``, ``book`` and ``ohlc`` messages.

One typed decode of the whole message (the general decoder decodes an envelope, then its
``data``), symbols and timestamp seconds remembered between entries, and the feed's trade-id and
last-time bookkeeping done once per message. It answers only messages whose every entry is
valid; on anything else (a response, another channel, a bad number, side or time, an unknown
pair, a number in exponent form) it returns None before touching any state, and the general
decoder (:mod:`decode_v2`) decides, errors included. ``tests/unit/test_fast_paths.py`` checks
that both give the same output on recorded and generated streams and their broken variants.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Generic, TypeVar

import msgspec

from tickvault.exchanges.base import FeedOutput
from tickvault.exchanges.kraken.schemas import BookData, OhlcData, PriceLevel, TickerData, TradeData
from tickvault.exchanges.kraken.wire import (
    EXCHANGE,
    INTERVAL_TIMEFRAMES,
    BookMessage,
    CandleUpdate,
    WireError,
    has_exponent,
    rfc3339_ns,
)
from tickvault.model import NS_PER_S, Level, MarketEvent, Side, Ticker, Trade

if TYPE_CHECKING:
    from tickvault.exchanges.kraken.feed import KrakenFeed

D = TypeVar("D")


class _Message(msgspec.Struct, Generic[D], frozen=True):
    """:class:`schemas.Envelope` with typed ``data`` (same fields, so the same messages decode)."""

    data: list[D]
    channel: str | None = None
    type: str | None = None
    method: str | None = None
    success: bool | None = None
    result: msgspec.Raw = msgspec.Raw()
    error: str | None = None
    req_id: int | None = None
    timestamp: str | None = None


_trades = msgspec.json.Decoder(_Message[TradeData])
_tickers = msgspec.json.Decoder(_Message[TickerData])
_books = msgspec.json.Decoder(_Message[BookData])
_ohlcs = msgspec.json.Decoder(_Message[OhlcData])
_TRADE_HEAD = ('{"channel":"trade",', b'{"channel":"trade",')
_TICKER_HEAD = ('{"channel":"ticker",', b'{"channel":"ticker",')
_BOOK_HEAD = ('{"channel":"book",', b'{"channel":"book",')
_OHLC_HEAD = ('{"channel":"ohlc",', b'{"channel":"ohlc",')
_SIDES = {"buy": Side.BUY, "sell": Side.SELL}
_TYPES = ("snapshot", "update")
_SECONDS_MAX = 4096


class V2Fast:
    """The v2 fast path of one :class:`KrakenFeed` (reads its symbols, writes its last times,
    trade ids and counters exactly as its general path does)."""

    def __init__(self, feed: KrakenFeed) -> None:
        self.feed = feed
        self.answered = 0
        self._symbols: dict[str, str] = {}  # ws pair -> canonical symbol
        self._seconds: dict[str, int] = {}  # "YYYY-MM-DDTHH:MM:SS" -> epoch ns of that second

    def message(self, raw: bytes | str, recv_ns: int) -> FeedOutput | None:
        which = 0 if type(raw) is str else 1
        if raw.startswith(_TRADE_HEAD[which]):  # type: ignore[arg-type]
            out = self._trades(raw, recv_ns)
        elif raw.startswith(_BOOK_HEAD[which]):  # type: ignore[arg-type]
            out = self._books(raw, recv_ns)
        elif raw.startswith(_TICKER_HEAD[which]):  # type: ignore[arg-type]
            out = self._tickers(raw, recv_ns)
        elif raw.startswith(_OHLC_HEAD[which]):  # type: ignore[arg-type]
            out = self._ohlcs(raw, recv_ns)
        else:
            return None
        if out is not None:
            self.answered += 1
        return out

    # -- helpers -----------------------------------------------------------------------------

    def _symbol(self, pair: str) -> str | None:
        symbol = self._symbols.get(pair)
        if symbol is None:
            instrument = self.feed.symbols.get(pair)
            if instrument is None:
                return None
            symbol = self._symbols[pair] = instrument.symbol
        return symbol

    def _time(self, text: str) -> int | None:
        """rfc3339_ns(text), or None where it raises."""
        if len(text) == 27 and text[19] == "." and text[26] == "Z":  # microseconds, as sent
            whole = self._seconds.get(text[:19])
            fraction = text[20:26]
            if whole is not None and fraction.isdigit() and fraction.isascii():
                return whole + int(fraction) * 1000
        try:
            ts_ns = rfc3339_ns(text)
        except WireError:
            return None
        if len(text) >= 20 and text[19] in ".Z":
            seconds = self._seconds
            if len(seconds) >= _SECONDS_MAX:
                seconds.clear()
            seconds[text[:19]] = ts_ns - ts_ns % NS_PER_S
        return ts_ns

    @staticmethod
    def _plain(raw: bytes | str) -> bool:
        """No number in exponent form anywhere in the message (the decoder looks in ``data``
        only: an exponent elsewhere leaves the message to it)."""
        return not has_exponent(raw)

    # -- channels ----------------------------------------------------------------------------

    def _trades(self, raw: bytes | str, recv_ns: int) -> FeedOutput | None:
        try:
            message = _trades.decode(raw)
        except msgspec.DecodeError:
            return None
        if (
            message.method is not None
            or message.channel != "trade"
            or message.type not in _TYPES
            or not message.data
            or not self._plain(raw)
        ):
            return None
        events: list[MarketEvent] = []
        ids: list[int] = []
        for entry in message.data:
            side = _SIDES.get(entry.side)
            trade_id = entry.trade_id
            price, size = entry.price, entry.qty
            if side is None or trade_id is None:
                return None
            symbol = self._symbol(entry.symbol)
            if symbol is None:
                return None
            if not (price.is_finite() and size.is_finite() and price > 0 and size > 0):
                return None
            ts_ns = self._time(entry.timestamp)
            if ts_ns is None:
                return None
            events.append(Trade(EXCHANGE, symbol, str(trade_id), price, size, side, ts_ns, recv_ns))
            ids.append(trade_id)
        feed = self.feed
        out = FeedOutput(events=events)
        # TradeIdTracker.check, on the ids as decoded (a negative one is not a digit string)
        observe = feed._trade_ids.observe
        gaps = out.gaps
        last: dict[str, int] = {}
        for event, trade_id in zip(events, ids, strict=True):
            if trade_id >= 0:
                gap = observe(event.symbol, trade_id, event.ts_ns)
                if gap is not None:
                    gaps.append(gap)
            last[event.symbol] = event.ts_ns
        feed.counters.sequence_gaps += len(gaps)
        last_ts = feed._last_ts
        for symbol, ts_ns in last.items():
            last_ts[("trade", symbol)] = ts_ns
        return out

    def _tickers(self, raw: bytes | str, recv_ns: int) -> FeedOutput | None:
        try:
            message = _tickers.decode(raw)
        except msgspec.DecodeError:
            return None
        if (
            message.method is not None
            or message.channel != "ticker"
            or message.type not in _TYPES
            or not message.data
            or not self._plain(raw)
        ):
            return None
        events: list[MarketEvent] = []
        for entry in message.data:
            symbol = self._symbol(entry.symbol)
            if symbol is None:
                return None
            values = (entry.bid, entry.bid_qty, entry.ask, entry.ask_qty, entry.last, entry.volume)
            if not all(_optional_ok(value) for value in values):
                return None
            text = entry.timestamp or message.timestamp
            if text:
                ts_ns = self._time(text)
                if ts_ns is None:
                    return None
            else:
                ts_ns = recv_ns
            events.append(Ticker(EXCHANGE, symbol, ts_ns, recv_ns, *values))
        last_ts = self.feed._last_ts
        for event in events:  # a ticker message holds one entry
            last_ts[("ticker", event.symbol)] = event.ts_ns
        return FeedOutput(events=events)

    def _books(self, raw: bytes | str, recv_ns: int) -> FeedOutput | None:
        """As the general path: every entry decoded first, then each applied by the feed."""
        try:
            message = _books.decode(raw)
        except msgspec.DecodeError:
            return None
        if (
            message.method is not None
            or message.channel != "book"
            or message.type not in _TYPES
            or not message.data
            or not self._plain(raw)
        ):
            return None
        snapshot = message.type == "snapshot"
        books: list[BookMessage] = []
        for entry in message.data:
            symbol = self._symbol(entry.symbol)
            bids = _levels(entry.bids)
            asks = _levels(entry.asks)
            if symbol is None or bids is None or asks is None:
                return None
            if entry.timestamp:
                ts_ns = self._time(entry.timestamp)
                if ts_ns is None:
                    return None
            else:
                ts_ns = recv_ns
            books.append(BookMessage(symbol, snapshot, bids, asks, entry.checksum, ts_ns))
        feed = self.feed
        out = FeedOutput()
        for book in books:
            feed._on_book(book, raw, recv_ns, out)
        feed.counters.decode_errors += len(out.errors)
        return out

    def _ohlcs(self, raw: bytes | str, recv_ns: int) -> FeedOutput | None:
        try:
            message = _ohlcs.decode(raw)
        except msgspec.DecodeError:
            return None
        if (
            message.method is not None
            or message.channel != "ohlc"
            or message.type not in _TYPES
            or not message.data
            or not self._plain(raw)
        ):
            return None
        updates: list[CandleUpdate] = []
        for entry in message.data:
            timeframe = INTERVAL_TIMEFRAMES.get(entry.interval)
            symbol = self._symbol(entry.symbol)
            if timeframe is None or symbol is None:
                return None
            prices = (entry.open, entry.high, entry.low, entry.close, entry.volume)
            if not all(value.is_finite() and value >= 0 for value in prices):
                return None
            if not _optional_ok(entry.vwap):
                return None
            open_ns = self._time(entry.interval_begin)
            text = entry.timestamp or message.timestamp
            ts_ns = self._time(text) if text else recv_ns
            if open_ns is None or ts_ns is None:
                return None
            updates.append(
                CandleUpdate(symbol, timeframe, open_ns, *prices, ts_ns, entry.trades, entry.vwap)
            )
        feed = self.feed
        out = FeedOutput()
        for update in updates:
            feed._on_candle(update, recv_ns, out)
        return out


def _levels(levels: list[PriceLevel]) -> list[Level] | None:
    """decode_v2._levels, or None where it raises (a price or qty not finite or negative)."""
    out: list[Level] = []
    for level in levels:
        price, qty = level.price, level.qty
        if not (price.is_finite() and qty.is_finite() and price >= 0 and qty >= 0):
            return None
        out.append((price, qty))
    return out


def _optional_ok(value: Decimal | None) -> bool:
    """What decode_v2._optional accepts: None, or a finite, non-negative decimal."""
    return value is None or (value.is_finite() and value >= 0)
