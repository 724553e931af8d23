"""Candle blocks as Arrow tables: one block's stored frame, and results cut from blocks.

A *block table* holds the candle result columns (``reader.CANDLE_COLUMNS``) with exactly the
types the uncached read of that block's rows gives, plus one ``<name>.scale`` column (``int8``)
per decimal column: each value's own digits after the point, as PostgreSQL printed it.

Why the scales: an uncached read narrows every decimal column to the largest scale *present in
its result* and the fewest digits its values need (``columnar.decimal_columns``); ``100.10``
and ``100.1`` are equal values of different scales, so the scale of a slice cannot be told from
``decimal128`` values alone. :func:`assemble` therefore cuts rows out of block tables and
narrows each decimal column again from the kept scales and the values' min/max — the rule of
``decimal_columns`` — so a cached read equals the uncached read of the same range, values and
types. A column the uncached read would return as text (NaN, or more than 38 digits) makes the
block uncacheable (:func:`block_table` returns None) and the read is served uncached.

A frame is the block table as an Arrow IPC stream with LZ4 compression.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tickvault.storage.postgres import columnar
from tickvault.storage.postgres.columnar import Columns

SCALE_SUFFIX = ".scale"
FRAME_FORMAT = 1  # bump when the frame layout changes: older frames are then rebuilt
_MAX_DIGITS = 38
_RESULT_TYPES = {
    "ts": columnar.TS_TYPE,
    "text": pa.string(),
    "int": pa.int64(),
    "bool": pa.bool_(),
    "float": pa.float64(),
}
_EMPTY_DECIMAL = pa.decimal128(1, 0)  # what decimal_column gives a column without values

# (block table, first row, end row): rows [lo, hi) of one block table
Piece = tuple[pa.Table, int, int]


def block_table(columns: Columns, wire: Sequence[pa.Array]) -> pa.Table | None:
    """Wire arrays of a candle query (``columnar.wire_arrays``) → a block table; None when a
    decimal column stays text in the uncached read (NaN, more than 38 digits)."""
    finished = columnar.finish_arrays(columns, wire)
    arrays, names = list(finished), [name for name, _ in columns]
    for i, (name, kind) in enumerate(columns):
        if kind != "dec":
            continue
        if not pa.types.is_decimal(finished[i].type):
            return None
        arrays.append(columnar.value_scales(wire[i]))
        names.append(name + SCALE_SUFFIX)
    return pa.Table.from_arrays(arrays, names=names)


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

    With ``scales`` the result is itself a block table (kept scale columns). None when a
    decimal column would need more than 38 digits: the uncached read gives text there.
    """
    names = [name for name, _ in columns]
    if len(pieces) == 1 and not scales:
        table, lo, hi = pieces[0]
        if lo == 0 and hi == table.num_rows:  # a whole block is stored narrowed as a whole
            return table.select(names)
    total = sum(hi - lo for _, lo, hi in pieces)
    arrays: list[pa.Array] = []
    kept: list[pa.Array] = []
    for c, (name, kind) in enumerate(columns):
        parts = [table.column(c).slice(lo, hi - lo) for table, lo, hi in pieces]
        if kind != "dec":
            arrays.append(_concat(parts, _RESULT_TYPES[kind]))
            continue
        scale_parts = [
            table.column(name + SCALE_SUFFIX).slice(lo, hi - lo) for table, lo, hi in pieces
        ]
        decimal = _narrow(parts, scale_parts, total)
        if decimal is None:
            return None
        arrays.append(decimal)
        if scales:
            kept.append(_concat(scale_parts, pa.int8()))
    if scales:
        names = names + [name + SCALE_SUFFIX for name, kind in columns if kind == "dec"]
        arrays += kept
    return pa.Table.from_arrays(arrays, names=names)


def _narrow(
    parts: Sequence[pa.ChunkedArray], scale_parts: Sequence[pa.ChunkedArray], total: int
) -> pa.Array | None:
    """One decimal column from its parts: largest scale present, fewest digits needed."""
    scale = -1
    digits = 1
    for part, part_scales in zip(parts, scale_parts, strict=True):
        if len(part) == part.null_count:
            continue
        scale = max(scale, pc.max(part_scales).as_py())
        lo_hi = pc.min_max(part)
        digits = max(
            digits,
            columnar.int_digits(lo_hi["min"].as_py()),
            columnar.int_digits(lo_hi["max"].as_py()),
        )
    if scale < 0:  # no value at all
        return pa.nulls(total, _EMPTY_DECIMAL)
    if digits + scale > _MAX_DIGITS:
        return None
    target = pa.decimal128(max(digits + scale, 1), scale)
    return _concat([part.cast(target) for part in parts], target)


def _concat(parts: Sequence[pa.ChunkedArray], type_: pa.DataType) -> pa.Array:
    chunks = [chunk for part in parts for chunk in part.chunks]
    if not chunks:
        return pa.array([], type_)
    if len(chunks) == 1:
        return chunks[0]
    return pa.concat_arrays(chunks)


def encode(table: pa.Table) -> bytes:
    """A block table as a frame: Arrow IPC stream, LZ4-compressed."""
    sink = pa.BufferOutputStream()
    options = pa.ipc.IpcWriteOptions(compression="lz4")
    with pa.ipc.new_stream(sink, table.schema, options=options) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue())


def decode(
    columns: Columns, frame: bytes, rows: int, start_us: int, end_us: int
) -> pa.Table | None:
    """A stored frame back as a block table, or None when it does not decode to one of
    ``rows`` rows opening in [start, end) with the expected columns (it is then rebuilt)."""
    try:
        table = pa.ipc.open_stream(frame).read_all()
    except (pa.ArrowException, OSError, ValueError):
        return None
    if table.num_rows != rows or not _layout_ok(columns, table.schema):
        return None
    if rows:
        times = times_us(table)
        if times[0] < start_us or times[-1] >= end_us:
            return None
    return table


def _layout_ok(columns: Columns, schema: pa.Schema) -> bool:
    names = [name for name, _ in columns]
    names += [name + SCALE_SUFFIX for name, kind in columns if kind == "dec"]
    if schema.names != names:
        return False
    for field, (_, kind) in zip(schema, columns, strict=False):
        if kind == "dec":
            if not pa.types.is_decimal128(field.type):
                return False
        elif field.type != _RESULT_TYPES[kind]:
            return False
    return all(schema.field(i).type == pa.int8() for i in range(len(columns), len(schema)))
