# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Compiled fast path of :class:`~tickvault.exchanges.coinbase.feed.CoinbaseFeed` (optional).

``entry(feed)`` is the feed's ``on_message`` while its fast path is on and compiled (a bound
method of the per-feed ``_Handles``, installed by ``CoinbaseFeed``); ``fast_message(feed, raw,
recv_ns)`` does what ``CoinbaseFeed._fast_message`` does — Advanced ``l2_data`` and
``market_trades`` envelopes — with the same results. A strict scanner (``exchanges/_scan.pxd``,
with word-at-a-time strings and the known keys matched in place) reads the message in one pass;
plain decimal strings (``numbers.plain_decimal``'s shape) become ``Decimal`` directly (filled in
place when CPython's layout check passes), prices through a small table of those already seen,
anything else goes to ``decode.level`` / ``decode.positive`` with their errors; RFC 3339 times
of the usual ``YYYY-MM-DDTHH:MM:SS.fffZ`` shape are read in C (others go to ``parse_time_ns``);
a live book update is applied to the feed's own ``L2Book`` in C (its slots at their offsets).
Book snapshots, updates for a book being resynced, a crossed book and a sequence gap take the
feed's Python methods. Anything unusual returns None before any feed state changes, and the
general decoder runs.
"""

from cpython.dict cimport PyDict_GetItem, PyDict_SetItem, PyDict_DelItem, PyDict_Next
from cpython.list cimport PyList_GET_SIZE, PyList_GET_ITEM
from cpython.object cimport (
    PyObject, PyTypeObject, PyObject_RichCompareBool, Py_EQ, Py_GT, Py_LT, Py_GE, Py_TYPE,
)
from cpython.unicode cimport PyUnicode_DecodeASCII
from cpython.tuple cimport PyTuple_GET_ITEM, PyTuple_New, PyTuple_SET_ITEM
from cpython.ref cimport Py_INCREF, Py_XDECREF
from libc.stdint cimport uint64_t
from libc.string cimport memcmp, memcpy
from cpython.mem cimport PyMem_Free, PyMem_Realloc

from tickvault.exchanges._scan cimport (
    NAME_SLOTS, SLOT_COUNT, Cursor, Slot, array_start, at_end, cached, feed_state, find_name,
    integer, is_key, item_end, keep, keep_name, member_end, open_cursor, plain_shape,
    release_names, skip_ws, string, take, text, untracked_pair,
)
from tickvault.exchanges._slots cimport slot_offset, slot_set

from decimal import Decimal

from tickvault.exchanges.base import FeedOutput
from tickvault.exchanges.coinbase.book import L2Book
from tickvault.exchanges.coinbase.decode import (
    EXCHANGE, BadMessage, BookOp, level, parse_time_ns, positive,
)
from tickvault.exchanges.coinbase.decode_advanced import taker_side
from tickvault.model import BookDelta, Trade

cdef object _BUY = taker_side("BUY")  # the side mapping, read once (decode_advanced's switch)
cdef object _SELL = taker_side("SELL")
cdef long long NS_PER_S = 1_000_000_000

cdef extern from "Python.h":
    void PyObject_GC_UnTrack(void* op)
    bint PyObject_GC_IsTracked(object op)
    object PyType_GenericAlloc(object type, Py_ssize_t items)
    long long PyLong_AsLongLongAndOverflow(object value, int* overflow) except? -1

# CPython's C ``Decimal`` object (Modules/_decimal/_decimal.c, ``PyDecObject``, and libmpdec's
# ``mpd_t``, 64-bit): a small coefficient lives in the object's own 4 words.
cdef extern from *:
    """
    typedef struct {
        uint8_t flags; Py_ssize_t exp; Py_ssize_t digits; Py_ssize_t len; Py_ssize_t alloc;
        uint64_t *data;
    } tv_mpd_t;
    typedef struct {
        PyObject_HEAD
        Py_hash_t hash;
        tv_mpd_t dec;
        uint64_t data[4];
    } tv_dec_t;
    static PyObject* tv_new_decimal(PyTypeObject* type, uint64_t coefficient,
                                    Py_ssize_t digits, Py_ssize_t exp) {
        /* what PyDecType_New then mpd_qset_string leave for a positive coefficient of at
           most 19 digits: flags MPD_STATIC|MPD_STATIC_DATA (16|32), one word */
        tv_dec_t* dec = PyObject_New(tv_dec_t, type);
        if (dec == NULL) return NULL;
        dec->hash = -1;
        dec->dec.flags = 16 | 32;
        dec->dec.exp = exp;
        dec->dec.digits = digits;
        dec->dec.len = 1;
        dec->dec.alloc = 4;
        dec->dec.data = dec->data;
        dec->data[0] = coefficient;
        return (PyObject*)dec;
    }
    static int tv_compare_words(PyObject* a, PyObject* b, int* result) {
        /* finite, non-negative, one-word coefficients with the same exponent: compared as
           the coefficients (exact); 0 when not of that kind */
        tv_mpd_t *x = &((tv_dec_t*)a)->dec, *y = &((tv_dec_t*)b)->dec;
        if (((x->flags | y->flags) & 15) || x->len != 1 || y->len != 1 || x->exp != y->exp)
            return 0;
        *result = (x->data[0] > y->data[0]) - (x->data[0] < y->data[0]);
        return 1;
    }
    """
    size_t TV_DEC_SIZE "sizeof(tv_dec_t)"
    bint tv_compare_words(PyObject* a, PyObject* b, int* result) noexcept nogil
    object tv_new_decimal(PyTypeObject* type, uint64_t coefficient, Py_ssize_t digits,
                          Py_ssize_t exp)
# Price wire string -> the (positive) value decode.py gives for it.
cdef Slot _POSITIVE_SLOTS[SLOT_COUNT]

# What the envelope's "channel" says.
cdef enum Channel:
    OTHER, L2, TRADES


cdef struct Levels:
    PyObject** items  # owned references
    Py_ssize_t n, cap
    bint tracked  # some level is a GC-tracked tuple (from the Python helper)


cdef struct Envelope:
    int channel
    long long sequence_num
    Py_ssize_t ts_start, ts_len, events_at


# --- numbers -----------------------------------------------------------------------------

cdef PyTypeObject* _DECIMAL_TYPE = <PyTypeObject*>Decimal
cdef bint _DIRECT = False  # Decimals built in place (layout checked at import: _check_direct)


cdef object _decimal(const unsigned char* s, Py_ssize_t start, Py_ssize_t length):
    """``Decimal(text)`` of a ``plain_shape`` text (``digits[.digits]``). Up to 19 digits the
    object is filled in directly (what ``Decimal(text)`` computes: coefficient, exponent =
    -digits after the dot, digit count), without the text object, the argument parsing and
    the string conversion; else, or when the layout check failed, ``Decimal(text)``."""
    cdef uint64_t coefficient = 0
    cdef Py_ssize_t k, exp = 0, digits = 0, total = 0
    cdef bint dot = False
    cdef unsigned char ch
    if _DIRECT and length <= 20:
        for k in range(start, start + length):
            ch = s[k]
            if ch == 46:
                dot = True
                continue
            coefficient = coefficient * 10 + (ch - 48)
            total += 1
            digits += coefficient != 0  # the coefficient's digits: from its first non-zero one
            if dot:
                exp -= 1
        if total <= 19:
            return tv_new_decimal(_DECIMAL_TYPE, coefficient, digits if digits else 1, exp)
    return Decimal(PyUnicode_DecodeASCII(<const char*>s + start, length, NULL))


cdef inline int _compare(a, b, int op) except -1:
    """``PyObject_RichCompareBool(a, b, op)`` (``op`` one of GT, LT, GE, EQ); two Decimals
    with one-word coefficients and the same exponent (prices of one product) are compared in
    C when the layout check passed."""
    cdef int r
    if (_DIRECT and Py_TYPE(a) == _DECIMAL_TYPE and Py_TYPE(b) == _DECIMAL_TYPE
            and tv_compare_words(<PyObject*>a, <PyObject*>b, &r)):
        if op == Py_GT:
            return r > 0
        if op == Py_LT:
            return r < 0
        if op == Py_GE:
            return r >= 0
        if op == Py_EQ:
            return r == 0
    return PyObject_RichCompareBool(a, b, op)


cdef uint64_t _POW10[20]
_POW10[0] = 1
for _k in range(1, 20):
    _POW10[_k] = _POW10[_k - 1] * 10


def _check_direct():
    """Turn the direct construction on only if it gives what ``Decimal(text)`` gives here: the
    C decimal module, a non-GC type of the expected size, and identical values, strings,
    tuples, hashes and arithmetic on a set of samples."""
    global _DIRECT
    import decimal
    _DIRECT = False
    if (type(Decimal) is not type or Decimal.__module__ != "decimal"
            or getattr(decimal, "__libmpdec_version__", None) is None
            or Decimal.__basicsize__ != TV_DEC_SIZE or Decimal.__flags__ & (1 << 14)
            or sizeof(Py_ssize_t) != 8):
        return False
    samples = ["0", "0.0", "000", "0.00000000", "1", "10", "1.0", "8.35919668", "70886.09",
               "0012.50", "9999999999999999999", "0.0000000000000000001", "5.", ".5",
               "1234567890.123456789", "100000000000000000.0", "3"]
    _DIRECT = True
    try:
        for sample in samples:
            raw = sample.encode()
            ours = _decimal(raw, 0, len(raw))
            theirs = Decimal(sample)
            if (str(ours) != str(theirs) or ours.as_tuple() != theirs.as_tuple()
                    or hash(ours) != hash(theirs) or ours != theirs
                    or ours + 1 != theirs + 1 or ours * 3 != theirs * 3
                    or bool(ours) != bool(theirs) or float(ours) != float(theirs)):
                _DIRECT = False
        values = [Decimal(sample) for sample in samples] + [
            _decimal(sample.encode(), 0, len(sample)) for sample in samples]
        for a in values:
            for b in values:
                if (_compare(a, b, Py_GT) != (a > b) or _compare(a, b, Py_LT) != (a < b)
                        or _compare(a, b, Py_GE) != (a >= b) or _compare(a, b, Py_EQ) != (a == b)):
                    _DIRECT = False
    except Exception:
        _DIRECT = False
    return _DIRECT


_check_direct()


def direct_decimals():
    """Whether plain numbers are built in place here (the layout check passed)."""
    return _DIRECT


def decimal_of(bytes text):
    """The ``Decimal`` the fast path builds for a plain ``digits[.digits]`` text (tests)."""
    if plain_shape(text, 0, len(text)) == 0:
        raise ValueError(f"not a plain decimal: {text!r}")
    return _decimal(text, 0, len(text))


def compare(a, b, int op):
    """The fast path's comparison of two prices (``op``: 0 <, 2 ==, 4 >, 5 >=; tests)."""
    if op not in (Py_LT, Py_EQ, Py_GT, Py_GE):
        raise ValueError(op)
    return bool(_compare(a, b, op))


# --- times -------------------------------------------------------------------------------

cdef inline int _digits(const unsigned char* s, Py_ssize_t at, int count) noexcept nogil:
    """``count`` ASCII digits at ``at`` as a number, -1 if one is not a digit."""
    cdef int total = 0, k
    cdef unsigned char ch
    for k in range(count):
        ch = s[at + k]
        if ch < 48 or ch > 57:
            return -1
        total = total * 10 + (ch - 48)
    return total


cdef inline bint _leap(int year) noexcept nogil:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


cdef int[13] _MONTH_DAYS
_MONTH_DAYS[:] = [0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]


# The ``YYYY-MM-DDTHH:MM:SS`` of the last time read and its seconds since the epoch: times of
# one second (most messages in a row) reuse them, checking only the fraction.
cdef unsigned char _LAST_PREFIX[19]
cdef long long _LAST_SECONDS
cdef bint _HAVE_LAST = False


cdef bint _time_ns(const unsigned char* s, Py_ssize_t at, Py_ssize_t length,
                   long long* out) noexcept nogil:
    """``YYYY-MM-DDTHH:MM:SS.f{1,9}Z`` in range -> ns since the epoch; False for anything
    else (``parse_time_ns`` then decides, with its errors)."""
    global _LAST_SECONDS, _HAVE_LAST
    cdef int year, month, day, hour, minute, second, k, fraction_digits
    cdef long long days, y, era, yoe, doy, fraction = 0
    cdef unsigned char ch
    # (years before 1700 or after 2200 are left to parse_time_ns: ns beyond 64 bits)
    if length < 22 or length > 30 or s[at + length - 1] != 90 or s[at + 19] != 46:  # 'Z' '.'
        return False
    fraction_digits = <int>(length - 21)
    for k in range(fraction_digits):
        ch = s[at + 20 + k]
        if ch < 48 or ch > 57:
            return False
        fraction = fraction * 10 + (ch - 48)
    fraction *= _POW10[9 - fraction_digits]
    if _HAVE_LAST and memcmp(_LAST_PREFIX, s + at, 19) == 0:
        out[0] = _LAST_SECONDS * NS_PER_S + fraction
        return True
    if (s[at + 4] != 45 or s[at + 7] != 45 or s[at + 10] != 84 or s[at + 13] != 58
            or s[at + 16] != 58):  # - - T : :
        return False
    year = _digits(s, at, 4)
    month = _digits(s, at + 5, 2)
    day = _digits(s, at + 8, 2)
    hour = _digits(s, at + 11, 2)
    minute = _digits(s, at + 14, 2)
    second = _digits(s, at + 17, 2)
    if year < 1700 or year > 2200 or month < 1 or month > 12 or day < 1 or hour < 0 or hour > 23:
        return False
    if minute < 0 or minute > 59 or second < 0 or second > 59:
        return False
    if day > _MONTH_DAYS[month] + (month == 2 and _leap(year)):
        return False
    y = year - (month <= 2)  # days from civil (proleptic Gregorian), y >= 0 here
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (month - 3 if month > 2 else month + 9) + 2) // 5 + day - 1
    days = era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468
    _LAST_SECONDS = days * 86400 + hour * 3600 + minute * 60 + second
    memcpy(_LAST_PREFIX, s + at, 19)
    _HAVE_LAST = True
    out[0] = _LAST_SECONDS * NS_PER_S + fraction
    return True


