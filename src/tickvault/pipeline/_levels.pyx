# cython: language_level=3, boundscheck=False, wraparound=False
"""Compiled :func:`tickvault.pipeline._checks._levels` (optional): one book side's levels
checked, and the prices of the levels left with size > 0 — the same failures, in the same
order, and the same prices (tests/unit/pipeline/test_compiled_stages.py)."""

from decimal import Decimal

cdef object _ZERO = Decimal(0)
cdef object _Decimal = Decimal


def levels(levels, str side):
    if not isinstance(levels, tuple):
        return ("missing_field", f"{side} is not a tuple of levels"), []
    cdef dict sizes = {}
    cdef object price, size
    for level in levels:
        if not isinstance(level, tuple) or len(level) != 2:
            return ("missing_field", f"{side} level {level!r} is not (price, size)"), []
        price, size = level
        if type(price) is not _Decimal or not price.is_finite() or not price > _ZERO:
            return ("bad_price", f"{side} price {price!r} is not a positive decimal"), []
        if type(size) is not _Decimal or not size.is_finite() or size < _ZERO:
            return ("bad_size", f"{side} size {size!r} at {price} is negative or not a decimal"), []
        sizes[price] = size
    return None, [price for price, size in sizes.items() if size]
