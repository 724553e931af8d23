# cython: language_level=3, boundscheck=False, wraparound=False
"""Compiled trade lines of :func:`tickvault.storage.postgres.copytext.encode_trades` (optional).

``trade_lines(batch, seconds, second)`` returns the text the pure loop builds — one
``%s\t%s\t%s%06d+00\t%s\t%s\t%s\t%s\t%s%06d+00\n`` line per trade, numbers as ``str(Decimal)``
— or ``None`` when a trade's times are not plain ``int``s in the 64-bit range (the pure loop
then runs, with Python's arithmetic). Pieces go into one list joined once; the microsecond
fields are written by ``snprintf``. ``seconds`` is the shared per-second memo and ``second``
the function that fills it, so both paths keep one memo.
"""

from libc.stdio cimport snprintf
from cpython.list cimport PyList_Append
from cpython.unicode cimport PyUnicode_DecodeASCII

from tickvault.model import Side, Trade

cdef object _BUY = Side.BUY
cdef object _SELL = Side.SELL
cdef str _BUY_TEXT = str(Side.BUY)
cdef str _SELL_TEXT = str(Side.SELL)
cdef long long NS = 1_000_000_000
cdef long long LIMIT = 9_000_000_000_000_000_000


cdef inline str _text(object value):
    """``"%s" % value``: a str as is, anything else through ``str()``."""
    if type(value) is str:
        return <str>value
    return str(value)


cdef inline str _micro(long long frac_ns, const char* end):
    """The microseconds of ``frac_ns`` (0 <= frac_ns < 1e9) as ``%06d`` and then ``end``."""
    cdef char buf[16]
    cdef int n = snprintf(buf, 16, "%06lld%s", frac_ns // 1000, end)
    return PyUnicode_DecodeASCII(buf, n, NULL)


cdef inline bint _plain_time(object value):
    return type(value) is int and -LIMIT <= value <= LIMIT


def trade_lines(batch, dict seconds, second):
    cdef list pieces = []
    cdef long long ts, recv, s, rs, f, rf
    cdef object ts_text, recv_text, side
    for e in batch:
        if not (_plain_time(e.ts_ns) and _plain_time(e.recv_ns)):
            return None
        ts = e.ts_ns
        recv = e.recv_ns
        # floor division as Python's divmod (times before 1970 are negative)
        s = ts // NS
        if ts - s * NS < 0:
            s -= 1
        f = ts - s * NS
        rs = recv // NS
        if recv - rs * NS < 0:
            rs -= 1
        rf = recv - rs * NS
        ts_text = seconds.get(s) or second(s)
        recv_text = seconds.get(rs) or second(rs)
        side = e.side
        PyList_Append(pieces, _text(e.exchange))
        PyList_Append(pieces, "\t")
        PyList_Append(pieces, _text(e.symbol))
        PyList_Append(pieces, "\t")
        PyList_Append(pieces, _text(ts_text))
        PyList_Append(pieces, _micro(f, "+00\t"))
        PyList_Append(pieces, _text(e.trade_id))
        PyList_Append(pieces, "\t")
        PyList_Append(pieces, str(e.price))
        PyList_Append(pieces, "\t")
        PyList_Append(pieces, str(e.size))
        PyList_Append(pieces, "\t")
        PyList_Append(pieces, _BUY_TEXT if side is _BUY else _SELL_TEXT if side is _SELL else _text(side))
        PyList_Append(pieces, "\t")
        PyList_Append(pieces, _text(recv_text))
        PyList_Append(pieces, _micro(rf, "+00\n"))
    return "".join(pieces)