cdef object _time(Cursor* c, Py_ssize_t start, Py_ssize_t length):
    cdef long long value
    if _time_ns(c.s, start, length, &value):
        return value
    return parse_time_ns(text(c, start, length))


# --- scanning ----------------------------------------------------------------------------

cdef inline bint _key(Cursor* c, const char* name, Py_ssize_t length) noexcept nogil:
    """The object key ``"name"`` and its ``:`` (whitespace allowed before each), consumed;
    False (nothing consumed) when the next key is another one. A key that is none of those
    the caller knows ends the fast path whatever its spelling, so the known names are
    matched directly instead of scanning the key as a string first."""
    cdef Py_ssize_t k, i = c.i
    cdef uint64_t a, b
    if i + length + 2 > c.n or c.s[i] != 34:
        return False
    if length >= 8:  # two (overlapping) 8-byte words
        memcpy(&a, c.s + i + 1, 8)
        memcpy(&b, name, 8)
        if a != b:
            return False
        memcpy(&a, c.s + i + 1 + length - 8, 8)
        memcpy(&b, name + length - 8, 8)
        if a != b:
            return False
    else:
        for k in range(length):
            if c.s[i + 1 + k] != <unsigned char>name[k]:
                return False
    if c.s[i + 1 + length] != 34:
        return False
    c.i = i + length + 2
    if take(c, 58):
        return True
    c.i = i
    return False


