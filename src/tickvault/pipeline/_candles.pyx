# cython: language_level=3, boundscheck=False, wraparound=False
"""Compiled :meth:`tickvault.pipeline.candles.CandleDeriver.add_trades` (optional).

``add_trades(deriver, trades)`` is the pure method, step for step: the same partial bars
(``trade_bars.Bar``) folded with the same Decimal operations in ``SUM_CONTEXT``, flushed through
the deriver's own builders, so both give the same bars and leave the same state
(tests/unit/pipeline/test_compiled_stages.py).
"""

from decimal import localcontext

from tickvault.model import Side
from tickvault.trade_bars import SUM_CONTEXT, Bar, CandleOutput

cdef object _BUY = Side.BUY
cdef object _SELL = Side.SELL


def add_trades(deriver, trades):
    out = CandleOutput()
    base_ns = deriver.base_ns
    cdef dict parts = {}
    cdef dict touched = {}
    cdef object market, ts_ns, bucket, part, price, size, side, recv_ns
    flush = deriver._flush
    with localcontext(SUM_CONTEXT):
        for trade in trades:
            market = (trade.exchange, trade.symbol)
            ts_ns = trade.ts_ns
            bucket = ts_ns - ts_ns % base_ns
            part = parts.get(market)
            if part is not None and part.open_ns == bucket:
                price = trade.price
                size = trade.size
                if price > part.high:
                    part.high = price
                elif price < part.low:
                    part.low = price
                part.close = price
                part.volume += size
                part.quote_volume += price * size
                side = trade.side
                if side is _BUY:
                    part.buy_volume += size
                elif side is _SELL:
                    part.sell_volume += size
                part.trade_count += 1
                if ts_ns > part.last_ts_ns:
                    part.last_ts_ns = ts_ns
                recv_ns = trade.recv_ns
                if recv_ns > part.recv_ns:
                    part.recv_ns = recv_ns
                continue
            if part is not None:
                flush(market, part, out, touched)
            parts[market] = Bar(bucket, trade)
        for market, part in parts.items():
            flush(market, part, out, touched)
    updated = out.updated
    for builder in touched.values():
        if builder.bar is not None:
            updated.append(builder.candle(builder.bar, closed=False))
    return out
