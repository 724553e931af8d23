"""Ready-made Arrow frames of the cached candles: one IPC blob per stream, rebuilt on demand,
and readers that follow a live stream by splicing in only what changed.

Decoding 500 cached JSON bars into columns costs about 1.5 ms; reading one Arrow IPC blob and
slicing it costs about 0.1 ms. The blob is a read-through cache of the stream's candle sorted
set, kept exact by a version:

* every candle write bumps the stream's version (:data:`BUMP_VERSION_LUA`, queued in the same
  MULTI/EXEC as the write), taking a fresh number from one global counter, so a version is never
  reused even after keys expire (or the server is flushed or restarted from an older snapshot:
  a version is never below the server clock in µs);
* a read fetches the version and the blob in one ``MGET`` and uses the blob only when it was
  built at that version;
* otherwise the reader reads the version and the sorted set in one MULTI/EXEC, builds the
  table, and stores the blob only if the version is still the same (:data:`STORE_FRAME_LUA`,
  checked in the server) — a write that came in between is never hidden by an older frame.

So a frame read is never older than a sorted-set read at the same moment. A reader keeps the
table it decoded last per stream (:func:`held_frames`): while the version is the same, a read
fetches the version alone. Blobs carry the
candles' TTL. Column types are those of ``Vault.candles``; decimal columns take the scale and
precision of the most precise bar among the cached ones (the values are the exchange's, exact).

**Splicing (a reader following a live stream).** A live feed changes a stream several times a
second, nearly always at its newest bar; rebuilding the whole table (1,440 JSON bars: ~3.5 ms)
after each change was the cost of a read. Each bump therefore also logs, per stream, the lowest
score (bar open time, ms) its batch wrote (the change log, :data:`BUMP_VERSION_LUA`). A reader
holding version V asks, in one script (:data:`CATCH_UP_LUA`, atomic): the current version;
if the log proves that it holds every bump after V, the lowest score written since V, the
members from that score on and the set's size. The reader keeps its rows before that score,
drops the oldest of them down to the set's size (the cap trims by rank: the oldest bars), and
appends the fetched bars (:func:`splice`). Decimal types come out as the full rebuild's: the
reader keeps, per decimal column, each row's digits after and before the point as its text had
them (:class:`Meta`), and narrows every column again from the kept rows' and new rows'
maxima (the rule of ``columnar.decimal_columns``). Whatever the splice cannot vouch for — a log
that does not reach back to V, a table decoded from a blob (no per-row digits), a column beyond
38 digits — takes the full rebuild. (Values in exponent form, ``1E-7``, are written out first,
as the full rebuild does: ``columnar.plain_text``.) Only what the reader holds is spliced;
the stored blob is written on full rebuilds only.

**polars and Arrow.** A reader holds the forms its reads asked for (:class:`HeldFrame`): the
polars frame once a polars read asked for it (``pl.read_ipc_stream`` of the blob it came from,
a third of the time ``pl.from_arrow`` takes; or ``pl.from_arrow`` of a rebuilt table), the
Arrow table once an Arrow read did (the blob's IPC stream, or the polars frame converted back
to the held types). A splice (:func:`plan`, then :func:`splice_frame` / :func:`splice_table`)
splices the polars frame — the kept rows' zero-copy slice, then the new rows (one struct
Series, unnested), equal to converting the whole table — and the Arrow table only when an
Arrow read asked for it: a polars reader following a stream carries no Arrow table along.
When a column's type changed the frame is converted again from the spliced table; past
:data:`MAX_CHUNKS` chunks either form is made one chunk again. Readers get slices.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Sequence
from decimal import Decimal
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa

from tickvault.config import CacheSettings
from tickvault.storage.lru import Lru
from tickvault.storage.postgres import columnar
from tickvault.storage.postgres.columnar import Columns
from tickvault.storage.redis_keys import Keys

CHANGE_LOG_KEPT = 64  # bumps a stream's change log keeps: a reader further behind rebuilds
MAX_CHUNKS = 16  # a spliced table (Arrow or polars) is made one chunk again beyond this many

# KEYS: stream version, global counter, the stream's candle set, its change log; ARGV: ttl
# seconds, lowest score (open time, ms) the batch wrote to the set. The version lives no longer
# than the candle set (a history write leaves the set's TTL as it is): when the set expires, so
# does the version, and no frame or held table outlives the bars it was built from. A version
# is never below the server's clock in µs: a counter that starts afresh (a new or flushed
# server) or goes back (a restart from an older RDB/AOF snapshot, a promoted replica that
# missed the last writes) still gives versions above every one it gave before, so a reader
# holding a table of an old version never mistakes a new one for it.
#
# The change log (sorted set, score = version, same TTL as the version) gets one member per
# bump, ``version:previous version:lowest score``, the previous version being what the version
# key held ('' when it had expired or never existed). The bumps after a version V are all in
# the log only if they chain back to V, each naming the one before: a bump trimmed off the log
# (more than CHANGE_LOG_KEPT since V), an expired version or a log lost or rolled back by a
# restart all break the chain, and the reader rebuilds.
BUMP_VERSION_LUA = f"""
local v = redis.call('INCR', KEYS[2])
local t = redis.call('TIME')
local now = t[1] * 1000000 + t[2]
if v < now then
  v = now
  redis.call('SET', KEYS[2], v)
