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
nor sell volume.

A trade older than the forming bar (it arrived after its bar closed: a stalled reader, a slow
feed) revises that bar if it closed within the builder's ``late_window_ns``: the bar comes out
again, closed, in ``CandleOutput.revised`` (storage replaces a closed bar by a revision with more
trades). Older than that it is counted in ``late_trades`` and reported in ``late_gaps`` (the
trade itself is stored; the gap repair rebuilds the derived bars from the stored trades).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Context, Decimal
from typing import Literal

from tickvault.model import Candle, CandleSource, Gap, Side, Trade, timeframe_ns
from tickvault.pipeline.records import EmptyInterval

Late = Literal["revised", "too_late"] | None
SUM_CONTEXT = Context(prec=60)
VWAP_CONTEXT = Context(prec=28)
ZERO = Decimal(0)
_BUY = Side.BUY
_SELL = Side.SELL


class Bar:
    """Mutable accumulator of one bucket (a slots class: the pipeline's per-trade loop sets
    these attributes millions of times a second, faster than on a msgspec struct)."""

    __slots__ = (
        "buy_volume", "close", "first_ts_ns", "high", "last_ts_ns", "low", "open", "open_ns",
        "quote_volume", "recv_ns", "sell_volume", "trade_count", "volume",
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
        self.first_ts_ns = trade.ts_ns  # exchange time of the trade that opened the bar
        self.last_ts_ns = trade.ts_ns  # exchange time of the newest trade in the bar
        self.recv_ns = trade.recv_ns  # receive time of the newest-received trade

    @classmethod
    def of(
        cls, open_ns: int, ohlc: tuple[Decimal, Decimal, Decimal, Decimal],
        volumes: tuple[Decimal, Decimal, Decimal, Decimal], trade_count: int, last_ts_ns: int,
        recv_ns: int = 0, first_ts_ns: int | None = None,
    ) -> Bar:  # fmt: skip
        """A bar from its values: ``ohlc`` = (open, high, low, close), ``volumes`` = (volume,
        quote volume, buy volume, sell volume); ``first_ts_ns`` defaults to the bucket start."""
        bar = cls.__new__(cls)
        bar.open_ns = open_ns
        bar.first_ts_ns = open_ns if first_ts_ns is None else first_ts_ns
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
            self.trade_count, self.last_ts_ns, self.recv_ns, self.first_ts_ns,
        )  # fmt: skip

    def merge(self, part: Bar) -> None:
        """Fold a partial bar of the same bucket into this one (in SUM_CONTEXT). Open and close
        go by exchange time (a part may hold older trades: it arrived late); equal times keep
        arrival order."""
        if part.high > self.high:
            self.high = part.high
        if part.low < self.low:
            self.low = part.low
        if part.first_ts_ns < self.first_ts_ns:
            self.open = part.open
            self.first_ts_ns = part.first_ts_ns
        if part.last_ts_ns >= self.last_ts_ns:
            self.close = part.close
            self.last_ts_ns = part.last_ts_ns
        self.volume += part.volume
        self.quote_volume += part.quote_volume
        self.buy_volume += part.buy_volume
        self.sell_volume += part.sell_volume
        self.trade_count += part.trade_count
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
    revised: list[Candle] = field(default_factory=list)  # closed bars that took late trades
    # late trades per exchange: folded into revised bars / too late (older than the window)
    revised_trades: dict[str, int] = field(default_factory=dict)
    late_trades: dict[str, int] = field(default_factory=dict)
    late_gaps: list[Gap] = field(default_factory=list)  # where too-late trades left bars short


