"""WebSocket v2: ``{channel, type, data}`` data messages and ``{method, success}`` responses."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import msgspec

from tickvault.exchanges.kraken.schemas import (
    BookData,
    Envelope,
    OhlcData,
    PriceLevel,
    SubscribeResult,
    TickerData,
    TradeData,
)
from tickvault.exchanges.kraken.symbols import SymbolMap
from tickvault.exchanges.kraken.wire import (
    EXCHANGE,
    INTERVAL_TIMEFRAMES,
    BookMessage,
    CandleUpdate,
    Decoded,
    WireError,
    checked,
    error,
    has_exponent,
    rfc3339_ns,
)
from tickvault.model import Level, Side, Ticker, Trade

_envelope = msgspec.json.Decoder(Envelope)
_books = msgspec.json.Decoder(list[BookData])
_trades = msgspec.json.Decoder(list[TradeData])
_tickers = msgspec.json.Decoder(list[TickerData])
_ohlcs = msgspec.json.Decoder(list[OhlcData])
_subscribe_result = msgspec.json.Decoder(SubscribeResult)

_SILENT_CHANNELS = frozenset({"heartbeat", "status"})
_SIDES = {"buy": Side.BUY, "sell": Side.SELL}


def decode(data: bytes, raw: bytes | str, recv_ns: int, symbols: SymbolMap) -> Decoded:
    out = Decoded()
    try:
        envelope = _envelope.decode(data)
    except msgspec.ValidationError as exc:
        out.errors.append(error(raw, recv_ns, "schema", str(exc)))
        return out
    except msgspec.DecodeError as exc:
        out.errors.append(error(raw, recv_ns, "malformed_json", str(exc)))
        return out
    if envelope.method is not None:
        _response(envelope, raw, recv_ns, out)
        return out
    channel = envelope.channel
    if channel in _SILENT_CHANNELS:
        return out
    handler = _HANDLERS.get(channel or "")
    if handler is None:
        out.errors.append(error(raw, recv_ns, "unknown_channel", f"channel {channel!r}"))
        return out
    if envelope.type not in ("snapshot", "update") or not envelope.data:
        detail = f"type {envelope.type!r} with{'' if envelope.data else 'out'} data"
        out.errors.append(error(raw, recv_ns, "schema", detail, channel=channel))
        return out
    if has_exponent(envelope.data):
        detail = "number in exponent form; exact digits unknown"
        out.errors.append(error(raw, recv_ns, "bad_number", detail, channel=channel))
        return out
    try:
        handler(envelope, raw, recv_ns, symbols, out)
    except msgspec.DecodeError as exc:  # ValidationError included: data of the wrong shape
        out.errors.append(error(raw, recv_ns, "schema", str(exc), channel=channel))
    return out


def _response(envelope: Envelope, raw: bytes | str, recv_ns: int, out: Decoded) -> None:
    """Acks and pongs produce no events; a refused subscribe is an error the operator must see.

    A refused *unsubscribe* is expected (a resync unsubscribes a stream the server may have
    already dropped) and is ignored.
    """
    method = envelope.method
    if envelope.success is False:
        if method != "unsubscribe":
            detail = f"{method} refused: {envelope.error}"
            out.errors.append(error(raw, recv_ns, "subscription_error", detail))
        return
    if method == "subscribe" and envelope.result:
        try:
            result = _subscribe_result.decode(envelope.result)
        except msgspec.DecodeError:
            return  # an ack we cannot read changes nothing
        if result.channel == "book" and result.symbol and result.depth:
            out.book_depths.append((result.symbol, result.depth))


def _symbol(symbols: SymbolMap, name: str) -> str:
    instrument = symbols.get(name)
    if instrument is None:
        raise WireError("unknown_symbol", f"pair {name!r} is not a known instrument")
    return instrument.symbol


def _levels(levels: list[PriceLevel]) -> list[Level]:
    return [(checked(lv.price, "price"), checked(lv.qty, "qty")) for lv in levels]


def _ts(text: str | None, fallback: int) -> int:
    return rfc3339_ns(text) if text else fallback


def _book(env: Envelope, raw: bytes | str, recv_ns: int, symbols: SymbolMap, out: Decoded) -> None:
    for entry in _books.decode(env.data):
        try:
            out.books.append(
                BookMessage(
                    symbol=_symbol(symbols, entry.symbol),
                    snapshot=env.type == "snapshot",
                    bids=_levels(entry.bids),
                    asks=_levels(entry.asks),
                    checksum=entry.checksum,
                    ts_ns=_ts(entry.timestamp, recv_ns),
                )
            )
        except WireError as exc:
            # the feed resyncs the book of a known symbol whose message it could not apply
            known = symbols.get(entry.symbol)
            name = known.symbol if known else None
            out.errors.append(
                error(raw, recv_ns, exc.reason, str(exc), symbol=name, channel="book")
            )


def _each(
    decoder: msgspec.json.Decoder[Any],
    channel: str,
    build: Callable[[Any, Envelope, int, SymbolMap, Decoded], None],
) -> Callable[[Envelope, bytes | str, int, SymbolMap, Decoded], None]:
    """A handler that decodes ``data`` and builds each entry, one error per bad entry."""

    def handler(
        env: Envelope, raw: bytes | str, recv_ns: int, symbols: SymbolMap, out: Decoded
    ) -> None:
        for entry in decoder.decode(env.data):
            try:
                build(entry, env, recv_ns, symbols, out)
            except WireError as exc:
                out.errors.append(error(raw, recv_ns, exc.reason, str(exc), channel=channel))

    return handler


def _trade(entry: TradeData, env: Envelope, recv_ns: int, symbols: SymbolMap, out: Decoded) -> None:
    side = _SIDES.get(entry.side)
    if side is None:
        raise WireError("schema", f"trade side {entry.side!r}")
    if entry.trade_id is None:
        raise WireError("schema", "trade without trade_id")
    out.events.append(
        Trade(
            exchange=EXCHANGE,
            symbol=_symbol(symbols, entry.symbol),
            trade_id=str(entry.trade_id),
            price=checked(entry.price, "price", allow_zero=False),
            size=checked(entry.qty, "qty", allow_zero=False),
            side=side,
            ts_ns=rfc3339_ns(entry.timestamp),
            recv_ns=recv_ns,
        )
    )


def _optional(value: Decimal | None, name: str) -> Decimal | None:
    return None if value is None else checked(value, name)


def _ticker(
    entry: TickerData, env: Envelope, recv_ns: int, symbols: SymbolMap, out: Decoded
) -> None:
    out.events.append(
        Ticker(
            exchange=EXCHANGE,
            symbol=_symbol(symbols, entry.symbol),
            ts_ns=_ts(entry.timestamp or env.timestamp, recv_ns),
            recv_ns=recv_ns,
            bid_price=_optional(entry.bid, "bid"),
            bid_size=_optional(entry.bid_qty, "bid_qty"),
            ask_price=_optional(entry.ask, "ask"),
            ask_size=_optional(entry.ask_qty, "ask_qty"),
            last_price=_optional(entry.last, "last"),
            volume_24h=_optional(entry.volume, "volume"),
        )
    )


def _ohlc(entry: OhlcData, env: Envelope, recv_ns: int, symbols: SymbolMap, out: Decoded) -> None:
    timeframe = INTERVAL_TIMEFRAMES.get(entry.interval)
    if timeframe is None:
        raise WireError("unsupported_interval", f"ohlc interval {entry.interval} minutes")
    out.candles.append(
        CandleUpdate(
            symbol=_symbol(symbols, entry.symbol),
            timeframe=timeframe,
            open_ns=rfc3339_ns(entry.interval_begin),
            open=checked(entry.open, "open"),
            high=checked(entry.high, "high"),
            low=checked(entry.low, "low"),
            close=checked(entry.close, "close"),
            volume=checked(entry.volume, "volume"),
            ts_ns=_ts(entry.timestamp or env.timestamp, recv_ns),
            trade_count=entry.trades,
            vwap=_optional(entry.vwap, "vwap"),
        )
    )


_HANDLERS: dict[str, Callable[[Envelope, bytes | str, int, SymbolMap, Decoded], None]] = {
    "book": _book,
    "trade": _each(_trades, "trade", _trade),
    "ticker": _each(_tickers, "ticker", _ticker),
    "ohlc": _each(_ohlcs, "ohlc", _ohlc),
}
