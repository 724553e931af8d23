"""Trades folded into OHLCV bars: the one implementation behind every candle tickvault derives.

Two callers, one fold:

* the pipeline's :class:`~tickvault.pipeline.candles.CandleDeriver` (live trades, every
  configured timeframe; buckets without trades give no bar, they are reported as
  :class:`EmptyInterval`);
* Kraken's candle history (:mod:`tickvault.exchanges.kraken.aggregate`), rebuilt from ``Trades``
  pages, where the empty buckets become flat bars at the previous close (as Kraken's ``OHLC``
  reports them) and the open bar travels between pages in a cursor.

Money is exact: Decimal sums in a 60-digit context (``SUM_CONTEXT``; 8-decimal prices times
8-decimal sizes stay exact far beyond any day's turnover). ``vwap`` is ``quote_volume / volume``
rounded to 28 significant digits. Trades of unknown side count in ``volume`` but in neither buy
nor sell volume. A trade older than the forming bar cannot reopen a closed one: it is counted in
``late_trades`` and dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Context, Decimal

from tickvault.model import Candle, CandleSource, Side, Trade, timeframe_ns
from tickvault.pipeline.records import EmptyInterval

SUM_CONTEXT = Context(prec=60)
VWAP_CONTEXT = Context(prec=28)
ZERO = Decimal(0)
_BUY = Side.BUY
_SELL = Side.SELL


class Bar:
    """Mutable accumulator of one bucket (a slots class: the pipeline's per-trade loop sets
    these attributes millions of times a second, faster than on a msgspec struct)."""

    __slots__ = (
        "buy_volume", "close", "high", "last_ts_ns", "low", "open", "open_ns", "quote_volume",
        "recv_ns", "sell_volume", "trade_count", "volume",
    )  # fmt: skip

    def __init__(self, open_ns: int, trade: Trade) -> None:
        """A bar of one trade. Call inside ``localcontext(SUM_CONTEXT)``."""
        price, size, side = trade.price, trade.size, trade.side
        self.open_ns = open_ns
        self.open = self.high = self.low = self.close = price
        self.volume = size
        self.quote_volume = price * size
        self.buy_volume = size if side is _BUY else ZERO
        self.sell_volume = size if side is _SELL else ZERO
        self.trade_count = 1
        self.last_ts_ns = trade.ts_ns  # exchange time of the newest trade in the bar
        self.recv_ns = trade.recv_ns  # receive time of the newest-received trade

    @classmethod
    def of(
        cls, open_ns: int, ohlc: tuple[Decimal, Decimal, Decimal, Decimal],
        volumes: tuple[Decimal, Decimal, Decimal, Decimal], trade_count: int, last_ts_ns: int,
        recv_ns: int = 0,
    ) -> Bar:  # fmt: skip
        """A bar from its values: ``ohlc`` = (open, high, low, close), ``volumes`` = (volume,
        quote volume, buy volume, sell volume)."""
        bar = cls.__new__(cls)
        bar.open_ns = open_ns
        bar.open, bar.high, bar.low, bar.close = ohlc
        bar.volume, bar.quote_volume, bar.buy_volume, bar.sell_volume = volumes
        bar.trade_count, bar.last_ts_ns, bar.recv_ns = trade_count, last_ts_ns, recv_ns
        return bar

    @classmethod
    def flat(cls, open_ns: int, close: Decimal) -> Bar:
        """A bucket without trades, at the previous close (Kraken's convention)."""
        return cls.of(open_ns, (close,) * 4, (ZERO,) * 4, 0, open_ns)

    def copy(self, open_ns: int) -> Bar:
        return Bar.of(
            open_ns, (self.open, self.high, self.low, self.close),
            (self.volume, self.quote_volume, self.buy_volume, self.sell_volume),
            self.trade_count, self.last_ts_ns, self.recv_ns,
        )  # fmt: skip

    def merge(self, part: Bar) -> None:
        """Fold a later partial bar of the same bucket into this one (in SUM_CONTEXT)."""
        if part.high > self.high:
            self.high = part.high
        if part.low < self.low:
            self.low = part.low
        self.close = part.close
        self.volume += part.volume
        self.quote_volume += part.quote_volume
        self.buy_volume += part.buy_volume
        self.sell_volume += part.sell_volume
        self.trade_count += part.trade_count
        if part.last_ts_ns > self.last_ts_ns:
            self.last_ts_ns = part.last_ts_ns
        if part.recv_ns > self.recv_ns:
            self.recv_ns = part.recv_ns


def bar_candle(
    bar: Bar,
    exchange: str,
    symbol: str,
    timeframe: str,
    closed: bool,
    recv_ns: int | None = None,
) -> Candle:
    """The derived :class:`Candle` of ``bar``; ``recv_ns`` defaults to the bar's own."""
    volume = bar.volume
    return Candle(
        exchange=exchange,
        symbol=symbol,
        timeframe=timeframe,
        open_ns=bar.open_ns,
        open=bar.open,
        high=bar.high,
        low=bar.low,
        close=bar.close,
        volume=volume,
        closed=closed,
        ts_ns=bar.last_ts_ns,
        recv_ns=bar.recv_ns if recv_ns is None else recv_ns,
        source=CandleSource.DERIVED,
        trade_count=bar.trade_count,
        quote_volume=bar.quote_volume,
        vwap=VWAP_CONTEXT.divide(bar.quote_volume, volume) if volume else None,
        buy_volume=bar.buy_volume,
        sell_volume=bar.sell_volume,
    )


@dataclass(slots=True)
class CandleOutput:
    updated: list[Candle] = field(default_factory=list)  # forming bars changed, latest state
    closed: list[Candle] = field(default_factory=list)
    empty: list[EmptyInterval] = field(default_factory=list)
    late_trades: int = 0


class BarBuilder:
    """The forming bar of one (exchange, symbol, timeframe) and where closed history ends."""

    __slots__ = ("bar", "exchange", "length_ns", "next_open_ns", "symbol", "timeframe")

    def __init__(self, exchange: str, symbol: str, timeframe: str, bar: Bar | None = None) -> None:
        """``bar``: a forming bar to continue (Kraken's cursor carries one between pages)."""
        self.exchange = exchange
        self.symbol = symbol
        self.timeframe = timeframe
        self.length_ns = timeframe_ns(timeframe)
        self.bar = bar
        # first bucket not yet closed or reported empty
        self.next_open_ns = None if bar is None else bar.open_ns + self.length_ns

    def candle(self, bar: Bar, closed: bool) -> Candle:
        return bar_candle(bar, self.exchange, self.symbol, self.timeframe, closed)

    def _empty(self, from_ns: int, to_ns: int, out: CandleOutput) -> None:
        if to_ns > from_ns:
            out.empty.append(
                EmptyInterval(self.exchange, self.symbol, self.timeframe, from_ns, to_ns)
            )

    def merge(self, part: Bar, out: CandleOutput) -> None:
        """Fold a partial bar (of a bucket nested in this timeframe's) in; a part of a later
        bucket closes the forming bar (and reports the empty buckets in between)."""
        bucket = part.open_ns - part.open_ns % self.length_ns
        bar = self.bar
        if bar is not None:
            if bucket == bar.open_ns:
                bar.merge(part)
                return
            if bucket < bar.open_ns:
                out.late_trades += part.trade_count
                return
            out.closed.append(self.candle(bar, closed=True))
            self._empty(bar.open_ns + self.length_ns, bucket, out)
        elif self.next_open_ns is not None:
            if bucket < self.next_open_ns:
                out.late_trades += part.trade_count
                return
            self._empty(self.next_open_ns, bucket, out)
        self.bar = part.copy(bucket)
        self.next_open_ns = bucket + self.length_ns

    def advance(self, now_ns: int, grace_ns: int, out: CandleOutput) -> None:
        """Close the forming bar once ``now_ns - grace_ns`` is past its end; report the empty
        buckets up to there."""
        horizon_ns = now_ns - grace_ns  # event time we take as complete
        bar = self.bar
        if bar is not None:
            if bar.open_ns + self.length_ns > horizon_ns:
                return
            out.closed.append(self.candle(bar, closed=True))
            self.bar = None
        if self.next_open_ns is not None:
            passed = horizon_ns - horizon_ns % self.length_ns  # start of the unfinished bucket
            if passed > self.next_open_ns:
                self._empty(self.next_open_ns, passed, out)
                self.next_open_ns = passed
