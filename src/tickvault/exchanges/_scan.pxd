# cython: language_level=3
"""A strict scanner for the few JSON shapes the compiled fast paths read (inline, no module).

It accepts a subset of JSON only: strings of printable ASCII without escapes, non-negative
integers of at most 18 digits without a leading zero, objects and arrays. Anything else makes
the caller give up (return None), and the general decoder handles the message, so this never
has to agree with msgspec on anything unusual: on what it accepts, both read the same values.
Binance's and Coinbase's compiled paths cimport it; besides the scanner it holds what both
build the same way (wire-string tables, level pairs, ``FeedOutput``, the per-feed state).
"""

from cpython.ref cimport PyObject, Py_INCREF, Py_XDECREF
from cpython.tuple cimport PyTuple_New, PyTuple_SET_ITEM
from cpython.unicode cimport PyUnicode_DecodeASCII
from libc.string cimport memcmp, memcpy


cdef struct Cursor:
    const unsigned char* s
    Py_ssize_t i
    Py_ssize_t n


cdef inline void skip_ws(Cursor* c) noexcept nogil:
    cdef unsigned char ch
    while c.i < c.n:
        ch = c.s[c.i]
        if ch == 32 or ch == 10 or ch == 13 or ch == 9:
            c.i += 1
        else:
            return


cdef inline bint take(Cursor* c, unsigned char ch) noexcept nogil:
    """Skip whitespace, then consume ``ch`` if it is next (the next byte is tested first:
    messages seldom hold whitespace)."""
    if c.i < c.n and c.s[c.i] == ch:
        c.i += 1
        return True
    skip_ws(c)
    if c.i < c.n and c.s[c.i] == ch:
        c.i += 1
        return True
    return False


cdef extern from *:
    """
    #define TV_ONES 0x0101010101010101ULL
    #define TV_HIGH 0x8080808080808080ULL
    /* The index of the '"' closing a string whose contents start at s[i], or -1 when a
       backslash, a control byte or a byte of 127 and more comes first (or no '"').
       8 bytes per step: each test below marks the lowest such byte of a word exactly
       (borrows and carries only run upwards from a byte that is marked itself). */
    static Py_ssize_t tv_string_end(const unsigned char* s, Py_ssize_t i, Py_ssize_t n) {
    #if defined(__GNUC__) && defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        uint64_t w, q, b, mark;
        while (i + 8 <= n) {
            memcpy(&w, s + i, 8);
            q = w ^ (TV_ONES * 34);
            b = w ^ (TV_ONES * 92);
            mark = (((q - TV_ONES) & ~q) | ((b - TV_ONES) & ~b) | ((w - TV_ONES * 32) & ~w)
                    | w | (w + TV_ONES)) & TV_HIGH;
            if (mark) {
                i += __builtin_ctzll(mark) >> 3;
                return s[i] == 34 ? i : -1;
            }
            i += 8;
        }
    #endif
        for (; i < n; i++) {
            unsigned char ch = s[i];
            if (ch == 34) return i;
            if (ch < 32 || ch >= 127 || ch == 92) return -1;
        }
        return -1;
    }
    """
    Py_ssize_t tv_string_end(const unsigned char* s, Py_ssize_t i, Py_ssize_t n) noexcept nogil


cdef inline bint string(Cursor* c, Py_ssize_t* start, Py_ssize_t* length) noexcept nogil:
    """A string's contents (offsets into the buffer); False for escapes, controls, non-ASCII
    (read a word at a time: ``tv_string_end``)."""
    cdef Py_ssize_t end
    if not take(c, 34):  # '"'
        return False
    end = tv_string_end(c.s, c.i, c.n)
    if end < 0:
        return False
    start[0] = c.i
    length[0] = end - c.i
    c.i = end + 1
    return True


cdef inline bint integer(Cursor* c, long long* value) noexcept nogil:
    """A non-negative integer of 1-18 digits, no leading zero, not followed by ``.eE``."""
    cdef long long total = 0
    cdef Py_ssize_t begin
    cdef unsigned char ch
    skip_ws(c)
    begin = c.i
    while c.i < c.n:
        ch = c.s[c.i]
        if ch < 48 or ch > 57:
            break
        total = total * 10 + (ch - 48)
        c.i += 1
        if c.i - begin > 18:
            return False
    if c.i == begin or (c.s[begin] == 48 and c.i - begin > 1):
        return False
    if c.i < c.n:
        ch = c.s[c.i]
        if ch == 46 or ch == 101 or ch == 69:  # '.', 'e', 'E': a float
            return False
    value[0] = total
    return True


