"""The compiled book (``kraken._fast.KrakenBook``) against the pure-Python one, operation by
operation, and the compiled CRC32 against zlib's."""

from __future__ import annotations

import os
import zlib
from decimal import Decimal

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tickvault.exchanges.kraken.book import KrakenBook
from tickvault.exchanges.kraken.feed import COMPILED

if not COMPILED:
    assert os.environ.get("TICKVAULT_PURE_PYTHON") == "1", "kraken._fast is not built"
    pytest.skip("kraken._fast not built (TICKVAULT_PURE_PYTHON=1)", allow_module_level=True)

from tickvault.exchanges.kraken._fast import KrakenBook as CompiledBook
from tickvault.exchanges.kraken._fast import crc32

# prices on a coarse grid with several spellings of one value ("100.1", "100.10"), sizes
# with zeros (deletes); tiny and huge values test the float sort key's exact tie-break
prices = st.one_of(
    st.integers(990, 1010).map(lambda t: Decimal(t).scaleb(-1)),
    st.integers(990, 1010).map(lambda t: Decimal(t * 10).scaleb(-2)),
    st.sampled_from([Decimal("100.00000000000000001"), Decimal("100.00000000000000002"),
                     Decimal("1E+15"), Decimal("1000000000000000.0000001"), Decimal("0"),
                     Decimal("1E-7")]),
)  # fmt: skip
sizes = st.one_of(st.just(Decimal("0.00")), st.integers(0, 5000).map(lambda u: Decimal(u) / 100))
levels = st.lists(st.tuples(prices, sizes), max_size=8)
operations = st.lists(
    st.tuples(st.sampled_from(["apply", "snapshot", "reset"]), levels, levels), max_size=25
)


def _state(book: object) -> object:
    b = book  # both classes have this API
    return msgspec.json.encode(
        [b.bids(), b.asks(), b.bids(3), b.asks(0), len(b), b.synced, b.is_crossed(),  # type: ignore[attr-defined]
         b.checksum()]  # type: ignore[attr-defined]
    )  # fmt: skip


@settings(max_examples=150, deadline=None)
@given(
    ops=operations,
    depth=st.integers(1, 12),
    decimals=st.sampled_from([(None, None), (2, 4), (1, 8)]),
)
def test_compiled_book_behaves_like_the_python_book(
    ops: list[tuple[str, list[tuple[Decimal, Decimal]], list[tuple[Decimal, Decimal]]]],
    depth: int,
    decimals: tuple[int | None, int | None],
) -> None:
    python, compiled = KrakenBook(depth, *decimals), CompiledBook(depth, *decimals)
    for op, bids, asks in ops:
        for book in (python, compiled):
            if op == "apply":
                book.apply(bids, asks)
            elif op == "snapshot":
                book.load_snapshot(bids, asks)
            else:
                book.reset()
        if op == "apply":
            dropped = python.truncate()
            assert msgspec.json.encode(compiled.truncate()) == msgspec.json.encode(dropped)
        assert _state(compiled) == _state(python)


def test_compiled_book_refuses_a_depth_below_one() -> None:
    with pytest.raises(ValueError, match="depth must be positive"):
        CompiledBook(0)


@given(st.binary(max_size=300))
def test_crc32_is_zlibs(data: bytes) -> None:
    assert crc32(data) == zlib.crc32(data)
