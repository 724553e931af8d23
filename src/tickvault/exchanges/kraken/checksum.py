"""Kraken's book checksum: CRC32 over the top 10 asks and bids as digit strings.

Recipe (identical for WebSocket v1 and v2): for each of the best 10 asks (price ascending),
then each of the best 10 bids (price descending), append the price then the quantity, each
written at the pair's precision with the ``.`` removed and leading zeros stripped; the
checksum is the unsigned ``zlib.crc32`` of that string. Trailing zeros matter, which is why
values must keep the exchange's exact digits (``0.00100000`` -> ``100000``).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from decimal import Decimal

CHECKSUM_LEVELS = 10


def decimal_text(value: Decimal, decimals: int | None = None) -> str:
    """Positional text of ``value``, padded (never cut) to ``decimals`` fractional digits.

    ``None`` keeps the digits exactly as they were parsed from the wire (v1 strings, v2 number
    text). Padding repairs a value whose trailing zeros were lost on the way (a float
    re-serialization) without ever discarding a digit the exchange did send.
    """
    if decimals is not None:
        exponent = value.as_tuple().exponent
        if isinstance(exponent, int) and -exponent < decimals:
            value = value.quantize(Decimal(1).scaleb(-decimals))
    return f"{value:f}"


def digits(text: str) -> str:
    """``"0.00100000"`` -> ``"100000"``: drop the point, strip leading zeros."""
    return text.replace(".", "").lstrip("0")


def level_token(
    price: Decimal, qty: Decimal, price_decimals: int | None = None, qty_decimals: int | None = None
) -> str:
    """The checksum contribution of one level: price digits followed by quantity digits."""
    return digits(decimal_text(price, price_decimals)) + digits(decimal_text(qty, qty_decimals))


def checksum_of_tokens(ask_tokens: Iterable[str], bid_tokens: Iterable[str]) -> int:
    """CRC32 (unsigned) of already-formatted tokens, asks best-first then bids best-first."""
    return zlib.crc32(("".join(ask_tokens) + "".join(bid_tokens)).encode("ascii"))


def book_checksum(
    asks: Iterable[tuple[Decimal, Decimal]],
    bids: Iterable[tuple[Decimal, Decimal]],
    price_decimals: int | None = None,
    qty_decimals: int | None = None,
) -> int:
    """Checksum of a book given as best-first asks and bids (only the first 10 of each count)."""

    def tokens(levels: Iterable[tuple[Decimal, Decimal]]) -> list[str]:
        out: list[str] = []
        for price, qty in levels:
            if len(out) == CHECKSUM_LEVELS:
                break
            out.append(level_token(price, qty, price_decimals, qty_decimals))
        return out

    return checksum_of_tokens(tokens(asks), tokens(bids))
