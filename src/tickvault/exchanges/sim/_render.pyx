# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Compiled twins of ``sim/render.py`` (see there): the same text, built in C (sizes and
timestamps printed without Python calls, one join per message list)."""

from tickvault.exchanges.sim.wire import fixed, rfc3339_us

cdef long long _SCALE8 = 100_000_000


cdef inline str _lots(long long q, int decimals, int out):
    """``fixed(q, decimals, out)``; the common case (8 decimals, q >= 0) in C."""
    if decimals == 8 and out == 8 and q >= 0:
        return f"{q // _SCALE8}.{q % _SCALE8:08d}"
    return fixed(q, decimals, out)


cdef long long _second = -1
cdef str _second_prefix = ""


cdef inline str _rfc3339_us(long long ts_us):
    """``wire.rfc3339_us``, the date and time part reused within a second."""
    global _second, _second_prefix
    cdef long long second = ts_us // 1_000_000
    if second != _second:
        text = rfc3339_us(second * 1_000_000)
        _second_prefix = text[: len(text) - 7]  # "...T17:35:55."
        _second = second
    return f"{_second_prefix}{ts_us % 1_000_000:06d}Z"


def binance_trades(trades, str head, bint aggregate, prices, int qty_decimals):
    cdef list out = []
    cdef long long trade_id
    for t in trades:
        trade_id = t.trade_id
        maker = "true" if t.side == "sell" else "false"
        if aggregate:
            out.append(
                f'{head}{<long long>t.agg_id},"p":"{prices[t.price]}","q":"{_lots(t.qty, qty_decimals, 8)}",'
                f'"f":{trade_id},"l":{trade_id},"T":{<long long>t.ts_us // 1000},"m":{maker},"M":true}}'
            )
        else:
            out.append(
                f'{head}{trade_id},"p":"{prices[t.price]}","q":"{_lots(t.qty, qty_decimals, 8)}",'
                f'"T":{<long long>t.ts_us // 1000},"m":{maker},"M":true}}'
            )
    return out


def coinbase_l2(changes, str ts, prices, int qty_decimals):
    cdef str bid_head = f'{{"side":"bid","event_time":"{ts}","price_level":"'
    cdef str offer_head = f'{{"side":"offer","event_time":"{ts}","price_level":"'
    cdef list parts = []
    cdef tuple change
    for change in changes:
        parts.append(
            f'{bid_head if change[0] else offer_head}{prices[change[1]]}",'
            f'"new_quantity":"{_lots(change[2], qty_decimals, qty_decimals)}"}}'
        )
    return ",".join(parts)


def coinbase_trades(trades, str pid, prices, int qty_decimals):
    cdef list parts = []
    for t in trades:
        parts.append(
            f'{{"trade_id":"{<long long>t.trade_id}","product_id":"{pid}","price":"{prices[t.price]}",'
            f'"size":"{_lots(t.qty, qty_decimals, qty_decimals)}","side":"{"BUY" if t.side == "buy" else "SELL"}",'
            f'"time":"{_rfc3339_us(t.ts_us)}"}}'
        )
    return ",".join(parts)


def kraken_trades(trades, str symbol, prices, int qty_decimals):
    cdef list parts = []
    cdef long long trade_id
    for t in trades:
        trade_id = t.trade_id
        parts.append(
            f'{{"symbol":"{symbol}","side":"{t.side}","price":{prices[t.price]},'
            f'"qty":{_lots(t.qty, qty_decimals, qty_decimals)},"ord_type":"{"limit" if trade_id % 3 else "market"}",'
            f'"trade_id":{trade_id},"timestamp":"{_rfc3339_us(t.ts_us)}"}}'
        )
    return ",".join(parts)


def kraken_levels(levels, prices, int qty_decimals):
    cdef list parts = []
    for p, q in levels:
        parts.append(f'{{"price":{prices[p]},"qty":{_lots(q, qty_decimals, qty_decimals)}}}')
    return ",".join(parts)
