# cython: language_level=3
"""Reading and writing ``__slots__`` fields at their offsets (inline, no module).

The compiled fast paths set fields of the feeds' Python objects (``FeedOutput``, counters,
books) without an attribute lookup per message: the offset of each slot is found once at start
(and checked to be an object slot), then written directly, with the reference counts a normal
assignment would do.
"""

from cpython.ref cimport PyObject, Py_INCREF, Py_XDECREF


cdef extern from "Python.h":
    ctypedef struct PyMemberDef:
        int type
        Py_ssize_t offset
    ctypedef struct PyMemberDescrObject:
        PyMemberDef* d_member


cdef inline Py_ssize_t slot_offset(object cls, str name) except -1:
    """Offset of the object slot ``name`` of a __slots__ class (checked to be one)."""
    descriptor = cls.__dict__[name]
    if type(descriptor).__name__ != "member_descriptor":
        raise TypeError(f"{cls.__name__}.{name} is not a slot")
    cdef PyMemberDef* member = (<PyMemberDescrObject*><PyObject*>descriptor).d_member
    if member.type != 16:  # T_OBJECT_EX
        raise TypeError(f"{cls.__name__}.{name} is not an object slot")
    return member.offset


cdef inline void slot_set(object obj, Py_ssize_t offset, object value) noexcept:
    """``obj.<slot at offset> = value``."""
    cdef PyObject** slot = <PyObject**>((<char*><PyObject*>obj) + offset)
    Py_INCREF(value)
    Py_XDECREF(slot[0])
    slot[0] = <PyObject*>value
