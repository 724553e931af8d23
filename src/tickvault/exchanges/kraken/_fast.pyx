# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: auto_pickle=False
"""Compiled Kraken core: the v1 fast path (book updates, trades, tickers) and the book.

Same results as the pure-Python modules it stands in for (``feed.KrakenFeed._fast_v1`` and
``book.KrakenBook``), which remain the fallback when this extension is not built;
``tests/unit/test_fast_paths.py`` compares all paths message by message. See
docs/replay.md "Compiled fast paths".

* :class:`KrakenBook`: per side a C array of levels sorted best first, each holding its price
  and quantity ``Decimal`` and its checksum digits (``bytes``), plus a ``double`` sort key (the
  correctly rounded price, negated for bids; equal keys fall back to comparing the Decimals,
  so the order is exact). The CRC32 (slice-by-8) keeps each level's register and resumes at
  the first level changed since the last checksum.
* :class:`V1Fast`: reads a v1 message straight from the text (str of ASCII, or bytes) with a
  strict JSON scanner for exactly the shapes it handles, and gives up (``None``) on anything
  else - escapes, non-ASCII, exponents, unknown keys, non-plain numbers, an unsynced book -
  before touching any state, so the general decoder handles those. Wire strings already seen
  map to their ``Decimal``, checksum digits and sort key (a table keyed by the raw characters,
  cleared when half full).
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.mem cimport PyMem_Free, PyMem_Malloc, PyMem_Realloc
from cpython.object cimport PyTypeObject
from cpython.ref cimport Py_DECREF, Py_INCREF, Py_XDECREF, PyObject
from cpython.tuple cimport PyTuple_New, PyTuple_SET_ITEM
from libc.stdint cimport int64_t, uint32_t, uint64_t
from libc.string cimport memcmp, memcpy, memmove, memset

cimport cython

from tickvault.exchanges._slots cimport slot_offset, slot_set

from decimal import Decimal

from tickvault.exchanges.base import FeedOutput
from tickvault.exchanges.kraken.checksum import decimal_text, digits
from tickvault.model import BookDelta, Side, Ticker, Trade

cdef extern from "Python.h":
    PyObject* PyType_GenericAlloc(PyTypeObject*, Py_ssize_t)
    char* _bytes_data "PyBytes_AS_STRING" (PyObject*)
    Py_ssize_t _bytes_size "PyBytes_GET_SIZE" (PyObject*)
    bint PyUnicode_IS_COMPACT_ASCII(object)
    void* PyUnicode_DATA(object)
    Py_ssize_t PyUnicode_GET_LENGTH(object)
    object PyUnicode_DecodeASCII(const char*, Py_ssize_t, const char*)
    double PyOS_string_to_double(const char*, char**, PyObject*) except? -1.0

cdef str EXCHANGE = "kraken"
cdef object ZERO = Decimal(0)
cdef object BUY = Side.BUY
cdef object SELL = Side.SELL
cdef Py_ssize_t MAX_LEVELS = 256  # per message; longer updates go to the general decoder
cdef Py_ssize_t CHECKSUM_LEVELS = 10
cdef int64_t MAX_SECONDS = 9 * <int64_t>1_000_000_000  # epoch ns stay below 2**63
# Wire strings kept per feed in an open-addressing table keyed by the raw characters (no str
# object per lookup), cleared when half full: small enough to stay in the CPU caches; a
# random-looking size string rarely comes back, a price level's string does.
cdef enum:
    CACHE_SLOTS = 8192
cdef Py_ssize_t CACHE_MAX = CACHE_SLOTS // 2


# --- CRC32 (zlib's polynomial), slice-by-8 ---------------------------------------------------

cdef uint32_t CRC[8][256]
cdef uint32_t CRC_START = ~(<uint32_t>0)  # the register before any byte (zlib's pre-inversion)
cdef bint LITTLE_ENDIAN


cdef void _crc_tables() noexcept:
    global LITTLE_ENDIAN
    cdef uint32_t c, i, k, t
    for i in range(256):
        c = i
        for k in range(8):
            c = (c >> 1) ^ (0xEDB88320 if c & 1 else 0)
        CRC[0][i] = c
    for i in range(256):
        for t in range(1, 8):
            CRC[t][i] = (CRC[t - 1][i] >> 8) ^ CRC[0][CRC[t - 1][i] & 0xFF]
    cdef uint32_t probe = 1
    LITTLE_ENDIAN = (<unsigned char*>&probe)[0] == 1


_crc_tables()


cdef inline uint32_t _crc_update(uint32_t crc, const unsigned char* p, Py_ssize_t n) noexcept:
    """Continue a CRC32 (pre/post-inverted state kept inverted by the caller)."""
    cdef uint32_t one, two
    if LITTLE_ENDIAN:
        while n >= 8:
            memcpy(&one, p, 4)
            memcpy(&two, p + 4, 4)
            one ^= crc
            crc = (CRC[7][one & 0xFF] ^ CRC[6][(one >> 8) & 0xFF] ^ CRC[5][(one >> 16) & 0xFF]
                   ^ CRC[4][one >> 24] ^ CRC[3][two & 0xFF] ^ CRC[2][(two >> 8) & 0xFF]
                   ^ CRC[1][(two >> 16) & 0xFF] ^ CRC[0][two >> 24])
            p += 8
            n -= 8
    while n > 0:
        crc = CRC[0][(crc ^ p[0]) & 0xFF] ^ (crc >> 8)
        p += 1
        n -= 1
    return crc


def crc32(bytes data):
    """zlib.crc32 of ``data`` (for the tests of this implementation)."""
    return ~_crc_update(CRC_START, <const unsigned char*>PyBytes_AS_STRING(data),
                        PyBytes_GET_SIZE(data))


# --- the book ----------------------------------------------------------------------------------

cdef struct Lvl:
    double key  # price (asks) or -price (bids), correctly rounded: ascending = best first
    PyObject* price  # Decimal
    PyObject* qty  # Decimal
    PyObject* tok  # bytes: the level's checksum digits (price digits, then quantity digits)
    uint32_t state  # CRC32 register after this level's tokens (valid below _Side.dirty)


cdef inline void _release(Lvl* lv) noexcept:
    Py_XDECREF(lv.price)
    Py_XDECREF(lv.qty)
    Py_XDECREF(lv.tok)


cdef inline void _replace(PyObject** slot, object value) noexcept:
    Py_INCREF(value)
    Py_XDECREF(slot[0])
    slot[0] = <PyObject*>value


cdef inline bytes _join(const char* a, Py_ssize_t a_len, const char* b, Py_ssize_t b_len):
    cdef char buf[128]
    memcpy(buf, a, a_len)
    memcpy(buf + a_len, b, b_len)
    return PyBytes_FromStringAndSize(buf, a_len + b_len)


cdef class _Side:
    cdef Lvl* lv
    cdef Py_ssize_t n
    cdef Py_ssize_t cap
    cdef bint bids
    # Levels from ``dirty`` on changed since the last checksum: the checksum resumes from the
    # CRC state of the level before (a message usually changes one level of one side).
    cdef Py_ssize_t dirty

    def __cinit__(self, bint bids):
        self.bids = bids
        self.n = 0
        self.dirty = 0
        self.cap = 32
        self.lv = <Lvl*>PyMem_Malloc(self.cap * sizeof(Lvl))
        if self.lv == NULL:
            raise MemoryError()

    def __dealloc__(self):
        self.clear()
        PyMem_Free(self.lv)

    cdef void clear(self) noexcept:
        cdef Py_ssize_t i
        for i in range(self.n):
            _release(&self.lv[i])
        self.n = 0
        self.dirty = 0

    cdef Py_ssize_t find(self, double key, object price, bint* found) except -1:
        """Index of ``price``'s level (found) or where it belongs (not found)."""
        cdef Py_ssize_t lo = 0, hi = self.n, mid
        while lo < hi:
            mid = (lo + hi) >> 1
            if self.lv[mid].key < key:
                lo = mid + 1
            else:
                hi = mid
        cdef object other
        while lo < self.n and self.lv[lo].key == key:  # rounding ties: exact comparison
            other = <object>self.lv[lo].price
            if other is price or other == price:
                found[0] = True
                return lo
            if (other > price) if self.bids else (other < price):
                lo += 1
            else:
                break
        found[0] = False
        return lo

    cdef int put(self, double key, object price, object qty, object tok) except -1:
        """Set a level (a new price is inserted in order; an existing one keeps its price
        object, as a dict key would, and takes the new quantity and tokens)."""
        cdef bint found
        cdef Py_ssize_t i = self.find(key, price, &found)
        cdef Lvl* lv
        if i < self.dirty:
            self.dirty = i
        if found:
            lv = &self.lv[i]
            _replace(&lv.qty, qty)
            _replace(&lv.tok, tok)
            return 0
        if self.n == self.cap:
            lv = <Lvl*>PyMem_Realloc(self.lv, 2 * self.cap * sizeof(Lvl))
            if lv == NULL:
                raise MemoryError()
            self.lv = lv
            self.cap *= 2
        if i < self.n:
            memmove(&self.lv[i + 1], &self.lv[i], (self.n - i) * sizeof(Lvl))
        lv = &self.lv[i]
        lv.key = key
        lv.price = lv.qty = lv.tok = NULL
        _replace(&lv.price, price)
        _replace(&lv.qty, qty)
        _replace(&lv.tok, tok)
        self.n += 1
        return 0

    cdef int remove(self, double key, object price) except -1:
        cdef bint found
        cdef Py_ssize_t i = self.find(key, price, &found)
        if found:
            if i < self.dirty:
                self.dirty = i
            _release(&self.lv[i])
            self.n -= 1
            if i < self.n:
                memmove(&self.lv[i], &self.lv[i + 1], (self.n - i) * sizeof(Lvl))
        return 0

    cdef list levels(self, Py_ssize_t limit):
        cdef Py_ssize_t i, count = self.n if limit < 0 or limit > self.n else limit
        cdef list out = []
        for i in range(count):
            out.append((<object>self.lv[i].price, <object>self.lv[i].qty))
        return out

    cdef uint32_t crc(self, uint32_t crc) noexcept:
        """Continue ``crc`` (the register before this side's first level) over the top
        levels' tokens, resuming at the first changed level."""
        cdef Py_ssize_t i = self.dirty, top = self.n if self.n < CHECKSUM_LEVELS else CHECKSUM_LEVELS
        cdef Lvl* lv
        if i > top:
            i = top
        if i > 0:
            crc = self.lv[i - 1].state
        while i < top:
            lv = &self.lv[i]
            crc = _crc_update(crc, <unsigned char*>_bytes_data(lv.tok), _bytes_size(lv.tok))
            lv.state = crc
            i += 1
        self.dirty = CHECKSUM_LEVELS
        return crc


