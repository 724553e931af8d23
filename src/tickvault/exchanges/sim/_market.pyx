# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Compiled generator of :class:`~tickvault.exchanges.sim.market.Market` (optional).

``advance(market, ...)`` and ``history(market, ...)`` do what ``Market.advance`` and
``Market.history`` do in Python, step for step: the same branches, the same reads of the
market's random blocks (``market._Draws``), the same book containers (level dicts and sorted
price lists) and the same changes, trades and ids, so a seed gives the same market with or
without this module (``tests/unit/sim/test_sim_market_compiled.py``). Only the interpreter's
work per event is gone: it is the largest share of the simulator's CPU at high rates.
"""

from cpython.dict cimport PyDict_Contains, PyDict_DelItem, PyDict_SetItem
from cpython.float cimport PyFloat_AS_DOUBLE
from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE, PyList_Insert
from cpython.long cimport PyLong_AsLongLong
from cpython.sequence cimport PySequence_DelItem

from tickvault.exchanges.sim.market import SimTrade, Tick


cdef inline long long _last(list prices):
    return <long long>(<object>PyList_GET_ITEM(prices, PyList_GET_SIZE(prices) - 1))


cdef inline long long _first(list prices):
    return <long long>(<object>PyList_GET_ITEM(prices, 0))


cdef inline long long _at(list prices, Py_ssize_t i):
    return <long long>(<object>PyList_GET_ITEM(prices, i))


cdef inline long long _llabs(long long x):
    return -x if x < 0 else x


cdef inline Py_ssize_t _bisect_left(list prices, long long price):
    """``bisect.bisect_left`` on a sorted list of ints, in C."""
    cdef Py_ssize_t lo = 0, hi = PyList_GET_SIZE(prices), mid
    while lo < hi:
        mid = (lo + hi) >> 1
        if _at(prices, mid) < price:
            lo = mid + 1
        else:
            hi = mid
    return lo


cdef class _Gen:
    """One call's view of a market: its containers, constants and random blocks."""

    cdef object market, draws
    cdef dict bids, asks
    cdef list bid_prices, ask_prices, changes
    cdef list u, e, s, k
    cdef Py_ssize_t ui, ei, si, ki
    cdef long long spacing, window, max_spread, levels, wanted, anchor, res

    def __init__(self, market):
        self.market = market
        draws = self.draws = market.draws
        self.bids, self.asks = market.bids, market.asks
        self.bid_prices, self.ask_prices = market.bid_prices, market.ask_prices
        self.u, self.ui = draws.u, draws.ui
        self.e, self.ei = draws.e, draws.ei
        self.s, self.si = draws.s, draws.si
        self.k, self.ki = draws.k, draws.ki
        self.spacing, self.window = market.spacing, market.window
        self.max_spread, self.levels = market.max_spread, market.levels
        self.wanted = self.levels * 3 // 4
        self.anchor = market.anchor
        self.res = market.spec.ts_resolution_us

    cdef void save(self):
        draws = self.draws
        draws.ui, draws.ei, draws.si, draws.ki = self.ui, self.ei, self.si, self.ki

    # -- random numbers (the blocks and positions of market.draws) ---------------------------
    cdef inline double uniform(self):
        if self.ui >= PyList_GET_SIZE(self.u):
            self.u = self.draws.refill_u()
            self.ui = 0
        self.ui += 1
        return PyFloat_AS_DOUBLE(<object>PyList_GET_ITEM(self.u, self.ui - 1))

    cdef inline double expo(self):
        if self.ei >= PyList_GET_SIZE(self.e):
            self.e = self.draws.refill_e()
            self.ei = 0
        self.ei += 1
        return PyFloat_AS_DOUBLE(<object>PyList_GET_ITEM(self.e, self.ei - 1))

    cdef inline long long size(self):
        if self.si >= PyList_GET_SIZE(self.s):
            self.s = self.draws.refill_s()
            self.si = 0
        self.si += 1
        return PyLong_AsLongLong(<object>PyList_GET_ITEM(self.s, self.si - 1))

    cdef inline long long take(self):
        if self.ki >= PyList_GET_SIZE(self.k):
            self.k = self.draws.refill_k()
            self.ki = 0
        self.ki += 1
        return PyLong_AsLongLong(<object>PyList_GET_ITEM(self.k, self.ki - 1))

    # -- book --------------------------------------------------------------------------------
    cdef void change(self, bint is_bid, long long price, long long qty):
        cdef dict book = self.bids if is_bid else self.asks
        cdef list prices = self.bid_prices if is_bid else self.ask_prices
        key = price
        if qty <= 0:
            if PyDict_Contains(book, key):
                PyDict_DelItem(book, key)
                PySequence_DelItem(prices, _bisect_left(prices, price))
        else:
            if not PyDict_Contains(book, key):
                PyList_Insert(prices, _bisect_left(prices, price), key)
            PyDict_SetItem(book, key, qty)
        self.changes.append((is_bid, key, qty))

    cdef void refill(self, bint is_bid):
        cdef list prices = self.bid_prices if is_bid else self.ask_prices
        cdef long long best, deepest, step, offset, new
        cdef long long spacing = self.spacing, window = self.window
        while PyList_GET_SIZE(prices) < self.wanted:
            if is_bid:
                best, deepest = _last(prices), _first(prices)
            else:
                best, deepest = _first(prices), _last(prices)
            if _llabs(best - deepest) < window - 2 * spacing:
                step = spacing + <long long>(self.uniform() * spacing)
                new = deepest - step if is_bid else deepest + step
            else:  # the side already spans its window: fill a hole inside it instead
                offset = 1 + <long long>(self.uniform() * (window - 1))
                new = best - offset if is_bid else best + offset
            if new > 0:
                self.change(is_bid, new, self.size())
            elif not is_bid or PyList_GET_SIZE(prices) >= 2:
                return  # a bid side squeezed against price 0 stays thin

    cdef void keep_shape(self, bint is_bid):
        cdef long long best_bid = _last(self.bid_prices), best_ask = _first(self.ask_prices)
        cdef long long offset, new
        if best_ask - best_bid > self.max_spread:
            offset = 1 + <long long>(self.uniform() * self.spacing)
            new = best_ask - offset if is_bid else best_bid + offset
            if new > 0:
                self.change(is_bid, new, self.size())
        self.trim(is_bid)

    cdef void trim(self, bint is_bid):
        cdef list prices = self.bid_prices if is_bid else self.ask_prices
        cdef long long best, deepest
        while PyList_GET_SIZE(prices) > 2:
            if is_bid:
                best, deepest = _last(prices), _first(prices)
            else:
                best, deepest = _first(prices), _last(prices)
            if PyList_GET_SIZE(prices) <= self.levels and _llabs(best - deepest) <= self.window:
                return
            self.change(is_bid, deepest, 0)

    # -- events ------------------------------------------------------------------------------
    cdef void book_event(self):
        cdef bint is_bid = self.uniform() < 0.5
        cdef list prices = self.bid_prices if is_bid else self.ask_prices
        cdef Py_ssize_t depth = PyList_GET_SIZE(prices)
        cdef Py_ssize_t index = <Py_ssize_t>(self.expo() * 4.0)  # mostly near the top
        cdef long long price, qty, best_bid, best_ask, spread, offset, new, cap
        cdef double r
        if index > depth - 1:
            index = depth - 1
        price = _at(prices, depth - 1 - index) if is_bid else _at(prices, index)
        r = self.uniform()
        if r < 0.45:  # a new size for a standing level
            qty = self.size()
            (self.bids if is_bid else self.asks)[price] = qty
            self.changes.append((is_bid, price, qty))
        elif r < 0.75:
            best_bid, best_ask = _last(self.bid_prices), _first(self.ask_prices)
            spread = best_ask - best_bid
            if spread > 1 and self.uniform() < 0.4:
                cap = spread if spread < self.spacing + 1 else self.spacing + 1
                offset = 1 + <long long>(self.uniform() * (cap - 1))
                new = best_bid + offset if is_bid else best_ask - offset
            else:
                offset = 1 + <long long>(self.expo() * 4.0 * self.spacing)
                new = best_bid - offset if is_bid else best_ask + offset
            if new > 0:
                self.change(is_bid, new, self.size())
                self.trim(is_bid)
                self.refill(is_bid)
        elif depth > 2:
            self.change(is_bid, price, 0)
            self.refill(is_bid)
            self.keep_shape(is_bid)

    cdef object trade(self, object tick, long long ts_us):
        market = self.market
        cdef long long last_ts = market.last_ts_us, res = self.res
        cdef long long price, available, qty, want
        cdef double drift, lean, buy_odds
        cdef bint is_bid
        ts_us -= ts_us % res
        if ts_us <= last_ts and (res == 1 or ts_us < last_ts):
            ts_us = last_ts + (1 if res == 1 else 0)
        market.last_ts_us = ts_us
        drift = <double>(_last(self.bid_prices) + _first(self.ask_prices)) / <double>(2 * self.anchor) - 1.0
        lean = drift * 10.0
        if lean > 0.2:
            lean = 0.2
        elif lean < -0.2:
            lean = -0.2
        buy_odds = 0.5 - lean
        is_bid = self.uniform() >= buy_odds  # a taker sell hits the best bid
        price = _last(self.bid_prices) if is_bid else _first(self.ask_prices)
        available = (self.bids if is_bid else self.asks)[price]
        want = self.take()
        qty = available if available < want else want
        trade_id = market.next_trade_id
        agg_id = market.next_agg_id
        trade = SimTrade(trade_id, ts_us, price, qty, "sell" if is_bid else "buy", agg_id)
        market.next_trade_id = trade_id + 1
        market.next_agg_id = agg_id + 1
        pending = market.pending_bad
        if pending:
            trade.injected = mode = pending.pop(0)
            if mode == "negative_price":
                trade.price = -price
            elif mode == "far_price":
                trade.price = price * 10
            else:
                trade.qty = 0
        else:
            self.change(is_bid, price, available - qty)
            self.refill(is_bid)
            self.keep_shape(is_bid)
        market.trades.append(trade)
        market.trade_ts.append(ts_us)
        tick.trades.append(trade)


