"""Coinbase wire formats as ``msgspec.Struct`` classes: decoding is validation.

Two unrelated WebSocket dialects share this folder:

* **Exchange** (``ws-feed.exchange.coinbase.com``): flat messages tagged by ``type``
  (``ticker``, ``match``/``last_match``, ``snapshot``, ``l2update``, ``heartbeat``, ...).
* **Advanced Trade** (``advanced-trade-ws.coinbase.com``): an envelope
  ``{channel, client_id, timestamp, sequence_num, events}`` whose ``events`` depend on the channel.

Prices and sizes stay ``str`` here and become ``Decimal`` through ``parse_decimal`` in the
decoders, which refuses ``"NaN"`` and exponent forms. REST candle rows are JSON numbers; they are
read straight into ``Decimal`` (msgspec keeps the digits of the number text).
"""

from __future__ import annotations

from decimal import Decimal

import msgspec


class Probe(msgspec.Struct, frozen=True):
    """Just enough of any message to pick the dialect and the message kind."""

    type: str | None = None
    channel: str | None = None
    product_id: object = None  # any JSON type: only used to name the book a bad message hits


# --- Exchange WebSocket ----------------------------------------------------------------------


class ExTicker(msgspec.Struct, frozen=True):
    product_id: str
    sequence: int
    price: str
    time: str
    trade_id: int | None = None
    best_bid: str | None = None
    best_ask: str | None = None
    best_bid_size: str | None = None
    best_ask_size: str | None = None
    volume_24h: str | None = None
    side: str | None = None
    last_size: str | None = None


class ExMatch(msgspec.Struct, frozen=True):
    """``match`` and ``last_match``; ``side`` is the MAKER order's side."""

    product_id: str
    sequence: int
    trade_id: int
    side: str
    size: str
    price: str
    time: str


class ExSnapshot(msgspec.Struct, frozen=True):
    """Whole aggregated book: rows ``[price, size]`` (extra row fields are refused)."""

    product_id: str
    bids: list[tuple[str, str]]
    asks: list[tuple[str, str]]
    time: str | None = None


class ExL2Update(msgspec.Struct, frozen=True):
    """``changes`` rows are ``[side, price, new absolute size]``; side ``buy``/``sell``."""

    product_id: str
    changes: list[tuple[str, str, str]]
    time: str


class ExHeartbeat(msgspec.Struct, frozen=True):
    product_id: str
    sequence: int
    last_trade_id: int
    time: str


class ExError(msgspec.Struct, frozen=True):
    message: str
    reason: str = ""


# --- Advanced Trade WebSocket ----------------------------------------------------------------


class AdvEnvelope(msgspec.Struct, frozen=True):
    channel: str
    timestamp: str
    sequence_num: int
    events: msgspec.Raw
    client_id: str = ""


class AdvL2Update(msgspec.Struct, frozen=True):
    side: str  # "bid" | "offer"
    price_level: str
    new_quantity: str  # new absolute size; "0" removes the level
    event_time: str = ""


class AdvL2Event(msgspec.Struct, frozen=True):
    type: str  # "snapshot" | "update"
    product_id: str
    updates: list[AdvL2Update]


class AdvTrade(msgspec.Struct, frozen=True):
    trade_id: str
    product_id: str
    price: str
    size: str
    side: str  # "BUY" | "SELL"
    time: str


class AdvTradesEvent(msgspec.Struct, frozen=True):
    type: str
    trades: list[AdvTrade]


class AdvTicker(msgspec.Struct, frozen=True):
    product_id: str
    price: str
    type: str = "ticker"
    volume_24_h: str = ""
    best_bid: str = ""
    best_bid_quantity: str = ""
    best_ask: str = ""
    best_ask_quantity: str = ""


class AdvTickerEvent(msgspec.Struct, frozen=True):
    type: str
    tickers: list[AdvTicker]


class AdvCandle(msgspec.Struct, frozen=True):
    start: str  # bucket start, UNIX seconds as a string
    high: str
    low: str
    open: str
    close: str
    volume: str
    product_id: str


class AdvCandlesEvent(msgspec.Struct, frozen=True):
    type: str
    candles: list[AdvCandle]


class AdvL2Message(msgspec.Struct, frozen=True, tag_field="channel", tag="l2_data"):
    """An ``l2_data`` envelope decoded in one pass (the feed's fast path). Every field the
    general path checks (``AdvEnvelope``, ``Probe``) is checked here the same way."""

    timestamp: str
    sequence_num: int
    events: list[AdvL2Event]
    client_id: str = ""
    type: str | None = None


class AdvTradesMessage(msgspec.Struct, frozen=True, tag_field="channel", tag="market_trades"):
    """A ``market_trades`` envelope decoded in one pass (the feed's fast path)."""

    timestamp: str
    sequence_num: int
    events: list[AdvTradesEvent]
    client_id: str = ""
    type: str | None = None


class AdvProductIds(msgspec.Struct, frozen=True):
    """Lenient view of any event list, to name the books a rejected ``l2_data`` message hit."""

    product_id: object = None


# --- REST ------------------------------------------------------------------------------------


class ExProduct(msgspec.Struct, frozen=True):
    """One entry of Exchange ``GET /products``."""

    id: str
    base_currency: str
    quote_currency: str
    base_increment: str
    quote_increment: str
    status: str
    trading_disabled: bool = False
    cancel_only: bool = False


class AdvProduct(msgspec.Struct, frozen=True):
    """One entry of Advanced ``GET /market/products``."""

    product_id: str
    base_currency_id: str
    quote_currency_id: str
    base_increment: str
    price_increment: str
    status: str
    product_type: str = "SPOT"
    trading_disabled: bool = False
    is_disabled: bool = False
    cancel_only: bool = False
    alias: str = ""
    alias_to: list[str] = []


class AdvProducts(msgspec.Struct, frozen=True):
    products: list[AdvProduct]


# Exchange candle row: [time (s), low, high, open, close, volume], numbers on the wire.
ExCandleRow = tuple[int, Decimal, Decimal, Decimal, Decimal, Decimal]


class ExRestTrade(msgspec.Struct, frozen=True):
    """Exchange ``GET /products/{id}/trades`` row; ``side`` is the MAKER side."""

    trade_id: int | str
    side: str
    size: str
    price: str
    time: str