cdef inline double _key(object price, bint bids) except? -1.0:
    cdef double key = float(price)  # correctly rounded: monotonic in the exact value
    return -key if bids else key


cdef class KrakenBook:
    """Compiled twin of :class:`tickvault.exchanges.kraken.book.KrakenBook` (same API)."""

    cdef public Py_ssize_t depth
    cdef public object price_decimals
    cdef public object qty_decimals
    cdef public bint synced
    cdef _Side _bids
    cdef _Side _asks
    cdef uint32_t _asks_final  # the CRC register after the asks at the last checksum

    def __init__(self, Py_ssize_t depth, price_decimals=None, qty_decimals=None):
        if depth < 1:
            raise ValueError(f"book depth must be positive, got {depth}")
        self.depth = depth
        self.price_decimals = price_decimals
        self.qty_decimals = qty_decimals
        self._bids = _Side(True)
        self._asks = _Side(False)
        self.synced = False

    def reset(self):
        self._bids.clear()
        self._asks.clear()
        self.synced = False

    def load_snapshot(self, bids, asks):
        self._bids.clear()
        self._asks.clear()
        self.apply(bids, asks)
        self.truncate()
        self.synced = True

    def apply(self, bids, asks):
        cdef _Side side
        cdef object levels, price, qty
        cdef object price_decimals = self.price_decimals, qty_decimals = self.qty_decimals
        for side, levels in ((self._bids, bids), (self._asks, asks)):
            for price, qty in levels:
                if qty == ZERO:
                    side.remove(_key(price, side.bids), price)
                else:
                    side.put(_key(price, side.bids), price, qty,
                             (digits(decimal_text(price, price_decimals))
                              + digits(decimal_text(qty, qty_decimals))).encode("ascii"))

    def truncate(self):
        """Cut each side to the depth; the prices dropped as (bids, asks), ascending."""
        cdef list dropped_bids = [], dropped_asks = []
        cdef Py_ssize_t i
        cdef _Side side = self._bids
        for i in range(side.n - 1, self.depth - 1, -1):  # lowest bids first
            dropped_bids.append(<object>side.lv[i].price)
        self._cut(side)
        side = self._asks
        for i in range(self.depth, side.n):
            dropped_asks.append(<object>side.lv[i].price)
        self._cut(side)
        return dropped_bids, dropped_asks

    cdef void _cut(self, _Side side) noexcept:
        cdef Py_ssize_t i
        for i in range(self.depth, side.n):
            _release(&side.lv[i])
        if side.n > self.depth:
            side.n = self.depth
            if self.depth < side.dirty:
                side.dirty = self.depth

    cdef uint32_t _checksum(self) noexcept:
        """CRC32 of the top asks' then the top bids' tokens; the bids' states hang on the
        asks' final register, so they are all recomputed when that changed."""
        cdef uint32_t asks = self._asks.crc(CRC_START)
        if asks != self._asks_final:
            self._asks_final = asks
            self._bids.dirty = 0
        return ~self._bids.crc(asks)

    def checksum(self):
        return self._checksum()

    cdef bint _crossed(self) except -1:
        if self._bids.n == 0 or self._asks.n == 0:
            return False
        cdef double bid = -self._bids.lv[0].key, ask = self._asks.lv[0].key
        if bid != ask:
            return bid > ask
        return <object>self._bids.lv[0].price >= <object>self._asks.lv[0].price

    def is_crossed(self):
        return self._crossed()

    def bids(self, limit=None):
        if limit is not None and limit <= 0:
            return []
        return self._bids.levels(-1 if limit is None else limit)

    def asks(self, limit=None):
        if limit is not None and limit <= 0:
            return []
        return self._asks.levels(-1 if limit is None else limit)

    def __len__(self):
        return self._bids.n + self._asks.n


