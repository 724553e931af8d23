# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Compiled fast path of :class:`~tickvault.exchanges.binance.feed.BinanceFeed` (optional).

``on_message`` is ``BinanceFeed.on_message`` when this module is built; ``fast_message(feed,
raw, recv_ns)`` does what ``BinanceFeed._fast_message`` does — enveloped diff depth and
bookTicker — with the same results, and enveloped aggTrade and kline as the general decoder
does them (with the trade-id gap check). A strict scanner (``exchanges/_scan.pxd``) reads the
message; wire numbers come from a table of the values ``decode._dec`` gave (a plain string is
built directly, anything else goes to ``_dec`` with its errors); the feed's own Python objects
(``BookSync``, ``SideLevels``) are kept, a live continuous diff being applied to the level dict
and sorted price list in C, with the crossed-book check and the top-N snapshot. Anything else —
a shape the scanner does not take, a book not live, a gap, a stale event, a crossed book — goes
to the feed's Python code, or the function returns None before touching any feed state and
the general decoder runs.
"""

from cpython.dict cimport PyDict_GetItem, PyDict_SetItem, PyDict_DelItem
from cpython.list cimport PyList_GET_SIZE, PyList_GET_ITEM, PyList_Insert, PyList_Append
from cpython.object cimport PyObject, PyObject_RichCompareBool, Py_LT, Py_GE
from cpython.tuple cimport PyTuple_New, PyTuple_SET_ITEM, PyTuple_GET_ITEM
from cpython.ref cimport Py_INCREF

from tickvault.exchanges._scan cimport (
    NAME_SLOTS, SLOT_COUNT, Cursor, Slot, array_start, at_end, boolean, cached, feed_state,
    find_name, integer, is_key, item_end, keep, keep_name, member_end, new_output, open_cursor,
    plain_shape, release_names, string, string_is, take, text, untracked_pair,
)
from decimal import Decimal

from tickvault.exchanges.base import FeedOutput
from tickvault.exchanges.binance.book import BookSync, DepthEvent, SyncStatus
from tickvault.exchanges.binance.decode import _dec, _Reject
from tickvault.exchanges.binance.symbols import EXCHANGE
from tickvault.model import TIMEFRAMES, BookSnapshot, Candle, Side, Ticker, Trade

cdef long long NS_PER_MS = 1_000_000
cdef long long MAX_MS = 9_000_000_000_000  # year 2255
cdef object _CROSSED = SyncStatus.CROSSED
cdef object _BUY = Side.BUY
cdef object _SELL = Side.SELL
cdef Slot _SLOTS[SLOT_COUNT]  # wire string -> the Decimal _dec gives for it

cdef extern from "Python.h":
    int PyList_SetSlice(object lst, Py_ssize_t low, Py_ssize_t high, PyObject* itemlist) except -1


cdef class _Depth:
    """Offsets of one scanned depthUpdate payload."""
    cdef long long event_ms, first_id, last_id
    cdef Py_ssize_t symbol[2]  # start, length
    cdef Py_ssize_t bids_at, asks_at


cdef inline int _letter_key(Cursor* c) noexcept nogil:
    """The next member's key when it is one character (its ``:`` consumed), else -1."""
    cdef Py_ssize_t ks, kl
    if not string(c, &ks, &kl) or kl != 1 or not take(c, 58):  # ':'
        return -1
    return c.s[ks]


cdef inline int _event_member(Cursor* c, int key, const char* event, Py_ssize_t event_length,
                              long long* event_ms, Py_ssize_t* symbol) noexcept nogil:
    """The members every event payload has: ``e`` (the string ``event``), ``E`` (its time,
    into ``event_ms``) and ``s`` (its symbol's start and length): the member's bit (1, 2, 4)
    once read, 0 when ``key`` is another one, -1 when the value is not what it must be."""
    if key == 101:  # e
        return 1 if string_is(c, event, event_length) else -1
    if key == 69:  # E
        return 2 if integer(c, event_ms) else -1
    if key == 115:  # s
        return 4 if string(c, &symbol[0], &symbol[1]) else -1
    return 0


