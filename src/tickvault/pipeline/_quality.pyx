# cython: language_level=3, boundscheck=False, wraparound=False
"""Compiled :meth:`tickvault.pipeline.quality.QualityTracker._observe_accepted` (optional).

``observe_accepted(tracker, accepted, now_ns)`` is the pure method's loop, step for step, on the
tracker's own Python state (``_Stream``, ``_Slot``, their counters and lag histograms), calling
its helpers for new slots and exchange candles, so both leave the same state and return the same
last prices (tests/unit/pipeline/test_compiled_stages.py).
"""

import math

from tickvault.model import BookDelta, BookSnapshot, Ticker, Trade
from tickvault.pipeline.quality import _CHANNELS, _LAG_STEPS, _end_run

cdef object _Trade = Trade
cdef object _BookDelta = BookDelta
cdef object _BookSnapshot = BookSnapshot
cdef object _Ticker = Ticker


def observe_accepted(tracker, list accepted, now_ns):
    cdef dict cache = {}
    cdef dict last_price = {}
    cdef dict channels = _CHANNELS
    log2 = math.log2
    lag_steps = _LAG_STEPS
    cdef object run_kind = None
    cdef object run_exchange = "", run_symbol = ""
    cdef object price_key = ("", "")
    cdef object stream = None, slot = None, pair, key
    cdef dict lags = {}
    cdef object run_events = 0, run_recv = 0
    cdef object last_lag = 0, last_bucket = 0
    cdef object kind, recv_ns, lag, trade_id, number, last, last_seq
    for event in accepted:
        kind = type(event)
        if kind is not run_kind or event.exchange is not run_exchange or (
            event.symbol is not run_symbol
        ):
            if stream is not None:
                _end_run(stream, slot, run_events, run_recv)
            run_kind, run_exchange, run_symbol = kind, event.exchange, event.symbol
            price_key = (run_symbol, run_exchange)
            key = (run_exchange, run_symbol, channels.get(kind, "candles"))
            pair = cache.get(key)
            if pair is None:
                pair = cache[key] = tracker._slot(key, now_ns)
            stream, slot = pair
            lags = slot.lags
            run_events = 0
            run_recv = event.recv_ns
        run_events += 1
        recv_ns = event.recv_ns
        if recv_ns > run_recv:
            run_recv = recv_ns
        lag = recv_ns - event.ts_ns
        if lag != last_lag:
            last_lag = lag
            last_bucket = int(log2(lag) * lag_steps) if lag > 1 else 0
        lags[last_bucket] = lags.get(last_bucket, 0) + 1
        if kind is _Trade:
            trade_id = event.trade_id
            if trade_id.isdigit():
                number = int(trade_id)
                last = stream.last_id
                if last is None or number > last:
                    if last is not None and number > last + 1:
                        slot.missing += number - last - 1
                    stream.last_id = number
            last_price[price_key] = event
        elif kind is _BookDelta:
            if event.first_sequence is not None and event.last_sequence is not None:
                last_seq = stream.last_seq
                if last_seq is not None and event.first_sequence > last_seq + 1:
                    slot.missing += event.first_sequence - last_seq - 1
                stream.last_seq = event.last_sequence
        elif kind is _BookSnapshot:
            stream.last_seq = event.sequence
        elif kind is _Ticker:
            if event.bid_price is not None and event.ask_price is not None:
                last_price[price_key] = event
        else:
            tracker._candle(event, stream, slot)
    if stream is not None:
        _end_run(stream, slot, run_events, run_recv)
    return last_price