cdef object _message(Cursor* c, Envelope* e, _Handles handles, recv_ns):
    """The whole envelope (fields channel, timestamp, sequence_num, events, client_id, type)
    -> its events built (``_l2_events`` / ``_trades``), or None. The events are built as they
    are read when the channel came first (as Coinbase sends it), else read again at the end."""
    cdef Py_ssize_t vs, vl
    cdef int seen = 0, bit, end = 0
    built = None
    e.channel = OTHER
    e.events_at = -1
    if not take(c, 123):
        return None
    while True:
        skip_ws(c)
        if _key(c, b"channel", 7):
            bit = 1
            if not string(c, &vs, &vl):
                return None
            if is_key(c.s, vs, vl, b"l2_data", 7):
                e.channel = L2
            elif is_key(c.s, vs, vl, b"market_trades", 13):
                e.channel = TRADES
            else:
                return None
        elif _key(c, b"timestamp", 9):
            bit = 2
            if not string(c, &e.ts_start, &e.ts_len):
                return None
        elif _key(c, b"sequence_num", 12):
            bit = 4
            if not integer(c, &e.sequence_num):
                return None
        elif _key(c, b"events", 6):
            bit = 8
            e.events_at = c.i
            if e.channel == L2:
                built = _l2_events(c, handles)
            elif e.channel == TRADES:
                built = _trades(c, handles, recv_ns)
            elif not _skip_array(c):
                return None
            if e.channel != OTHER and built is None:
                return None
        elif _key(c, b"client_id", 9):
            bit = 16
            if not string(c, &vs, &vl):
                return None
        elif _key(c, b"type", 4):
            bit = 32
            if not string(c, &vs, &vl):
                return None
        else:
            return None
        end = member_end(c, &seen, bit)
        if end < 0:
            return None
        if end:
            break
    if (seen & 15) != 15 or not at_end(c):
        return None
    if built is None:  # the events came before the channel
        c.i = e.events_at
        built = _l2_events(c, handles) if e.channel == L2 else _trades(c, handles, recv_ns)
    return built


