"""Coinbase Advanced Trade feed (``advanced-trade-ws.coinbase.com``): one envelope -> pieces.

Envelope ``{channel, client_id, timestamp, sequence_num, events}``; the feed checks that
``sequence_num`` is the previous one + 1 on the connection.

Trade side: tickvault takes ``market_trades`` ``BUY``/``SELL`` as the taker side, as ccxt does.
This is **unconfirmed**: the channel docs say the side "refers to the makers side", which would
invert it, and Coinbase publishes no example that settles it. ``ADVANCED_SIDE_IS_TAKER`` is the
one switch to flip if live data proves the docs right (see docs/exchanges/coinbase.md).

Timestamps: book, ticker and candle events use the envelope ``timestamp`` (snapshot levels carry
``event_time`` 1970-01-01 and per-level times are not monotonic); trades use their own ``time``.
"""

from __future__ import annotations

from typing import Any

import msgspec

from tickvault.exchanges.coinbase.decode import (
    EXCHANGE,
    BadMessage,
    BookOp,
    Decoded,
    decimal,
    error,
    level,
    optional_decimal,
    parse_time_ns,
    positive,
    symbol_for,
)
from tickvault.exchanges.coinbase.schemas import (
    AdvCandlesEvent,
    AdvEnvelope,
    AdvL2Event,
    AdvProductIds,
    AdvTickerEvent,
    AdvTradesEvent,
)
from tickvault.exchanges.coinbase.symbols import SymbolMap
from tickvault.model import NS_PER_S, Candle, Level, Side, Ticker, Trade

ADVANCED_SIDE_IS_TAKER = True
CANDLE_TIMEFRAME = "5m"  # the channel only publishes five-minute buckets

_SIDES = {"BUY": Side.BUY, "SELL": Side.SELL}
_OPPOSITE = {Side.BUY: Side.SELL, Side.SELL: Side.BUY}

_envelope = msgspec.json.Decoder(AdvEnvelope)
_events: dict[str, msgspec.json.Decoder[Any]] = {
    "l2_data": msgspec.json.Decoder(list[AdvL2Event]),
    "market_trades": msgspec.json.Decoder(list[AdvTradesEvent]),
    "ticker": msgspec.json.Decoder(list[AdvTickerEvent]),
    "ticker_batch": msgspec.json.Decoder(list[AdvTickerEvent]),
    "candles": msgspec.json.Decoder(list[AdvCandlesEvent]),
}
# Liveness and acknowledgements: counted as messages, nothing to store.
_IGNORED = frozenset({"heartbeats", "subscriptions", "status"})
_CHANNEL = {
    "l2_data": "book",
    "market_trades": "trades",
    "ticker": "ticker",
    "ticker_batch": "ticker",
    "candles": "candles",
}


def taker_side(side: str) -> Side:
    try:
        given = _SIDES[side.upper()]
    except KeyError:
        raise BadMessage("bad_side", f"trade side {side!r} is not BUY/SELL") from None
    return given if ADVANCED_SIDE_IS_TAKER else _OPPOSITE[given]


def _l2(events: list[AdvL2Event], symbols: SymbolMap, ts_ns: int, out: Decoded) -> None:
    for event in events:
        if event.type not in ("snapshot", "update"):
            raise BadMessage("unknown_type", f"l2_data event type {event.type!r}")
        symbol = symbol_for(symbols, event.product_id)
        bids: list[Level] = []
        asks: list[Level] = []
        for update in event.updates:
            if update.side == "bid":
                bids.append(level(update.price_level, update.new_quantity))
            elif update.side == "offer":
                asks.append(level(update.price_level, update.new_quantity))
            else:
                raise BadMessage("bad_side", f"l2_data side {update.side!r} is not bid/offer")
        out.book_ops.append(BookOp(symbol, event.type == "snapshot", bids, asks, ts_ns))


def trades_of(events: list[AdvTradesEvent], symbols: SymbolMap, recv_ns: int) -> list[Trade]:
    """The trades of a ``market_trades`` message in time order; raises :class:`BadMessage`."""
    trades = []
    for event in events:
        # Trades arrive newest first inside an event; emit them in time order.
        for trade in reversed(event.trades):
            trades.append(
                Trade(
                    EXCHANGE,
                    symbol_for(symbols, trade.product_id),
                    trade.trade_id,
                    positive(trade.price, "price"),
                    positive(trade.size, "size"),
                    taker_side(trade.side),
                    parse_time_ns(trade.time),
                    recv_ns,
                )
            )
    return trades


def _trades(events: list[AdvTradesEvent], symbols: SymbolMap, recv_ns: int, out: Decoded) -> None:
    out.events.extend(trades_of(events, symbols, recv_ns))


