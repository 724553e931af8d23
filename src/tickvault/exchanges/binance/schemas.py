"""Binance Spot wire formats as ``msgspec.Struct`` classes: decoding is validation.

Field names follow the wire (single letters, case-sensitive: ``E`` event time vs ``e`` event
type), renamed to readable Python names with units. Prices and quantities stay ``str`` here:
:func:`tickvault.model.parse_decimal` turns them into exact decimals and refuses exponents,
NaN and infinities, which msgspec's own ``Decimal`` decoding would accept silently.

Unknown fields are ignored (Binance adds fields over time); a missing field or a field of the
wrong JSON type fails with a message naming it (``Expected `int`, got `str` - at `$.E```).
"""

from __future__ import annotations

import msgspec
from msgspec import field

# A book level on the wire: [price, quantity], both decimal strings.
WireLevel = tuple[str, str]


# ---- WebSocket: connection-level messages ---------------------------------------------------


class Incoming(msgspec.Struct):
    """First-pass view of any WebSocket message: a combined-stream envelope
    (``{"stream", "data"}``), a control reply (``{"result", "id"}``), an error
    (``{"code", "msg"}``) or a raw-stream payload (``{"e": ...}``). ``data`` stays raw bytes
    and is decoded a second time with the schema its stream name selects."""

    stream: str | msgspec.UnsetType = msgspec.UNSET
    data: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET
    result: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET
    id: int | str | msgspec.UnsetType | None = msgspec.UNSET
    code: int | msgspec.UnsetType = msgspec.UNSET
    msg: str | msgspec.UnsetType = msgspec.UNSET
    event_type: str | msgspec.UnsetType = field(default=msgspec.UNSET, name="e")


class ServerShutdown(msgspec.Struct, tag_field="e", tag="serverShutdown"):
    event_ms: int = field(name="E")


# ---- WebSocket: market streams --------------------------------------------------------------


class _Event(msgspec.Struct):
    """What every market-stream event payload starts with: event time and symbol (a subclass's
    own fields follow these, so the wire order and the first missing field named stay)."""

    event_ms: int = field(name="E")
    symbol: str = field(name="s")


class TradeMsg(_Event, tag_field="e", tag="trade"):
    trade_id: int = field(name="t")
    price: str = field(name="p")
    quantity: str = field(name="q")
    trade_ms: int = field(name="T")
    buyer_is_maker: bool = field(name="m")


class AggTradeMsg(_Event, tag_field="e", tag="aggTrade"):
    agg_id: int = field(name="a")
    price: str = field(name="p")
    quantity: str = field(name="q")
    first_trade_id: int = field(name="f")
    last_trade_id: int = field(name="l")
    trade_ms: int = field(name="T")
    buyer_is_maker: bool = field(name="m")


class KlineBody(msgspec.Struct):
    open_ms: int = field(name="t")
    close_ms: int = field(name="T")
    symbol: str = field(name="s")
    interval: str = field(name="i")
    open: str = field(name="o")
    close: str = field(name="c")
    high: str = field(name="h")
    low: str = field(name="l")
    volume: str = field(name="v")
    trade_count: int = field(name="n")
    closed: bool = field(name="x")
    quote_volume: str = field(name="q")
    taker_buy_volume: str = field(name="V")
    taker_buy_quote_volume: str = field(name="Q")


class KlineMsg(_Event, tag_field="e", tag="kline"):
    kline: KlineBody = field(name="k")


class BookTickerMsg(msgspec.Struct):
    """``<s>@bookTicker``: best bid/ask; spot carries no event time and no ``e``."""

    update_id: int = field(name="u")
    symbol: str = field(name="s")
    bid_price: str = field(name="b")
    bid_qty: str = field(name="B")
    ask_price: str = field(name="a")
    ask_qty: str = field(name="A")


class Ticker24hMsg(_Event, tag_field="e", tag="24hrTicker"):
    last_price: str = field(name="c")
    bid_price: str = field(name="b")
    bid_qty: str = field(name="B")
    ask_price: str = field(name="a")
    ask_qty: str = field(name="A")
    volume: str = field(name="v")


class DepthUpdateMsg(_Event, tag_field="e", tag="depthUpdate"):
    """``<s>@depth[@100ms]``: absolute new quantities of levels changed in ``[U, u]``."""

    first_update_id: int = field(name="U")
    last_update_id: int = field(name="u")
    bids: list[WireLevel] = field(name="b")
    asks: list[WireLevel] = field(name="a")


class DepthSnapshotMsg(msgspec.Struct):
    """REST ``GET /api/v3/depth`` and the ``<s>@depth<N>`` partial-book stream (same shape)."""

    last_update_id: int = field(name="lastUpdateId")
    bids: list[WireLevel]
    asks: list[WireLevel]


# ---- REST -------------------------------------------------------------------------------------


class AggTradeRow(msgspec.Struct):
    """One row of ``GET /api/v3/aggTrades``."""

    agg_id: int = field(name="a")
    price: str = field(name="p")
    quantity: str = field(name="q")
    first_trade_id: int = field(name="f")
    last_trade_id: int = field(name="l")
    trade_ms: int = field(name="T")
    buyer_is_maker: bool = field(name="m")


# ``GET /api/v3/klines`` row: [openTime, open, high, low, close, volume, closeTime, quoteVolume,
# trades, takerBuyBaseVolume, takerBuyQuoteVolume, ignore].
KlineRow = tuple[int, str, str, str, str, str, int, str, int, str, str, str]


class SymbolFilter(msgspec.Struct):
    filter_type: str = field(name="filterType")
    tick_size: str | None = field(default=None, name="tickSize")
    step_size: str | None = field(default=None, name="stepSize")


class SymbolInfo(msgspec.Struct):
    symbol: str
    status: str
    base_asset: str = field(name="baseAsset")
    quote_asset: str = field(name="quoteAsset")
    filters: list[SymbolFilter] = []


class RateLimit(msgspec.Struct, frozen=True):
    rate_limit_type: str = field(name="rateLimitType")
    interval: str
    interval_num: int = field(name="intervalNum")
    limit: int


class ExchangeInfo(msgspec.Struct):
    symbols: list[SymbolInfo]
    rate_limits: list[RateLimit] = field(default_factory=list, name="rateLimits")


# Decoders are built once: msgspec compiles each type's decoding plan at construction.
INCOMING = msgspec.json.Decoder(Incoming)
SERVER_SHUTDOWN = msgspec.json.Decoder(ServerShutdown)
TRADE = msgspec.json.Decoder(TradeMsg)
AGG_TRADE = msgspec.json.Decoder(AggTradeMsg)
KLINE = msgspec.json.Decoder(KlineMsg)
BOOK_TICKER = msgspec.json.Decoder(BookTickerMsg)
TICKER_24H = msgspec.json.Decoder(Ticker24hMsg)
DEPTH_UPDATE = msgspec.json.Decoder(DepthUpdateMsg)
DEPTH_SNAPSHOT = msgspec.json.Decoder(DepthSnapshotMsg)
AGG_TRADE_ROWS = msgspec.json.Decoder(list[AggTradeRow])
KLINE_ROWS = msgspec.json.Decoder(list[KlineRow])
EXCHANGE_INFO = msgspec.json.Decoder(ExchangeInfo)
