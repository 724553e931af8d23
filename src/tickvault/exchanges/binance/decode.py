"""Pure decoding of Binance Spot WebSocket messages into normalized events.

One message is parsed once into :class:`~.schemas.Incoming` (envelope, control reply, error or
raw payload); the envelope's ``data`` (kept as raw bytes) is then decoded with the schema its
stream name selects, so each payload is validated against exactly one schema.

Anything that does not fit becomes a :class:`~tickvault.model.DecodeError` with a short
``reason`` (the counter label) and the raw text; the caller keeps going. Reasons:

``malformed_json`` (not JSON, truncated frame), ``schema`` (missing or wrong-typed field; the
detail names it), ``bad_decimal`` (``"1e-05"``, ``"NaN"``, negative...), ``unknown_symbol``,
``unknown_stream``, ``unknown_event``, ``unsupported_timeframe``, ``exchange_error`` (an
``{"code", "msg"}`` reply).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, TypeVar

import msgspec

from tickvault.exchanges.binance import schemas
from tickvault.exchanges.binance.book import DepthEvent
from tickvault.exchanges.binance.symbols import EXCHANGE, SymbolMap
from tickvault.exchanges.numbers import plain_decimal, remember
from tickvault.model import (
    TIMEFRAMES,
    BookSnapshot,
    Candle,
    DecodeError,
    Instrument,
    Level,
    MarketEvent,
    Side,
    Ticker,
    Trade,
    parse_decimal,
)

NS_PER_MS = 1_000_000
_T = TypeVar("_T")
_TradePayload = schemas.TradeMsg | schemas.AggTradeMsg
_TickerPayload = schemas.BookTickerMsg | schemas.Ticker24hMsg

# Stream-name suffix (after "<symbol>@") -> (payload kind, tickvault channel).
_STREAM_KINDS: dict[str, tuple[str, str]] = {
    "aggTrade": ("aggTrade", "trades"),
    "trade": ("trade", "trades"),
    "bookTicker": ("bookTicker", "ticker"),
    "ticker": ("24hrTicker", "ticker"),
    "depth": ("depthUpdate", "book"),
    "depth@100ms": ("depthUpdate", "book"),
    "depth@1000ms": ("depthUpdate", "book"),
}
for _top in ("5", "10", "20"):
    for _speed in ("", "@100ms", "@1000ms"):
        _STREAM_KINDS[f"depth{_top}{_speed}"] = ("partialDepth", "book")

# Raw-stream (un-enveloped) payloads are routed by their "e".
_EVENT_CHANNELS: dict[str, str] = {
    "aggTrade": "trades",
    "trade": "trades",
    "kline": "candles",
    "24hrTicker": "ticker",
    "depthUpdate": "book",
}


class _Reject(Exception):
    """Internal: a message that must become a DecodeError."""

    def __init__(self, reason: str, detail: str, symbol: str | None = None) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.symbol = symbol


# Wire strings already validated by ``_dec`` (plain, finite, not negative). Books repeat the
# same price and size strings, so most lookups hit; bounded by clearing (Decimals are immutable).
VALID_DECIMALS: dict[str, Decimal] = {}


def _dec(text: str) -> Decimal:
    value = VALID_DECIMALS.get(text)
    if value is not None:
        return value
    value = plain_decimal(text)  # the usual new string: valid and non-negative by its shape
    if value is not None:
        remember(VALID_DECIMALS, text, value)
        return value
    try:
        value = parse_decimal(text)
    except ValueError as exc:
        raise _Reject("bad_decimal", str(exc)) from None
    if value < 0:
        raise _Reject("bad_decimal", f"negative value: {text!r}")
    remember(VALID_DECIMALS, text, value)
    return value


def decode_levels(levels: list[schemas.WireLevel]) -> list[Level]:
    cache = VALID_DECIMALS
    try:  # the common case: every string seen before, no Python call per value
        return [(cache[price], cache[size]) for price, size in levels]
    except KeyError:
        return [(_dec(price), _dec(size)) for price, size in levels]


@dataclass(slots=True)
class Decoded:
    """What one message held: events, errors, a depth update for the book, stream facts."""

    events: list[MarketEvent] = field(default_factory=list)
    errors: list[DecodeError] = field(default_factory=list)
    depth: tuple[str, DepthEvent] | None = None  # (canonical symbol, event) for the book
    stream: tuple[str, str] | None = None  # (canonical symbol, channel) the message was on
    channel: str | None = None  # channel of the stream, known before the payload is decoded
    symbol: str | None = None  # canonical symbol named by the stream, likewise
    ts_ns: int | None = None  # exchange time of the message, when it has one
    shutdown_ns: int | None = None  # a serverShutdown announcement: reconnect soon
    control: bool = False  # a subscription reply ({"result": null, "id": 1})


class Decoder:
    """Decodes messages of the instruments it was built with (others are ``unknown_symbol``)."""

    def __init__(self, symbols: SymbolMap) -> None:
        self.symbols = symbols

    def decode(self, raw: bytes | str, recv_ns: int) -> Decoded:
        out = Decoded()
        try:
            try:
                head = schemas.INCOMING.decode(raw)
            except msgspec.ValidationError as exc:
                raise _Reject("schema", str(exc)) from None
            except msgspec.DecodeError as exc:
                raise _Reject("malformed_json", str(exc)) from None
            if head.stream is not msgspec.UNSET and head.data is not msgspec.UNSET:
                self._enveloped(head.stream, head.data, recv_ns, out)
            elif head.result is not msgspec.UNSET:
                out.control = True
            elif head.code is not msgspec.UNSET:
                message = head.msg if head.msg is not msgspec.UNSET else ""
                raise _Reject("exchange_error", f"code {head.code}: {message}")
            else:
                self._unwrapped(head.event_type, raw, recv_ns, out)
        except _Reject as exc:
            text = raw if isinstance(raw, str) else raw.decode("utf-8", "replace")
            symbol = exc.symbol or out.symbol
            out.errors.append(
                DecodeError(EXCHANGE, exc.reason, exc.detail, text, recv_ns, symbol, out.channel)
            )
        return out

    # -- routing -------------------------------------------------------------------------

    def _enveloped(self, stream: str, data: msgspec.Raw, recv_ns: int, out: Decoded) -> None:
        if stream == "!serverShutdown":
            out.shutdown_ns = _decode(schemas.SERVER_SHUTDOWN, data).event_ms * NS_PER_MS
            return
        prefix, _, suffix = stream.partition("@")
        if suffix.startswith("kline_"):
            kind, channel = "kline", "candles"
        else:
            found = _STREAM_KINDS.get(suffix)
            if found is None:
                raise _Reject("unknown_stream", f"unknown stream {stream!r}")
            kind, channel = found
        out.channel = channel
        instrument = self.symbols.by_stream.get(prefix)
        if instrument is not None:
            out.symbol = instrument.symbol
        if kind == "partialDepth":  # the payload names no symbol: take it from the stream
            if instrument is None:
                raise _Reject("unknown_symbol", f"unknown symbol in stream {stream!r}")
            snapshot = _decode(schemas.DEPTH_SNAPSHOT, data)
            self._partial_depth(instrument, snapshot, recv_ns, out)
            out.stream = (instrument.symbol, channel)
            return
        self._payload(kind, data, recv_ns, out)

    def _unwrapped(
        self, event_type: str | msgspec.UnsetType, raw: bytes | str, recv_ns: int, out: Decoded
    ) -> None:
        if event_type is msgspec.UNSET:  # bookTicker is the one raw payload without "e"
            out.channel = "ticker"
            self._payload("bookTicker", raw, recv_ns, out)
            return
        if event_type == "serverShutdown":
            out.shutdown_ns = _decode(schemas.SERVER_SHUTDOWN, raw).event_ms * NS_PER_MS
            return
        channel = _EVENT_CHANNELS.get(event_type)
        if channel is None:
            raise _Reject("unknown_event", f"unknown event type {event_type!r}")
        out.channel = channel
        self._payload(event_type, raw, recv_ns, out)

    def _instrument(self, exchange_symbol: str) -> Instrument:
        instrument = self.symbols.by_id.get(exchange_symbol)
        if instrument is None:
            raise _Reject("unknown_symbol", f"unknown symbol {exchange_symbol!r}", exchange_symbol)
        return instrument

    # -- payloads ------------------------------------------------------------------------

    def _payload(self, kind: str, data: Any, recv_ns: int, out: Decoded) -> None:
        if kind == "depthUpdate":
            depth = _decode(schemas.DEPTH_UPDATE, data)
            instrument = self._instrument(depth.symbol)
            ts_ns = depth.event_ms * NS_PER_MS
            event = DepthEvent(
                depth.first_update_id,
                depth.last_update_id,
                ts_ns,
                recv_ns,
                decode_levels(depth.bids),
                decode_levels(depth.asks),
            )
            out.depth = (instrument.symbol, event)
            out.stream = (instrument.symbol, "book")
            out.ts_ns = ts_ns
        elif kind == "aggTrade":
            agg = _decode(schemas.AGG_TRADE, data)
            self._trade(agg, agg.agg_id, recv_ns, out)
        elif kind == "trade":
            trade = _decode(schemas.TRADE, data)
            self._trade(trade, trade.trade_id, recv_ns, out)
        elif kind == "kline":
            self._kline(_decode(schemas.KLINE, data), recv_ns, out)
        elif kind == "bookTicker":
            self._ticker(_decode(schemas.BOOK_TICKER, data), recv_ns, out)
        else:  # 24hrTicker
            self._ticker(_decode(schemas.TICKER_24H, data), recv_ns, out)

    def _trade(self, msg: _TradePayload, trade_id: int, recv_ns: int, out: Decoded) -> None:
        instrument = self._instrument(msg.symbol)
        out.events.append(trade_event(instrument.symbol, trade_id, msg, recv_ns))
        out.stream = (instrument.symbol, "trades")
        out.ts_ns = msg.trade_ms * NS_PER_MS

    def _ticker(self, msg: _TickerPayload, recv_ns: int, out: Decoded) -> None:
        """Best bid/ask, and a 24h ticker's last price and volume (decoded in that order)."""
        day = msg if isinstance(msg, schemas.Ticker24hMsg) else None
        instrument = self._instrument(msg.symbol)
        out.events.append(
            Ticker(
                EXCHANGE,
                instrument.symbol,
                recv_ns if day is None else day.event_ms * NS_PER_MS,  # bookTicker: no time
                recv_ns,
                bid_price=_dec(msg.bid_price),
                bid_size=_dec(msg.bid_qty),
                ask_price=_dec(msg.ask_price),
                ask_size=_dec(msg.ask_qty),
                last_price=None if day is None else _dec(day.last_price),
                volume_24h=None if day is None else _dec(day.volume),
            )
        )
        out.stream = (instrument.symbol, "ticker")
        if day is not None:
            out.ts_ns = day.event_ms * NS_PER_MS

    def _kline(self, msg: schemas.KlineMsg, recv_ns: int, out: Decoded) -> None:
        k = msg.kline
        instrument = self._instrument(msg.symbol)
        if k.interval not in TIMEFRAMES:
            raise _Reject(
                "unsupported_timeframe", f"kline interval {k.interval!r}", instrument.symbol
            )
        volume = _dec(k.volume)
        buy_volume = _dec(k.taker_buy_volume)
        out.events.append(
            Candle(
                EXCHANGE,
                instrument.symbol,
                k.interval,
                k.open_ms * NS_PER_MS,
                _dec(k.open),
                _dec(k.high),
                _dec(k.low),
                _dec(k.close),
                volume,
                k.closed,
                msg.event_ms * NS_PER_MS,
                recv_ns,
                trade_count=k.trade_count,
                quote_volume=_dec(k.quote_volume),
                buy_volume=buy_volume,
                sell_volume=volume - buy_volume,  # taker-sell base volume, exact
            )
        )
        out.stream = (instrument.symbol, "candles")
        out.ts_ns = msg.event_ms * NS_PER_MS

    def _partial_depth(
        self,
        instrument: Instrument,
        msg: schemas.DepthSnapshotMsg,
        recv_ns: int,
        out: Decoded,
    ) -> None:
        bids = decode_levels(msg.bids)
        asks = decode_levels(msg.asks)
        out.events.append(
            BookSnapshot(
                EXCHANGE,
                instrument.symbol,
                tuple(bids),
                tuple(asks),
                recv_ns,  # partial-depth payloads carry no time
                recv_ns,
                sequence=msg.last_update_id,
            )
        )