end
local ttl = tonumber(ARGV[1]) * 1000
local left = redis.call('PTTL', KEYS[3])
if left > 0 and left < ttl then ttl = left end
local prev = redis.call('GET', KEYS[1]) or ''
local vs = string.format('%.0f', v)
redis.call('SET', KEYS[1], vs, 'PX', ttl)
redis.call('ZADD', KEYS[4], vs, vs .. ':' .. prev .. ':' .. ARGV[2])
redis.call('ZREMRANGEBYRANK', KEYS[4], 0, -{CHANGE_LOG_KEPT + 1})
redis.call('PEXPIRE', KEYS[4], ttl)
return v
"""

# KEYS: stream version, its change log, the candle set; ARGV: the version a reader holds,
# '1' if it can splice (else it only wants the version). Returns {version} when that is all
# (unchanged, or no splice asked for), {version or false, 'F'} when the reader must rebuild,
# {version, 'S', lowest score written since, ZCARD, members from that score on...} otherwise.
# One script: the version, the members and the count are of one moment.
CATCH_UP_LUA = """
local cur = redis.call('GET', KEYS[1])
if cur == ARGV[1] or ARGV[2] ~= '1' then return {cur} end
if not cur then return {false, 'F'} end
local want = ARGV[1]
local low, lowtext = nil, nil
for _, e in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. ARGV[1], '+inf')) do
  local v, prev, ms = string.match(e, '^(%d+):(%d*):(%-?%d+)$')
  if v == nil or prev ~= want then return {cur, 'F'} end
  want = v
  if low == nil or tonumber(ms) < low then low, lowtext = tonumber(ms), ms end
