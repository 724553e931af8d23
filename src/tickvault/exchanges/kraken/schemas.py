"""Kraken wire formats as ``msgspec.Struct`` classes: decoding is validation.

WebSocket v2 sends prices and quantities as JSON *numbers*. They are declared ``Decimal``
here, and msgspec builds a Decimal straight from the number's text, so ``0.00100000`` stays
``Decimal("0.00100000")`` with its trailing zeros: exactly the digits the checksum needs.
(A float would print ``0.001`` and no checksum would ever match.)

v2 messages are decoded in two steps: an :class:`Envelope` with ``data`` left raw, then the
``data`` array with the decoder of its channel. WebSocket v1 arrays and REST rows are
heterogeneous positional arrays; they are checked field by field in ``decode_v1.py`` and
``rest.py``.
"""

from __future__ import annotations

from decimal import Decimal

import msgspec

# --- WebSocket v2 -------------------------------------------------------------------------


class Envelope(msgspec.Struct, frozen=True):
    """Any v2 message: data ``{channel, type, data}``, or a method response
    ``{method, success, result|error, req_id}``. ``data``/``result`` stay raw."""

    channel: str | None = None
    type: str | None = None
    data: msgspec.Raw = msgspec.Raw()  # empty when absent
    method: str | None = None
    success: bool | None = None
    result: msgspec.Raw = msgspec.Raw()
    error: str | None = None
    req_id: int | None = None
    timestamp: str | None = None


class PriceLevel(msgspec.Struct, frozen=True):
    price: Decimal
    qty: Decimal


class BookData(msgspec.Struct, frozen=True):
    symbol: str
    bids: list[PriceLevel] = []
    asks: list[PriceLevel] = []
    checksum: int | None = None
    timestamp: str | None = None


class TradeData(msgspec.Struct, frozen=True):
    symbol: str
    side: str
    price: Decimal
    qty: Decimal
    timestamp: str
    trade_id: int | None = None
    ord_type: str | None = None


class TickerData(msgspec.Struct, frozen=True):
    symbol: str
    bid: Decimal | None = None
    bid_qty: Decimal | None = None
    ask: Decimal | None = None
    ask_qty: Decimal | None = None
    last: Decimal | None = None
    volume: Decimal | None = None
    vwap: Decimal | None = None
    low: Decimal | None = None
    high: Decimal | None = None
    change: Decimal | None = None
    change_pct: Decimal | None = None
    timestamp: str | None = None


class OhlcData(msgspec.Struct, frozen=True):
    symbol: str
    interval: int
    interval_begin: str
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    vwap: Decimal | None = None
    trades: int | None = None
    timestamp: str | None = None


class SubscribeResult(msgspec.Struct, frozen=True):
    """``result`` of a subscribe/unsubscribe acknowledgement."""

    channel: str | None = None
    symbol: str | None = None
    depth: int | None = None
    interval: int | None = None
    snapshot: bool | None = None


# --- REST ---------------------------------------------------------------------------------


class RestEnvelope(msgspec.Struct, frozen=True):
    """``{"error": [...], "result": {...}}``; ``error`` must be checked even on HTTP 200."""

    error: list[str] = []
    result: msgspec.Raw = msgspec.Raw()  # empty when absent


class AssetPair(msgspec.Struct, frozen=True):
    """One entry of ``/0/public/AssetPairs`` (fields tickvault uses; others ignored)."""

    altname: str
    base: str
    quote: str
    pair_decimals: int
    lot_decimals: int
    wsname: str | None = None
    tick_size: str | None = None
    ordermin: str | None = None
    status: str = "online"


class DepthSide(msgspec.Struct, frozen=True):
    """``/0/public/Depth`` book of one pair: rows ``[price, volume, timestamp]``."""

    asks: list[tuple[str, str, int]] = []
    bids: list[tuple[str, str, int]] = []
