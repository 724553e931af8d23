"""OHLCV bars computed from a market's trades: the one source for REST candles, kline/ohlc
streams and the ground truth, so they can never disagree. Injected bad trades are left out
(an exchange would not print them into its bars).

:func:`current_bar` serves the bar still forming (kline/ohlc/candles pushes, many times a
second) by folding in only the trades added since the last call, instead of scanning every trade
of the interval again: the same bar as :func:`bars`, at a cost that does not grow with the rate
times the interval.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, replace

from tickvault.exchanges.sim.market import Market, SimTrade


@dataclass(slots=True)
class Bar:
    open_us: int
    open: int
    high: int
    low: int
    close: int
    volume: int = 0  # lots
    quote_volume: int = 0  # ticks * lots
    count: int = 0
    first_id: int = -1
    last_id: int = -1
    buy_volume: int = 0
    buy_quote: int = 0

    def vwap(self) -> int:
        """Volume-weighted price in ticks (0 for an empty bar), rounded half up."""
        if not self.volume:
            return 0
        return (2 * self.quote_volume + self.volume) // (2 * self.volume)


def bars(market: Market, tf_us: int, start_us: int, end_us: int, include_empty: bool) -> list[Bar]:
    """Bars whose open time lies in [start_us floored to the bar, end_us), each with all its trades.

    ``include_empty`` fills intervals without trades with flat bars at the previous close
    (Binance and Kraken do; Coinbase omits them). Nothing before the first trade.
    """
    first_open = start_us - start_us % tf_us
    if end_us <= first_open:
        return []
    last_open = (end_us - 1) - (end_us - 1) % tf_us  # the last bar is whole, not cut at end_us
    ts = market.trade_ts
    lo, hi = bisect_left(ts, first_open), bisect_left(ts, last_open + tf_us)
    out: list[Bar] = []
    prev_close: int | None = None
    if include_empty:
        for trade in reversed(market.trades[max(0, lo - 64) : lo]):
            if trade.injected is None:
                prev_close = trade.price
                break
    current: Bar | None = None
    for trade in market.trades[lo:hi]:
        if trade.injected is not None:
            continue
        bucket = trade.ts_us - trade.ts_us % tf_us
        if current is None or bucket != current.open_us:
            if current is not None:
                out.append(current)
                prev_close = current.close
            if include_empty and prev_close is not None:
                gap_open = out[-1].open_us + tf_us if out else first_open
                while gap_open < bucket:
                    out.append(Bar(gap_open, prev_close, prev_close, prev_close, prev_close))
                    gap_open += tf_us
            price = trade.price
            current = Bar(bucket, price, price, price, price, first_id=trade.trade_id)
        _fold(current, trade)
    if current is not None:
        out.append(current)
        prev_close = current.close
    if include_empty and prev_close is not None:
        gap_open = out[-1].open_us + tf_us if out else first_open
        while gap_open <= last_open:
            out.append(Bar(gap_open, prev_close, prev_close, prev_close, prev_close))
            gap_open += tf_us
    return out


def _fold(bar: Bar, trade: SimTrade) -> None:
    price, qty = trade.price, trade.qty
    if price > bar.high:
        bar.high = price
    if price < bar.low:
        bar.low = price
    bar.close = price
    bar.volume += qty
    bar.quote_volume += price * qty
    bar.count += 1
    bar.last_id = trade.trade_id
    if trade.side == "buy":
        bar.buy_volume += qty
        bar.buy_quote += price * qty


def current_bar(market: Market, tf_us: int, now_us: int) -> list[Bar]:
    """``bars(market, tf_us, open, open + tf_us, include_empty=True)`` of the interval holding
    ``now_us``, kept per market and timeframe and brought up to date incrementally."""
    open_us = now_us - now_us % tf_us
    end_us = open_us + tf_us
    held = market.open_bars.get(tf_us)
    trades = market.trades
    if held is None or held[0].open_us != open_us:
        rows = bars(market, tf_us, open_us, end_us, include_empty=True)
        if rows and rows[-1].count and trades and trades[-1].ts_us < end_us:
            # a copy: callers may keep what they got while the held bar moves on
            market.open_bars[tf_us] = (replace(rows[-1]), len(trades))
        else:  # nothing traded yet in this interval: cheap to recompute until something does
            market.open_bars.pop(tf_us, None)
        return rows
    bar, start = held
    end = len(trades)
    for index in range(start, end):
        trade = trades[index]
        if trade.ts_us >= end_us:  # never in the simulator (stamps <= now); kept exact anyway
            end = index
            break
        if trade.injected is None:
            _fold(bar, trade)
    market.open_bars[tf_us] = (bar, end)
    return [replace(bar)]