cdef inline bint _level_strings(Cursor* c, Py_ssize_t* price, Py_ssize_t* size) noexcept nogil:
    """One book level ``["p","q"]``: its strings' (start, length)."""
    return (take(c, 91) and string(c, &price[0], &price[1]) and take(c, 44)
            and string(c, &size[0], &size[1]) and take(c, 93))


cdef bint _skip_levels(Cursor* c) noexcept nogil:
    """``[["p","q"], ...]`` (strings only), validated and skipped."""
    cdef Py_ssize_t price[2]
    cdef Py_ssize_t size[2]
    cdef int state = array_start(c)
    while state == 0:
        if not _level_strings(c, price, size):
            return False
        state = item_end(c)
    return state > 0


cdef object _value(Cursor* c, Py_ssize_t start, Py_ssize_t length):
    """A validated ``Decimal`` for a wire string (raises ``_Reject`` like ``_dec``)."""
    cdef PyObject* found = cached(_SLOTS, c.s, start, length)
    if found != NULL:
        return <object>found
    cdef str wire = text(c, start, length)
    # a plain string is valid and not negative by its shape (``numbers.plain_decimal``)
    value = Decimal(wire) if plain_shape(c.s, start, length) else _dec(wire)
    keep(_SLOTS, c.s, start, length, value)
    return value


cdef list _levels(Cursor* c):
    """Build the levels of an array ``_skip_levels`` accepted (the cursor at its ``[``)."""
    cdef Py_ssize_t price[2]
    cdef Py_ssize_t size[2]
    cdef list out = []
    cdef int state = array_start(c)
    while state == 0:
        _level_strings(c, price, size)
        PyList_Append(out, untracked_pair(_value(c, price[0], price[1]),
                                          _value(c, size[0], size[1])))
        state = item_end(c)
    return out


cdef bint _scan_depth(Cursor* c, _Depth d) noexcept:
    """The payload object of a diff-depth message: exactly its seven fields, any order."""
    cdef int seen = 0, bit, key, end = 0
    if not take(c, 123):  # '{'
        return False
    while end == 0:
        key = _letter_key(c)
        bit = _event_member(c, key, b"depthUpdate", 11, &d.event_ms, d.symbol)
        if bit == 0:
            if key == 85:  # U
                bit = 8 if integer(c, &d.first_id) else -1
            elif key == 117:  # u
                bit = 16 if integer(c, &d.last_id) else -1
            elif key == 98:  # b
                d.bids_at = c.i
                bit = 32 if _skip_levels(c) else -1
            elif key == 97:  # a
                d.asks_at = c.i
                bit = 64 if _skip_levels(c) else -1
            else:
                return False
        end = member_end(c, &seen, bit)
    return end > 0 and seen == 127


cdef bint _scan_ticker(Cursor* c, Py_ssize_t* slots) noexcept:
    """A bookTicker payload: ``u`` (integer) and ``s b B a A`` (strings; offsets into slots
    0-9 in that order), exactly these six fields in any order."""
    cdef int seen = 0, bit, slot, key, end = 0
    cdef long long number
    if not take(c, 123):
        return False
    while end == 0:
        key = _letter_key(c)
        if key == 117:  # u
            bit = 1
            if not integer(c, &number):
                return False
        else:
            slot = (0 if key == 115 else 1 if key == 98 else 2 if key == 66 else 3 if key == 97
                    else 4 if key == 65 else -1)
            if slot < 0 or not string(c, &slots[2 * slot], &slots[2 * slot + 1]):
                return False
            bit = 2 << slot
        end = member_end(c, &seen, bit)
    return end > 0 and seen == 63