def _tickers(
    events: list[AdvTickerEvent], symbols: SymbolMap, ts_ns: int, recv_ns: int, out: Decoded
) -> None:
    for event in events:
        for ticker in event.tickers:
            if not ticker.product_id:
                continue  # documented ticker_batch quirk: blank placeholder entries
            out.events.append(
                Ticker(
                    exchange=EXCHANGE,
                    symbol=symbol_for(symbols, ticker.product_id),
                    ts_ns=ts_ns,
                    recv_ns=recv_ns,
                    bid_price=optional_decimal(ticker.best_bid, "best_bid"),
                    bid_size=optional_decimal(ticker.best_bid_quantity, "best_bid_quantity"),
                    ask_price=optional_decimal(ticker.best_ask, "best_ask"),
                    ask_size=optional_decimal(ticker.best_ask_quantity, "best_ask_quantity"),
                    last_price=positive(ticker.price, "price"),
                    volume_24h=optional_decimal(ticker.volume_24_h, "volume_24_h"),
                )
            )


def _candles(
    events: list[AdvCandlesEvent], symbols: SymbolMap, ts_ns: int, recv_ns: int, out: Decoded
) -> None:
    for event in events:
        for candle in event.candles:
            if not candle.start.isdigit():
                raise BadMessage("bad_time", f"candle start {candle.start!r} is not UNIX seconds")
            out.candles.append(
                Candle(
                    exchange=EXCHANGE,
                    symbol=symbol_for(symbols, candle.product_id),
                    timeframe=CANDLE_TIMEFRAME,
                    open_ns=int(candle.start) * NS_PER_S,
                    open=positive(candle.open, "open"),
                    high=positive(candle.high, "high"),
                    low=positive(candle.low, "low"),
                    close=positive(candle.close, "close"),
                    volume=decimal(candle.volume, "volume"),
                    closed=False,  # the feed closes a bucket when a newer start arrives
                    ts_ns=ts_ns,
                    recv_ns=recv_ns,
                )
            )


_product_ids = msgspec.json.Decoder(list[AdvProductIds])


def _mark_books(events: msgspec.Raw, symbols: SymbolMap, out: Decoded) -> None:
    """A rejected ``l2_data`` message: resync the books it named (all, if it names none)."""
    try:
        named = {e.product_id for e in _product_ids.decode(events)}
    except msgspec.DecodeError:
        named = set()
    found = {symbols.symbol(p) for p in named if isinstance(p, str)}
    found.discard(None)
    if found:
        out.book_resync.update(s for s in found if s is not None)
    elif not named or any(not isinstance(p, str) for p in named):
        out.book_resync_all = True


def decode_advanced(raw: bytes | str, recv_ns: int, symbols: SymbolMap, out: Decoded) -> None:
    """Decode one Advanced Trade envelope into ``out``. The events of a message are taken whole
    or not at all, so a half-applied book update never happens."""
    try:
        envelope = _envelope.decode(raw)
    except msgspec.ValidationError as exc:
        out.errors.append(error(raw, recv_ns, "schema", str(exc)))
        return
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        out.errors.append(error(raw, recv_ns, "malformed_json", str(exc)))
        return
    channel = envelope.channel
    out.sequence_num = envelope.sequence_num
    part = Decoded()
    try:
        ts_ns = parse_time_ns(envelope.timestamp)
        out.ts_ns = ts_ns
        if channel in _IGNORED:
            return
        decoder = _events.get(channel)
        if decoder is None:
            raise BadMessage("unknown_type", f"unknown channel {channel!r}")
        events = decoder.decode(envelope.events)
        if channel == "l2_data":
            _l2(events, symbols, ts_ns, part)
        elif channel == "market_trades":
            _trades(events, symbols, recv_ns, part)
        elif channel in ("ticker", "ticker_batch"):
            _tickers(events, symbols, ts_ns, recv_ns, part)
        else:
            _candles(events, symbols, ts_ns, recv_ns, part)
    except msgspec.ValidationError as exc:
        reason, detail = "schema", f"{channel}: {exc}"
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        reason, detail = "malformed_json", str(exc)
    except BadMessage as exc:
        reason, detail = exc.reason, exc.detail
    else:
        out.events.extend(part.events)
        out.book_ops.extend(part.book_ops)
        out.candles.extend(part.candles)
        return
    out.errors.append(error(raw, recv_ns, reason, detail, channel=_CHANNEL.get(channel)))
    if channel == "l2_data":  # also when one event named a stray product: the others are lost
        _mark_books(envelope.events, symbols, out)