cdef bint _skip_array(Cursor* c) noexcept:
    """An array of objects/arrays/strings/integers (no other values), skipped."""
    cdef int depth = 0
    cdef Py_ssize_t vs, vl
    cdef long long number
    cdef unsigned char ch
    # A bracket counter over the scanner's tokens: strings and integers are read with the
    # scanner, so a bracket inside a string is never counted; structure is checked in pass 2.
    while True:
        if take(c, 91) or take(c, 123):
            depth += 1
            continue
        if take(c, 93) or take(c, 125):
            depth -= 1
            if depth == 0:
                return True
            if depth < 0:
                return False
            continue
        if take(c, 44) or take(c, 58):
            continue
        if c.i >= c.n:
            return False
        ch = c.s[c.i]
        if ch == 34:
            if not string(c, &vs, &vl):
                return False
        elif not integer(c, &number):
            return False


cdef object _l2_events(Cursor* c, _Handles handles):
    """``[{type, product_id, updates: [{side, price_level, new_quantity, event_time?}]}]`` ->
    True, with the events' (symbol, snapshot, bids, asks) kept in ``handles`` (``op``); None for
    anything else (``BadMessage`` from the number helpers passes up)."""
    handles.start_ops()
    cdef int item = array_start(c)
    while item == 0:
        if not _l2_event(c, handles):
            return None
        item = item_end(c)
    return True if item > 0 else None


ctypedef int (*ItemReader)(Cursor* c, _Handles handles, object recv_ns, list batch) except -1