# --- wire strings ------------------------------------------------------------------------------

@cython.no_gc  # holds a Decimal and bytes only: no cycles, and the cache holds many
cdef class _Wire:
    """A plain wire number: its Decimal, checksum digits, zero-ness and (lazily) sort key."""
    cdef object value
    cdef char text[64]  # the wire characters (at most 60)
    cdef char token[64]  # checksum digits: no ".", no leading zeros
    cdef Py_ssize_t text_len
    cdef Py_ssize_t token_len
    cdef double key
    cdef bint keyed
    cdef bint zero


cdef struct Slot:
    uint64_t hash
    PyObject* wire  # an owned _Wire, or NULL


cdef inline bint _is_ws(char c) noexcept:
    return c == 32 or c == 10 or c == 13 or c == 9


cdef inline Py_ssize_t _ws(const char* s, Py_ssize_t i, Py_ssize_t n) noexcept:
    while i < n and _is_ws(s[i]):
        i += 1
    return i


cdef inline Py_ssize_t _string(const char* s, Py_ssize_t i, Py_ssize_t n) noexcept:
    """``s[i]`` opens a string: the index after its closing quote, or -1 when it is not a
    string of printable ASCII without escapes (the general decoder takes those)."""
    cdef unsigned char c
    if i >= n or s[i] != 34:
        return -1
    i += 1
    while i < n:
        c = <unsigned char>s[i]
        if c == 34:
            return i + 1
        if c == 92 or c < 32 or c > 126:
            return -1
        i += 1
    return -1


