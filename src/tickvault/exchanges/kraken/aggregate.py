"""Candles derived from trades, page by page, with the open bar carried in the cursor.

Kraken's ``OHLC`` endpoint only ever returns the latest 720 bars, so candle history is
rebuilt from ``Trades`` (full history). A bar can straddle two pages, so the bar still open
at the end of a page is not emitted: it travels, with the page cursor, to the next page.
Buckets without trades between two traded buckets become flat bars at the previous close
with zero volume, as Kraken's own ``OHLC`` reports them.

The folding itself is :mod:`tickvault.trade_bars`, the same code (and exact 60-digit sums) as
the pipeline's derived candles; this module adds the cursor and the flat bars. Every candle of
a page carries that page's receive time.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal, localcontext

import msgspec

from tickvault.model import Candle, Trade, bucket_start_ns
from tickvault.trade_bars import SUM_CONTEXT, Bar, BarBuilder, CandleOutput, bar_candle


class OpenBar(msgspec.Struct, array_like=True):
    """The open bar as the cursor carries it (its JSON form is stored in checkpoints)."""

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

    def to_bar(self) -> Bar:
        return Bar.of(
            self.open_ns, (self.open, self.high, self.low, self.close),
            (self.volume, self.quote_volume, self.buy_volume, self.sell_volume),
            self.trade_count, self.last_ts_ns,
        )  # fmt: skip

    @classmethod
    def of(cls, bar: Bar) -> OpenBar:
        return cls(
            bar.open_ns, bar.open, bar.high, bar.low, bar.close, bar.volume, bar.quote_volume,
            bar.buy_volume, bar.sell_volume, bar.trade_count, bar.last_ts_ns,
        )  # fmt: skip


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


def aggregate(
    trades: Iterable[Trade],
    timeframe: str,
    bar: OpenBar | None,
    *,
    exchange: str,
    symbol: str,
    recv_ns: int,
) -> tuple[list[Candle], OpenBar | None]:
    """Fold time-ordered trades into ``bar``; returns (finished candles, each followed by the
    flat bars of the empty buckets after it; the still-open bar). A trade older than the open
    bar (a repeated page edge) was already counted and is left out."""
    builder = BarBuilder(exchange, symbol, timeframe, None if bar is None else bar.to_bar())
    out = CandleOutput()
    with localcontext(SUM_CONTEXT):
        for trade in trades:
            builder.merge(Bar(bucket_start_ns(trade.ts_ns, timeframe), trade), out)
    empty_after = {run.from_open_ns: run for run in out.empty}
    length = builder.length_ns
    finished: list[Candle] = []
    for candle in out.closed:
        finished.append(msgspec.structs.replace(candle, recv_ns=recv_ns))
        run = empty_after.get(candle.open_ns + length)
        if run is not None:
            for open_ns in range(run.from_open_ns, run.to_open_ns, length):
                flat = Bar.flat(open_ns, candle.close)
                finished.append(bar_candle(flat, exchange, symbol, timeframe, True, recv_ns))
    return finished, None if builder.bar is None else OpenBar.of(builder.bar)


def to_candle(
    bar: OpenBar, symbol: str, timeframe: str, closed: bool, recv_ns: int, exchange: str
) -> Candle:
    return bar_candle(bar.to_bar(), exchange, symbol, timeframe, closed, recv_ns)
