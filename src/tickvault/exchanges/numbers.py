"""Fast exact decimals for the decoders' hot paths.

:func:`tickvault.model.parse_decimal` is the reference: it accepts every plain decimal
(``" 1.5"``, ``"+2"``, ``"1_000"`` included) and refuses exponents, NaN and infinities.
:func:`plain_decimal` recognises only the shape exchanges actually send — ASCII digits with at
most one ``.`` — and returns ``None`` for anything else, so callers fall back to the reference
for everything unusual and get the same value or the same error. Such a string is always a
finite, non-negative decimal, so its checks cost two string methods instead of a chain of
``isinstance`` tests, ``is_finite`` and comparisons.
"""

from __future__ import annotations

from decimal import Decimal

CACHE_MAX = 1 << 16  # entries per cache before it is cleared (Decimals are immutable)


def plain_decimal(text: str) -> Decimal | None:
    """``Decimal(text)`` when ``text`` is ASCII digits with at most one ``.``; else None."""
    digits = text.replace(".", "", 1)
    if digits.isdigit() and digits.isascii():
        return Decimal(text)
    return None


def remember(cache: dict[str, Decimal], text: str, value: Decimal) -> None:
    """Store a validated wire string, clearing the cache when it is full."""
    if len(cache) >= CACHE_MAX:
        cache.clear()
    cache[text] = value