cdef inline int _event(Cursor* c, const char* items, Py_ssize_t items_length,
                       ItemReader read_item, _Handles handles, recv_ns, list batch,
                       Py_ssize_t* kind, Py_ssize_t* product) except -1:
    """One event ``{type, product_id, <items>: [item, ...]}`` (without ``product_id`` when
    ``product`` is NULL), each item read by ``read_item``; the type's and product id's (start,
    length) into ``kind`` and ``product``: the bits of the members read (type 1, product_id 2,
    items 4), or 0 when it is not of that shape."""
    cdef int seen = 0, bit, end = 0, item
    if not take(c, 123):
        return 0
    while end == 0:
        skip_ws(c)
        if _key(c, b"type", 4):
            bit = 1 if string(c, &kind[0], &kind[1]) else -1
        elif product != NULL and _key(c, b"product_id", 10):
            bit = 2 if string(c, &product[0], &product[1]) else -1
        elif _key(c, items, items_length):
            item = array_start(c)
            while item == 0:
                if not read_item(c, handles, recv_ns, batch):
                    return 0
                item = item_end(c)
            bit = 4 if item > 0 else -1
        else:
            return 0
        end = member_end(c, &seen, bit)
    return seen if end > 0 else 0


cdef int _l2_event(Cursor* c, _Handles handles) except -1:
    """One L2 event ``{type, product_id, updates}``, kept in ``handles``: 1, or 0 when it is not
    of that shape."""
    cdef Py_ssize_t kind[2]
    cdef Py_ssize_t product[2]
    if _event(c, b"updates", 7, _l2_update, handles, None, None, kind, product) != 7:
        return 0
    if is_key(c.s, kind[0], kind[1], b"update", 6):
        snapshot = False
    elif is_key(c.s, kind[0], kind[1], b"snapshot", 8):
        snapshot = True
    else:
        return 0
    symbol = handles.symbol(c, product[0], product[1])
    if symbol is None:
        return 0
    handles.add_op(symbol, snapshot)
    return 1


cdef int _l2_update(Cursor* c, _Handles handles, recv_ns, list batch) except -1:
    """One update ``{side, price_level, new_quantity, event_time?}``, its level pushed to its
    side in ``handles`` (an ``ItemReader``: ``recv_ns`` and ``batch`` unused): 1, or 0 when it
    is not of that shape."""
    cdef Py_ssize_t side_s, side_l, price_s, price_l, size_s, size_l, vs, vl
    cdef int seen = 0, bit, end, side
    if not take(c, 123):
        return 0
    while True:
        skip_ws(c)
        if _key(c, b"side", 4):
            bit = 1 if string(c, &side_s, &side_l) else -1
        elif _key(c, b"price_level", 11):
            bit = 2 if string(c, &price_s, &price_l) else -1
        elif _key(c, b"new_quantity", 12):
            bit = 4 if string(c, &size_s, &size_l) else -1
        elif _key(c, b"event_time", 10):
            bit = 8 if string(c, &vs, &vl) else -1
        else:
            return 0
        end = member_end(c, &seen, bit)
        if end < 0:
            return 0
        if end:
            break
    if (seen & 7) != 7:
        return 0
    if is_key(c.s, side_s, side_l, b"bid", 3):
        side = 0
    elif is_key(c.s, side_s, side_l, b"offer", 5):
        side = 1
    else:
        return 0
    handles.push(side, _level(c, price_s, price_l, size_s, size_l))
    return 1


cdef tuple _level(Cursor* c, Py_ssize_t price_s, Py_ssize_t price_l, Py_ssize_t size_s,
                  Py_ssize_t size_l):
    """``(price, size)`` as ``decode.level`` gives it. Prices repeat and come from the slots;
    sizes rarely repeat (a cache would mostly miss and evict), so a plain one is built."""
    cdef PyObject* price = cached(_POSITIVE_SLOTS, c.s, price_s, price_l)
    cdef tuple pair
    if (price == NULL and plain_shape(c.s, price_s, price_l) != 2) or plain_shape(
            c.s, size_s, size_l) == 0:
        # not plain (or a zero price): the checks and errors of ``level`` itself
        pair = level(text(c, price_s, price_l), text(c, size_s, size_l))
        keep(_POSITIVE_SLOTS, c.s, price_s, price_l, pair[0])
        return pair
    if price == NULL:
        value = _decimal(c.s, price_s, price_l)
        keep(_POSITIVE_SLOTS, c.s, price_s, price_l, value)
        price = <PyObject*>value
    return untracked_pair(<object>price, _decimal(c.s, size_s, size_l))


cdef object _positive(Cursor* c, Py_ssize_t start, Py_ssize_t length, str what, bint slots):
    """``decode.positive`` for a wire string, through the slots when ``slots``."""
    cdef PyObject* hit = cached(_POSITIVE_SLOTS, c.s, start, length) if slots else NULL
    if hit != NULL:
        return <object>hit
    if plain_shape(c.s, start, length) == 2:
        value = _decimal(c.s, start, length)
    else:
        value = positive(text(c, start, length), what)
    if slots:
        keep(_POSITIVE_SLOTS, c.s, start, length, value)
    return value


cdef object _trades(Cursor* c, _Handles handles, recv_ns):
    """``[{type, trades: [{trade_id, product_id, price, size, side, time}]}]`` -> the trades
    in time order (each event's list is newest first); None for anything else."""
    cdef list out = []
    cdef int item = array_start(c)
    while item == 0:
        if not _trade_event(c, handles, recv_ns, out):
            return None
        item = item_end(c)
    return out if item > 0 else None


