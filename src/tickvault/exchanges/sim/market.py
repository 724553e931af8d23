"""One simulated market: a seeded L2 book whose trades walk the price. Pure: no clock, no I/O.

Trades always hit the best level of the opposite side and shrink it, so trade prices, books and
the Binance update ids stay mutually consistent; new levels arrive near each side's best (at most
one level spacing inside the spread), which gives the random walk. The shape is bounded at any
event count: spread <= 3 spacings, each side within ``window`` of its best, and takers lean
weakly against the drift from the start price. Prices are ticks and sizes lots (see ``wire``).

Cost: this runs for every simulated event (hundreds of thousands a second when a benchmark
drives the runner), so the random numbers come in numpy blocks (``_Draws``: uniforms,
exponentials and level sizes drawn thousands at a time, read one by one) and the per-event
paths keep the book in local variables; update ids are counted from the change list.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tickvault.exchanges.sim.spec import MarketSpec


@dataclass(slots=True)
class SimTrade:
    trade_id: int
    ts_us: int
    price: int  # ticks; an injected bad value may be <= 0 or far off
    qty: int  # lots
    side: str  # taker side: "buy" | "sell"
    agg_id: int = 0  # Binance aggregate trade id (one trade per aggregate here)
    injected: str | None = None  # fault that produced this trade, for the ground truth


@dataclass(slots=True)
class Tick:
    """What one generator step produced for one market, in order."""

    ts_us: int
    trades: list[SimTrade] = field(default_factory=list)
    # (is_bid, price, new_qty); new_qty 0 deletes. One Binance update id per change.
    changes: list[tuple[bool, int, int]] = field(default_factory=list)
    first_update_id: int = 0
    last_update_id: int = 0


BAD_VALUE_MODES = ("negative_price", "far_price", "zero_size")


DRAW_BLOCK = 4096  # random numbers numpy draws at a time, per kind


class _Draws:
    """A market's seeded random numbers, read one at a time from blocks numpy draws thousands
    at a time (a numpy call per number, or ``random.lognormvariate``, costs far more).

    ``uniform()`` in [0, 1), ``expo()`` a standard exponential (mean 1), ``size()`` a new
    level's size in lots (``unit_qty`` x lognormal, at least 1) and ``take()`` a taker's
    wanted quantity (``unit_qty`` x U[0, 0.5), at least 1). Each kind is a list block and a
    read position, drawn anew on the first read past its end; the compiled generator
    (``_market.pyx``) reads the same blocks in the same order, so one seed is one market
    with or without it. All kinds share one generator.
    """

    __slots__ = ("e", "ei", "gen", "k", "ki", "s", "si", "u", "ui", "unit_qty")

    def __init__(self, seed: int, unit_qty: int) -> None:
        self.gen = np.random.Generator(np.random.PCG64(seed))
        self.unit_qty = unit_qty
        self.u: list[float] = []
        self.e: list[float] = []
        self.s: list[int] = []
        self.k: list[int] = []
        self.ui = self.ei = self.si = self.ki = 0

    def refill_u(self) -> list[float]:
        self.u, self.ui = self.gen.random(DRAW_BLOCK).tolist(), 0
        return self.u

    def refill_e(self) -> list[float]:
        self.e, self.ei = self.gen.standard_exponential(DRAW_BLOCK).tolist(), 0
        return self.e

    def refill_s(self) -> list[int]:
        sizes = self.unit_qty * self.gen.lognormal(0.0, 1.0, DRAW_BLOCK)
        self.s, self.si = np.maximum(1, sizes.astype(np.int64)).tolist(), 0
        return self.s

    def refill_k(self) -> list[int]:
        wanted = self.unit_qty * 0.5 * self.gen.random(DRAW_BLOCK)
        self.k, self.ki = np.maximum(1, wanted.astype(np.int64)).tolist(), 0
        return self.k

    def uniform(self) -> float:
        i = self.ui
        if i >= len(self.u):
            self.refill_u()
            i = 0
        self.ui = i + 1
        return self.u[i]

    def expo(self) -> float:
        i = self.ei
        if i >= len(self.e):
            self.refill_e()
            i = 0
        self.ei = i + 1
        return self.e[i]

    def size(self) -> int:
        i = self.si
        if i >= len(self.s):
            self.refill_s()
            i = 0
        self.si = i + 1
        return self.s[i]

    def take(self) -> int:
        i = self.ki
        if i >= len(self.k):
            self.refill_k()
            i = 0
        self.ki = i + 1
        return self.k[i]


class Market:
    def __init__(self, spec: MarketSpec, seed: int, book_levels: int = 60) -> None:
        self.spec = spec
        self.levels = book_levels
        tick_scale = 10**spec.price_decimals
        mid = spec.start_price * tick_scale
        # level spacing ~2e-5 of the price; sizes ~5000 quote units per level
        self.spacing = max(1, round(mid * 2e-5))
        self.anchor: int = mid  # the price the walk is pulled back to (venues stay within ~1 %)
        # A side never reaches further than this from its own best, nor does the spread exceed
        # ``max_spread``: bounds that hold at any event count (see ``_keep_shape``).
        self.window = book_levels * self.spacing * 2
        self.max_spread = 3 * self.spacing
        self.unit_qty = max(1, 5000 * 10**spec.qty_decimals // max(1, spec.start_price))
        self.draws = _Draws(seed, self.unit_qty)
        uniform = self.draws.uniform
        self.bids: dict[int, int] = {}
        self.asks: dict[int, int] = {}
        self.bid_prices: list[int] = []  # ascending; best bid last
        self.ask_prices: list[int] = []  # ascending; best ask first
        # Binance lastUpdateId (Kraken none); Coinbase per-product sequence; first ids
        self.update_id = 10**8 + int(uniform() * 9 * 10**8)
        self.sequence = 10**8 + int(uniform() * 9 * 10**8)
        self.next_trade_id = 10**6 + int(uniform() * 99 * 10**6)
        self.next_agg_id = 10**6 + int(uniform() * 99 * 10**6)
        self.trades: list[SimTrade] = []
        self.trade_ts: list[int] = []  # ts_us of ``trades``, for bisect
        self.last_ts_us = 0
        self.pending_bad: list[str] = []  # injected bad values for the next trades
        # candles.current_bar's forming bar per timeframe: (bar, index of the next trade)
        self.open_bars: dict[int, tuple[Any, int]] = {}
        size = self.draws.size
        for k in range(book_levels):
            self._set(True, mid - self.spacing // 2 - k * self.spacing - 1, size())
            self._set(False, mid + self.spacing // 2 + k * self.spacing + 1, size())

    # -- book primitives -------------------------------------------------------------------
    def _set(self, is_bid: bool, price: int, qty: int) -> None:
        book, prices = (self.bids, self.bid_prices) if is_bid else (self.asks, self.ask_prices)
        if qty <= 0:
            if book.pop(price, None) is not None:
                del prices[bisect_left(prices, price)]
            return
        if price not in book:
            insort(prices, price)
        book[price] = qty

    def _change(
        self, changes: list[tuple[bool, int, int]], is_bid: bool, price: int, qty: int
    ) -> None:
        """Set a level and record the change (one Binance update id each, counted later)."""
        self._set(is_bid, price, qty)
        changes.append((is_bid, price, qty))

    def best_bid(self) -> int:
        return self.bid_prices[-1]

    def best_ask(self) -> int:
        return self.ask_prices[0]

    def top(self, n: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """(bids best first, asks best first) of up to ``n`` levels each."""
        bids = [(p, self.bids[p]) for p in reversed(self.bid_prices[-n:])]
        asks = [(p, self.asks[p]) for p in self.ask_prices[:n]]
        return bids, asks

    def set_book(self, bids: list[tuple[int, int]], asks: list[tuple[int, int]]) -> None:
        """Replace the book (tests that need a known book, e.g. a documented checksum)."""
        for container in (self.bids, self.asks, self.bid_prices, self.ask_prices):
            container.clear()
        for price, qty in bids:
            self._set(True, price, qty)
        for price, qty in asks:
            self._set(False, price, qty)

    # -- generation ------------------------------------------------------------------------
    def advance(self, start_us: int, end_us: int, events: int, trade_fraction: float) -> Tick:
        """Generate ``events`` events spread over [start_us, end_us)."""
        if compiled_generator is not None:
            return compiled_generator.advance(self, start_us, end_us, events, trade_fraction)
        return self.advance_python(start_us, end_us, events, trade_fraction)

    def history(self, start_us: int, end_us: int, mean_interval_us: int) -> None:
        """Trades (and the book churn they cause) for the REST backfill window."""
        if compiled_generator is not None:
            compiled_generator.history(self, start_us, end_us, mean_interval_us)
        else:
            self.history_python(start_us, end_us, mean_interval_us)

    # The pure-Python generator; ``_market.pyx`` is the same, compiled.
    def advance_python(
        self, start_us: int, end_us: int, events: int, trade_fraction: float
    ) -> Tick:
        tick = Tick(ts_us=end_us, first_update_id=self.update_id + 1)
        changes = tick.changes
        step = (end_us - start_us) / max(1, events)
        uniform, trade, book_event = self.draws.uniform, self._trade, self._book_event
        for i in range(events):
            if uniform() < trade_fraction:
                trade(tick, start_us + int(i * step))
            else:
                book_event(changes)
        self.update_id += len(changes)
        tick.last_update_id = self.update_id
        return tick

    def history_python(self, start_us: int, end_us: int, mean_interval_us: int) -> None:
        expo = self.draws.expo
        ts = float(start_us)
        scratch = Tick(ts_us=start_us)
        changes = scratch.changes
        while True:
            ts += expo() * mean_interval_us
            if ts >= end_us:
                break
            self._trade(scratch, int(ts))
            for _ in range(3):
                self._book_event(changes)
            self.update_id += len(changes)
            changes.clear()
            scratch.trades.clear()

    def _trade(self, tick: Tick, ts_us: int) -> None:
        # the venue's timestamp: floored to its resolution, never going back; µs venues get
        # strictly increasing stamps, so Kraken's ns cursor never splits a tie
        res = self.spec.ts_resolution_us
        ts_us -= ts_us % res
        if ts_us <= self.last_ts_us and (res == 1 or ts_us < self.last_ts_us):
            ts_us = self.last_ts_us + (1 if res == 1 else 0)
        self.last_ts_us = ts_us
        # Chance that the taker buys: 0.5, leaning against the drift from ``anchor``. A weak
        # pull (0.1 more buys per 1 % below the anchor, at most 0.2) keeps the independent
        # venues' walks within a few per cent of each other, as arbitrage does for real ones.
        bid_prices, ask_prices = self.bid_prices, self.ask_prices
        drift = (bid_prices[-1] + ask_prices[0]) / (2 * self.anchor) - 1.0
        buy_odds = 0.5 - max(-0.2, min(0.2, drift * 10.0))
        is_bid = self.draws.uniform() >= buy_odds  # a taker sell hits the best bid
        price = bid_prices[-1] if is_bid else ask_prices[0]
        available = (self.bids if is_bid else self.asks)[price]
        qty = min(available, self.draws.take())
        trade = SimTrade(self.next_trade_id, ts_us, price, qty, "sell" if is_bid else "buy",
                         self.next_agg_id)  # fmt: skip
        self.next_trade_id += 1
        self.next_agg_id += 1
        if self.pending_bad:
            trade.injected = mode = self.pending_bad.pop(0)
            if mode == "negative_price":
                trade.price = -price
            elif mode == "far_price":
                trade.price = price * 10
            else:
                trade.qty = 0
        else:
            changes = tick.changes
            self._change(changes, is_bid, price, available - qty)
            self._refill(changes, is_bid)
            self._keep_shape(changes, is_bid)
        self.trades.append(trade)
        self.trade_ts.append(ts_us)
        tick.trades.append(trade)

    def _refill(self, changes: list[tuple[bool, int, int]], is_bid: bool) -> None:
        prices = self.bid_prices if is_bid else self.ask_prices
        wanted = self.levels * 3 // 4
        if len(prices) >= wanted:
            return
        uniform, spacing, window = self.draws.uniform, self.spacing, self.window
        while len(prices) < wanted:
            best, deepest = (prices[-1], prices[0]) if is_bid else (prices[0], prices[-1])
            if abs(best - deepest) < window - 2 * spacing:
                step = spacing + int(uniform() * spacing)
                new = deepest - step if is_bid else deepest + step
            else:  # the side already spans its window: fill a hole inside it instead
                offset = 1 + int(uniform() * (window - 1))
                new = best - offset if is_bid else best + offset
            if new > 0:
                self._change(changes, is_bid, new, self.draws.size())
            elif not is_bid or len(prices) >= 2:
                return  # a bid side squeezed against price 0 stays thin

    def _keep_shape(self, changes: list[tuple[bool, int, int]], is_bid: bool) -> None:
        """After the ``is_bid`` side lost levels: bound the spread and the side's reach.

        Without this, levels taken near the top and refilled at the deep end made both sides
        stretch as events piled up (spreads of 9-48 %, trade-to-trade jumps over 5 %).
        """
        best_bid, best_ask = self.bid_prices[-1], self.ask_prices[0]
        if best_ask - best_bid > self.max_spread:
            offset = 1 + int(self.draws.uniform() * self.spacing)
            new = best_ask - offset if is_bid else best_bid + offset
            if new > 0:
                self._change(changes, is_bid, new, self.draws.size())
        self._trim(changes, is_bid)

    def _trim(self, changes: list[tuple[bool, int, int]], is_bid: bool) -> None:
        """Drop the deepest levels beyond ``levels`` or further than ``window`` from the best."""
        prices = self.bid_prices if is_bid else self.ask_prices
        levels, window = self.levels, self.window
        while len(prices) > 2:
            best, deepest = (prices[-1], prices[0]) if is_bid else (prices[0], prices[-1])
            if len(prices) <= levels and abs(best - deepest) <= window:
                return
            self._change(changes, is_bid, deepest, 0)

    def _book_event(self, changes: list[tuple[bool, int, int]]) -> None:
        draws = self.draws
        uniform = draws.uniform
        is_bid = uniform() < 0.5
        prices = self.bid_prices if is_bid else self.ask_prices
        depth = len(prices)
        index = min(depth - 1, int(draws.expo() * 4.0))  # mostly near the top
        price = prices[-1 - index] if is_bid else prices[index]
        r = uniform()
        if r < 0.45:  # a new size for a standing level
            qty = draws.size()
            (self.bids if is_bid else self.asks)[price] = qty
            changes.append((is_bid, price, qty))
        elif r < 0.75:
            best_bid, best_ask = self.bid_prices[-1], self.ask_prices[0]
            spread = best_ask - best_bid
            if spread > 1 and uniform() < 0.4:
                # improve the own best by at most one spacing (not anywhere in the spread)
                offset = 1 + int(uniform() * (min(spread, self.spacing + 1) - 1))
                new = best_bid + offset if is_bid else best_ask - offset
            else:
                # a new level near the own best, mostly within a few spacings of it
                offset = 1 + int(draws.expo() * 4.0 * self.spacing)
                new = best_bid - offset if is_bid else best_ask + offset
            if new > 0:
                self._change(changes, is_bid, new, draws.size())
                self._trim(changes, is_bid)  # the side may now be too deep or reach too far
                # a better best can put deep levels out of reach: refill what that trimmed
                self._refill(changes, is_bid)
        elif depth > 2:
            self._change(changes, is_bid, price, 0)
            self._refill(changes, is_bid)
            self._keep_shape(changes, is_bid)


try:  # the compiled generator (sim/_market.pyx), when the package was built with it
    from tickvault.exchanges.sim import _market as compiled_generator
except ImportError:  # pragma: no cover - a source tree without the built extension
    compiled_generator = None  # type: ignore[assignment]