def trade_event(
    symbol: str, trade_id: int, wire: _TradePayload | schemas.AggTradeRow, recv_ns: int
) -> Trade:
    """A trade from the fields trade, aggTrade and REST aggTrades rows share."""
    return Trade(
        EXCHANGE,
        symbol,
        str(trade_id),
        _dec(wire.price),
        _dec(wire.quantity),
        Side.SELL if wire.buyer_is_maker else Side.BUY,
        wire.trade_ms * NS_PER_MS,
        recv_ns,
    )


def _decode(decoder: msgspec.json.Decoder[_T], data: Any) -> _T:
    try:
        return decoder.decode(data)
    except msgspec.ValidationError as exc:
        raise _Reject("schema", str(exc)) from None
    except msgspec.DecodeError as exc:
        raise _Reject("malformed_json", str(exc)) from None


def parse_depth_snapshot(raw: bytes | str) -> tuple[int, list[Level], list[Level]]:
    """A REST depth snapshot as ``(lastUpdateId, bids, asks)``; raises ``ValueError``
    (with the reason first: ``schema: ...``) when malformed."""
    try:
        msg = _decode(schemas.DEPTH_SNAPSHOT, raw)
        return msg.last_update_id, decode_levels(msg.bids), decode_levels(msg.asks)
    except _Reject as exc:
        raise ValueError(f"{exc.reason}: {exc.detail}") from None
