"""Candles derived from trades, page by page, with the open bar carried in the cursor.

Kraken's ``OHLC`` endpoint only ever returns the latest 720 bars, so candle history is
rebuilt from ``Trades`` (full history). A bar can straddle two pages, so the bar still open
at the end of a page is not emitted: it travels, with the page cursor, to the next page.
Buckets without trades between two traded buckets become flat bars at the previous close
with zero volume, as Kraken's own ``OHLC`` reports them.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

import msgspec

from tickvault.model import Candle, CandleSource, Side, Trade, bucket_start_ns, timeframe_ns

_ZERO = Decimal(0)


class OpenBar(msgspec.Struct, array_like=True):
    open_ns: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    quote_volume: Decimal
    buy_volume: Decimal
    sell_volume: Decimal
    trade_count: int
    last_ts_ns: int


class CandleCursor(msgspec.Struct, array_like=True):
    """Where the next ``Trades`` page starts, and the bar it continues."""

    since_ns: int
    bar: OpenBar | None = None
    last_trade_id: int | None = None  # trades up to this id are already in ``bar``


_cursor_encoder = msgspec.json.Encoder()
_cursor_decoder = msgspec.json.Decoder(CandleCursor)


def encode_cursor(cursor: CandleCursor) -> str:
    return _cursor_encoder.encode(cursor).decode()


def decode_cursor(text: str) -> CandleCursor:
    """Raises ``ValueError`` for a cursor this adapter did not write."""
    try:
        return _cursor_decoder.decode(text)
    except msgspec.DecodeError as exc:
        raise ValueError(f"not a kraken candle cursor: {text!r} ({exc})") from None


def _new_bar(trade: Trade, open_ns: int) -> OpenBar:
    price = trade.price
    bar = OpenBar(open_ns, price, price, price, price, _ZERO, _ZERO, _ZERO, _ZERO, 0, 0)
    _add(bar, trade)
    return bar


def _add(bar: OpenBar, trade: Trade) -> None:
    price, size = trade.price, trade.size
    bar.high = max(bar.high, price)
    bar.low = min(bar.low, price)
    bar.close = price
    bar.volume += size
    bar.quote_volume += price * size
    if trade.side is Side.BUY:
        bar.buy_volume += size
    elif trade.side is Side.SELL:
        bar.sell_volume += size
    bar.trade_count += 1
    bar.last_ts_ns = max(bar.last_ts_ns, trade.ts_ns)


def _flat(open_ns: int, close: Decimal) -> OpenBar:
    return OpenBar(open_ns, close, close, close, close, _ZERO, _ZERO, _ZERO, _ZERO, 0, open_ns)


def aggregate(
    trades: Iterable[Trade], timeframe: str, bar: OpenBar | None
) -> tuple[list[OpenBar], OpenBar | None]:
    """Fold time-ordered trades into ``bar``; returns (finished bars, the still-open bar)."""
    length = timeframe_ns(timeframe)
    finished: list[OpenBar] = []
    for trade in trades:
        open_ns = bucket_start_ns(trade.ts_ns, timeframe)
        if bar is None:
            bar = _new_bar(trade, open_ns)
        elif open_ns == bar.open_ns:
            _add(bar, trade)
        elif open_ns > bar.open_ns:
            finished.append(bar)
            for empty_ns in range(bar.open_ns + length, open_ns, length):
                finished.append(_flat(empty_ns, bar.close))
            bar = _new_bar(trade, open_ns)
        # a trade older than the open bar (a repeated page edge) was already counted
    return finished, bar


def to_candle(
    bar: OpenBar, symbol: str, timeframe: str, closed: bool, recv_ns: int, exchange: str
) -> Candle:
    return Candle(
        exchange=exchange,
        symbol=symbol,
        timeframe=timeframe,
        open_ns=bar.open_ns,
        open=bar.open,
        high=bar.high,
        low=bar.low,
        close=bar.close,
        volume=bar.volume,
        closed=closed,
        ts_ns=bar.last_ts_ns,
        recv_ns=recv_ns,
        source=CandleSource.DERIVED,
        trade_count=bar.trade_count,
        quote_volume=bar.quote_volume,
        vwap=bar.quote_volume / bar.volume if bar.volume else None,
        buy_volume=bar.buy_volume,
        sell_volume=bar.sell_volume,
    )
