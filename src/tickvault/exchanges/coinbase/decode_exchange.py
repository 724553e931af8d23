"""Coinbase Exchange feed (``ws-feed.exchange.coinbase.com``): one message -> pieces.

Trade side: the ``side`` of ``match``/``last_match`` is the MAKER order's side (docs: "a sell
side match is an up-tick"), so the taker (aggressor) is the opposite: maker ``sell`` -> taker
``buy``. The same holds for REST ``/products/{id}/trades`` (see ``rest.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from tickvault.exchanges.coinbase.decode import (
    EXCHANGE,
    BadMessage,
    BookOp,
    Decoded,
    Sequenced,
    error,
    level,
    optional_decimal,
    parse_time_ns,
    positive,
    symbol_for,
)
from tickvault.exchanges.coinbase.schemas import (
    ExError,
    ExHeartbeat,
    ExL2Update,
    ExMatch,
    ExSnapshot,
    ExTicker,
)
from tickvault.exchanges.coinbase.symbols import SymbolMap
from tickvault.model import Level, Side, Ticker, Trade

TAKER_FROM_MAKER = {"buy": Side.SELL, "sell": Side.BUY}

_decoders: dict[str, msgspec.json.Decoder[Any]] = {
    "ticker": msgspec.json.Decoder(ExTicker),
    "match": msgspec.json.Decoder(ExMatch),
    "last_match": msgspec.json.Decoder(ExMatch),
    "snapshot": msgspec.json.Decoder(ExSnapshot),
    "l2update": msgspec.json.Decoder(ExL2Update),
    "heartbeat": msgspec.json.Decoder(ExHeartbeat),
    "error": msgspec.json.Decoder(ExError),
}
# Control messages with nothing to store: acknowledged and counted as messages only.
_IGNORED = frozenset({"subscriptions", "status"})
_CHANNEL = {
    "ticker": "ticker",
    "match": "trades",
    "last_match": "trades",
    "snapshot": "book",
    "l2update": "book",
    "heartbeat": "heartbeat",
    "error": "error",
}


def taker_side(maker_side: str) -> Side:
    try:
        return TAKER_FROM_MAKER[maker_side]
    except KeyError:
        raise BadMessage("bad_side", f"maker side {maker_side!r} is not buy/sell") from None


def _ticker(msg: ExTicker, symbols: SymbolMap, recv_ns: int, out: Decoded) -> None:
    symbol = symbol_for(symbols, msg.product_id)
    ticker = Ticker(
        exchange=EXCHANGE,
        symbol=symbol,
        ts_ns=parse_time_ns(msg.time),
        recv_ns=recv_ns,
        bid_price=optional_decimal(msg.best_bid, "best_bid"),
        bid_size=optional_decimal(msg.best_bid_size, "best_bid_size"),
        ask_price=optional_decimal(msg.best_ask, "best_ask"),
        ask_size=optional_decimal(msg.best_ask_size, "best_ask_size"),
        last_price=positive(msg.price, "price"),
        volume_24h=optional_decimal(msg.volume_24h, "volume_24h"),
    )
    out.sequenced.append(Sequenced(symbol, "ticker", msg.sequence, None, ticker))


def _match(msg: ExMatch, symbols: SymbolMap, recv_ns: int, out: Decoded) -> None:
    symbol = symbol_for(symbols, msg.product_id)
    trade = Trade(
        exchange=EXCHANGE,
        symbol=symbol,
        trade_id=str(msg.trade_id),
        price=positive(msg.price, "price"),
        size=positive(msg.size, "size"),
        side=taker_side(msg.side),
        ts_ns=parse_time_ns(msg.time),
        recv_ns=recv_ns,
    )
    out.sequenced.append(Sequenced(symbol, "trades", msg.sequence, msg.trade_id, trade))


def _snapshot(msg: ExSnapshot, symbols: SymbolMap, recv_ns: int, out: Decoded) -> None:
    symbol = symbol_for(symbols, msg.product_id)
    bids = [level(p, s) for p, s in msg.bids]
    asks = [level(p, s) for p, s in msg.asks]
    ts_ns = parse_time_ns(msg.time) if msg.time else recv_ns  # 2021 snapshots carry no time
    out.book_ops.append(BookOp(symbol, True, bids, asks, ts_ns))


def _l2update(msg: ExL2Update, symbols: SymbolMap, recv_ns: int, out: Decoded) -> None:
    symbol = symbol_for(symbols, msg.product_id)
    bids: list[Level] = []
    asks: list[Level] = []
    for side, price, size in msg.changes:
        if side == "buy":
            bids.append(level(price, size))
        elif side == "sell":
            asks.append(level(price, size))
        else:
            raise BadMessage("bad_side", f"l2update side {side!r} is not buy/sell")
    out.book_ops.append(BookOp(symbol, False, bids, asks, parse_time_ns(msg.time)))


def _heartbeat(msg: ExHeartbeat, symbols: SymbolMap, recv_ns: int, out: Decoded) -> None:
    symbol_for(symbols, msg.product_id)  # liveness only, but a stray product is still reported


def _error(msg: ExError, symbols: SymbolMap, recv_ns: int, out: Decoded) -> None:
    detail = f"{msg.message}: {msg.reason}" if msg.reason else msg.message
    raise BadMessage("exchange_error", detail)


_HANDLERS: dict[str, Callable[[Any, SymbolMap, int, Decoded], None]] = {
    "ticker": _ticker,
    "match": _match,
    "last_match": _match,
    "snapshot": _snapshot,
    "l2update": _l2update,
    "heartbeat": _heartbeat,
    "error": _error,
}


def decode_exchange(
    msg_type: str,
    product_id: object,
    raw: bytes | str,
    recv_ns: int,
    symbols: SymbolMap,
    out: Decoded,
) -> None:
    """Decode one Exchange-dialect message of type ``msg_type`` into ``out``.

    A book message that cannot be applied leaves that book unknown: it is marked for resync
    (every book, when the product cannot even be read)."""
    if msg_type in _IGNORED:
        return
    decoder = _decoders.get(msg_type)
    channel = _CHANNEL.get(msg_type)
    if decoder is None:
        out.errors.append(error(raw, recv_ns, "unknown_type", f"unknown type {msg_type!r}"))
        return
    symbol = symbols.symbol(product_id) if isinstance(product_id, str) else None
    try:
        _HANDLERS[msg_type](decoder.decode(raw), symbols, recv_ns, out)
        return
    except msgspec.ValidationError as exc:
        reason, detail = "schema", f"{msg_type}: {exc}"
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        reason, detail = "malformed_json", str(exc)
    except BadMessage as exc:
        reason, detail = exc.reason, exc.detail
    out.errors.append(error(raw, recv_ns, reason, detail, symbol, channel))
    if channel == "book" and reason != "unknown_product":
        if symbol is not None:
            out.book_resync.add(symbol)
        elif not isinstance(product_id, str):
            out.book_resync_all = True
