"""Rows cut from candle block tables are typed exactly like the uncached read of those rows."""

from __future__ import annotations

import random

import pyarrow as pa
import pytest

from tickvault.storage.postgres import candle_frames as frames
from tickvault.storage.postgres import columnar
from tickvault.storage.postgres.reader import CANDLE_COLUMNS as COLUMNS


def _decimal_text(rng: random.Random) -> str | None:
    if rng.random() < 0.1:
        return None
    whole = rng.choice(["0", "1", "42", "40000", "99999999999", "7" * 20])
    sign = "-" if rng.random() < 0.1 else ""
    places = rng.choice([0, 0, 1, 2, 2, 8, 12])
    frac = "".join(rng.choice("0123456789") for _ in range(places))
    if frac and rng.random() < 0.3:
        frac = frac[:-1] + "0"  # a trailing zero still counts for the scale
    return sign + whole + ("." + frac if frac else "")


def _rows(rng: random.Random, n: int, first_us: int) -> list[tuple[object, ...]]:
    """Rows as a wrap_sql query returns them (µs times, decimal text)."""
    out = []
    for i in range(n):
        dec = [_decimal_text(rng) for _ in range(9)]
        none_col = None if rng.random() < 0.5 else dec[5]  # some columns mostly null
        out.append((first_us + i * 60_000_000, *dec[:5], i % 2 == 0, "exchange", i or None,
                    none_col, *dec[6:]))  # fmt: skip
    return out


def test_cuts_of_blocks_equal_uncached_conversion() -> None:
    rng = random.Random(3)
    blocks = []
    first = 0
    for n in (40, 1, 0, 25, 60):
        rows = _rows(rng, n, first)
        table = frames.block_table(COLUMNS, columnar.wire_arrays(COLUMNS, rows))
        assert table is not None
        # a block table alone is the uncached conversion of its rows
        assert table.select(range(len(COLUMNS))).equals(columnar.to_table(COLUMNS, rows))
        blocks.append((rows, table))
        first += n * 60_000_000
    for _ in range(200):
        pieces: list[frames.Piece] = []
        want: list[tuple[object, ...]] = []
        start = rng.randrange(len(blocks))
        for rows, table in blocks[start : start + rng.randint(1, 3)]:
            lo = rng.randint(0, len(rows))
            hi = rng.randint(lo, len(rows))
            pieces.append((table, lo, hi))
            want += rows[lo:hi]
        got = frames.assemble(COLUMNS, pieces, scales=False)
        expected = columnar.to_table(COLUMNS, want)
        if any(not pa.types.is_decimal(t) for t in expected.schema.types[1:6]):
            assert got is None  # beyond decimal128: served uncached, as text
            continue
        assert got is not None and got.schema == expected.schema and got.equals(expected)
        kept = frames.assemble(COLUMNS, pieces, scales=True)  # a block table of the cut
        rebuilt = frames.block_table(COLUMNS, columnar.wire_arrays(COLUMNS, want))
        assert kept is not None and rebuilt is not None and kept.equals(rebuilt)


def test_frames_round_trip_and_refuse_garbage() -> None:
    rows = _rows(random.Random(5), 30, 0)
    table = frames.block_table(COLUMNS, columnar.wire_arrays(COLUMNS, rows))
    assert table is not None
    frame = frames.encode(table)
    assert frames.decode(COLUMNS, frame, 30, 0, 30 * 60_000_000).equals(table)  # type: ignore[union-attr]
    assert frames.decode(COLUMNS, frame, 29, 0, 1 << 62) is None  # not the rows stored
    assert frames.decode(COLUMNS, frame, 30, 60_000_000, 1 << 62) is None  # outside its block
    assert frames.decode(COLUMNS, frame[:-5], 30, 0, 1 << 62) is None
    assert frames.decode(COLUMNS, b"\x01", 30, 0, 1 << 62) is None


def test_cuts_needing_more_than_38_digits_are_not_served() -> None:
    def rows(close: str, first_us: int) -> list[tuple[object, ...]]:
        return [(first_us, "1", "1", "1", close, "1", True, "exchange", None, None, None, None,
                 None)]  # fmt: skip

    big, fine = rows("1" * 25 + ".5", 0), rows("0." + "1" * 20, 60_000_000)
    tables = [frames.block_table(COLUMNS, columnar.wire_arrays(COLUMNS, r)) for r in (big, fine)]
    assert tables[0] is not None and tables[1] is not None  # each fits decimal128
    assert not pa.types.is_decimal(columnar.to_table(COLUMNS, big + fine).schema.field(4).type)
    assert frames.assemble(COLUMNS, [(tables[0], 0, 1), (tables[1], 0, 1)], scales=False) is None


def test_few_rows_value_by_value_equal_the_arrow_kernels(monkeypatch: pytest.MonkeyPatch) -> None:
    """A block table of a few rows is built value by value (``_few_rows_table``): it must equal
    the Arrow kernels' block table of the same rows — values, types, scale and digit columns
    — and refuse what they refuse (NaN, more than 38 digits)."""
    rng = random.Random(11)
    cases = [_rows(rng, rng.randint(1, frames.FEW_ROWS), rng.randrange(10**6)) for _ in range(150)]
    for special in ("NaN", "Infinity", "1" * 30 + "." + "1" * 9, "-0.00", "0", "-7"):
        rows = _rows(rng, 3, 0)
        rows[1] = (*rows[1][:4], special, *rows[1][5:])
        cases.append(rows)
    for rows in cases:
        wire = columnar.wire_arrays(COLUMNS, rows)
        few = frames.block_table(COLUMNS, wire)
        with monkeypatch.context() as m:
            m.setattr(frames, "FEW_ROWS", 0)
            kernels = frames.block_table(COLUMNS, wire)
        if kernels is None:
            assert few is None
            continue
        assert few is not None
        assert few.schema == kernels.schema
        assert few.equals(kernels)