cdef int _trade_event(Cursor* c, _Handles handles, recv_ns, list out) except -1:
    """One trades event ``{type, trades}``, its trades appended to ``out`` oldest first: 1, or 0
    when it is not of that shape."""
    cdef Py_ssize_t kind[2]
    cdef Py_ssize_t k
    cdef list batch = []
    if _event(c, b"trades", 6, _trade_item, handles, recv_ns, batch, kind, NULL) != 5:
        return 0
    for k in range(PyList_GET_SIZE(batch) - 1, -1, -1):
        out.append(<object>PyList_GET_ITEM(batch, k))
    return 1


cdef int _trade_item(Cursor* c, _Handles handles, recv_ns, list batch) except -1:
    """One trade ``{trade_id, product_id, price, size, side, time}`` (strings, each once, any
    order), appended to ``batch``: 1, or 0 when it is not of that shape."""
    cdef Py_ssize_t f[12]  # trade_id, product_id, price, size, side, time: (start, length)
    cdef int seen = 0, bit, end
    if not take(c, 123):
        return 0
    while True:
        skip_ws(c)
        if _key(c, b"trade_id", 8):
            bit = 1 if string(c, &f[0], &f[1]) else -1
        elif _key(c, b"product_id", 10):
            bit = 2 if string(c, &f[2], &f[3]) else -1
        elif _key(c, b"price", 5):
            bit = 4 if string(c, &f[4], &f[5]) else -1
        elif _key(c, b"size", 4):
            bit = 8 if string(c, &f[6], &f[7]) else -1
        elif _key(c, b"side", 4):
            bit = 16 if string(c, &f[8], &f[9]) else -1
        elif _key(c, b"time", 4):
            bit = 32 if string(c, &f[10], &f[11]) else -1
        else:
            return 0
        end = member_end(c, &seen, bit)
        if end < 0:
            return 0
        if end:
            break
    if seen != 63:
        return 0
    batch.append(_trade(c, f, handles, recv_ns))
    return 1


cdef object _trade(Cursor* c, Py_ssize_t* f, _Handles handles, recv_ns):
    """One trade, with the checks (and errors) of ``decode_advanced.trades_of``."""
    symbol = handles.symbol(c, f[2], f[3])
    if symbol is None:
        product_id = text(c, f[2], f[3])
        raise BadMessage("unknown_product", f"product {product_id!r} is not subscribed here")
    price = _positive(c, f[4], f[5], "price", True)
    size = _positive(c, f[6], f[7], "size", False)
    if is_key(c.s, f[8], f[9], b"BUY", 3):
        side = _BUY
    elif is_key(c.s, f[8], f[9], b"SELL", 4):
        side = _SELL
    else:
        side = taker_side(text(c, f[8], f[9]))
    return Trade(EXCHANGE, symbol, text(c, f[0], f[1]), price, size, side,
                 _time(c, f[10], f[11]), recv_ns)


# --- the book ----------------------------------------------------------------------------

cdef object _best(dict levels, bint highest):
    """max / min of the prices (None when empty), as ``L2Book.best_bid`` / ``best_ask``."""
    cdef Py_ssize_t pos = 0
    cdef PyObject* key
    cdef PyObject* value
    best = None
    while PyDict_Next(levels, &pos, &key, &value):
        if best is None or _compare(<object>key, best, Py_GT if highest else Py_LT):
            best = <object>key
    return best


# ``L2Book`` is a __slots__ class: its fields are read and written at their slots' offsets
# (what the member descriptors do), for books of exactly that class.
cdef Py_ssize_t _LEVELS[2]  # [bids, asks]
cdef Py_ssize_t _BEST[2]
cdef Py_ssize_t _DIRTY[2]
_LEVELS[0] = slot_offset(L2Book, "bids")
_LEVELS[1] = slot_offset(L2Book, "asks")
_BEST[0] = slot_offset(L2Book, "_best_bid")
_BEST[1] = slot_offset(L2Book, "_best_ask")
_DIRTY[0] = slot_offset(L2Book, "_bid_dirty")
_DIRTY[1] = slot_offset(L2Book, "_ask_dirty")


cdef inline PyObject* _slot_get(object obj, Py_ssize_t offset) noexcept:
    """The slot's value (borrowed), NULL when unset."""
    return (<PyObject**>((<char*><PyObject*>obj) + offset))[0]