cdef Py_ssize_t _number(const char* s, Py_ssize_t i, Py_ssize_t n) noexcept:
    """A JSON number without exponent and with at most 18 integer digits; else -1."""
    cdef Py_ssize_t start
    if i < n and s[i] == 45:  # -
        i += 1
    start = i
    if i >= n or not (48 <= s[i] <= 57):
        return -1
    if s[i] == 48:
        i += 1
    else:
        while i < n and 48 <= s[i] <= 57:
            i += 1
    if i - start > 18:
        return -1
    if i < n and s[i] == 46:  # .
        i += 1
        start = i
        while i < n and 48 <= s[i] <= 57:
            i += 1
        if i == start or i - start > 30:
            return -1
    if i < n and (s[i] == 101 or s[i] == 69):  # exponents: not here
        return -1
    return i


cdef Py_ssize_t _skip(const char* s, Py_ssize_t i, Py_ssize_t n, int depth) noexcept:
    """Validate and skip one JSON value at ``s[i]``; the index after it or -1."""
    cdef char c
    if i >= n or depth > 16:
        return -1
    c = s[i]
    if c == 34:
        return _string(s, i, n)
    if c == 91 or c == 123:  # [ {
        i = _ws(s, i + 1, n)
        if i < n and s[i] == (93 if c == 91 else 125):
            return i + 1
        while True:
            if c == 123:
                i = _string(s, i, n)
                if i < 0:
                    return -1
                i = _ws(s, i, n)
                if i >= n or s[i] != 58:  # :
                    return -1
                i = _ws(s, i + 1, n)
            i = _skip(s, i, n, depth + 1)
            if i < 0:
                return -1
            i = _ws(s, i, n)
            if i >= n:
                return -1
            if s[i] == 44:
                i = _ws(s, i + 1, n)
            elif s[i] == (93 if c == 91 else 125):
                return i + 1
            else:
                return -1
    if c == 45 or 48 <= c <= 57:
        return _number(s, i, n)
    if n - i >= 4 and (memcmp(s + i, b"true", 4) == 0 or memcmp(s + i, b"null", 4) == 0):
        return i + 4
    if n - i >= 5 and memcmp(s + i, b"false", 5) == 0:
        return i + 5
    return -1


cdef inline Py_ssize_t _write_int(Py_ssize_t value, char* out) noexcept:
    """``str(value)`` (value >= 0) written at ``out``; returns its length."""
    cdef char digits[24]
    cdef Py_ssize_t k = 0, j
    while True:
        digits[k] = 48 + value % 10
        value //= 10
        k += 1
        if value == 0:
            break
    for j in range(k):
        out[j] = digits[k - 1 - j]
    return k


cdef inline Py_ssize_t _time(const char* s, Py_ssize_t i, Py_ssize_t end, int64_t* ns) noexcept:
    """The string opening at ``s[i]`` read as wire.seconds_text_ns into ``ns``: the index
    after it, or -1 where that would raise (or overflow)."""
    cdef Py_ssize_t a = i + 1, b = a
    if i >= end or s[i] != 34:
        return -1
    while b < end and s[b] != 34:
        b += 1
    if b >= end:
        return -1
    ns[0] = _seconds_ns(s, a, b)
    return -1 if ns[0] < 0 else b + 1


cdef inline int64_t _seconds_ns(const char* s, Py_ssize_t a, Py_ssize_t b) noexcept:
    """wire.seconds_text_ns for ``s[a:b]``, or -1 where it would raise (or overflow)."""
    cdef int64_t whole = 0, fraction = 0
    cdef Py_ssize_t i = a, places
    while i < b and 48 <= s[i] <= 57:
        whole = whole * 10 + (s[i] - 48)
        i += 1
    if i == a or i - a > 10 or whole >= MAX_SECONDS:
        return -1
    if i < b:
        if s[i] != 46:
            return -1
        i += 1
        places = 0
        while i < b and 48 <= s[i] <= 57:
            fraction = fraction * 10 + (s[i] - 48)
            places += 1
            i += 1
        if i < b or places > 9:
            return -1
        while places < 9:
            fraction *= 10
            places += 1
    return whole * 1_000_000_000 + fraction


# --- the v1 fast path --------------------------------------------------------------------------

