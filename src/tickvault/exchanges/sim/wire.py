"""Number and time formatting shared by the simulated venues, and Kraken's book checksum.

Prices and sizes live as integers scaled by ``10**decimals`` (ticks, lots): exact, cheap to
compare, and printable at any fixed precision without going through ``float``.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Iterable
from functools import lru_cache

NS_PER_US = 1000


@lru_cache(maxsize=1 << 16)  # prices and sizes repeat: every message prints several
def fixed(value: int, decimals: int, out_decimals: int | None = None) -> str:
    """``value * 10**-decimals`` printed with ``out_decimals`` (>= decimals) fraction digits."""
    out = decimals if out_decimals is None else out_decimals
    sign = "-" if value < 0 else ""
    whole, frac = divmod(abs(value), 10**decimals)
    if out == 0:
        return f"{sign}{whole}"
    frac_text = f"{frac:0{decimals}d}" if decimals else ""
    return f"{sign}{whole}.{frac_text}{'0' * (out - decimals)}"


_SECOND_CACHE: dict[int, str] = {}


def _second_text(second: int) -> str:
    text = _SECOND_CACHE.get(second)
    if text is None:
        if len(_SECOND_CACHE) > 4096:
            _SECOND_CACHE.clear()
        text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        _SECOND_CACHE[second] = text
    return text


def rfc3339_us(ts_us: int) -> str:
    """``2023-10-06T17:35:55.440295Z`` (Coinbase Exchange, Kraken v2)."""
    second, micros = divmod(ts_us, 1_000_000)
    return f"{_second_text(second)}.{micros:06d}Z"


def rfc3339_ns(ts_us: int) -> str:
    """Nanosecond-digit form used by Coinbase Advanced Trade envelopes."""
    second, micros = divmod(ts_us, 1_000_000)
    return f"{_second_text(second)}.{micros:06d}000Z"


def rfc3339_s(ts_s: int) -> str:
    return f"{_second_text(ts_s)}Z"


def kraken_checksum(asks: Iterable[tuple[int, int]], bids: Iterable[tuple[int, int]]) -> int:
    """CRC32 of the top 10 asks (ascending) then top 10 bids (descending).

    Levels are (price, qty) integers at the pair's precision, so "remove the dot and the
    leading zeros" of the fixed-precision text is just the integer's decimal digits.
    """
    parts: list[str] = []
    for side in (asks, bids):
        for count, (price, qty) in enumerate(side):
            if count == 10:
                break
            parts.append(f"{price}{qty}")
    return zlib.crc32("".join(parts).encode())
