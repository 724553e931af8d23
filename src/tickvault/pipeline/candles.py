"""Candle derivation: trades in, OHLCV bars of every configured timeframe out, incrementally.

One builder per (exchange, symbol, timeframe) holds the forming bar. A bar closes when event
time moves past its end: a trade in a later bucket (the watermark), or :meth:`CandleDeriver.advance`
with the caller's ``now_ns`` for quiet streams. Buckets without trades produce no bar; they are
reported as :class:`EmptyInterval` so quality can see them.

Speed: each trade is folded once into a partial bar of the *base* bucket (the gcd of the
configured timeframes, which nests in every one of them); partials are then merged into each
timeframe's bar. So the per-trade cost does not grow with the number of timeframes.

The bars, their exact money and the per-timeframe builder are :mod:`tickvault.trade_bars`, shared
with Kraken's candle history. A trade older than its builder's forming bar (it arrived after the
bar closed: a reader stalled past the grace) revises the closed bar if it is within
``late_window_ns``; the revision comes out in ``CandleOutput.revised``. Older than that it is
counted in ``late_trades`` and its base bucket reported in ``late_gaps``: the runner records it
as a gap, and the gap repair rebuilds the derived bars of that range from the stored trades.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import localcontext

from tickvault.model import NS_PER_S, Candle, Gap, Side, Trade, timeframe_ns
from tickvault.trade_bars import SUM_CONTEXT, Bar, BarBuilder, CandleOutput, Late

_BUY = Side.BUY
_SELL = Side.SELL


@dataclass(frozen=True, slots=True)
class CandleConfig:
    timeframes: tuple[str, ...] = ("1m", "5m", "15m", "1h", "4h", "1d")
    """Timeframes to derive (any of tickvault.model.TIMEFRAMES, 1s to 1w)."""
    close_grace_ns: int = 2 * NS_PER_S
    """``advance(now_ns)`` closes a bar only this long after its end, leaving trades of its
    last moments time to arrive (exchange-to-receive lag is normally well under a second)."""
    late_window_ns: int = 60 * NS_PER_S
    """A trade arriving after its bar closed still revises the bar if the bar closed less than
    this long (event time) before the newest closed one."""

    def __post_init__(self) -> None:
        if not self.timeframes:
            raise ValueError("CandleConfig.timeframes is empty")
        for timeframe in self.timeframes:
            timeframe_ns(timeframe)  # raises ValueError for an unknown one


class CandleDeriver:
    """Builders for every (exchange, symbol) seen, one per configured timeframe."""

    def __init__(self, config: CandleConfig | None = None) -> None:
        self.config = config or CandleConfig()
        lengths = [timeframe_ns(t) for t in self.config.timeframes]
        self.base_ns = math.gcd(*lengths)
        self._builders: dict[tuple[str, str], list[BarBuilder]] = {}

    def _builders_of(self, market: tuple[str, str]) -> list[BarBuilder]:
        builders = self._builders.get(market)
        if builders is None:
            window = self.config.late_window_ns
            builders = [
                BarBuilder(market[0], market[1], t, late_window_ns=window)
                for t in self.config.timeframes
            ]
            self._builders[market] = builders
        return builders

    def add_trades(self, trades: Iterable[Trade]) -> CandleOutput:
        """Fold a batch of (validated) trades in; bars closed by the watermark come out."""
        out = CandleOutput()
        base_ns = self.base_ns
        parts: dict[tuple[str, str], Bar] = {}
        touched: dict[int, BarBuilder] = {}
        with localcontext(SUM_CONTEXT):
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
                    # open and close by exchange time; equal times keep arrival order
                    if ts_ns >= part.last_ts_ns:
                        part.close = price
                        part.last_ts_ns = ts_ns
                    elif ts_ns < part.first_ts_ns:
                        part.open = price
                        part.first_ts_ns = ts_ns
                    part.volume += size
                    part.quote_volume += price * size
                    side = trade.side
                    if side is _BUY:
                        part.buy_volume += size
                    elif side is _SELL:
                        part.sell_volume += size
                    part.trade_count += 1
                    if trade.recv_ns > part.recv_ns:
                        part.recv_ns = trade.recv_ns
                    continue
                if part is not None:
                    self._flush(market, part, out, touched)
                parts[market] = Bar(bucket, trade)
            for market, part in parts.items():
                self._flush(market, part, out, touched)
        for builder in touched.values():
            if builder.bar is not None:
                out.updated.append(builder.candle(builder.bar, closed=False))
        return out

    def _flush(
        self, market: tuple[str, str], part: Bar, out: CandleOutput, touched: dict[int, BarBuilder]
    ) -> None:
        late: set[Late] = set()
        for builder in self._builders_of(market):
            late.add(builder.merge(part, out))
            touched[id(builder)] = builder
        if late != {None}:  # a late part, counted once whatever the number of timeframes
            exchange, symbol = market
            if "too_late" in late:
                counts = out.late_trades
                out.late_gaps.append(
                    Gap(exchange, symbol, "trades", part.open_ns, part.last_ts_ns, "late_trades")
                )
            else:
                counts = out.revised_trades
            counts[exchange] = counts.get(exchange, 0) + part.trade_count

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


__all__ = ["CandleConfig", "CandleDeriver", "CandleOutput"]