cdef bint _scan_agg_trade(Cursor* c, Py_ssize_t* slots, long long* numbers,
                          bint* buyer_is_maker) noexcept:
    """An aggTrade payload: ``e`` = "aggTrade", integers ``E a f l T`` (into numbers 0-4),
    strings ``s p q`` (offsets into slots 0-5), boolean ``m``; also the documented ``M``
    (ignored, as the schema ignores it). Nothing else, each once, any order."""
    cdef int seen = 0, bit, field, key, end = 0
    cdef bint ignored
    if not take(c, 123):
        return False
    while end == 0:
        key = _letter_key(c)
        bit = _event_member(c, key, b"aggTrade", 8, &numbers[0], slots)
        if bit == 0:
            if key == 97 or key == 102 or key == 108 or key == 84:  # a f l T
                field = 1 if key == 97 else 2 if key == 102 else 3 if key == 108 else 4
                bit = (4 << field) if integer(c, &numbers[field]) else -1
            elif key == 112 or key == 113:  # p q
                field = 1 if key == 112 else 2
                bit = (64 << field) if string(c, &slots[2 * field], &slots[2 * field + 1]) else -1
            elif key == 109:  # m
                bit = 512 if boolean(c, buyer_is_maker) else -1
            elif key == 77:  # M
                bit = 1024 if boolean(c, &ignored) else -1
            else:
                return False
        end = member_end(c, &seen, bit)
    return end > 0 and (seen & 1023) == 1023


cdef struct Kline:
    long long event_ms
    Py_ssize_t symbol[2]  # start, length
    long long numbers[3]  # t (open time), T (close time), n (trade count)
    Py_ssize_t texts[20]  # i o c h l v q V Q s(of k): (start, length)
    bint closed


cdef bint _scan_kline_body(Cursor* c, Kline* k) noexcept:
    """The ``k`` object: integers ``t T n``, strings ``i o c h l v q V Q s``, boolean ``x``,
    each once; also ``f L`` (integers) and ``B`` (string), which the schema ignores."""
    cdef Py_ssize_t vs, vl
    cdef int seen = 0, bit, slot, key, end = 0
    cdef long long number
    if not take(c, 123):
        return False
    while end == 0:
        key = _letter_key(c)
        if key == 116 or key == 84 or key == 110:  # t T n
            slot = 0 if key == 116 else 1 if key == 84 else 2
            bit = (1 << slot) if integer(c, &k.numbers[slot]) else -1
        elif key == 102 or key == 76:  # f L
            bit = (1 << (3 if key == 102 else 4)) if integer(c, &number) else -1
        elif key == 120:  # x
            bit = (1 << 5) if boolean(c, &k.closed) else -1
        elif key == 66:  # B
            bit = (1 << 6) if string(c, &vs, &vl) else -1
        else:
            slot = (0 if key == 105 else 1 if key == 111 else 2 if key == 99 else 3 if key == 104
                    else 4 if key == 108 else 5 if key == 118 else 6 if key == 113 else 7
                    if key == 86 else 8 if key == 81 else 9 if key == 115 else -1)
            if slot < 0 or not string(c, &k.texts[2 * slot], &k.texts[2 * slot + 1]):
                return False
            bit = 1 << (7 + slot)
        end = member_end(c, &seen, bit)
    return end > 0 and (seen & 0b11111111110100111) == 0b11111111110100111  # not f L B


cdef bint _scan_kline(Cursor* c, Kline* k) noexcept:
    """A kline payload: ``e`` = "kline", ``E``, ``s`` and the ``k`` object, each once."""
    cdef int seen = 0, bit, key, end = 0
    if not take(c, 123):
        return False
    while end == 0:
        key = _letter_key(c)
        bit = _event_member(c, key, b"kline", 5, &k.event_ms, k.symbol)
        if bit == 0:
            if key != 107:  # k
                return False
            bit = 8 if _scan_kline_body(c, k) else -1
        end = member_end(c, &seen, bit)
    return end > 0 and seen == 15