cdef inline bint is_key(const unsigned char* s, Py_ssize_t start, Py_ssize_t length,
                        const char* name, Py_ssize_t name_length) noexcept nogil:
    cdef Py_ssize_t k
    if length != name_length:
        return False
    for k in range(length):
        if s[start + k] != <unsigned char>name[k]:
            return False
    return True


cdef inline bint string_is(Cursor* c, const char* name, Py_ssize_t name_length) noexcept nogil:
    """A string value that is exactly ``name``."""
    cdef Py_ssize_t start, length
    return string(c, &start, &length) and is_key(c.s, start, length, name, name_length)


# --- walking objects and arrays: each step says whether the container goes on --------------

cdef inline int member_end(Cursor* c, int* seen, int bit) noexcept nogil:
    """After an object member (its key's ``bit``, added to ``seen``): 1 when ``}`` closes the
    object, 0 when ``,`` starts another member, -1 for anything else, for a key already seen
    (msgspec's rule for a repeated key, last wins, is not copied here) and for a ``bit`` of -1
    (the caller's "the value was not what it must be")."""
    if bit < 0 or seen[0] & bit:
        return -1
    seen[0] |= bit
    if take(c, 125):  # '}'
        return 1
    if take(c, 44):  # ','
        return 0
    return -1


cdef inline int array_start(Cursor* c) noexcept nogil:
    """At an array: 0 when an item follows its ``[``, 1 for ``[]`` (consumed), -1 when this
    is no array."""
    if not take(c, 91):  # '['
        return -1
    if take(c, 93):  # ']'
        return 1
    return 0


cdef inline int item_end(Cursor* c) noexcept nogil:
    """After an array item: 1 when ``]`` closes the array, 0 when ``,`` starts another item,
    -1 for anything else."""
    if take(c, 93):
        return 1
    if take(c, 44):
        return 0
    return -1


cdef inline bint at_end(Cursor* c) noexcept nogil:
    skip_ws(c)
    return c.i == c.n


cdef inline str text(Cursor* c, Py_ssize_t start, Py_ssize_t length):
    return PyUnicode_DecodeASCII(<const char*>c.s + start, length, NULL)


cdef extern from "Python.h":
    int PyUnicode_IS_ASCII(object text)
    void* PyUnicode_DATA(object text)
    Py_ssize_t PyUnicode_GET_LENGTH(object text)
    char* PyBytes_AS_STRING(object data)
    Py_ssize_t PyBytes_GET_SIZE(object data)


cdef inline bint open_cursor(object raw, Cursor* c) noexcept:
    """Point the cursor at a message's bytes: an ASCII ``str`` or ``bytes``; else False.
    (The caller keeps ``raw`` alive while it scans.)"""
    if type(raw) is str:
        if not PyUnicode_IS_ASCII(raw):
            return False
        c.s = <const unsigned char*>PyUnicode_DATA(raw)
        c.n = PyUnicode_GET_LENGTH(raw)
    elif type(raw) is bytes:
        c.s = <const unsigned char*>PyBytes_AS_STRING(raw)
        c.n = PyBytes_GET_SIZE(raw)
    else:
        return False
    c.i = 0
    return True


# --- a small cache of wire strings already turned into values ------------------------------
# Direct-mapped by a hash of the bytes, so a hit costs no Python string, no SipHash and no walk
# of a large dict. A slot holds what the caller's Python helper returned for that exact text
# (a validated Decimal, or a (price, size) pair); the helpers are pure apart from their own
# caches, so a hit gives the value they would give again. Each module has its own tables.

cdef enum:
    SLOT_TEXT = 30  # longest text cached
    SLOT_COUNT = 4096  # a power of two


cdef struct Slot:
    Py_ssize_t length
    unsigned char text[SLOT_TEXT]
    PyObject* value


cdef inline Slot* slot_for(Slot* table, const unsigned char* s, Py_ssize_t start,
                           Py_ssize_t length) noexcept nogil:
    cdef unsigned int h = 2166136261u  # FNV-1a
    cdef Py_ssize_t k
    for k in range(length):
        h = (h ^ s[start + k]) * 16777619u
    return &table[h & (SLOT_COUNT - 1)]


