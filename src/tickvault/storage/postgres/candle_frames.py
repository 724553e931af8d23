"""Candle blocks as Arrow tables: one block's stored frame, and results cut from blocks.

A *block table* holds the candle result columns (``reader.CANDLE_COLUMNS``) with exactly the
types the uncached read of that block's rows gives, then one ``_places`` column: per row a
fixed-size list of ``int8``, the digits after the point of each decimal column's value, then
the digits before it (for a null 0 and -1), as PostgreSQL printed them. (One column, not one per
decimal column and count: a cut reads all maxima with one numpy reduction and concatenates one
column, where 18 columns cost ~0.2 ms per cut in Arrow's per-call overhead; ``FRAME_FORMAT`` 2.)

Why the scales: an uncached read narrows every decimal column to the largest scale *present in
its result* and the fewest digits its values need (``columnar.decimal_columns``); ``100.10``
and ``100.1`` are equal values of different scales, so the scale of a slice cannot be told from
``decimal128`` values alone. :func:`assemble` therefore cuts rows out of block tables and
narrows each decimal column again from the kept scales and integer digits (largest scale,
largest integer digit count: what ``decimal_columns`` reads off the text and the min/max
values) — so a cached read equals the uncached read of the same range, values and
types. A column the uncached read would return as text (NaN, or more than 38 digits) makes the
block uncacheable (:func:`block_table` returns None) and the read is served uncached.

A frame is the block table as an uncompressed Arrow IPC stream, LZ4-compressed as a whole
(one decompression instead of one per buffer: 0.17 instead of 0.55 ms for a 1,440-bar frame),
after an 8-byte little-endian length of the stream.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from decimal import Decimal

import numpy as np
import pyarrow as pa

from tickvault.storage.postgres import columnar
from tickvault.storage.postgres.columnar import Columns

PLACES = "_places"  # the block table's last column (module docstring)
FRAME_FORMAT = 2  # bump when the frame layout changes: older frames are then rebuilt
_RESULT_TYPES = {
    "ts": columnar.TS_TYPE,
    "text": pa.string(),
    "int": pa.int64(),
    "bool": pa.bool_(),
    "float": pa.float64(),
}
_LENGTH = struct.Struct("<Q")
FEW_ROWS = 64  # up to this many rows a block table is built value by value (_few_rows_table)

# (block table, first row, end row): rows [lo, hi) of one block table
Piece = tuple[pa.Table, int, int]


def block_table(columns: Columns, wire: Sequence[pa.Array]) -> pa.Table | None:
    """Wire arrays of a candle query (``columnar.wire_arrays``) → a block table; None when a
    decimal column stays text in the uncached read (NaN, more than 38 digits). A few rows
    (a live stream's tail) take :func:`_few_rows_table`: equal, ~3x cheaper."""
    if 0 < len(wire[0]) <= FEW_ROWS and all(kind != "ts_ns" for _, kind in columns):
        return _few_rows_table(columns, wire)
    finished = columnar.finish_arrays(columns, wire)
    decimals = [i for i, (_, kind) in enumerate(columns) if kind == "dec"]
    if not all(pa.types.is_decimal(finished[i].type) for i in decimals):
        return None
    arrays = list(finished)
    rows = len(wire[0])
    if decimals and rows:  # one pass over all decimal columns (Arrow's per-call cost dominates)
        joined = pa.concat_arrays([wire[i] for i in decimals])
        scales, digits = columnar.value_scales(joined), columnar.value_int_digits(joined)
        by_column = np.concatenate([scales.to_numpy(), digits.to_numpy()])
        arrays.append(_places(by_column.reshape(2 * len(decimals), rows).T))
    else:
        arrays.append(_places(np.empty((rows, 2 * len(decimals)), np.int8)))
    return pa.Table.from_arrays(arrays, names=_names(columns))


def _places(matrix: np.ndarray) -> pa.Array:
    """The places column from a (rows, 2 x decimal columns) int8 matrix."""
    width = matrix.shape[1]
    flat = pa.array(np.ascontiguousarray(matrix, np.int8).reshape(-1), pa.int8())
    return pa.FixedSizeListArray.from_arrays(flat, width)


def _matrix(column: pa.ChunkedArray, width: int) -> np.ndarray:
    """The places of a (sliced) places column as a (rows, width) int8 matrix (zero-copy for
    one chunk)."""
    parts = [chunk.flatten().to_numpy().reshape(-1, width) for chunk in column.chunks if len(chunk)]
    if not parts:
        return np.empty((0, width), np.int8)
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def _few_rows_table(columns: Columns, wire: Sequence[pa.Array]) -> pa.Table | None:
    """:func:`block_table` value by value: each decimal text's digits after and before the
    point (``columnar.text_places``, the twin of the kernels the Arrow path runs), the
    column's type from their maxima (the rule of ``columnar.decimal_columns``), the values
    converted exactly from ``Decimal``. Arrow's per-call costs dominate a few rows: 17 kernel
    calls took ~1.2 ms for a tail of 1-30 bars (bench.query, "after a write")."""
    rows = len(wire[0])
    arrays: list[pa.Array] = []
    scales: list[list[int]] = []
    digits: list[list[int]] = []
    for (_, kind), array in zip(columns, wire, strict=True):
        if kind == "ts":
            arrays.append(array.view(columnar.TS_TYPE))
            continue
        if kind != "dec":
            arrays.append(array)
            continue
        texts = array.to_pylist()
        places = [columnar.text_places(text) for text in texts]
        kept = [p for p in places if p is not None]
        if len(kept) < len(places):
            return None  # not a number: the uncached read gives text
        target = columnar.decimal_type(max(p[0] for p in kept), max(p[1] for p in kept))
        if target is None:
            return None
        values = [None if text is None else Decimal(text) for text in texts]
        arrays.append(pa.array(values, target))
        # a null's scale is 0 where the kernels' is (``columnar.value_scales``)
        scales.append([max(p[0], 0) for p in kept])
        digits.append([p[1] for p in kept])
    by_column = np.array([*scales, *digits], np.int8).reshape(len(scales) + len(digits), rows)
    arrays.append(_places(by_column.T))
    return pa.Table.from_arrays(arrays, names=_names(columns))


def _names(columns: Columns) -> list[str]:
    """Column names of a block table."""
    return [*(name for name, _ in columns), PLACES]


def _width(columns: Columns) -> int:
    """Places per row: a scale and a digit count per decimal column."""
    return 2 * sum(1 for _, kind in columns if kind == "dec")


def times_us(table: pa.Table) -> np.ndarray:
    """The ``ts`` column (first) as int64 µs since the epoch, for binary searches."""
    column = table.column(0)
    if column.num_chunks == 0:
        return np.empty(0, np.int64)
    times: np.ndarray = column.combine_chunks().cast(pa.int64()).to_numpy(zero_copy_only=False)
    return times


def row_index(table: pa.Table, ts_us: int) -> int:
    """Index of the first row opening at or after ``ts_us`` (rows are in time order)."""
    return int(np.searchsorted(times_us(table), ts_us, side="left"))


def assemble(columns: Columns, pieces: Sequence[Piece], *, scales: bool) -> pa.Table | None:
    """The rows of ``pieces``, in order, as one table typed like the uncached read of them.

    With ``scales`` the result is itself a block table (kept scale and digit columns). None
    when a decimal column would need more than 38 digits: the uncached read gives text there.
    """
    if len(pieces) == 1 and not scales:
        table, lo, hi = pieces[0]
        if lo == 0 and hi == table.num_rows:  # a whole block is stored narrowed as a whole
            return table.select(range(len(columns)))
    total = sum(hi - lo for _, lo, hi in pieces)
    tables = [table.slice(lo, hi - lo) for table, lo, hi in pieces if hi > lo]  # zero-copy
    width = _width(columns)
    decimals = width // 2
    places = len(columns)  # the places column's index
    tops = [-1] * width  # scales, then digits, per decimal column
    for table in tables:
        if width:
            top = _matrix(table.column(places), width).max(axis=0)
            tops = [max(a, int(b)) for a, b in zip(tops, top, strict=True)]
    arrays: list[pa.Array] = []
    d = 0  # the scale and digit columns follow the result columns, in order
    for c, (_, kind) in enumerate(columns):
        parts = [table.column(c) for table in tables]
        if kind != "dec":
            arrays.append(_concat(parts, _RESULT_TYPES[kind]))
            continue
        scale, digits = tops[d], tops[d + decimals]
        d += 1
        target = columnar.decimal_type(scale, digits)
        if target is None:
            return None
        if scale < 0:  # no value at all
            arrays.append(pa.nulls(total, target))
            continue
        cast = [part if part.type == target else part.cast(target) for part in parts]
        arrays.append(_concat(cast, target))
    if scales:
        kept = [table.column(places) for table in tables]
        arrays.append(_concat(kept, pa.list_(pa.int8(), width)))
        return pa.Table.from_arrays(arrays, names=_names(columns))
    return pa.Table.from_arrays(arrays, names=[name for name, _ in columns])


def _concat(parts: Sequence[pa.ChunkedArray], type_: pa.DataType) -> pa.Array:
    chunks = [chunk for part in parts for chunk in part.chunks]
    if not chunks:
        return pa.array([], type_)
    if len(chunks) == 1:
        return chunks[0]
    return pa.concat_arrays(chunks)


def encode(table: pa.Table) -> bytes:
    """A block table as a frame (module docstring)."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    stream = sink.getvalue()
    compressed: bytes = pa.compress(stream, codec="lz4", asbytes=True)
    return _LENGTH.pack(stream.size) + compressed


def decode(
    columns: Columns, frame: bytes, rows: int, start_us: int, end_us: int
) -> pa.Table | None:
    """A stored frame back as a block table, or None when it does not decode to one of
    ``rows`` rows opening in [start, end) with the expected columns (it is then rebuilt)."""
    try:
        (length,) = _LENGTH.unpack_from(frame)
        stream = pa.decompress(memoryview(frame)[_LENGTH.size :], length, codec="lz4")
        table = pa.ipc.open_stream(stream).read_all()
    except (pa.ArrowException, OSError, ValueError, struct.error):
        return None
    if table.num_rows != rows or not _layout_ok(columns, table.schema):
        return None
    if rows:
        times = table.column(0)
        if times[0].value < start_us or times[-1].value >= end_us:
            return None
    return table


def _layout_ok(columns: Columns, schema: pa.Schema) -> bool:
    if schema.names != _names(columns):
        return False
    for field, (_, kind) in zip(schema, columns, strict=False):
        if kind == "dec":
            if not pa.types.is_decimal128(field.type):
                return False
        elif field.type != _RESULT_TYPES[kind]:
            return False
    return bool(schema.field(PLACES).type == pa.list_(pa.int8(), _width(columns)))