cdef object _apply_side(book, tuple changes, int side):
    """One side (0 bids, 1 asks) of ``L2Book.apply``, then its best price as ``best_bid`` /
    ``best_ask`` resolves it; the cached best and dirty flag are written back only when they
    changed."""
    cdef tuple pair
    cdef bint dirty, was_dirty
    cdef PyObject* found = _slot_get(book, _LEVELS[side])
    cdef int op = Py_GT if side == 0 else Py_LT
    if found == NULL or type(<object>found) is not dict:
        raise AttributeError("L2Book levels")
    levels = <dict>found
    found = _slot_get(book, _BEST[side])
    was = <object>found if found != NULL else None
    found = _slot_get(book, _DIRTY[side])
    was_dirty = found != NULL and <object>found is True
    best = was
    dirty = was_dirty
    for pair in changes:
        price = <object>PyTuple_GET_ITEM(pair, 0)
        size = <object>PyTuple_GET_ITEM(pair, 1)
        if size:
            PyDict_SetItem(levels, price, size)
            if not dirty and (best is None or (price is not best and _compare(price, best, op))):
                best = price
        elif PyDict_GetItem(levels, price) != NULL:
            PyDict_DelItem(levels, price)
            if price is best or (best is not None and _compare(price, best, Py_EQ)):
                dirty = True
    if dirty:
        best = _best(levels, side == 0)
    if best is not was:
        slot_set(book, _BEST[side], best)
    if was_dirty:
        slot_set(book, _DIRTY[side], False)
    return best


cdef bint _apply(book, tuple bids, tuple asks) except -1:
    """``L2Book.apply`` then ``L2Book.crossed``: True when the book is crossed."""
    bid = _apply_side(book, bids, 0)
    best = _apply_side(book, asks, 1)
    return bid is not None and best is not None and _compare(bid, best, Py_GE)


# --- the message -------------------------------------------------------------------------

cdef class _Handles:
    """The feed's containers, looked up once per feed instead of once per message. The feed
    creates them in ``__init__`` and only ever mutates them, so the references stay valid.
    ``on_message`` is the feed's entry point while the compiled fast path is on."""
    cdef object feed, counters, general
    cdef dict by_id, last_ns, books, state
    cdef Slot symbols[NAME_SLOTS]  # product id -> canonical symbol, as by_id gives it
    cdef object output_type
    cdef Py_ssize_t slots[4]  # offsets of FeedOutput's slots: events, errors, gaps, resync
    cdef Py_ssize_t messages_slot  # offset of FeedCounters.messages
    cdef object key_symbol  # the last symbol and its (symbol, channel) keys of ``last_ns``
    cdef tuple book_key, trades_key
    # The L2 events of the message being read: the levels of the current one (bids, asks),
    # then per event (symbol, snapshot, bids, asks): the first in ``op_*``, others in ``more``.
    cdef Levels levels[2]
    cdef Py_ssize_t op_count
    cdef object op_symbol
    cdef bint op_snapshot
    cdef tuple op_bids, op_asks
    cdef list more

    def __init__(self, feed):
        self.feed = feed
        self.counters = feed.counters
        self.general = feed._general_message
        self.by_id = feed.symbols._by_id
        self.last_ns = feed._last_ns
        self.books = feed._books
        self.state = feed.__dict__  # ``_sequence_num`` is a plain instance attribute
        # FeedOutput and FeedCounters are slots dataclasses: their fields are written at the
        # offsets of their member descriptors (what the descriptors themselves do), and a
        # FeedOutput is allocated as object.__new__ would (it has no __new__ of its own).
        self.output_type = FeedOutput
        if FeedOutput.__new__ is not object.__new__:
            raise TypeError("FeedOutput has its own __new__")
        for index, name in enumerate(("events", "errors", "gaps", "resync")):
            self.slots[index] = slot_offset(FeedOutput, name)
        self.messages_slot = slot_offset(type(self.counters), "messages")
        self.key_symbol = None

    def __dealloc__(self):
        release_names(self.symbols)
        self.drop_levels()
        PyMem_Free(self.levels[0].items)
        PyMem_Free(self.levels[1].items)

    cdef void drop_levels(self) noexcept:
        cdef Py_ssize_t k
        cdef int side
        for side in range(2):
            for k in range(self.levels[side].n):
                Py_XDECREF(self.levels[side].items[k])
            self.levels[side].n = 0
            self.levels[side].tracked = False

    cdef inline void start_ops(self) noexcept:
        """Before reading a message's L2 events (levels of a message given up are dropped)."""
        if self.levels[0].n or self.levels[1].n:
            self.drop_levels()
        self.op_count = 0
        self.more = None

    cdef int push(self, int side, tuple pair) except -1:
        """One level of the current event."""
        cdef Levels* lv = &self.levels[side]
        cdef PyObject** grown
        if lv.n == lv.cap:
            grown = <PyObject**>PyMem_Realloc(lv.items, (lv.cap * 2 + 64) * sizeof(PyObject*))
            if grown == NULL:
                raise MemoryError()
            lv.items = grown
            lv.cap = lv.cap * 2 + 64
        Py_INCREF(pair)
        lv.items[lv.n] = <PyObject*>pair
        lv.n += 1
        if PyObject_GC_IsTracked(pair):
            lv.tracked = True
        return 0

    cdef tuple side_tuple(self, int side):
        """The current event's levels of one side as a tuple (references moved into it),
        untracked by the GC when no level is tracked (the GC's own rule for tuples)."""
        cdef Levels* lv = &self.levels[side]
        cdef Py_ssize_t k
        cdef tuple out = PyTuple_New(lv.n)
        for k in range(lv.n):
            PyTuple_SET_ITEM(out, k, <object>lv.items[k])  # steals the reference
        if lv.n and not lv.tracked:
            PyObject_GC_UnTrack(<void*>out)
        lv.n = 0
        lv.tracked = False
        return out

    cdef int add_op(self, symbol, bint snapshot) except -1:
        """The current event read: (symbol, snapshot, bids, asks)."""
        bids = self.side_tuple(0)
        asks = self.side_tuple(1)
        if self.op_count == 0:
            self.op_symbol = symbol
            self.op_snapshot = snapshot
            self.op_bids = bids
            self.op_asks = asks
        else:
            if self.more is None:
                self.more = []
            self.more.append((symbol, snapshot, bids, asks))
        self.op_count += 1
        return 0

    cdef object symbol(self, Cursor* c, Py_ssize_t start, Py_ssize_t length):
        """The canonical symbol of a product id, or None when the feed does not have it."""
        cdef PyObject* found = find_name(self.symbols, c.s, start, length)
        if found != NULL:
            return <object>found
        symbol = self.by_id.get(text(c, start, length))
        if symbol is not None:
            keep_name(self.symbols, c.s, start, length, symbol)
        return symbol

    cdef inline void keys(self, symbol):
        """``book_key``/``trades_key`` for ``symbol`` (equal tuples, built once per symbol)."""
        if symbol is not self.key_symbol:
            self.book_key = (symbol, "book")
            self.trades_key = (symbol, "trades")
            self.key_symbol = symbol

    cdef object output(self):
        """An empty ``FeedOutput``."""
        out = PyType_GenericAlloc(self.output_type, 0)
        slot_set(out, self.slots[0], [])
        slot_set(out, self.slots[1], [])
        slot_set(out, self.slots[2], [])
        slot_set(out, self.slots[3], [])
        return out

    cdef int count(self) except -1:
        """``counters.messages += 1``."""
        cdef PyObject** slot = <PyObject**>((<char*><PyObject*>self.counters) + self.messages_slot)
        if slot[0] == NULL:
            self.counters.messages += 1
            return 0
        slot_set(self.counters, self.messages_slot, <object>slot[0] + 1)
        return 0

    def on_message(self, raw, recv_ns):
        """``CoinbaseFeed.on_message`` with the compiled fast path on."""
        self.count()
        out = _fast_message(self.feed, self, raw, recv_ns)
        if out is not None:
            return out
        return self.general(raw, recv_ns)


