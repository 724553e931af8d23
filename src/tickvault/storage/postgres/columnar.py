"""Query results straight into Arrow columns, without a Python object per value.

The slow part of a read was never the server: it was the driver building a ``Decimal`` per
``numeric`` and a ``datetime`` per ``timestamptz``, then Arrow walking those objects again
(1,440 candles = 13k objects). Here the query is wrapped so PostgreSQL sends ``numeric`` as its
exact text and times as integer microseconds; psycopg's C layer turns those into ``str``/``int``
(cheap), rows are transposed with ``zip`` and each column becomes an Arrow array in one C call.
Decimal text is then cast to ``decimal128`` by Arrow's own parser, with the scale of the most
precise value (found with vectorized string kernels) — so values stay exact, as before.

Measured against the alternatives (``bench/query.py``, docs/storage.md): ``adbc-driver-postgresql``
(binary COPY into Arrow in C; it still hands ``numeric`` over as text) and ``COPY … (FORMAT csv)``
read by ``pyarrow.csv`` were both slower here, the COPY alone costing more than this whole fetch.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator, Sequence
from decimal import Decimal
from typing import Any

import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.compute as pc

# (name, kind) as in reader.CANDLE_COLUMNS; kind ∈ ts, dec, text, int, bool, float
Columns = Sequence[tuple[str, str]]

_WIRE_TYPES = {
    "ts": pa.int64(),  # microseconds since the epoch, see wrap_sql
    "ts_ns": pa.int64(),  # nanoseconds since the epoch (cached events), shown as µs too
    "dec": pa.string(),  # exact text, cast below
    "text": pa.string(),
    "int": pa.int64(),
    "bool": pa.bool_(),
    "float": pa.float64(),
}
TS_TYPE = pa.timestamp("us", tz="UTC")


# Timestamps as integer µs. ``extract(epoch …)`` is exact but computes in ``numeric`` (slow);
# the ``float8`` of ``date_part`` rounds back to the exact µs for every time before 2106-02-07
# (2**32 s; checked on 2 million random times), so it serves the usual range.
_TS_US = (
    "CASE WHEN {0} < '2100-01-01' THEN round(date_part('epoch', {0}) * 1000000)::int8"
    " ELSE (extract(epoch FROM {0}) * 1000000)::int8 END"
)


def wrap_sql(columns: Columns, sql: str) -> str:
    """``sql`` with numerics as text and times as integer µs (exact: PostgreSQL keeps µs).

    The inner query's ORDER BY carries through: a plain projection over a subquery keeps its
    row order in PostgreSQL (the tests check the order of every read).
    """
    select = []
    for name, kind in columns:
        if kind == "dec":
            select.append(f"{name}::text")
        elif kind == "ts":
            select.append(_TS_US.format(name))
        else:
            select.append(name)
    return f"SELECT {', '.join(select)} FROM ({sql}) wire"


def plain_text(text: pa.Array) -> pa.Array:
    """Decimal text with every exponent form (``1E-7``, ``0E-8``: Python's ``str`` of a Decimal
    below 1e-6, as cached JSON carries it) written out positionally (``0.0000001``,
    ``0.00000000``) — the form PostgreSQL prints, which the scale and digit rules read. One
    numpy pass over the text bytes when there is none (always, for PostgreSQL's text): Arrow's
    case-insensitive substring search took 0.5 ms for a day of candles."""
    if not _may_have_exponent(text):
        return text
    return pa.array(
        [t if t is None or ("e" not in t and "E" not in t) else positional(t)
         for t in text.to_pylist()],
        pa.string(),
    )  # fmt: skip


def _may_have_exponent(text: pa.Array) -> bool:
    """Whether any byte of the text data is ``e`` or ``E`` (bytes outside a slice may give a
    false yes: harmless, the caller then looks value by value)."""
    data = text.buffers()[2] if len(text.buffers()) > 2 else None
    if data is None:
        return False
    raw = np.frombuffer(data, np.uint8)
    return bool(np.any((raw | 0x20) == ord("e")))


def positional(text: str) -> str:
    """One decimal text without exponent (``1E-7`` → ``0.0000001``); text that is not a
    number comes back as it is."""
    try:
        return f"{Decimal(text):f}"
    except ArithmeticError:  # not a number: left for the cast to refuse
        return text


def text_places(text: str | None) -> tuple[int, int] | None:
    """(:func:`value_scales`, :func:`value_int_digits`) of one decimal text, as those Arrow
    kernels compute them, exponent forms written out first (:func:`plain_text`); None for
    text that is not a number. For a few values: the kernels' per-call costs (~50 µs each)
    outweigh their per-value work below some tens of rows."""
    if text is None:
        return -1, -1
    if "e" in text or "E" in text:
        text = positional(text)
        if "e" in text or "E" in text:  # not a number
            return None
    elif text in ("NaN", "Infinity", "-Infinity"):  # PostgreSQL's non-finite numerics
        return None
    dot = text.rfind(".")
    scale = len(text) - 1 - dot if dot >= 0 else 0
    if text.startswith(("0", "-0")):
        return scale, 0
    first = text.find(".")
    length = first if first >= 0 else len(text)
    return scale, length - (1 if text.startswith("-") else 0)


EMPTY_DECIMAL = pa.decimal128(1, 0)  # the type of a decimal column without a value
MAX_DIGITS = 38  # decimal128's; a column needing more stays text


def decimal_type(scale: int, int_digits: int) -> pa.DataType | None:
    """The type :func:`decimal_columns` gives a column whose values have at most ``scale``
    digits after the point and ``int_digits`` before (the maxima of :func:`value_scales` and
    :func:`value_int_digits`; a negative scale: no value): the narrowest ``decimal128`` that
    holds them, :data:`EMPTY_DECIMAL` without values; None beyond 38 digits (text)."""
    if scale < 0:
        return EMPTY_DECIMAL
    digits = max(int_digits, 1) + scale
    return None if digits > MAX_DIGITS else pa.decimal128(digits, scale)


def decimal_column(text: pa.Array) -> pa.Array:
    """Exact decimal text → ``decimal128(p, s)``, ``s`` the largest scale present.

    Beyond decimal128's 38 digits (or for NaN/Infinity) the text column is kept as it is,
    rather than rounding.
    """
    if text.null_count == len(text):
        return pa.nulls(len(text), EMPTY_DECIMAL)
    text = plain_text(text)
    # digits after the point = position of '.' in the reversed text (-1: none)
    scale = max(pc.max(pc.find_substring(pc.utf8_reverse(text), ".")).as_py(), 0)
    # Arrow's cast does not refuse a value beyond the precision: it wraps silently. Check first.
    if scale + pc.max(value_int_digits(text)).as_py() > MAX_DIGITS:
        return text
    try:
        wide = pc.cast(text, pa.decimal128(38, scale))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return text  # too many digits for decimal128, or not a finite number
    return _narrowed(wide, scale)


def decimal_columns(texts: Sequence[pa.Array]) -> list[pa.Array]:
    """:func:`decimal_column` of several columns of one table, in far fewer Arrow calls.

    Arrow's per-call overhead, not its per-value work, dominated a 1,440-row read: the scales
    of all columns are found in one pass over their concatenation, and all values are parsed
    by one cast; each column then only narrows to its own precision and scale. Falls back to
    one column at a time where the shared cast cannot hold every column.
    """
    if len(texts) < 2 or len(texts[0]) == 0:
        return [decimal_column(text) for text in texts]
    rows = len(texts[0])
    joined = pa.concat_arrays(texts)
    plain = plain_text(joined)
    if plain is not joined:  # exponent forms: the per-column texts written out as well
        joined = plain
        texts = [joined.slice(i * rows, rows) for i in range(len(texts))]
    dots = pc.find_substring(pc.utf8_reverse(joined), ".").fill_null(-1).to_numpy()
    scales = np.maximum(dots.reshape(len(texts), rows).max(axis=1), 0)
    top = int(scales.max())
    if top + int(pc.max(value_int_digits(joined)).as_py()) > MAX_DIGITS:  # see decimal_column
        return [decimal_column(text) for text in texts]
    try:
        wide = pc.cast(joined, pa.decimal128(38, top))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return [decimal_column(text) for text in texts]
    out: list[pa.Array] = []
    for i, text in enumerate(texts):
        if text.null_count == rows:
            out.append(pa.nulls(rows, EMPTY_DECIMAL))
            continue
        out.append(_narrowed(wide.slice(i * rows, rows), int(scales[i])))
    return out


def _narrowed(wide: pa.Array, scale: int) -> pa.Array:
    """A ``decimal128`` column cut to ``scale`` and the fewest digits its values need (exact:
    no value has more than ``scale`` decimals)."""
    lo_hi = pc.min_max(wide)
    digits = max(int_digits(lo_hi["min"].as_py()), int_digits(lo_hi["max"].as_py()), 1)
    return pc.cast(wide, pa.decimal128(max(digits + scale, 1), scale))


def int_digits(value: Any) -> int:
    """Digits before the point (0 for |value| < 1), as Decimal.as_tuple counts them."""
    if value is None:
        return 0
    _sign, ds, exp = value.as_tuple()
    return max(len(ds) + exp, 0) if ds != (0,) else 0


def wire_arrays(columns: Columns, rows: Sequence[Sequence[Any]]) -> list[pa.Array]:
    """Rows of a :func:`wrap_sql` query as Arrow arrays of their wire types (decimal text)."""
    data: Sequence[Sequence[Any]] = list(zip(*rows, strict=True)) if rows else [()] * len(columns)
    return [
        pa.array(values, _WIRE_TYPES[kind]) for (_, kind), values in zip(columns, data, strict=True)
    ]


def finish_arrays(columns: Columns, wire: Sequence[pa.Array]) -> list[pa.Array]:
    """Wire arrays → the result types: times UTC µs, decimal text exact ``decimal128``."""
    arrays = list(wire)
    decimals = [i for i, (_, kind) in enumerate(columns) if kind == "dec"]
    for i, (_, kind) in enumerate(columns):
        if kind == "ts":
            arrays[i] = arrays[i].cast(TS_TYPE)
        elif kind == "ts_ns":  # the safe cast refuses to drop a non-zero sub-µs part
            arrays[i] = arrays[i].cast(pa.timestamp("ns", tz="UTC")).cast(TS_TYPE)
    for i, array in zip(decimals, decimal_columns([arrays[i] for i in decimals]), strict=True):
        arrays[i] = array
    return arrays


def value_scales(text: pa.Array) -> pa.Array:
    """Digits after the point of each decimal text, ``int8``, 0 for null: what
    :func:`decimal_column` takes a column's scale from, kept per value so that rows cut from a
    converted column can be narrowed again as if converted alone (``candle_frames``)."""
    dots = pc.find_substring(pc.utf8_reverse(text), ".")
    return pc.fill_null(pc.max_element_wise(dots, 0), -1).cast(pa.int8(), safe=False)


def value_int_digits(text: pa.Array) -> pa.Array:
    """Digits before the point of each decimal text as :func:`int_digits` counts them (0 for
    ``0.5``), ``int8``, -1 for null. PostgreSQL prints no leading zeros and no exponent."""
    dots = pc.find_substring(text, ".")
    length = pc.if_else(pc.less(dots, 0), pc.binary_length(text), dots)
    signed = pc.starts_with(text, "-")
    digits = pc.subtract(length, pc.cast(signed, pa.int32()))
    zero = pc.or_(pc.starts_with(text, "0"), pc.starts_with(text, "-0"))
    digits = pc.if_else(zero, 0, digits)
    return pc.fill_null(digits, -1).cast(pa.int8(), safe=False)


def to_table(columns: Columns, rows: Sequence[Sequence[Any]]) -> pa.Table:
    """Rows of a :func:`wrap_sql` query (or of cached events) → an Arrow table.

    Times become UTC µs, decimal text exact ``decimal128`` (:func:`decimal_column`).
    """
    return to_table_and_wire(columns, rows)[0]


def to_table_and_wire(
    columns: Columns, rows: Sequence[Sequence[Any]]
) -> tuple[pa.Table, list[pa.Array]]:
    """:func:`to_table`, and the wire arrays it was made from (:func:`wire_arrays`)."""
    wire = wire_arrays(columns, rows)
    arrays = finish_arrays(columns, wire)
    return pa.Table.from_arrays(arrays, names=[name for name, _ in columns]), wire


@contextlib.contextmanager
def no_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector around one read.

    A read of 1,440 rows allocates ~20k tuples and strings, all alive until the table is built:
    that triggered two generation-0 collections per read (0.2 ms) and, every ~150 reads, a full
    collection of the whole process (50+ ms with polars/pandas/pyarrow loaded) — the p99 of a
    read. Nothing a read allocates forms a reference cycle, so reference counting frees it all.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def fetch_table(conn: psycopg.Connection[Any], columns: Columns, sql: str, params: Any) -> pa.Table:
    """Run ``sql`` (selecting ``columns``) and return its rows as an Arrow table."""
    with no_gc():
        # binary results: psycopg parses int8/bool/text frames cheaper than their text form
        rows = conn.cursor(binary=True).execute(wrap_sql(columns, sql), params).fetchall()
        return to_table(columns, rows)