cdef object _kline(Cursor* c, _Handles handles, Kline* k, recv_ns):
    """What the general path makes of a kline (None when it would be an error there)."""
    cdef Py_ssize_t* t = k.texts
    if k.event_ms > MAX_MS or k.numbers[0] > MAX_MS:
        return None
    symbol = handles.symbol(c, k.symbol[0], k.symbol[1])
    if symbol is None:
        return None
    interval = text(c, t[0], t[1])
    if interval not in TIMEFRAMES:
        return None
    try:
        volume = _value(c, t[10], t[11])
        buy_volume = _value(c, t[14], t[15])
        candle = Candle(
            EXCHANGE, symbol, interval, k.numbers[0] * NS_PER_MS,
            _value(c, t[2], t[3]), _value(c, t[6], t[7]), _value(c, t[8], t[9]),
            _value(c, t[4], t[5]), volume, k.closed, k.event_ms * NS_PER_MS, recv_ns,
            trade_count=k.numbers[2], quote_volume=_value(c, t[12], t[13]),
            buy_volume=buy_volume, sell_volume=volume - buy_volume,
        )
    except _Reject:
        return None
    handles.last_seen[(symbol, "candles")] = k.event_ms * NS_PER_MS
    return new_output(FeedOutput, [candle])


cdef int _kind(Cursor* c, Py_ssize_t start, Py_ssize_t length) noexcept:
    """1 = diff depth, 2 = bookTicker, 3 = aggTrade, 4 = kline, 0 = other, from the stream
    name's part after "@"."""
    cdef Py_ssize_t at = start, end = start + length
    while at < end and c.s[at] != 64:  # '@'
        at += 1
    if at == end:
        return 0
    at += 1
    if is_key(c.s, at, end - at, b"bookTicker", 10):
        return 2
    if is_key(c.s, at, end - at, b"aggTrade", 8):
        return 3
    if end - at > 6 and is_key(c.s, at, 6, b"kline_", 6):
        return 4
    if (is_key(c.s, at, end - at, b"depth", 5) or is_key(c.s, at, end - at, b"depth@100ms", 11)
            or is_key(c.s, at, end - at, b"depth@1000ms", 12)):
        return 1
    return 0


cdef int _update(dict book, list prices, list levels) except -1:
    """``SideLevels.update`` on its level dict and sorted prices: absolute sizes in order;
    size 0 deletes."""
    cdef Py_ssize_t lo, hi, mid
    cdef PyObject* old
    cdef tuple level
    for level in levels:
        price = <object>PyTuple_GET_ITEM(level, 0)
        if <object>PyTuple_GET_ITEM(level, 1):
            old = PyDict_GetItem(book, price)
            if old == NULL:
                lo, hi = 0, PyList_GET_SIZE(prices)  # insort (bisect right)
                while lo < hi:
                    mid = (lo + hi) >> 1
                    if PyObject_RichCompareBool(price, <object>PyList_GET_ITEM(prices, mid), Py_LT):
                        hi = mid
                    else:
                        lo = mid + 1
                PyList_Insert(prices, lo, price)
                PyDict_SetItem(book, price, level)
            elif <object>PyTuple_GET_ITEM(<tuple>old, 0) is price:
                PyDict_SetItem(book, price, level)
            else:  # keep the first spelling of the price
                PyDict_SetItem(book, price, (<object>PyTuple_GET_ITEM(<tuple>old, 0),
                                             <object>PyTuple_GET_ITEM(level, 1)))
        elif PyDict_GetItem(book, price) != NULL:
            PyDict_DelItem(book, price)
            lo, hi = 0, PyList_GET_SIZE(prices)  # bisect left
            while lo < hi:
                mid = (lo + hi) >> 1
                if PyObject_RichCompareBool(<object>PyList_GET_ITEM(prices, mid), price, Py_LT):
                    lo = mid + 1
                else:
                    hi = mid
            PyList_SetSlice(prices, lo, lo + 1, NULL)
    return 0


cdef tuple _top(dict book, list prices, Py_ssize_t depth, bint highest):
    """``SideLevels.highest`` / ``lowest``: the best ``depth`` level tuples."""
    cdef Py_ssize_t size = PyList_GET_SIZE(prices)
    cdef Py_ssize_t count = depth if depth < size else size
    cdef Py_ssize_t k
    cdef tuple out = PyTuple_New(count)
    for k in range(count):
        level = <object>PyDict_GetItem(
            book, <object>PyList_GET_ITEM(prices, size - 1 - k if highest else k)
        )
        Py_INCREF(level)
        PyTuple_SET_ITEM(out, k, level)
    return out