end
if want ~= cur or low == nil then return {cur, 'F'} end
local out = {cur, 'S', lowtext, redis.call('ZCARD', KEYS[3])}
for _, m in ipairs(redis.call('ZRANGEBYSCORE', KEYS[3], lowtext, '+inf')) do
  out[#out + 1] = m
end
return out
"""

# KEYS: stream version, frame blob; ARGV: version the frame was built at, blob, ttl seconds.
STORE_FRAME_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[3])
  return 1
end
return 0
"""

_SEP = b"\n"  # blob = version digits, newline, Arrow IPC stream
MAX_HELD_STREAMS = 256  # decoded frames a reader keeps (``held_frames``) ...
MAX_HELD_BYTES = 256 << 20  # ... and their estimated bytes (``HeldFrame.estimated_bytes``)
_ROW_BYTES = 192  # one candle row in Arrow or polars: 9 decimal128, times, flags, source

Stream = tuple[str, str, str]  # exchange, symbol, timeframe


class Meta(NamedTuple):
    """What a held table needs to be spliced: its open times (µs, for the binary search) and,
    per decimal column (in column order) and table row, the digits after and before the point
    of the value's text (``columnar.value_scales`` and ``value_int_digits``, or ``text_places``;
    -1 or 0 for null: only the maxima count, and a column of nulls types alike either way),
    with their largest values per column (which the table's decimal types follow)."""

    ts_us: np.ndarray  # int64, one per row
    places: np.ndarray  # int8, (2, decimal columns, rows): [0] after the point, [1] before
    tops: np.ndarray  # int8, (2, decimal columns): places.max(axis=2), -1 without rows


class HeldFrame:
    """A stream's rows at ``version`` as an Arrow table, a polars frame or both — whichever
    reads asked for, each built once from what is there (the blob's IPC stream, or the other
    form) — with what splicing needs (``meta``; None: decoded from a blob, not spliceable).
    Shared by every read of this version: readers get slices (polars is copy-on-write: a
    caller's edits never reach it). Threads racing to build a form build equal ones; one is
    kept."""

    __slots__ = ("_frame", "_payload", "_schema", "_table", "arrow_read", "meta", "version")

    def __init__(
        self,
        version: bytes,
        meta: Meta | None,
        *,
        table: pa.Table | None = None,
        frame: Any = None,
        payload: Any = None,
        schema: pa.Schema | None = None,
    ) -> None:
        self.version = version
        self.meta = meta
        self._table = table
        self._frame = frame  # pl.DataFrame, or None until a polars read asks for it
        self._payload = payload  # the blob's IPC stream (memoryview) it was decoded from
        self._schema = schema if schema is not None or table is None else table.schema
        self.arrow_read = False  # a read asked for the Arrow table (a splice keeps it then)

    @property
    def table(self) -> pa.Table:
        """The rows as an Arrow table: decoded from the blob, or converted from the polars
        frame (to the held Arrow types: polars keeps text as views)."""
        table = self._table
        if table is None:
            if self._payload is not None:
                table = pa.ipc.open_stream(pa.py_buffer(self._payload)).read_all()
            else:
                table = self._frame.to_arrow()
                if self._schema is not None:
                    table = table.cast(self._schema)
            self._table = table
            self._drop_blob_if_both()
        return table

    def _drop_blob_if_both(self) -> None:
        if self._table is not None and self._frame is not None:
            self._payload = None  # both forms built: the blob is not needed any more

    @property
    def built_table(self) -> pa.Table | None:
        """The Arrow table if built, else None."""
        return self._table

    @property
    def schema(self) -> pa.Schema:
        """The Arrow types of the rows."""
        if self._schema is None:
            self._schema = self.table.schema
        return self._schema

    def polars(self) -> Any:
        """The rows as a polars frame, ``pl.from_arrow(table)`` exactly (from the blob's IPC
        stream when it came from one: polars reads it in about a third of the time)."""
        frame = self._frame
        if frame is None:
            import polars as pl

            payload = self._payload
            if payload is not None:  # a reader of its own per call: threads may race here
                frame = pl.read_ipc_stream(io.BytesIO(payload))
            else:
                frame = pl.from_arrow(self._table)
            self._frame = frame
            self._drop_blob_if_both()
        return frame

    @property
    def frame(self) -> Any:
        """The polars frame if built (:meth:`polars`), else None."""
        return self._frame

    def estimated_bytes(self) -> int:
        """What holding this costs, estimated without walking buffers: both forms of its rows
        (a reader may build the second after it is held), the blob it came from, the meta."""
        if self._table is not None:
            rows = int(self._table.num_rows)
        elif self._frame is not None:
            rows = int(self._frame.height)
        else:
            rows = 0
        size = 2 * rows * _ROW_BYTES
        if self._payload is not None:
            size += 2 * len(self._payload)  # the blob, and a form decoded from it
        if self.meta is not None:
            size += self.meta.ts_us.nbytes + self.meta.places.nbytes
        return size

    def ts_us(self) -> np.ndarray:
        """The bars' open times, µs since the epoch (int64, sorted)."""
        if self.meta is not None:
            return self.meta.ts_us
        if self._table is None:
            # datetime64[us] viewed as int64: zero-copy (``to_physical`` costs ~20x more)
            ts: np.ndarray = self.polars().get_column("ts").to_numpy().view(np.int64)
        else:
            ts = self._table.column("ts").cast(pa.int64()).to_numpy()
        return ts


def held_frames(
    size: int = MAX_HELD_STREAMS, max_bytes: int = MAX_HELD_BYTES
) -> Lru[Stream, HeldFrame]:
    """The decoded frame of each stream read lately, with the version it was built at: a
    version is never reused (one global counter), so while a stream's version is unchanged its
    held table is exactly the stored frame. Bounded in streams and in estimated bytes (put
    with ``HeldFrame.estimated_bytes``); least recently read streams dropped first."""
    return Lru(max_items=size, max_bytes=max_bytes)


def queue_bump(pipe: Any, keys: Keys, settings: CacheSettings, stream: Stream, low_ms: int) -> None:
    """Queue the version bump of a stream (exchange, symbol, timeframe) this batch writes to
    (after the writes and the candle set's TTL); ``low_ms`` is the lowest score it wrote."""
    pipe.eval(
        BUMP_VERSION_LUA, 4, keys.frame_version(*stream), keys.frame_counter,
        keys.candles(*stream), keys.frame_log(*stream), settings.candle_ttl_s, low_ms,
    )  # fmt: skip


def encode_frame(version: bytes, table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    payload: bytes = sink.getvalue().to_pybytes()
    return version + _SEP + payload


def held_from_blob(version: bytes | None, blob: bytes | None) -> HeldFrame | None:
    """The blob's table as a (not spliceable) :class:`HeldFrame` when it was built at
    ``version``, its polars frame to be read from the same IPC stream; ``None`` when the blob
    is missing or stale."""
    if version is None or blob is None:
        return None
    cut = blob.find(_SEP)
    if cut < 0 or blob[:cut] != version:
        return None
    return HeldFrame(version, None, payload=memoryview(blob)[cut + 1 :])


def rows_between(held: HeldFrame, lo_us: int, hi_us: int) -> tuple[int, int]:
    """(first row, row count) of the bars opening in ``[lo_us, hi_us)`` (µs since the epoch)
    of a held table (sorted by time)."""
    first, last = np.searchsorted(held.ts_us(), [lo_us, hi_us], side="left")
    return int(first), int(last - first)


def table_meta(columns: Columns, wire: Sequence[pa.Array], table: pa.Table) -> Meta | None:
    """The :class:`Meta` of a table built from ``wire`` (``columnar.wire_arrays``); None when
    it cannot be spliced: a decimal column came out as text."""
    decimals = _decimal_indexes(tuple(columns))
    rows = table.num_rows
    if not all(pa.types.is_decimal128(table.column(i).type) for i in decimals):
        return None
    ts_us = table.column(0).cast(pa.int64()).to_numpy()
    if not rows:
        return Meta(ts_us, np.empty((2, len(decimals), 0), np.int8), _no_tops(len(decimals)))
    joined = columnar.plain_text(pa.concat_arrays([wire[i] for i in decimals]))
    shape = (len(decimals), rows)
    places = np.stack(
        [
            columnar.value_scales(joined).to_numpy().reshape(shape),
            columnar.value_int_digits(joined).to_numpy().reshape(shape),
        ]
    )
    return Meta(ts_us, places, places.max(axis=2))


def _no_tops(decimals: int) -> np.ndarray:
    return np.full((2, decimals), -1, np.int8)


@functools.lru_cache(maxsize=64)
def _decimal_indexes(columns: Columns) -> list[int]:
    return [i for i, (_, kind) in enumerate(columns) if kind == "dec"]


_ROW_TYPES: dict[int, tuple[pa.Schema, pa.StructType]] = {}


def _row_type(schema: pa.Schema) -> pa.StructType:
    """The struct type of one row of ``schema`` (new rows are converted as structs). Looked up
    by identity: a splice passes the held schema on unchanged, and hashing a schema costs
    ~20 µs a read."""
    held = _ROW_TYPES.get(id(schema))
    if held is not None and held[0] is schema:
        return held[1]
    if len(_ROW_TYPES) >= 64:
        _ROW_TYPES.clear()
    row_type = pa.struct(list(schema))
    _ROW_TYPES[id(schema)] = (schema, row_type)  # the schema kept: its id is not reused
    return row_type


def _row_value(kind: str, value: Any) -> Any:
    """A wire value as Arrow converts it to the column's type: decimals as ``Decimal`` (exact
    text), open times in µs (``ArithmeticError`` for a sub-µs time: ``columnar`` refuses it)."""
    if kind == "dec":
        return None if value is None else Decimal(value)
    if kind == "ts_ns":
        if value % 1000:
            raise ArithmeticError("open time not in whole µs")
        return value // 1000
    return value


class Plan(NamedTuple):
    """:func:`plan`'s result: how a held table becomes the caught-up one — its rows
    ``[first, first + keep)``, then ``new`` — with the caught-up ``meta`` and types."""

    first: int
    keep: int
    new: pa.StructArray  # one struct per new row, of ``schema``'s columns
    schema: pa.Schema
    meta: Meta


def plan(
    meta: Meta,
    schema: pa.Schema,
    columns: Columns,
    rows: Sequence[Sequence[Any]],
    low_ms: int,
    count: int,
) -> Plan | None:
    """How to catch up a held table of ``meta`` and ``schema``: its bars opening before
    ``low_ms`` less the oldest ones beyond ``count`` bars in all, then ``rows`` (the set's
    members from ``low_ms`` on, as ``columnar.wire_arrays`` rows of ``columns``), typed as the
    full rebuild of those bars would be. None when that cannot be vouched for (the caller
    rebuilds)."""
    cut = int(np.searchsorted(meta.ts_us, low_ms * 1000, side="left"))
    keep = count - len(rows)
    if count <= 0 or keep < 0 or keep > cut:
        return None
    first = cut - keep
    decimals = _decimal_indexes(tuple(columns))
    data: list[Sequence[Any]] = list(zip(*rows, strict=True)) if rows else [()] * len(columns)
    got = [columnar.text_places(text) for c in decimals for text in data[c]]
    if None in got:
        return None
    new_places = np.array(got, np.int8).reshape(len(decimals), len(rows), 2).transpose(2, 0, 1)
    places = np.concatenate([meta.places[:, :, first:cut], new_places], axis=2)
    tops = places.max(axis=2)  # count > 0: there are rows
    if not np.array_equal(tops, meta.tops):  # the types follow the tops
        for d, c in enumerate(decimals):
            target = columnar.decimal_type(int(tops[0, d]), int(tops[1, d]))
            if target is None:
                return None
            if schema.field(c).type != target:
                schema = schema.set(c, schema.field(c).with_type(target))
    kinds = [kind for _, kind in columns]
    try:
        new_rows = [tuple(_row_value(kind, value) for kind, value in zip(kinds, row, strict=True))
                    for row in rows]  # fmt: skip
        # one conversion of all the new rows (tuples → struct): Arrow refuses a decimal that
        # does not fit its column (a cast of the text would wrap)
        structs = pa.array(new_rows, _row_type(schema))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ArithmeticError):
        return None
    ts_new = np.array([row[0] for row in new_rows], np.int64)
    ts_us = np.concatenate([meta.ts_us[first:cut], ts_new])
    return Plan(first, keep, structs, schema, Meta(ts_us, places, tops))


def splice_table(table: pa.Table, done: Plan) -> pa.Table | None:
    """``table`` caught up as ``done`` says (None: Arrow refused a cast; the caller
    rebuilds). Zero-copy: the kept rows' slice and the new rows as chunks, made one chunk
    again past :data:`MAX_CHUNKS`."""
    try:
        new = pa.Table.from_batches([pa.RecordBatch.from_struct_array(done.new)])
        kept = table.slice(done.first, done.keep)
        if kept.schema != done.schema:  # a decimal column's scale or digits changed: exact casts
            kept = kept.cast(done.schema)
        spliced = pa.concat_tables([kept, new])
        if spliced.column(0).num_chunks > MAX_CHUNKS:
            spliced = spliced.combine_chunks()
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    return spliced


def splice_frame(frame: Any, before: pa.Schema, done: Plan) -> Any:
    """The polars frame of the caught-up rows from ``frame``, the polars frame of the rows
    before (of Arrow types ``before``): its kept rows (a zero-copy slice) and the new rows
    converted alone, equal to ``pl.from_arrow`` of the caught-up table, dtypes included. None
    when a column's type changed (a more precise value came in): the caller converts the
    whole table."""
    if done.schema != before:
        return None
    import polars as pl

    kept = frame.slice(done.first, done.keep)
    if kept.n_chunks() >= MAX_CHUNKS:  # one conversion now and then keeps the chunks few
        kept = kept.rechunk()
    if len(done.new):
        # the new rows as one struct Series, unnested: ~17 µs, where ``pl.from_arrow`` of
        # a one-row table costs 60-190 µs (fixed costs of its timestamp and string columns)
        kept = kept.vstack(pl.Series(done.new).struct.unnest())
    return kept
