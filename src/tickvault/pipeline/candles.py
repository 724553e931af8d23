"""Candle derivation: trades in, OHLCV bars of every configured timeframe out, incrementally.

One builder per (exchange, symbol, timeframe) holds the forming bar. A bar closes when event
time moves past its end: a trade in a later bucket (the watermark), or :meth:`CandleDeriver.advance`
with the caller's ``now_ns`` for quiet streams. Buckets without trades produce no bar; they are
reported as :class:`EmptyInterval` so quality can see them.

Speed: each trade is folded once into a partial bar of the *base* bucket (the gcd of the
configured timeframes, which nests in every one of them); partials are then merged into each
timeframe's bar. So the per-trade cost does not grow with the number of timeframes.

Money is exact: Decimal sums in a 60-digit context (8-decimal prices times 8-decimal sizes stay
exact far beyond any day's turnover). ``vwap`` is ``quote_volume / volume`` rounded to 28
significant digits. Trades of unknown side count in ``volume`` but in neither buy nor sell volume.
A trade older than its builder's forming bar cannot reopen a closed bar: it is counted in
``late_trades`` and left for reconciliation to notice.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Context, Decimal, localcontext

from tickvault.model import NS_PER_S, Candle, CandleSource, Side, Trade, timeframe_ns
from tickvault.pipeline.records import EmptyInterval

_SUM_CONTEXT = Context(prec=60)
_VWAP_CONTEXT = Context(prec=28)
_ZERO = Decimal(0)
_BUY = Side.BUY
_SELL = Side.SELL


@dataclass(frozen=True, slots=True)
class CandleConfig:
    timeframes: tuple[str, ...] = ("1m", "5m", "15m", "1h", "4h", "1d")
    """Timeframes to derive (any of tickvault.model.TIMEFRAMES, 1s to 1w)."""
    close_grace_ns: int = 2 * NS_PER_S
    """``advance(now_ns)`` closes a bar only this long after its end, leaving trades of its
    last moments time to arrive (exchange-to-receive lag is normally well under a second)."""

    def __post_init__(self) -> None:
        if not self.timeframes:
            raise ValueError("CandleConfig.timeframes is empty")
        for timeframe in self.timeframes:
            timeframe_ns(timeframe)  # raises ValueError for an unknown one


@dataclass(slots=True)
class CandleOutput:
    updated: list[Candle] = field(default_factory=list)  # forming bars changed, latest state
    closed: list[Candle] = field(default_factory=list)
    empty: list[EmptyInterval] = field(default_factory=list)
    late_trades: int = 0


class _Bar:
    """Mutable accumulator of one bucket."""

    __slots__ = (
        "buy",
        "close",
        "count",
        "high",
        "low",
        "open",
        "open_ns",
        "quote",
        "recv_ns",
        "sell",
        "ts_ns",
        "volume",
    )

    def __init__(self, open_ns: int, trade: Trade) -> None:
        price, size = trade.price, trade.size
        self.open_ns = open_ns
        self.open = self.high = self.low = self.close = price
        self.volume = size
        self.quote = price * size
        side = trade.side
        self.buy = size if side is _BUY else _ZERO
        self.sell = size if side is _SELL else _ZERO
        self.count = 1
        self.ts_ns = trade.ts_ns
        self.recv_ns = trade.recv_ns

    def copy(self, open_ns: int) -> _Bar:
        bar = _Bar.__new__(_Bar)
        bar.open_ns = open_ns
        bar.open, bar.high, bar.low, bar.close = self.open, self.high, self.low, self.close
        bar.volume, bar.quote, bar.buy, bar.sell = self.volume, self.quote, self.buy, self.sell
        bar.count, bar.ts_ns, bar.recv_ns = self.count, self.ts_ns, self.recv_ns
        return bar

    def merge(self, part: _Bar) -> None:
        """Fold a later partial bar of the same bucket into this one."""
        if part.high > self.high:
            self.high = part.high
        if part.low < self.low:
            self.low = part.low
        self.close = part.close
        self.volume += part.volume
        self.quote += part.quote
        self.buy += part.buy
        self.sell += part.sell
        self.count += part.count
        if part.ts_ns > self.ts_ns:
            self.ts_ns = part.ts_ns
        if part.recv_ns > self.recv_ns:
            self.recv_ns = part.recv_ns


class _Builder:
    """The forming bar of one (exchange, symbol, timeframe) and where closed history ends."""

    __slots__ = ("bar", "exchange", "length_ns", "next_open_ns", "symbol", "timeframe")

    def __init__(self, exchange: str, symbol: str, timeframe: str) -> None:
        self.exchange = exchange
        self.symbol = symbol
        self.timeframe = timeframe
        self.length_ns = timeframe_ns(timeframe)
        self.bar: _Bar | None = None
        self.next_open_ns: int | None = None  # first bucket not yet closed or reported empty

    def candle(self, bar: _Bar, closed: bool) -> Candle:
        volume = bar.volume
        vwap = _VWAP_CONTEXT.divide(bar.quote, volume) if volume else None
        return Candle(
            exchange=self.exchange,
            symbol=self.symbol,
            timeframe=self.timeframe,
            open_ns=bar.open_ns,
            open=bar.open,
            high=bar.high,
            low=bar.low,
            close=bar.close,
            volume=volume,
            closed=closed,
            ts_ns=bar.ts_ns,
            recv_ns=bar.recv_ns,
            source=CandleSource.DERIVED,
            trade_count=bar.count,
            quote_volume=bar.quote,
            vwap=vwap,
            buy_volume=bar.buy,
            sell_volume=bar.sell,
        )

    def _empty(self, from_ns: int, to_ns: int, out: CandleOutput) -> None:
        if to_ns > from_ns:
            out.empty.append(
                EmptyInterval(self.exchange, self.symbol, self.timeframe, from_ns, to_ns)
            )

    def merge(self, part: _Bar, out: CandleOutput) -> None:
        bucket = part.open_ns - part.open_ns % self.length_ns
        bar = self.bar
        if bar is not None:
            if bucket == bar.open_ns:
                bar.merge(part)
                return
            if bucket < bar.open_ns:
                out.late_trades += part.count
                return
            out.closed.append(self.candle(bar, closed=True))
            self._empty(bar.open_ns + self.length_ns, bucket, out)
        elif self.next_open_ns is not None:
            if bucket < self.next_open_ns:
                out.late_trades += part.count
                return
            self._empty(self.next_open_ns, bucket, out)
        self.bar = part.copy(bucket)
        self.next_open_ns = bucket + self.length_ns

    def advance(self, now_ns: int, grace_ns: int, out: CandleOutput) -> None:
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


class CandleDeriver:
    """Builders for every (exchange, symbol) seen, one per configured timeframe."""

    def __init__(self, config: CandleConfig | None = None) -> None:
        self.config = config or CandleConfig()
        lengths = [timeframe_ns(t) for t in self.config.timeframes]
        self.base_ns = math.gcd(*lengths)
        self._builders: dict[tuple[str, str], list[_Builder]] = {}

    def _builders_of(self, market: tuple[str, str]) -> list[_Builder]:
        builders = self._builders.get(market)
        if builders is None:
            builders = [_Builder(market[0], market[1], t) for t in self.config.timeframes]
            self._builders[market] = builders
        return builders

    def add_trades(self, trades: Iterable[Trade]) -> CandleOutput:
        """Fold a batch of (validated) trades in; bars closed by the watermark come out."""
        out = CandleOutput()
        base_ns = self.base_ns
        parts: dict[tuple[str, str], _Bar] = {}
        touched: dict[int, _Builder] = {}
        with localcontext(_SUM_CONTEXT):
            for trade in trades:
                market = (trade.exchange, trade.symbol)
                ts_ns = trade.ts_ns
                bucket = ts_ns - ts_ns % base_ns
                part = parts.get(market)
                if part is not None and part.open_ns == bucket:
                    price, size = trade.price, trade.size
                    if price > part.high:
                        part.high = price
                    elif price < part.low:
                        part.low = price
                    part.close = price
                    part.volume += size
                    part.quote += price * size
                    side = trade.side
                    if side is _BUY:
                        part.buy += size
                    elif side is _SELL:
                        part.sell += size
                    part.count += 1
                    if ts_ns > part.ts_ns:
                        part.ts_ns = ts_ns
                    if trade.recv_ns > part.recv_ns:
                        part.recv_ns = trade.recv_ns
                    continue
                if part is not None:
                    self._flush(market, part, out, touched)
                parts[market] = _Bar(bucket, trade)
            for market, part in parts.items():
                self._flush(market, part, out, touched)
        for builder in touched.values():
            if builder.bar is not None:
                out.updated.append(builder.candle(builder.bar, closed=False))
        return out

    def _flush(
        self, market: tuple[str, str], part: _Bar, out: CandleOutput, touched: dict[int, _Builder]
    ) -> None:
        for builder in self._builders_of(market):
            builder.merge(part, out)
            touched[id(builder)] = builder

    def advance(self, now_ns: int) -> CandleOutput:
        """Close bars whose interval ended before ``now_ns - close_grace_ns``; report empties."""
        out = CandleOutput()
        grace_ns = self.config.close_grace_ns
        for builders in self._builders.values():
            for builder in builders:
                builder.advance(now_ns, grace_ns, out)
        return out

    def forming(self) -> list[Candle]:
        """The current forming bar of every builder (for a cache warm start or inspection)."""
        return [
            builder.candle(builder.bar, closed=False)
            for builders in self._builders.values()
            for builder in builders
            if builder.bar is not None
        ]