cdef inline _Handles _handles(feed):
    return <_Handles?>feed_state(feed, _Handles)


def entry(feed):
    """The feed's compiled ``on_message`` (a bound method of its per-feed state)."""
    return _handles(feed).on_message


def fast_message(feed, raw, recv_ns):
    """``CoinbaseFeed._fast_message`` compiled: a ``FeedOutput``, or None for the decoder."""
    return _fast_message(feed, _handles(feed), raw, recv_ns)


cdef object _fast_message(feed, _Handles handles, raw, recv_ns):
    cdef Cursor c
    cdef Envelope e
    cdef Py_ssize_t k
    cdef PyObject* previous
    cdef int overflow = 0
    if not open_cursor(raw, &c):
        return None
    try:
        built = _message(&c, &e, handles, recv_ns)
        if built is None:
            return None
        ts_ns = _time(&c, e.ts_start, e.ts_len)
    except BadMessage:
        return None
    out = handles.output()
    previous = PyDict_GetItem(handles.state, "_sequence_num")
    if (previous != NULL and type(<object>previous) is int
            and e.sequence_num - 1 == PyLong_AsLongLongAndOverflow(<object>previous, &overflow)
            and not overflow):
        PyDict_SetItem(handles.state, "_sequence_num", e.sequence_num)
    else:
        feed._check_connection_sequence(e.sequence_num, ts_ns, recv_ns, out)
    events = <list>(<PyObject**>((<char*><PyObject*>out) + handles.slots[0]))[0]
    if e.channel == TRADES:
        last_ns = handles.last_ns
        for trade in <list>built:
            handles.keys(trade.symbol)
            PyDict_SetItem(last_ns, handles.trades_key, trade.ts_ns)
        events.extend(<list>built)
        return out
    books = handles.books
    for k in range(handles.op_count):
        if k == 0:
            symbol, snapshot = handles.op_symbol, handles.op_snapshot
            bids, asks = handles.op_bids, handles.op_asks
        else:
            symbol, snapshot, bids, asks = <tuple>handles.more[k - 1]
        book = books.get(symbol) if not snapshot else None
        if book is None or type(book) is not L2Book:
            feed._apply_book(BookOp(symbol, snapshot, list(bids), list(asks), ts_ns), recv_ns, out)
            continue
        if _apply(book, bids, asks):
            handles.counters.crossed_books += 1
            feed._resync([symbol], recv_ns, out, "crossed_book")
            continue
        handles.keys(symbol)
        PyDict_SetItem(handles.last_ns, handles.book_key, ts_ns)
        events.append(BookDelta(EXCHANGE, symbol, bids, asks, ts_ns, recv_ns))
    return out