cdef class V1Fast:
    """The v1 fast path of one :class:`~tickvault.exchanges.kraken.feed.KrakenFeed`."""

    cdef readonly Py_ssize_t answered  # messages the fast path answered (for tests)
    cdef object feed
    cdef object counters
    cdef object general
    cdef dict books
    cdef dict last_ts
    cdef object symbols
    cdef Slot* table  # CACHE_SLOTS wire strings
    cdef Py_ssize_t filled
    cdef bytes pair  # the last pair seen, its symbol and that symbol's _last_ts keys
    cdef object symbol
    cdef tuple book_key
    cdef tuple trade_key
    cdef tuple ticker_key
    cdef object output_type
    cdef Py_ssize_t slots[4]  # offsets of FeedOutput's slots: events, errors, gaps, resync
    cdef Py_ssize_t messages_slot  # offset of FeedCounters.messages
    cdef Py_ssize_t _string_end
    # levels of the message being read, in wire order (borrowed from the cache, which is
    # cleared only between messages)
    cdef PyObject* lp[256]
    cdef PyObject* lq[256]
    cdef bint lbid[256]

    def __init__(self, feed):
        self.feed = feed
        self.counters = feed.counters
        self.general = feed._after_v1  # the v2 fast path, else the general decoder
        self.books = feed._books
        self.last_ts = feed._last_ts
        self.symbols = feed.symbols
        self.table = <Slot*>PyMem_Malloc(CACHE_SLOTS * sizeof(Slot))
        if self.table == NULL:
            raise MemoryError()
        self.filled = CACHE_SLOTS  # cleared (initialised) before the first message
        self.pair = b""
        self.symbol = None
        # FeedOutput and FeedCounters are slots dataclasses: their fields are written at the
        # offsets of their member descriptors (what the descriptors themselves do), and a
        # FeedOutput is allocated as object.__new__ would (it has no __new__ of its own).
        self.output_type = FeedOutput
        if FeedOutput.__new__ is not object.__new__:
            raise TypeError("FeedOutput has its own __new__")
        for index, name in enumerate(("events", "errors", "gaps", "resync")):
            self.slots[index] = slot_offset(FeedOutput, name)
        self.messages_slot = slot_offset(type(self.counters), "messages")

    def __dealloc__(self):
        if self.table != NULL:
            self.clear()
            PyMem_Free(self.table)

    cdef void clear(self) noexcept:
        cdef Py_ssize_t i
        if self.filled < CACHE_SLOTS:  # else never initialised
            for i in range(CACHE_SLOTS):
                Py_XDECREF(self.table[i].wire)
        memset(self.table, 0, CACHE_SLOTS * sizeof(Slot))
        self.filled = 0

    cdef _Wire wire(self, const char* s, Py_ssize_t i, Py_ssize_t end, Py_ssize_t* after):
        """The cached entry of the string opening at ``s[i]`` if it is plain (ASCII digits,
        at most one ``.``, as numbers.plain_decimal), with the index after it in ``after``;
        else None. One pass validates and hashes (FNV-1a)."""
        cdef uint64_t h = 14695981039346656037ULL
        cdef Py_ssize_t a, b, dots = 0
        cdef char c
        if i >= end or s[i] != 34:
            return None
        a = b = i + 1
        while True:
            if b >= end:
                return None
            c = s[b]
            if c == 34:
                break
            if c == 46:
                dots += 1
            elif not (48 <= c <= 57):
                return None
            h = (h ^ <unsigned char>c) * 1099511628211ULL
            b += 1
        if dots > 1 or b - a == dots or b - a > 60:
            return None
        after[0] = b + 1
        cdef Py_ssize_t index = h & (CACHE_SLOTS - 1), m = b - a
        cdef Slot* slot
        cdef _Wire found
        while True:
            slot = &self.table[index]
            if slot.wire == NULL:
                break
            if slot.hash == h:
                found = <_Wire>slot.wire
                if found.text_len == m and memcmp(found.text, s + a, m) == 0:
                    return found
            index = (index + 1) & (CACHE_SLOTS - 1)
        cdef _Wire entry = _Wire.__new__(_Wire)
        memcpy(entry.text, s + a, m)
        entry.text_len = m
        entry.value = Decimal(PyUnicode_DecodeASCII(s + a, m, NULL))
        cdef Py_ssize_t k, used = 0
        cdef bint lead = True
        for k in range(a, b):
            if s[k] == 46:
                continue
            if lead and s[k] == 48:
                continue
            lead = False
            entry.token[used] = s[k]
            used += 1
        entry.token_len = used
        entry.zero = used == 0
        entry.keyed = False
        Py_INCREF(entry)
        slot.wire = <PyObject*>entry
        slot.hash = h
        self.filled += 1
        return entry

    cdef double key(self, _Wire entry, const char* s, Py_ssize_t a, Py_ssize_t b) except? -1.0:
        cdef char buf[64]
        if not entry.keyed:
            memcpy(buf, s + a, b - a)
            buf[b - a] = 0
            entry.key = PyOS_string_to_double(buf, NULL, NULL)
            entry.keyed = True
        return entry.key

    cdef object output(self, list events):
        """FeedOutput(events, [], [], []) without the Python-level __init__ call."""
        cdef PyObject* new = PyType_GenericAlloc(<PyTypeObject*>self.output_type, 0)
        if new == NULL:
            raise MemoryError()
        out = <object>new
        Py_DECREF(out)  # the cast took a second reference
        slot_set(out, self.slots[0], events)
        slot_set(out, self.slots[1], [])
        slot_set(out, self.slots[2], [])
        slot_set(out, self.slots[3], [])
        return out

    def on_message(self, raw, recv_ns):
        """KrakenFeed.on_message while the fast path is on: count, try the fast path, else
        the feed's general decoder."""
        counters = self.counters
        cdef PyObject** count = <PyObject**>((<char*><PyObject*>counters) + self.messages_slot)
        if count[0] == NULL:
            raise AttributeError("messages")
        slot_set(counters, self.messages_slot, <object>count[0] + 1)
        out = self._message(raw, recv_ns)
        if out is None:
            return self.general(raw, recv_ns)
        self.answered += 1
        return out

    def message(self, raw, recv_ns):
        """A FeedOutput for a handled v1 message, else None (nothing changed)."""
        return self._message(raw, recv_ns)

    cdef object _message(self, raw, recv_ns):
        cdef const char* s
        cdef Py_ssize_t n
        if type(raw) is str:
            if not PyUnicode_IS_COMPACT_ASCII(raw):
                return None
            s = <const char*>PyUnicode_DATA(raw)
            n = PyUnicode_GET_LENGTH(raw)
        elif type(raw) is bytes:
            s = PyBytes_AS_STRING(raw)
            n = PyBytes_GET_SIZE(raw)
        else:
            return None
        # [id, payload..., "channel", "pair"]: the last two strings, read from the end
        cdef Py_ssize_t e = n, pair_a, pair_b, chan_a, chan_b, start, end
        while e > 0 and _is_ws(s[e - 1]):
            e -= 1
        if e == 0 or s[e - 1] != 93:
            return None
        e = self._back_string(s, e - 1)
        if e < 0:
            return None
        pair_a, pair_b = e + 1, self._string_end
        e = self._back_comma(s, e)
        if e < 0:
            return None
        e = self._back_string(s, e)
        if e < 0:
            return None
        chan_a, chan_b = e + 1, self._string_end
        end = self._back_comma(s, e)  # the comma after the payloads
        if end < 0:
            return None
        start = _ws(s, 0, n)
        if start >= n or s[start] != 91:
            return None
        start = _skip(s, _ws(s, start + 1, n), end, 0)  # the channel id: any value
        if start < 0:
            return None
        start = _ws(s, start, end)
        if start >= end or s[start] != 44:
            return None
        start += 1
        if self.filled >= CACHE_MAX:
            self.clear()
        symbol = self._symbol(s, pair_a, pair_b)
        if symbol is None:
            return None
        cdef Py_ssize_t chan_n = chan_b - chan_a
        if chan_n == 5 and memcmp(s + chan_a, b"trade", 5) == 0:
            return self._trades(s, start, end, symbol, recv_ns)
        if chan_n == 6 and memcmp(s + chan_a, b"ticker", 6) == 0:
            return self._ticker(s, start, end, symbol, recv_ns)
        if chan_n > 5 and memcmp(s + chan_a, b"book-", 5) == 0:
            for e in range(chan_a + 5, chan_b):
                if not (48 <= s[e] <= 57):
                    return None
            return self._book(raw, s, start, end, symbol, recv_ns)
        return None

    cdef Py_ssize_t _back_string(self, const char* s, Py_ssize_t e) noexcept:
        """A string ending just before ``e`` (after whitespace): the index of its opening
        quote (its end in ``_string_end``), or -1."""
        cdef Py_ssize_t i
        while e > 0 and _is_ws(s[e - 1]):
            e -= 1
        if e == 0 or s[e - 1] != 34:
            return -1
        self._string_end = e - 1
        i = e - 2
        while i >= 0:
            if s[i] == 34:
                if i > 0 and s[i - 1] == 92:
                    return -1
                return i
            if s[i] == 92 or s[i] < 32 or <unsigned char>s[i] > 126:
                return -1
            i -= 1
        return -1

    cdef Py_ssize_t _back_comma(self, const char* s, Py_ssize_t e) noexcept:
        while e > 0 and _is_ws(s[e - 1]):
            e -= 1
        if e == 0 or s[e - 1] != 44:
            return -1
        return e - 1

    cdef object _symbol(self, const char* s, Py_ssize_t a, Py_ssize_t b):
        cdef Py_ssize_t m = b - a
        if m == PyBytes_GET_SIZE(self.pair) and memcmp(s + a, PyBytes_AS_STRING(self.pair), m) == 0:
            return self.symbol
        instrument = self.symbols.get(PyUnicode_DecodeASCII(s + a, m, NULL))
        if instrument is None:
            return None
        self.pair = s[a:b]
        self.symbol = symbol = instrument.symbol
        self.book_key, self.trade_key, self.ticker_key = (
            ("book", symbol), ("trade", symbol), ("ticker", symbol)
        )
        return symbol

    # --- book updates ----------------------------------------------------------------------

    cdef object _book(self, raw, const char* s, Py_ssize_t i, Py_ssize_t end, object symbol,
                      object recv_ns):
        book = self.books.get(symbol)
        if type(book) is not KrakenBook:
            return None
        cdef KrakenBook kbook = <KrakenBook>book
        if not kbook.synced or kbook.price_decimals is not None or kbook.qty_decimals is not None:
            return None
        cdef Py_ssize_t count = 0, k, a, b
        cdef int64_t ts_ns = 0, checksum = -1, level_ns
        cdef bint seen_a, seen_b, seen_c, bid, last
        cdef char key
        cdef _Wire price, qty
        while True:  # payload objects
            i = _ws(s, i, end)
            if i >= end or s[i] != 123:
                return None
            i = _ws(s, i + 1, end)
            seen_a = seen_b = seen_c = False
            checksum = -1
            if i < end and s[i] == 125:
                i += 1
            else:
                while True:  # keys
                    if i + 3 > end or s[i] != 34 or s[i + 2] != 34:
                        return None
                    key = s[i + 1]
                    if key == 97 and not seen_a:
                        seen_a = True
                    elif key == 98 and not seen_b:
                        seen_b = True
                    elif key == 99 and not seen_c:
                        seen_c = True
                    else:
                        return None
                    i = _ws(s, i + 3, end)
                    if i >= end or s[i] != 58:
                        return None
                    i = _ws(s, i + 1, end)
                    if key == 99:  # "c": the checksum, decimal digits
                        a = i + 1
                        i = _string(s, i, end)
                        if i < 0 or i - 1 == a or i - 1 - a > 18:
                            return None
                        checksum = 0
                        for k in range(a, i - 1):
                            if not (48 <= s[k] <= 57):
                                return None
                            checksum = checksum * 10 + (s[k] - 48)
                    else:  # "a"/"b": [[price, volume, time, ...], ...]
                        bid = key == 98
                        if i >= end or s[i] != 91:
                            return None
                        i = _ws(s, i + 1, end)
                        if i < end and s[i] == 93:
                            i += 1
                        else:
                            while True:  # rows
                                if i >= end or s[i] != 91 or count == MAX_LEVELS:
                                    return None
                                a = _ws(s, i + 1, end)
                                price = self.wire(s, a, end, &i)
                                if price is None:
                                    return None
                                self.key(price, s, a + 1, i - 1)
                                i = _ws(s, i, end)
                                if i >= end or s[i] != 44:
                                    return None
                                qty = self.wire(s, _ws(s, i + 1, end), end, &i)
                                if qty is None:
                                    return None
                                i = _ws(s, i, end)
                                if i >= end or s[i] != 44:
                                    return None
                                i = _time(s, _ws(s, i + 1, end), end, &level_ns)
                                if i < 0:
                                    return None
                                if level_ns > ts_ns:
                                    ts_ns = level_ns
                                i = _ws(s, i, end)
                                while i < end and s[i] == 44:  # "r" and anything after
                                    i = _skip(s, _ws(s, i + 1, end), end, 0)
                                    if i < 0:
                                        return None
                                    i = _ws(s, i, end)
                                if i >= end or s[i] != 93:
                                    return None
                                self.lp[count] = <PyObject*>price
                                self.lq[count] = <PyObject*>qty
                                self.lbid[count] = bid
                                count += 1
                                i = _ws(s, i + 1, end)
                                if i < end and s[i] == 44:
                                    i = _ws(s, i + 1, end)
                                elif i < end and s[i] == 93:
                                    i += 1
                                    break
                                else:
                                    return None
                    i = _ws(s, i, end)
                    if i < end and s[i] == 44:
                        i = _ws(s, i + 1, end)
                    elif i < end and s[i] == 125:
                        i += 1
                        break
                    else:
                        return None
            i = _ws(s, i, end)
            if i == end:
                break
            if s[i] != 44:
                return None
            i += 1
        if checksum < 0:  # the last payload carries "c"
            return None
        return self._apply(kbook, symbol, count, ts_ns if ts_ns else recv_ns, recv_ns, checksum)

    cdef object _apply(self, KrakenBook book, object symbol, Py_ssize_t count, object ts,
                       object recv_ns, int64_t checksum):
        """Apply the levels read (nothing can fail any more), then feed._on_book's checks
        and event for a v1 update."""
        cdef Py_ssize_t k, nb = 0, na = 0, drop_b, drop_a, j
        cdef _Wire price, qty
        cdef _Side side
        for k in range(count):
            price = <_Wire>self.lp[k]
            qty = <_Wire>self.lq[k]
            if self.lbid[k]:
                side = book._bids
                nb += 1
            else:
                side = book._asks
                na += 1
            if qty.zero:
                side.remove(-price.key if side.bids else price.key, price.value)
            else:
                side.put(-price.key if side.bids else price.key, price.value, qty.value,
                         _join(price.token, price.token_len, qty.token, qty.token_len))
        drop_b = book._bids.n - book.depth if book._bids.n > book.depth else 0
        drop_a = book._asks.n - book.depth if book._asks.n > book.depth else 0
        bids = PyTuple_New(nb + drop_b)
        asks = PyTuple_New(na + drop_a)
        nb = na = 0
        for k in range(count):
            level = (<_Wire>self.lp[k]).value, (<_Wire>self.lq[k]).value
            Py_INCREF(level)
            if self.lbid[k]:
                PyTuple_SET_ITEM(bids, nb, level)
                nb += 1
            else:
                PyTuple_SET_ITEM(asks, na, level)
                na += 1
        side = book._bids
        for j in range(side.n - 1, book.depth - 1, -1):  # as truncate(): lowest bid first
            level = (<object>side.lv[j].price, ZERO)
            Py_INCREF(level)
            PyTuple_SET_ITEM(bids, nb, level)
            nb += 1
        book._cut(side)
        side = book._asks
        for j in range(book.depth, side.n):
            level = (<object>side.lv[j].price, ZERO)
            Py_INCREF(level)
            PyTuple_SET_ITEM(asks, na, level)
            na += 1
        book._cut(side)
        if book._checksum() != checksum:
            feed = self.feed
            feed.counters.checksum_failures += 1
            out = self.output([])
            feed._resync(symbol, "checksum", ts, out)
            return out
        if book._crossed():  # verified by the checksum: the venue's own state, no resync
            self.feed.counters.crossed_books += 1
        delta = BookDelta(EXCHANGE, symbol, bids, asks, ts, recv_ns, None, None, checksum)
        self.last_ts[self.book_key] = ts
        return self.output([delta])

    # --- trades and tickers ----------------------------------------------------------------

    cdef object _trades(self, const char* s, Py_ssize_t i, Py_ssize_t end, object symbol,
                        object recv_ns):
        """[[price, volume, time, side, orderType, misc], ...]: decode_v1.trades_v1."""
        cdef list trades = []
        cdef Py_ssize_t a, b, index = 0, t_a, t_b
        cdef int64_t ts_ns = 0
        cdef _Wire price, volume
        cdef char buf[64]
        i = _ws(s, i, end)
        if i >= end or s[i] != 91:
            return None
        i = _ws(s, i + 1, end)
        if i < end and s[i] == 93:
            i += 1
        else:
            while True:
                if i >= end or s[i] != 91:
                    return None
                price = self.wire(s, _ws(s, i + 1, end), end, &i)
                if price is None or price.zero:
                    return None
                volume = self.wire(s, self._comma(s, i, end), end, &i)
                if volume is None or volume.zero:
                    return None
                t_a = self._comma(s, i, end) + 1
                i = _time(s, t_a - 1, end, &ts_ns)
                if i < 0:
                    return None
                t_b = i - 1
                i = self._comma(s, i, end)
                if i < 0 or i + 3 > end or s[i] != 34 or s[i + 2] != 34:
                    return None
                if s[i + 1] == 98:
                    side = BUY
                elif s[i + 1] == 115:
                    side = SELL
                else:
                    return None
                i = self._comma(s, i + 3, end)
                i = _skip(s, i, end, 0)  # orderType
                if i < 0:
                    return None
                i = self._comma(s, i, end)
                i = _skip(s, i, end, 0)  # misc
                if i < 0:
                    return None
                i = _ws(s, i, end)
                if i >= end or s[i] != 93:  # a 7th element (a trade id) goes the general way
                    return None
                # v1 trades carry no id: "<time>:<index>", as decode_v1
                memcpy(buf, s + t_a, t_b - t_a)
                b = t_b - t_a
                buf[b] = 58
                b += 1
                b += _write_int(index, buf + b)
                trade_id = PyUnicode_DecodeASCII(buf, b, NULL)
                trades.append(Trade(EXCHANGE, symbol, trade_id, price.value, volume.value, side,
                                    ts_ns, recv_ns))
                index += 1
                i = _ws(s, i + 1, end)
                if i < end and s[i] == 44:
                    i = _ws(s, i + 1, end)
                elif i < end and s[i] == 93:
                    i += 1
                    break
                else:
                    return None
        if _ws(s, i, end) != end:
            return None
        if trades:
            self.last_ts[self.trade_key] = trades[len(trades) - 1].ts_ns
        return self.output(trades)

    cdef Py_ssize_t _comma(self, const char* s, Py_ssize_t i, Py_ssize_t end) noexcept:
        """After optional whitespace a comma: the index after it and its whitespace, or an
        index the next reader refuses (``end``)."""
        if i < 0:
            return end
        i = _ws(s, i, end)
        if i >= end or s[i] != 44:
            return end
        return _ws(s, i + 1, end)

    cdef object _ticker(self, const char* s, Py_ssize_t i, Py_ssize_t end, object symbol,
                        object recv_ns):
        """{"a": [price, whole lot, lot volume], "b": [...], "c": [price, ...],
        "v": [today, 24h], ...}: decode_v1._ticker."""
        cdef list values = [[None, None, None] for _ in range(4)]  # a, b, c, v: used elements
        cdef list row
        cdef bint seen[4]
        cdef Py_ssize_t slot, index, a, need
        cdef _Wire number
        seen[0] = seen[1] = seen[2] = seen[3] = False
        i = _ws(s, i, end)
        if i >= end or s[i] != 123:
            return None
        i = _ws(s, i + 1, end)
        if i < end and s[i] == 125:
            return None
        while True:
            a = i
            i = _string(s, i, end)
            if i < 0:
                return None
            slot = -1
            if i - a == 3:
                slot = (0 if s[a + 1] == 97 else 1 if s[a + 1] == 98 else 2 if s[a + 1] == 99
                        else 3 if s[a + 1] == 118 else -1)
            i = _ws(s, i, end)
            if i >= end or s[i] != 58:
                return None
            i = _ws(s, i + 1, end)
            if slot < 0:
                i = _skip(s, i, end, 0)
                if i < 0:
                    return None
            else:
                if seen[slot] or i >= end or s[i] != 91:
                    return None
                seen[slot] = True
                need = 1 if slot == 2 else 2 if slot == 3 else 3
                row = values[slot]
                index = 0
                i = _ws(s, i + 1, end)
                if i < end and s[i] == 93:
                    return None
                while True:
                    a = i
                    if (slot <= 1 and index in (0, 2)) or (slot == 2 and index == 0) or (
                        slot == 3 and index == 1
                    ):
                        number = self.wire(s, a, end, &i)
                        if number is None:
                            return None
                        row[index] = number.value
                    else:
                        i = _skip(s, a, end, 0)
                        if i < 0:
                            return None
                    index += 1
                    i = _ws(s, i, end)
                    if i < end and s[i] == 44:
                        i = _ws(s, i + 1, end)
                    elif i < end and s[i] == 93:
                        i += 1
                        break
                    else:
                        return None
                if index < need:
                    return None
            i = _ws(s, i, end)
            if i < end and s[i] == 44:
                i = _ws(s, i + 1, end)
            elif i < end and s[i] == 125:
                i += 1
                break
            else:
                return None
        if _ws(s, i, end) != end or not (seen[0] and seen[1] and seen[2] and seen[3]):
            return None
        ticker = Ticker(EXCHANGE, symbol, recv_ns, recv_ns, values[1][0], values[1][2],
                        values[0][0], values[0][2], values[2][0], values[3][1])
        self.last_ts[self.ticker_key] = recv_ns
        return self.output([ticker])