cdef inline PyObject* cached(Slot* table, const unsigned char* s, Py_ssize_t start,
                             Py_ssize_t length) noexcept nogil:
    """The value kept for this text, or NULL (borrowed reference)."""
    cdef Slot* slot
    if length > SLOT_TEXT:
        return NULL
    slot = slot_for(table, s, start, length)
    if slot.value != NULL and slot.length == length and memcmp(slot.text, s + start, length) == 0:
        return slot.value
    return NULL


cdef inline void keep(Slot* table, const unsigned char* s, Py_ssize_t start, Py_ssize_t length,
                      object value) noexcept:
    cdef Slot* slot
    if length > SLOT_TEXT:
        return
    slot = slot_for(table, s, start, length)
    Py_INCREF(value)
    Py_XDECREF(slot.value)
    slot.value = <PyObject*>value
    slot.length = length
    memcpy(slot.text, s + start, length)


cdef extern from "Python.h":
    object PyType_GenericAlloc(object type, Py_ssize_t items)
    void PyObject_GC_UnTrack(void* op)


cdef inline tuple untracked_pair(first, second):
    """``(first, second)`` for two values that cannot be part of a cycle (Decimals), left
    untracked by the GC as its own rule for such tuples would leave it."""
    cdef tuple pair = PyTuple_New(2)
    Py_INCREF(first)
    PyTuple_SET_ITEM(pair, 0, first)
    Py_INCREF(second)
    PyTuple_SET_ITEM(pair, 1, second)
    PyObject_GC_UnTrack(<void*>pair)
    return pair


cdef inline object feed_state(feed, type state_type):
    """The feed's compiled per-feed state, ``state_type(feed)``: made on first use and kept
    on the feed (``_compiled_handles``)."""
    try:
        return feed._compiled_handles
    except AttributeError:
        state = state_type(feed)
        feed._compiled_handles = state
        return state


cdef inline object new_output(object output_type, list events):
    """``FeedOutput(events)`` without the dataclass ``__init__``'s Python frame (same fields)."""
    out = PyType_GenericAlloc(output_type, 0)
    out.events = events
    out.errors = []
    out.gaps = []
    out.resync = []
    return out


cdef inline int plain_shape(const unsigned char* s, Py_ssize_t start,
                            Py_ssize_t length) noexcept nogil:
    """``exchanges.numbers.plain_decimal``'s test in C: 0 when the text is not ASCII digits
    with at most one ``.`` (and at least one digit), else 1 for a zero value, 2 for non-zero."""
    cdef Py_ssize_t k
    cdef bint dot = False, digit = False, nonzero = False
    cdef unsigned char ch
    for k in range(start, start + length):
        ch = s[k]
        if ch == 46:
            if dot:
                return 0
            dot = True
        elif 48 <= ch <= 57:
            digit = True
            if ch != 48:
                nonzero = True
        else:
            return 0
    if not digit:
        return 0
    return 2 if nonzero else 1


# --- a few names (a feed's symbols), searched in order -------------------------------------

cdef enum:
    NAME_SLOTS = 16


cdef inline PyObject* find_name(Slot* table, const unsigned char* s, Py_ssize_t start,
                                Py_ssize_t length) noexcept nogil:
    cdef int k
    for k in range(NAME_SLOTS):
        if table[k].value == NULL:
            return NULL
        if table[k].length == length and memcmp(table[k].text, s + start, length) == 0:
            return table[k].value
    return NULL


cdef inline void keep_name(Slot* table, const unsigned char* s, Py_ssize_t start,
                           Py_ssize_t length, object value) noexcept:
    """Remember a name in the first free slot (none left, or too long: not kept)."""
    cdef int k
    if length > SLOT_TEXT:
        return
    for k in range(NAME_SLOTS):
        if table[k].value == NULL:
            Py_INCREF(value)
            table[k].value = <PyObject*>value
            table[k].length = length
            memcpy(table[k].text, s + start, length)
            return


cdef inline void release_names(Slot* table) noexcept:
    cdef int k
    for k in range(NAME_SLOTS):
        Py_XDECREF(table[k].value)
        table[k].value = NULL


cdef inline bint boolean(Cursor* c, bint* value) noexcept nogil:
    """``true`` or ``false``."""
    skip_ws(c)
    if c.n - c.i >= 4 and memcmp(c.s + c.i, b"true", 4) == 0:
        value[0] = True
        c.i += 4
        return True
    if c.n - c.i >= 5 and memcmp(c.s + c.i, b"false", 5) == 0:
        value[0] = False
        c.i += 5
        return True
    return False
