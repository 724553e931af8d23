"""Candle reads served from ``candle_blocks`` (schema: ``block_ddl.py``; frames:
``candle_frames.py``), built from SQL and stored when missing or marked.

Reads (``source="auto"``): a range is split into its blocks; one statement fetches their stored
frames; if all are clean the result is cut from them (a whole-block read is the stored frame
itself). Otherwise one REPEATABLE READ transaction reads the block rows again, re-reads from SQL
what is missing — a marked block only from its ``dirty_from`` on, consecutive missing blocks in
one query — serves the result and stores the new frames.

Races: why a frame built from an old snapshot is never stored as valid. The build and the store
run in one REPEATABLE READ transaction, and every writer of ``candles`` writes the block's row
in its own transaction (the triggers of ``block_ddl.py``). So:

* a writer that committed after the reader's snapshot (its rows missing from the frame) has
  written a version of the block row the snapshot cannot see: the reader's ``INSERT .. ON
  CONFLICT DO UPDATE`` fails with a serialization failure, and nothing is stored;
* a writer still uncommitted holds the row: the reader's store waits (at most
  ``STORE_LOCK_TIMEOUT``), then fails as above if the writer commits, or gives up;
* a writer starting after the reader's store rewrites the row: the frame is marked.

A store that fails never fails the read: its result comes from one consistent snapshot.

Plain PostgreSQL only: ``Vault`` reads uncached under TimescaleDB (``block_ddl.py`` says why).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import operator
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import psycopg
import pyarrow as pa

from tickvault.model import TIMEFRAMES
from tickvault.storage import arrow_pool
from tickvault.storage.lru import Lru
from tickvault.storage.postgres import candle_frames as frames
from tickvault.storage.postgres import columnar, held_blocks, reader
from tickvault.storage.postgres.block_ddl import BARS_PER_BLOCK

log = logging.getLogger(__name__)

COLUMNS = reader.CANDLE_COLUMNS
STORE_LOCK_TIMEOUT = "50ms"  # how long a reader's store waits for a writer holding the block
MAX_RESULTS_KEPT = 256  # results kept for repeat reads (``CandleBlocks._result``)
# ... and their bytes (with the block tables they pin): at most the held blocks' budget
MAX_EMPTY_STORED = 64  # empty blocks stored per read (a read of decades must not add rows)
# A marked block whose frame still holds and whose bars from ``dirty_from`` on are fewer than
# this is not stored again by a read (its frame would be rewritten after every write of a live
# stream); the reader holds the assembled block instead, and the next store waits for a longer
# tail. Measured (bench.query, "after a write"): the store was ~0.5 ms at p50, 2 ms at p99.
STORE_TAIL_ROWS = 120
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MIN_US = -(2**62)  # every block start
_MAX_US = 2**62

Key = tuple[str, str, str]  # exchange, symbol, timeframe


def to_us(value: datetime) -> int:
    return (value - _EPOCH) // timedelta(microseconds=1)


def from_us(value: int) -> datetime:
    return _EPOCH + timedelta(microseconds=value)


def span_us(timeframe: str) -> int:
    return TIMEFRAMES[timeframe] * 1_000_000 * BARS_PER_BLOCK


def block_of(ts_us: int, timeframe: str) -> int:
    """Start (µs) of the block holding ``ts_us``: epoch-aligned, as tv_candle_block_start."""
    return ts_us - ts_us % span_us(timeframe)


@dataclass
class _Stored:
    frame: bytes | None  # None: never built, or held already (``held``)
    rows: int | None
    layout: int | None
    dirty_from_us: int | None
    version: str  # the row's version (``_VERSION``)
    held: pa.Table | None = None  # a table the reader holds for this row (``held_blocks.py``)
    complete: bool = False  # ``held`` is this version's whole block (else: a prefix only,
    # valid below ``dirty_from``: the row's frame, or an older version of the same frame)


@dataclass
class _Load:
    """Blocks of one read: tables by block start; what to store once built."""

    tables: dict[int, pa.Table] = field(default_factory=dict)
    to_store: dict[int, pa.Table] = field(default_factory=dict)


class Uncacheable(Exception):
    """The read cannot be served from blocks (a decimal column beyond decimal128)."""


# A row's version: a new transaction id whenever the row is written (marked or stored), and
# the store's time besides (an id alone could come round again after 4 billion transactions).
_VERSION = (
    "(b.xmin::text || ':' || coalesce(((extract(epoch FROM b.built_at) * 1000000)::bigint)::text,"
    " ''))"
)
# The versions the reader holds (``held_blocks.py``): their frames are left out — that very
# version, or, for a marked row, any version of the same stored frame (same ``built_at``: a
# mark leaves frame and built_at as they are), which the reader uses below ``dirty_from``.
_HELD = "unnest(%(hs)s::timestamptz[], %(hv)s::text[]) AS h(bs, v)"


def _held_match(row: str, version: str) -> str:
    return (
        f"(h.v = {version} OR ({row}.dirty_from IS NOT NULL AND {row}.built_at IS NOT NULL"
        f" AND split_part(h.v, ':', 2) = split_part({version}, ':', 2)))"
    )


_STORED_SQL = (
    f"SELECT b.block_start, CASE WHEN h.v IS NULL THEN b.frame END, b.rows, b.layout,"
    f" b.dirty_from, {_VERSION} FROM candle_blocks b LEFT JOIN {_HELD}"
    f" ON h.bs = b.block_start AND {_held_match('b', _VERSION)}"
    " WHERE b.exchange = %(e)s AND b.symbol = %(s)s AND b.timeframe = %(tf)s"
    " AND b.block_start >= %(lo)s AND b.block_start <= %(hi)s"
)
_NEWEST_SQL = (
    "SELECT ts FROM candles WHERE exchange = %s AND symbol = %s AND timeframe = %s"
    " AND ts < %s ORDER BY ts DESC LIMIT 1"
)
# The newest bar and the stored rows of its block and the one before, in one statement (one
# snapshot); the frame of the one before only if the newest block's clean frame is too short;
# no frame the reader holds.
_LATEST_SQL = (
    "WITH n AS (SELECT ts FROM candles WHERE exchange = %(e)s AND symbol = %(s)s"
    " AND timeframe = %(tf)s ORDER BY ts DESC LIMIT 1),"
    " nb AS (SELECT tv_candle_block_start(%(tf)s, ts) AS start FROM n),"
    f" k AS (SELECT b.*, {_VERSION} AS version FROM candle_blocks b"
    " WHERE b.exchange = %(e)s AND b.symbol = %(s)s"
    " AND b.timeframe = %(tf)s AND b.block_start <= (SELECT start FROM nb)"
    " AND b.block_start >= (SELECT start FROM nb) - tv_candle_block_span(%(tf)s))"
    " SELECT (SELECT ts FROM n), k.block_start, CASE WHEN h.v IS NOT NULL THEN NULL"
    " WHEN k.block_start = (SELECT start FROM nb)"
    " OR NOT EXISTS (SELECT 1 FROM k x WHERE x.block_start = (SELECT start FROM nb)"
    " AND x.frame IS NOT NULL AND x.dirty_from IS NULL AND x.rows >= %(limit)s)"
    " THEN k.frame END, k.rows, k.layout, k.dirty_from, k.version"
    f" FROM (SELECT 1) one LEFT JOIN k ON true LEFT JOIN {_HELD}"
    f" ON h.bs = k.block_start AND {_held_match('k', 'k.version')}"
)
# The bars of the newest block from its mark on (none when it is clean: ``greatest`` skips a
# NULL, so the clean row is left out of ``r``), as the uncached read gives them: a column of
# _FIRST_LOOK_SQL, so read in the same statement (and snapshot) as _LATEST_SQL's rows.
_TAIL_SQL = (
    "WITH n AS (SELECT ts FROM candles WHERE exchange = %(exchange)s AND symbol = %(symbol)s"
    " AND timeframe = %(timeframe)s ORDER BY ts DESC LIMIT 1),"
    " nb AS (SELECT tv_candle_block_start(%(timeframe)s, ts) AS start FROM n),"
    " r AS (SELECT greatest(b.dirty_from, nb.start) AS lo,"
    " nb.start + tv_candle_block_span(%(timeframe)s) AS hi FROM nb JOIN candle_blocks b"
    " ON b.exchange = %(exchange)s AND b.symbol = %(symbol)s AND b.timeframe = %(timeframe)s"
    " AND b.block_start = nb.start AND b.dirty_from IS NOT NULL) "
    + columnar.wrap_sql(
        COLUMNS,
        reader.candles_sql(  # the timeframe picks a continuous aggregate only (TimescaleDB)
            False, "1m", "auto", latest=False, start="(SELECT lo FROM r)", end="(SELECT hi FROM r)"
        ),
    )
)
# The first look of ``latest``: _LATEST_SQL's rows, each with the newest block's tail
# (_TAIL_SQL's rows as one JSON array of arrays, in time order; '[]' when the block is clean).
# One statement is one snapshot: no transaction, no pipeline (the four statements of a
# REPEATABLE READ pipeline cost ~0.5 ms of client CPU a read in psycopg's pipeline code).
_TAIL_COLUMNS = ", ".join(f"c{i}" for i in range(len(COLUMNS)))
_TAIL_JSON = (
    f"(SELECT coalesce(json_agg(json_build_array({_TAIL_COLUMNS}) ORDER BY c0), '[]')::text"
    f" FROM ({_TAIL_SQL}) AS tail({_TAIL_COLUMNS}))"
)
_FIRST_LOOK_SQL = _LATEST_SQL.replace(
    " SELECT (SELECT ts FROM n), k.block_start,",
    f" SELECT (SELECT ts FROM n), {_TAIL_JSON}, k.block_start,",
    1,
)
_tail_decoder = msgspec.json.Decoder(list[tuple[Any, ...]])
_STORE_SQL = (
    "INSERT INTO candle_blocks AS b (exchange, symbol, timeframe, block_start, frame, rows,"
    " layout, built_at) SELECT %s, %s, %s, unnest(%s::timestamptz[]), unnest(%s::bytea[]),"
    " unnest(%s::int4[]), %s, now()"
    " ON CONFLICT (exchange, symbol, timeframe, block_start) DO UPDATE SET frame = EXCLUDED.frame,"
    " rows = EXCLUDED.rows, layout = EXCLUDED.layout, dirty_from = NULL,"
    f" built_at = EXCLUDED.built_at RETURNING b.block_start, {_VERSION}"
)


class CandleBlocks:
    """Block-cached candle reads on one connection (autocommit, as ``Vault``'s)."""

    def __init__(
        self, conn: psycopg.Connection[Any], held_bytes: int = held_blocks.DEFAULT_MAX_BYTES
    ) -> None:
        arrow_pool.use_jemalloc()  # decode tails: see arrow_pool
        self._conn = conn
        self.held = held_blocks.HeldBlocks(held_bytes)
        # the last result per read (stream and range or limit), with the block tables it was
        # cut from: the same tables (the same row versions) give the same rows
        # (bounded in count and in bytes, the block tables it pins counted: the same budget as
        # the held blocks')
        self._results: Lru[tuple[Any, ...], tuple[list[pa.Table], pa.Table]] = Lru(
            MAX_RESULTS_KEPT, self.held.max_bytes
        )
        self.store_tail_rows = STORE_TAIL_ROWS
        self.stored_blocks = 0  # blocks stored by this reader (tests, benchmarks)
        self.store_failures = 0  # stores given up (a concurrent writer, ...)
        self.decoded_frames = 0  # frames received and decoded (not held already)
        self.tail_reads = 0  # latest reads served by the first look's tail (``_with_tail``)

    # -- reads ---------------------------------------------------------------------------------

    def candles(self, key: Key, lo_us: int, hi_us: int) -> pa.Table | None:
        """Bars opening in [lo, hi), as ``Vault.candles(source="auto")``; None: read uncached."""
        timeframe = key[2]
        span = span_us(timeframe)
        starts = list(range(block_of(lo_us, timeframe), block_of(hi_us - 1, timeframe) + 1, span))
        try:
            tables = self._clean(key, self._stored(key, starts[0], starts[-1]), starts)
            if tables is None:
                with self._snapshot():
                    load = _Load()
                    self._load(key, self._stored(key, starts[0], starts[-1]), starts, load)
                    self._store(key, load.to_store)
                tables = load.tables
            used = [tables[s] for s in starts]
            return self._result(
                (key, lo_us, hi_us), used, lambda: self._cut(tables, starts, lo_us, hi_us, span)
            )
        except Uncacheable:
            return None

    def latest(self, key: Key, limit: int) -> pa.Table | None:
        """The newest ``limit`` bars, as ``Vault.latest_candles``; None: read uncached."""
        span = span_us(key[2])
        try:
            newest_block, stored, tail = self._newest_blocks(key, limit, tail=True)
            if newest_block is None:
                return _empty()
            picked = self._newest_clean(
                key, stored, [newest_block, newest_block - span], span, limit
            ) or self._with_tail(key, stored, tail, newest_block, span, limit)
            if picked is None:
                with self._snapshot():
                    picked = self._latest_in_snapshot(key, limit)
            return self._result((key, limit), picked, lambda: _last(picked, limit))
        except Uncacheable:
            return None

    def _with_tail(
        self, key: Key, stored: dict[int, _Stored], tail: list[tuple[Any, ...]],
        newest_block: int, span: int, limit: int,
    ) -> list[pa.Table] | None:  # fmt: skip
        """The newest blocks when only the newest is marked and its frame (held, or sent) still
        holds below the mark: that prefix plus ``tail`` (its bars from the mark on), held as the whole block of the version
        the first look saw (not stored: see ``STORE_TAIL_ROWS``). None: take the snapshot way
        (a long tail, so the block is stored; another block marked; a frame missing)."""
        entry = stored.get(newest_block)
        if entry is None or entry.dirty_from_us is None or len(tail) >= self.store_tail_rows:
            return None
        prefix = self._decoded(key, entry, newest_block, span)
        if prefix is None:
            return None
        read = frames.block_table(COLUMNS, columnar.wire_arrays(COLUMNS, tail))
        if read is None:
            raise Uncacheable
        cut = frames.row_index(prefix, max(entry.dirty_from_us, newest_block))
        table = frames.assemble(COLUMNS, [(prefix, 0, cut), (read, 0, read.num_rows)], scales=True)
        if table is None:
            raise Uncacheable
        self.held.put(key, newest_block, entry.version, table, True)
        self.tail_reads += 1
        if table.num_rows >= limit:
            return [table]
        before = self._clean_block(key, stored.get(newest_block - span), newest_block - span, span)
        if before is None or before.num_rows + table.num_rows < limit:
            return None
        return [before, table]

    def _newest_blocks(
        self, key: Key, limit: int, *, tail: bool = False
    ) -> tuple[int | None, dict[int, _Stored], list[tuple[Any, ...]]]:
        """One statement: the newest bar's block and the stored rows of it and the block
        before (``_LATEST_SQL``), and with ``tail`` the newest block's bars from its mark on
        (``_FIRST_LOOK_SQL``: the same snapshot, one round trip); (None, {}, []) when the
        stream has no bar."""
        held = self.held.in_range(key, _MIN_US, _MAX_US)
        params = {"e": key[0], "s": key[1], "tf": key[2], "limit": limit}
        if tail:
            params.update(reader.candle_params(*key, "auto"))
        sql = _FIRST_LOOK_SQL if tail else _LATEST_SQL
        rows = self._conn.cursor(binary=True).execute(sql, _held(params, held)).fetchall()
        newest = rows[0][0]
        if newest is None:
            return None, {}, []
        first = 2 if tail else 1  # the block rows' columns
        bars = _tail_decoder.decode(rows[0][1]) if tail else []
        stored = _entries([r[first:] for r in rows if r[first]], held)
        return block_of(to_us(newest), key[2]), stored, bars

    def _result(
        self, read: tuple[Any, ...], tables: list[pa.Table], cut: Callable[[], pa.Table]
    ) -> pa.Table:
        """``cut()``, or the same read's last result when it was cut from these very tables
        (held tables are immutable and tied to their row versions: same tables, same rows)."""
        before = self._results.get(read)
        if before is not None and _same(before[0], tables):
            return before[1]
        result = cut()
        size = result.get_total_buffer_size() + sum(t.get_total_buffer_size() for t in tables)
        self._results.put(read, (tables, result), size)  # not kept if over the whole budget
        return result

    # -- in one snapshot -----------------------------------------------------------------------

    def _latest_in_snapshot(self, key: Key, limit: int) -> list[pa.Table]:
        exchange, symbol, timeframe = key
        span = span_us(timeframe)
        load = _Load()
        picked: list[pa.Table] = []
        count = 0
        # the newest block and the one before from one statement (a live stream's newest block
        # is marked after every write); older ones by bar
        newest_block, stored, _ = self._newest_blocks(key, limit)
        before = to_us(datetime.max.replace(tzinfo=UTC))
        for start in () if newest_block is None else (newest_block, newest_block - span):
            if count >= limit:
                break
            self._load(key, stored, [start], load)
            picked.insert(0, load.tables[start])
            count += load.tables[start].num_rows
            before = start
        while count < limit:
            row = self._conn.execute(
                _NEWEST_SQL, (exchange, symbol, timeframe, from_us(before))
            ).fetchone()
            if row is None:
                break
            start = block_of(to_us(row[0]), timeframe)
            self._load(key, self._stored(key, start, start), [start], load)
            picked.insert(0, load.tables[start])
            count += load.tables[start].num_rows
            before = start
        self._store(key, load.to_store)
        return picked

    def _load(
        self, key: Key, stored: dict[int, _Stored], starts: Sequence[int], load: _Load
    ) -> None:
        """Block tables of ``starts`` into ``load``: clean stored frames as they are, the rest
        read from SQL (from ``dirty_from`` on where the frame before it still holds)."""
        timeframe = key[2]
        span = span_us(timeframe)
        todo: list[tuple[int, pa.Table | None, int]] = []  # (start, kept frame, read from)
        for start in starts:
            entry = stored.get(start)
            if entry is not None and entry.complete:  # held, this very version
                self.held.touch(key, start)
                load.tables[start] = entry.held  # type: ignore[assignment]
                continue
            table = self._decoded(key, entry, start, span)
            if table is not None and entry is not None and entry.dirty_from_us is None:
                load.tables[start] = table
                continue
            if table is None or entry is None or entry.dirty_from_us is None:
                todo.append((start, None, start))
            else:
                todo.append((start, table, max(entry.dirty_from_us, start)))
        empty = 0
        for run in _runs(todo, span):
            read = self._read(key, run[0][2], run[-1][0] + span)
            times = frames.times_us(read)
            for start, kept, read_from in run:
                lo, hi = (int(i) for i in times.searchsorted([read_from, start + span]))
                if kept is None and lo == hi:  # nothing there (a read of years stays quick)
                    table = _empty_block()
                else:
                    pieces: list[frames.Piece] = [(read, lo, hi)]
                    if kept is not None:
                        pieces.insert(0, (kept, 0, frames.row_index(kept, read_from)))
                    assembled = frames.assemble(COLUMNS, pieces, scales=True)
                    if assembled is None:
                        raise Uncacheable
                    table = assembled
                load.tables[start] = table
                empty += table.num_rows == 0
                if kept is not None and hi - lo < self.store_tail_rows:
                    # a short tail after the stored frame (a live stream's newest block): held
                    # whole under the row version this snapshot sees, not stored (a store
                    # rewrites the whole frame on every read after every write)
                    self.held.put(key, start, stored[start].version, table, True)
                elif table.num_rows or empty <= MAX_EMPTY_STORED:
                    load.to_store[start] = table

    def _read(self, key: Key, lo_us: int, hi_us: int) -> pa.Table:
        """Bars opening in [lo, hi) from SQL (the uncached query) as a block table."""
        exchange, symbol, timeframe = key
        sql = reader.candles_sql(False, timeframe, "auto", latest=False)
        params = reader.candle_params(
            exchange, symbol, timeframe, "auto", start=from_us(lo_us), end=from_us(hi_us)
        )
        rows = self._conn.cursor(binary=True).execute(columnar.wrap_sql(COLUMNS, sql), params)
        table = frames.block_table(COLUMNS, columnar.wire_arrays(COLUMNS, rows.fetchall()))
        if table is None:
            raise Uncacheable
        return table

    def _store(self, key: Key, tables: dict[int, pa.Table]) -> None:
        """Best effort: a store refused (concurrent writer, lock wait) leaves the blocks as
        they were; the read has its result already. Runs in the read's snapshot, after a
        savepoint (its failure must not end the transaction) limiting its lock wait."""
        if not tables:
            return
        starts = sorted(tables)
        conn = self._conn
        conn.execute(f"SAVEPOINT tv_store; SET LOCAL lock_timeout = '{STORE_LOCK_TIMEOUT}'")
        try:
            versions = conn.execute(
                _STORE_SQL,
                (*key, [from_us(s) for s in starts], [frames.encode(tables[s]) for s in starts],
                 [tables[s].num_rows for s in starts], frames.FRAME_FORMAT),
            ).fetchall()  # fmt: skip
            self.stored_blocks += len(starts)
        except psycopg.Error as exc:
            conn.execute("ROLLBACK TO SAVEPOINT tv_store")
            self.store_failures += 1
            log.debug("candle blocks of %s not stored: %s", key, exc)
            return
        # the stored frames are these tables: held under the versions just written (should
        # the transaction not commit, no row ever has those versions and they go unused)
        for start, version in versions:
            self.held.put(key, to_us(start), version, tables[to_us(start)], True)

    # -- helpers -------------------------------------------------------------------------------

    def _snapshot(self) -> Any:
        return _RepeatableRead(self._conn)

    def _stored(self, key: Key, first: int, last: int) -> dict[int, _Stored]:
        held = self.held.in_range(key, first, last)
        params = {"e": key[0], "s": key[1], "tf": key[2], "lo": from_us(first), "hi": from_us(last)}
        rows = self._conn.cursor(binary=True).execute(_STORED_SQL, _held(params, held))
        return _entries(rows.fetchall(), held)

    def _clean_block(
        self, key: Key, entry: _Stored | None, start: int, span: int
    ) -> pa.Table | None:
        """The block's whole table: held complete, or from a clean, decodable frame; None if
        missing or marked."""
        if entry is not None and entry.complete:
            self.held.touch(key, start)
            return entry.held
        if entry is None or entry.dirty_from_us is not None:
            return None
        return self._decoded(key, entry, start, span)

    def _decoded(self, key: Key, entry: _Stored | None, start: int, span: int) -> pa.Table | None:
        """The frame's table: held, or decoded (and held from then on)."""
        if entry is None or entry.layout != frames.FRAME_FORMAT:
            return None
        if entry.held is not None:
            self.held.touch(key, start)
            return entry.held
        if entry.frame is None:
            return None
        if entry.rows == 0:
            return _empty_block()
        table = frames.decode(COLUMNS, entry.frame, entry.rows or 0, start, start + span)
        self.decoded_frames += 1
        if table is not None:
            self.held.put(key, start, entry.version, table, entry.dirty_from_us is None)
        return table

    def _clean(
        self, key: Key, stored: dict[int, _Stored], starts: Sequence[int]
    ) -> dict[int, pa.Table] | None:
        """All blocks of ``starts`` from clean, decodable frames; None if any is missing."""
        span = span_us(key[2])
        out: dict[int, pa.Table] = {}
        for start in starts:
            table = self._clean_block(key, stored.get(start), start, span)
            if table is None:
                return None
            out[start] = table
        return out

    def _newest_clean(
        self, key: Key, stored: dict[int, _Stored], starts: Sequence[int], span: int, limit: int
    ) -> list[pa.Table] | None:
        """The blocks of ``starts`` (newest first) from clean frames, as soon as they hold
        ``limit`` bars; None when a frame is missing or marked first."""
        picked: list[pa.Table] = []
        count = 0
        for start in starts:
            table = self._clean_block(key, stored.get(start), start, span)
            if table is None:
                return None
            picked.insert(0, table)
            count += table.num_rows
            if count >= limit:
                return picked
        return None

    def _cut(
        self, tables: dict[int, pa.Table], starts: Sequence[int], lo_us: int, hi_us: int, span: int
    ) -> pa.Table:
        pieces: list[frames.Piece] = []
        for start in starts:
            table = tables[start]
            if table.num_rows == 0:
                continue
            lo = 0 if lo_us <= start else frames.row_index(table, lo_us)
            hi = table.num_rows if hi_us >= start + span else frames.row_index(table, hi_us)
            if hi > lo:
                pieces.append((table, lo, hi))
        result = frames.assemble(COLUMNS, pieces, scales=False)
        if result is None:
            raise Uncacheable
        return result


class _RepeatableRead:
    """``with``: one REPEATABLE READ transaction on an autocommit connection (BEGIN and COMMIT
    sent by hand: one round trip each)."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self._conn = conn

    def __enter__(self) -> None:
        self._conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")

    def __exit__(self, kind: type[BaseException] | None, *exc: Any) -> None:
        if kind is None:
            self._conn.execute("COMMIT")
            return
        with contextlib.suppress(psycopg.Error):  # the error being raised says what happened
            self._conn.execute("ROLLBACK")


def _runs(
    todo: Sequence[tuple[int, pa.Table | None, int]], span: int
) -> Iterator[list[tuple[int, pa.Table | None, int]]]:
    """Consecutive blocks read by one query: a run grows while the next block follows on and
    has no kept frame (a kept frame starts a run of its own, read from its ``dirty_from``)."""
    run: list[tuple[int, pa.Table | None, int]] = []
    for item in todo:
        if run and (item[1] is not None or item[0] != run[-1][0] + span):
            yield run
            run = []
        run.append(item)
    if run:
        yield run


def _held(params: dict[str, Any], held: dict[int, held_blocks.Held]) -> dict[str, Any]:
    """``params`` with the held blocks' starts and versions (``_HELD``)."""
    starts = sorted(held)
    return {**params, "hs": [from_us(s) for s in starts], "hv": [held[s][0] for s in starts]}


def _entries(rows: Sequence[Any], held: dict[int, held_blocks.Held]) -> dict[int, _Stored]:
    """Block rows (start, frame, rows, layout, dirty_from, version) by start; a frame left out
    because it is held comes with its held table."""
    out = {}
    for start_ts, frame, count, layout, dirty_from, version in rows:
        start = to_us(start_ts)
        entry = _Stored(frame, count, layout, _us_or_none(dirty_from), version)
        mine = held.get(start)
        if frame is None and mine is not None:
            if mine[0] == version:
                entry.held, entry.complete = mine[1], mine[2]
            elif dirty_from is not None and _built(mine[0]) == _built(version) != "":
                entry.held = mine[1]  # the same frame: a prefix below dirty_from
        out[start] = entry
    return out


def _built(version: str) -> str:
    """The ``built_at`` part of a row version (``_VERSION``)."""
    return version.partition(":")[2]


def _same(a: Sequence[object], b: Sequence[object]) -> bool:
    return len(a) == len(b) and all(map(operator.is_, a, b))


def _us_or_none(value: datetime | None) -> int | None:
    return None if value is None else to_us(value)


@functools.cache
def _empty_block() -> pa.Table:
    table = frames.block_table(COLUMNS, columnar.wire_arrays(COLUMNS, []))
    return table if table is not None else _never()


def _empty() -> pa.Table:
    table = frames.assemble(COLUMNS, [(_empty_block(), 0, 0)], scales=False)
    return table if table is not None else _never()


def _never() -> pa.Table:
    raise AssertionError("an empty candle table always converts")


def _last(tables: list[pa.Table], limit: int) -> pa.Table:
    """The newest ``limit`` rows of consecutive block tables (oldest first)."""
    pieces: list[frames.Piece] = []
    need = limit
    for table in reversed(tables):
        take = min(need, table.num_rows)
        pieces.insert(0, (table, table.num_rows - take, table.num_rows))
        need -= take
        if need == 0:
            break
    if not pieces:
        return _empty()
    result = frames.assemble(COLUMNS, pieces, scales=False)
    if result is None:
        raise Uncacheable
    return result
