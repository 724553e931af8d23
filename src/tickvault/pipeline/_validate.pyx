# cython: language_level=3, boundscheck=False, wraparound=False
"""Compiled :meth:`tickvault.pipeline.validate.Validator.validate` (optional).

``validate(validator, events, now_ns)`` is the pure method's loop, rule for rule and in the same
order, with its locals typed so the trade path (the bulk: a feed message holds many trades)
runs without the interpreter. It keeps the validator's own Python state (``_TradeStream``,
``_KeyWindow``, ``_PriceRef``, the totals) and calls the validator's and ``_checks``' Python
helpers for books, tickers and candles and for every rejection, so both give the same accepted
list, the same ``Rejected`` records and the same counters (tests/unit/test_fast_paths.py and
``python -m bench.stage_replay --digest``).
"""

from decimal import Decimal, InvalidOperation

from tickvault.model import BookDelta, BookSnapshot, Candle, Ticker, Trade
from tickvault.pipeline._checks import (
    check_book,
    check_candle,
    check_ticker,
    cross_outlier,
    missing_field,
    rejected_record,
    stream_outlier,
)

cdef object _ZERO = Decimal(0)
cdef object _Trade = Trade
cdef object _Decimal = Decimal
cdef object _BookDelta = BookDelta
cdef object _BookSnapshot = BookSnapshot
cdef object _Ticker = Ticker
cdef object _Candle = Candle


def validate(validator, events, now_ns):
    """The pure method's (accepted, rejected, counts), the totals updated."""
    cfg = validator.config
    cdef list accepted = []
    cdef list rejected = []
    cdef dict counts = {}
    future_ns = now_ns + cfg.future_tolerance_ns
    floor_ns = cfg.min_ts_ns
    if cfg.max_age_ns is not None:
        floor_ns = max(floor_ns, now_ns - cfg.max_age_ns)
    cdef dict streams = validator._trades
    cdef bint check_ids = cfg.check_trade_id_order
    cdef double max_dev = cfg.outlier_max_deviation
    cdef double cross_dev = cfg.cross_max_deviation
    refresh_every = cfg.outlier_refresh_every
    min_samples = cfg.outlier_min_samples
    cdef object run_exchange = None
    cdef object run_symbol = None
    cdef object state = None, window = None, ref = None, order = None, prices = None
    cdef set seen = None
    cdef object failure, exchange, symbol, tid, price, size, ts_ns, found, median, cross
    cdef object number
    cdef double value, m, c, last_value = 0.0
    cdef object last_price = None
    cdef object kind
    for event in events:
        failure = None
        kind = type(event)
        if kind is _Trade:
            exchange = event.exchange
            symbol = event.symbol
            tid = event.trade_id
            price = event.price
            size = event.size
            ts_ns = event.ts_ns
            if not (
                type(exchange) is str
                and type(symbol) is str
                and exchange
                and symbol
                and tid
                and type(tid) is str
                and type(price) is _Decimal
                and type(size) is _Decimal
                and type(ts_ns) is int
                and type(event.recv_ns) is int
            ):
                failure = missing_field(event)
            else:
                try:
                    if not (price > _ZERO and price.is_finite()):
                        failure = ("bad_price", f"price {price} is not a positive number")
                    elif not (size > _ZERO and size.is_finite()):
                        failure = ("bad_size", f"size {size} is not a positive number")
                except InvalidOperation:
                    failure = ("bad_price", f"price {price} or size {size} is NaN")
            if failure is None:
                if ts_ns > future_ns:
                    failure = ("future_ts", f"ts_ns {ts_ns} is {ts_ns - now_ns} ns ahead")
                elif ts_ns < floor_ns:
                    failure = ("stale_ts", f"ts_ns {ts_ns} is before {floor_ns}")
            if failure is None:
                if exchange is not run_exchange or symbol is not run_symbol:
                    run_exchange, run_symbol = exchange, symbol
                    found = streams.get((exchange, symbol))
                    state = found or validator._trade_stream((exchange, symbol))
                    window = state.window
                    seen = window.keys
                    ref = state.ref
                if tid in seen:
                    failure = ("duplicate", f"trade id {tid} seen before")
                else:
                    if check_ids and tid.isdigit():
                        number = int(tid)
                        if number < state.last_id:
                            failure = (
                                "sequence_regression",
                                f"trade id {tid} after {state.last_id}",
                            )
                        else:
                            state.last_id = number
                    if failure is None:
                        if price != last_price:  # equal decimals give the same float
                            last_price = price
                            last_value = float(price)
                        value = last_value
                        median = ref.median
                        if median is not None:
                            m = median
                            if abs(value - m) > max_dev * m:
                                failure = stream_outlier(value, median)
                            else:
                                cross = ref.cross
                                if cross is not None:
                                    c = cross
                                    if abs(value - c) > cross_dev * c:
                                        failure = cross_outlier(value, cross)
                        prices = ref.prices
                        prices.append(value)
                        ref.last_ts_ns = ts_ns
                        ref.since_refresh += 1
                        if ref.since_refresh >= refresh_every or (
                            median is None and len(prices) >= min_samples
                        ):
                            validator._refresh((exchange, symbol), ref, ts_ns)
                    if failure is None:
                        order = window.order
                        if len(order) >= window.size:
                            seen.discard(order.popleft())
                        order.append(tid)
                        seen.add(tid)
        elif kind is _BookDelta or kind is _BookSnapshot:
            failure = check_book(event, future_ns, floor_ns)
            if failure is None:
                failure = validator._check_book_order(event)
        elif kind is _Ticker:
            failure = check_ticker(event, future_ns, floor_ns)
            if failure is None:
                failure = validator._check_ticker_state(event)
        elif kind is _Candle:
            failure = check_candle(event, future_ns, floor_ns)
            if failure is None:
                failure = validator._check_candle_key(event)
        else:
            failure = ("wrong_type", f"{kind.__name__} is not a market event")

        if failure is None:
            accepted.append(event)
        else:
            reason = failure[0]
            counts[reason] = counts.get(reason, 0) + 1
            rejected.append(rejected_record(event, failure))
    totals = validator.totals
    for reason, count in counts.items():
        totals[reason] = totals.get(reason, 0) + count
    return accepted, rejected, counts