cdef class _Handles:
    """The feed's containers, looked up once per feed instead of once per message. The feed
    creates them in ``__init__`` and only ever mutates them, so the references stay valid."""
    cdef object counters
    cdef dict by_id, last_seen, books
    cdef Py_ssize_t book_depth
    cdef Slot symbols[NAME_SLOTS]  # wire symbol -> canonical symbol, as by_id gives it

    def __init__(self, feed):
        self.counters = feed.counters
        self.by_id = feed.symbols.by_id
        self.last_seen = feed._last_seen
        self.books = feed._books
        self.book_depth = feed.book_depth

    def __dealloc__(self):
        release_names(self.symbols)

    cdef object symbol(self, Cursor* c, Py_ssize_t start, Py_ssize_t length):
        """The canonical symbol of a wire symbol, or None when the feed has no such market."""
        cdef PyObject* found = find_name(self.symbols, c.s, start, length)
        if found != NULL:
            return <object>found
        instrument = self.by_id.get(text(c, start, length))
        if instrument is None:
            return None
        keep_name(self.symbols, c.s, start, length, instrument.symbol)
        return instrument.symbol


cdef inline _Handles _handles(feed):
    return <_Handles?>feed_state(feed, _Handles)


def on_message(self, raw, recv_ns):
    """``BinanceFeed.on_message`` (it is this function when the module is built)."""
    cdef _Handles handles = _handles(self)
    handles.counters.messages += 1
    if self.fast_path:
        if self.compiled:
            out = _fast_message(self, handles, raw, recv_ns)
        else:
            out = self._fast_message(raw, recv_ns)
        if out is not None:
            return out
    return self._general_message(raw, recv_ns)


def fast_message(feed, raw, recv_ns):
    """``BinanceFeed._fast_message`` compiled: a ``FeedOutput``, or None for the decoder."""
    return _fast_message(feed, _handles(feed), raw, recv_ns)


cdef object _fast_message(feed, _Handles handles, raw, recv_ns):
    cdef Cursor c
    cdef Py_ssize_t ss, sl, ks, kl
    cdef Py_ssize_t slots[10]
    cdef long long numbers[5]
    cdef bint buyer_is_maker
    cdef Kline kline
    cdef int kind
    cdef _Depth d
    cdef list bids, asks
    if not open_cursor(raw, &c) or not take(&c, 123):
        return None
    if not string(&c, &ks, &kl) or not is_key(c.s, ks, kl, b"stream", 6) or not take(&c, 58):
        return None
    if not string(&c, &ss, &sl) or not take(&c, 44):
        return None
    if not string(&c, &ks, &kl) or not is_key(c.s, ks, kl, b"data", 4) or not take(&c, 58):
        return None
    kind = _kind(&c, ss, sl)
    if kind == 1:
        d = _Depth.__new__(_Depth)
        if not _scan_depth(&c, d) or not take(&c, 125) or not at_end(&c):
            return None
        if d.event_ms > MAX_MS:
            return None  # ns would not fit in 64 bits: the Python path has big integers
        symbol = handles.symbol(&c, d.symbol[0], d.symbol[1])
        if symbol is None:
            return None
        try:
            c.i = d.bids_at
            bids = _levels(&c)
            c.i = d.asks_at
            asks = _levels(&c)
        except _Reject:
            return None
        return _depth(feed, handles, symbol, d, bids, asks, recv_ns)
    if kind == 2:
        if not _scan_ticker(&c, slots) or not take(&c, 125) or not at_end(&c):
            return None
        symbol = handles.symbol(&c, slots[0], slots[1])
        if symbol is None:
            return None
        try:  # bid price and size, ask price and size
            ticker = Ticker(EXCHANGE, symbol, recv_ns, recv_ns, _value(&c, slots[2], slots[3]),
                            _value(&c, slots[4], slots[5]), _value(&c, slots[6], slots[7]),
                            _value(&c, slots[8], slots[9]))
        except _Reject:
            return None
        handles.last_seen[(symbol, "ticker")] = recv_ns  # spot bookTicker has no time
        return new_output(FeedOutput, [ticker])
    if kind == 3:
        if not _scan_agg_trade(&c, slots, numbers, &buyer_is_maker) or not take(&c, 125):
            return None
        if not at_end(&c) or numbers[4] > MAX_MS:
            return None
        symbol = handles.symbol(&c, slots[0], slots[1])
        if symbol is None:
            return None
        try:
            price = _value(&c, slots[2], slots[3])
            size = _value(&c, slots[4], slots[5])
        except _Reject:
            return None
        return _agg_trade(feed, handles, symbol, numbers, price, size, buyer_is_maker, recv_ns)
    if kind == 4:
        if not _scan_kline(&c, &kline) or not take(&c, 125) or not at_end(&c):
            return None
        return _kline(&c, handles, &kline, recv_ns)
    return None