class BarBuilder:
    """The forming bar of one (exchange, symbol, timeframe) and where closed history ends."""

    __slots__ = (
        "bar", "exchange", "late_window_ns", "length_ns", "next_open_ns", "recent", "start_ns",
        "symbol", "timeframe",
    )  # fmt: skip

    def __init__(
        self, exchange: str, symbol: str, timeframe: str, bar: Bar | None = None,
        late_window_ns: int = 0,
    ) -> None:  # fmt: skip
        """``bar``: a forming bar to continue (Kraken's cursor carries one between pages).
        ``late_window_ns``: how far behind the closed edge a late trade still revises its bar
        (0: never; closed bars are then not kept)."""
        self.exchange = exchange
        self.symbol = symbol
        self.timeframe = timeframe
        self.length_ns = timeframe_ns(timeframe)
        self.bar = bar
        self.late_window_ns = late_window_ns
        self.recent: dict[int, Bar] = {}  # closed bars within the late window, by open time
        # first bucket not yet closed or reported empty
        self.next_open_ns = None if bar is None else bar.open_ns + self.length_ns
        self.start_ns = None if bar is None else bar.open_ns  # this builder's first bucket

    def candle(self, bar: Bar, closed: bool) -> Candle:
        return bar_candle(bar, self.exchange, self.symbol, self.timeframe, closed)

    def _empty(self, from_ns: int, to_ns: int, out: CandleOutput) -> None:
        if to_ns > from_ns:
            out.empty.append(
                EmptyInterval(self.exchange, self.symbol, self.timeframe, from_ns, to_ns)
            )

    def merge(self, part: Bar, out: CandleOutput) -> Late:
        """Fold a partial bar (of a bucket nested in this timeframe's) in; a part of a later
        bucket closes the forming bar (and reports the empty buckets in between). Returns
        whether the part was late (see :meth:`_late`)."""
        bucket = part.open_ns - part.open_ns % self.length_ns
        bar = self.bar
        if bar is not None:
            if bucket == bar.open_ns:
                bar.merge(part)
                return None
            if bucket < bar.open_ns:
                return self._late(bucket, part, out)
            self._close(bar, out)
            self._empty(bar.open_ns + self.length_ns, bucket, out)
        elif self.next_open_ns is not None:
            if bucket < self.next_open_ns:
                return self._late(bucket, part, out)
            self._empty(self.next_open_ns, bucket, out)
        self.bar = part.copy(bucket)
        self.next_open_ns = bucket + self.length_ns
        if self.start_ns is None:
            self.start_ns = bucket
        self._prune()
        return None

    def _close(self, bar: Bar, out: CandleOutput) -> None:
        out.closed.append(self.candle(bar, closed=True))
        if self.late_window_ns:
            self.recent[bar.open_ns] = bar

    def _window_start(self) -> int | None:
        """Oldest bucket a late trade may still revise: the late window behind the first bucket
        not closed yet, and never before this builder's first bucket (what came before it, say
        before a restart, is not held here)."""
        edge_ns = self.next_open_ns if self.bar is None else self.bar.open_ns
        if edge_ns is None or self.start_ns is None:
            return None
        return max(self.start_ns, edge_ns - self.late_window_ns)

    def _prune(self) -> None:
        """Forget closed bars that fell out of the late window."""
        recent = self.recent
        oldest_ns = self._window_start()
        if recent and oldest_ns is not None:
            for open_ns in [t for t in recent if t < oldest_ns]:
                del recent[open_ns]

    def _late(self, bucket: int, part: Bar, out: CandleOutput) -> Late:
        """A part of a bucket already closed (or reported empty): revise the bar if it is
        within the late window ("revised"), else leave it ("too_late")."""
        oldest_ns = self._window_start()
        if not self.late_window_ns or oldest_ns is None or bucket < oldest_ns:
            return "too_late"
        bar = self.recent.get(bucket)
        if bar is None:  # its bucket was reported empty
            bar = self.recent[bucket] = part.copy(bucket)
        else:
            bar.merge(part)
        out.revised.append(self.candle(bar, closed=True))
        return "revised"

    def advance(self, now_ns: int, grace_ns: int, out: CandleOutput) -> None:
        """Close the forming bar once ``now_ns - grace_ns`` is past its end; report the empty
        buckets up to there."""
        horizon_ns = now_ns - grace_ns  # event time we take as complete
        bar = self.bar
        if bar is not None:
            if bar.open_ns + self.length_ns > horizon_ns:
                return
            self._close(bar, out)
            self.bar = None
        if self.next_open_ns is not None:
            passed = horizon_ns - horizon_ns % self.length_ns  # start of the unfinished bucket
            if passed > self.next_open_ns:
                self._empty(self.next_open_ns, passed, out)
                self.next_open_ns = passed
            self._prune()