def advance(market, long long start_us, long long end_us, Py_ssize_t events, double trade_fraction):
    """``Market.advance`` (see there)."""
    tick = Tick(ts_us=end_us, first_update_id=market.update_id + 1)
    cdef _Gen gen = _Gen(market)
    gen.changes = tick.changes
    cdef double step = <double>(end_us - start_us) / <double>(events if events > 1 else 1)
    cdef Py_ssize_t i
    try:
        for i in range(events):
            if gen.uniform() < trade_fraction:
                gen.trade(tick, start_us + <long long>(i * step))
            else:
                gen.book_event()
    finally:
        gen.save()
    market.update_id += len(tick.changes)
    tick.last_update_id = market.update_id
    return tick


def history(market, long long start_us, long long end_us, long long mean_interval_us):
    """``Market.history`` (see there)."""
    cdef _Gen gen = _Gen(market)
    scratch = Tick(ts_us=start_us)
    cdef list changes = scratch.changes
    gen.changes = changes
    cdef double ts = <double>start_us
    try:
        while True:
            ts += gen.expo() * mean_interval_us
            if ts >= end_us:
                break
            gen.trade(scratch, <long long>ts)
            gen.book_event()
            gen.book_event()
            gen.book_event()
            market.update_id += len(changes)
            del changes[:]
            scratch.trades.clear()
    finally:
        gen.save()