cdef object _agg_trade(feed, _Handles handles, str symbol, long long* numbers, price, size,
                       bint buyer_is_maker, recv_ns):
    """What the general path makes of an aggTrade: the trade, the trade-id check, the time."""
    cdef object ts_ns = numbers[4] * NS_PER_MS
    trade = Trade(EXCHANGE, symbol, str(numbers[1]), price, size,
                  _SELL if buyer_is_maker else _BUY, ts_ns, recv_ns)
    out = new_output(FeedOutput, [trade])
    jumps = feed._trade_ids.check(out.events, out.gaps)
    if jumps:
        handles.counters.sequence_gaps += jumps
    handles.last_seen[(symbol, "trades")] = ts_ns
    return out


cdef object _depth(feed, _Handles handles, str symbol, _Depth d, list bids, list asks, recv_ns):
    cdef object ts_ns = d.event_ms * NS_PER_MS  # one int object for every use below
    cdef object last_id = d.last_id
    cdef dict books = handles.books
    cdef PyObject* found
    handles.last_seen[(symbol, "book")] = ts_ns
    found = PyDict_GetItem(books, symbol)
    if found == NULL:
        sync = BookSync()
        books[symbol] = sync
    else:
        sync = <object>found
    out = new_output(FeedOutput, [])
    if sync.synced:
        update_id = sync.update_id
        if last_id > update_id and d.first_id == update_id + 1:  # live and continuous
            book = sync.book
            book_bids = book.bids
            book_asks = book.asks
            bid_levels = <dict>book_bids.levels
            bid_prices = <list>book_bids.prices
            ask_levels = <dict>book_asks.levels
            ask_prices = <list>book_asks.prices
            _update(bid_levels, bid_prices, bids)
            _update(ask_levels, ask_prices, asks)
            sync.update_id = last_id
            sync.last_ts_ns = ts_ns
            if (PyList_GET_SIZE(bid_prices) and PyList_GET_SIZE(ask_prices)
                    and PyObject_RichCompareBool(
                        <object>PyList_GET_ITEM(bid_prices, PyList_GET_SIZE(bid_prices) - 1),
                        <object>PyList_GET_ITEM(ask_prices, 0), Py_GE)):
                sync._unsync()
                event = DepthEvent(d.first_id, last_id, ts_ns, recv_ns, bids, asks)
                feed._handle(symbol, sync, _CROSSED, out, event, recv_ns)
                return out
            out.events.append(BookSnapshot(
                EXCHANGE, symbol,
                _top(bid_levels, bid_prices, handles.book_depth, True),
                _top(ask_levels, ask_prices, handles.book_depth, False),
                ts_ns, recv_ns, last_id,
            ))
            return out
    event = DepthEvent(d.first_id, last_id, ts_ns, recv_ns, bids, asks)
    feed._handle(symbol, sync, sync.on_event(event), out, event, recv_ns)
    return out
