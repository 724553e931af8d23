"""Number and time formatting shared by the simulated venues, and Kraken's book checksum.

Prices and sizes live as integers scaled by ``10**decimals`` (ticks, lots): exact, cheap to
compare, and printable at any fixed precision without going through ``float``.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable, Iterable
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


class FixedTable(dict[int, str]):
    """``table[value]`` is ``fixed(value, decimals, out_decimals)``, kept once printed: a dict
    lookup per print for values that repeat (prices), where ``fixed``'s lru_cache hashes an
    argument tuple per call. Emptied past ``limit`` entries, so memory stays bounded."""

    __slots__ = ("decimals", "limit", "out_decimals")

    def __init__(self, decimals: int, out_decimals: int | None = None, limit: int = 1 << 16):
        super().__init__()
        self.decimals, self.out_decimals, self.limit = decimals, out_decimals, limit

    def __missing__(self, value: int) -> str:
        if len(self) >= self.limit:
            self.clear()
        text = self[value] = fixed(value, self.decimals, self.out_decimals)
        return text


@lru_cache(maxsize=64)
def price_table(decimals: int, out_decimals: int | None = None) -> FixedTable:
    """The shared :class:`FixedTable` of one precision (markets of one precision share it)."""
    return FixedTable(decimals, out_decimals)


@lru_cache(maxsize=64)
def lots_formatter(decimals: int, out_decimals: int | None = None) -> Callable[[int], str]:
    """``fixed`` for one precision without a cache, for values that rarely repeat (sizes):
    one f-string per non-negative value."""
    out = decimals if out_decimals is None else out_decimals
    if decimals == 0 or out != decimals:
        return lambda value: fixed(value, decimals, out_decimals)
    scale = 10**decimals
    spec = f"0{decimals}d"

    def text(value: int) -> str:
        if value < 0:
            return fixed(value, decimals)
        return f"{value // scale}.{value % scale:{spec}}"

    return text


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
