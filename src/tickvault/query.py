"""Reading stored market data: ``Vault.connect(settings).candles(...)`` → a data frame.

Results come as polars (default), pandas or Arrow. Prices and sizes stay exact: they are
Arrow ``decimal128`` columns (polars ``Decimal``, pandas ``Decimal`` objects) with the scale of
the most precise value in the column — the same numbers the exchange sent. Times are UTC
``timestamp[us]``. Ranges are half-open, ``[start, end)``.

Candles: per bar, the exchange's own bar wins; a derived bar fills in where the exchange's is
missing (see ``tickvault.storage.postgres.reader``); ``source`` says which one you got.
Candle reads (``source="auto"``) are served from the candle blocks cached inside PostgreSQL
(``tickvault.storage.postgres.candle_blocks``; plain PostgreSQL mode): the same frame as the
uncached read, values and types, built and stored on a miss;
``Vault.connect(..., block_cache=False)`` reads uncached.

Times accept datetimes, dates, ISO-8601 strings (``2024-01-01``, ``2024-01-01T12:00:00Z``;
naive means UTC) and integer nanoseconds since the epoch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Literal

import psycopg
import pyarrow as pa

from tickvault.config import Settings
from tickvault.errors import StorageError, UsageError
from tickvault.model import EXCHANGES, TIMEFRAMES, decimal_str, split_symbol
from tickvault.storage.lru import Lru
from tickvault.storage.postgres import columnar, reader
from tickvault.storage.postgres.candle_blocks import CandleBlocks, to_us
from tickvault.storage.postgres.connection import (
    connect_sync,
    describe_error,
    redact,
)
from tickvault.storage.postgres.schema import (
    SCHEMA_VERSION,
    current_version,
    require_current,
    stored_mode,
)

TimeLike = datetime | date | str | int
Format = Literal["polars", "pandas", "arrow"]
FORMATS = ("polars", "pandas", "arrow")
MAX_FRAMES_KEPT = 64  # polars frames of repeat block reads (``Vault._convert_cached``)
MAX_FRAME_BYTES = 64 << 20  # ... and their bytes, with the sources they keep alive


def parse_time(value: TimeLike, name: str = "time") -> datetime:
    """A UTC datetime from a datetime, date, ISO-8601 text or integer nanoseconds."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    if isinstance(value, int) and not isinstance(value, bool):
        seconds, ns = divmod(value, 1_000_000_000)
        return datetime.fromtimestamp(seconds, UTC).replace(microsecond=ns // 1000)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            raise UsageError(
                f"{name} {value!r} is not an ISO-8601 date or time (e.g. 2024-01-01 or "
                "2024-01-01T12:00:00Z)"
            ) from None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    raise UsageError(f"{name} must be a datetime, date, ISO-8601 string or ns integer")


def parse_range(start: TimeLike, end: TimeLike) -> tuple[datetime, datetime]:
    lo, hi = parse_time(start, "start"), parse_time(end, "end")
    if lo >= hi:
        raise UsageError(
            f"empty time range: start {lo.isoformat()} is not before end {hi.isoformat()}"
        )
    return lo, hi


def check_market(exchange: str, symbol: str, timeframe: str | None = None) -> None:
    if exchange not in EXCHANGES:
        raise UsageError(f"unknown exchange {exchange!r}; known: {', '.join(EXCHANGES)}")
    try:
        split_symbol(symbol)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if timeframe is not None and timeframe not in TIMEFRAMES:
        raise UsageError(f"unknown timeframe {timeframe!r}; known: {', '.join(TIMEFRAMES)}")


def _decimal_array(values: list[Any]) -> pa.Array:
    scale, digits = 0, 1
    for v in values:
        if v is None:
            continue
        _sign, ds, exp = v.as_tuple()
        assert isinstance(exp, int)
        scale = max(scale, -exp)
        digits = max(digits, len(ds) + exp)
    precision = digits + scale
    if precision > 38:  # beyond decimal128: keep exactness as text rather than round
        return pa.array([None if v is None else decimal_str(v) for v in values], pa.string())
    return pa.array(values, pa.decimal128(max(precision, 1), scale))


_ARROW_TYPES = {
    "ts": pa.timestamp("us", tz="UTC"),
    "text": pa.string(),
    "int": pa.int64(),
    "bool": pa.bool_(),
    "float": pa.float64(),
}


def to_arrow(columns: Sequence[tuple[str, str]], rows: Sequence[Sequence[Any]]) -> pa.Table:
    arrays: list[pa.Array] = []
    for i, (_, kind) in enumerate(columns):
        values = [row[i] for row in rows]
        if kind == "dec":
            arrays.append(_decimal_array(values))
        else:
            arrays.append(pa.array(values, _ARROW_TYPES[kind]))
    return pa.Table.from_arrays(arrays, names=[name for name, _ in columns])


def convert(table: pa.Table, format: Format) -> Any:
    """Arrow → the requested frame type."""
    if format == "arrow":
        return table
    if format == "pandas":
        return table.to_pandas()
    if format == "polars":
        import polars as pl

        return pl.from_arrow(table)
    raise UsageError(f"unknown format {format!r}; use one of {', '.join(FORMATS)}")


class FrameMemo:
    """polars frames of results read before, so a repeat read of unchanged data skips the
    conversion (the costliest step of a cached read). A result is named by an immutable
    ``source`` it was cut from (kept alive here, so its id is not reused) and the cut's
    arguments; each call gets a clone (copy-on-write: the caller's changes never reach the kept
    frame). Other formats are converted every time. Bounded in count and in bytes (the frame's
    estimated size and its source's buffers, which it keeps alive). Thread-safe (``RedisCache``
    is shared by the query API's threads)."""

    def __init__(self, size: int = MAX_FRAMES_KEPT, max_bytes: int = MAX_FRAME_BYTES) -> None:
        self._kept: Lru[tuple[Any, ...], tuple[object, Any]] = Lru(size, max_bytes)

    @property
    def bytes(self) -> int:
        return self._kept.bytes

    def convert(self, table: pa.Table, format: Format, source: object, *cut: Any) -> Any:
        if format != "polars":
            return convert(table, format)
        name = (id(source), *cut)
        kept = self._kept.get(name)
        if kept is not None and kept[0] is source:
            return kept[1].clone()
        frame = convert(table, format)
        size = int(frame.estimated_size())
        if isinstance(source, pa.Table):
            size += source.get_total_buffer_size()
        if not self._kept.put(name, (source, frame), size):
            return frame  # not kept: handed out as it is
        return frame.clone()


@dataclass(frozen=True)
class StorageStatus:
    url: str
    embedded: bool
    server_version: str
    timescaledb: bool
    timescaledb_available: bool
    schema_version: int | None
    tables: list[reader.TableStatus]


class Vault:
    """Synchronous read access to the stored history (one connection; not thread-safe)."""

    def __init__(
        self,
        conn: psycopg.Connection[Any],
        url: str,
        *,
        embedded: bool = False,
        block_cache: bool = True,
    ) -> None:
        self._conn = conn
        self.url = url
        self.embedded = embedded
        version = current_version(conn)
        self.schema_version = version
        self.timescaledb = stored_mode(conn) if version is not None else False
        # plain PostgreSQL only: see storage/postgres/block_ddl.py for TimescaleDB
        cached = block_cache and not self.timescaledb
        self.blocks = CandleBlocks(conn) if cached else None
        self._frames = FrameMemo()

    @classmethod
    def connect(
        cls, settings: Settings | None = None, *, url: str | None = None, block_cache: bool = True
    ) -> Vault:
        """Connect to the configured database (or the embedded one) and check its schema.

        ``block_cache=False``: candle reads always run their SQL (no cached blocks read or
        stored)."""
        embedded = False
        if url is None:
            from tickvault.storage.urls import resolve_urls

            urls = resolve_urls(settings or Settings(), need_redis=False)
            url, embedded = urls.database_url, "postgres" in urls.embedded
        conn = connect_sync(url, autocommit=True)
        vault = cls(conn, url, embedded=embedded, block_cache=block_cache)
        return vault

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Vault:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _require_schema(self) -> None:
        require_current(self.schema_version, self.url)

    def _table(self, columns: Sequence[tuple[str, str]], sql: str, params: Any) -> pa.Table:
        """Rows straight into Arrow columns (no Decimal/datetime per value; see columnar)."""
        self._require_schema()
        try:
            return columnar.fetch_table(self._conn, columns, sql, params)
        except psycopg.Error as exc:
            raise StorageError(f"query failed: {describe_error(exc)}") from None

    def _cached(self, read: Callable[[CandleBlocks], pa.Table | None]) -> pa.Table | None:
        """A candle read from the blocks; None when it must run uncached."""
        if self.blocks is None:
            return None
        self._require_schema()
        try:
            with columnar.no_gc():
                return read(self.blocks)
        except psycopg.Error as exc:
            raise StorageError(f"query failed: {describe_error(exc)}") from None

    def forget_held(self) -> None:
        """Drop the decoded blocks and results this reader holds: the next read gets every
        frame from PostgreSQL again, as a new process would (benchmarks)."""
        if self.blocks is not None:
            self.blocks = CandleBlocks(self._conn, self.blocks.held.max_bytes)
        self._frames = FrameMemo()

    def _convert_cached(self, table: pa.Table, format: Format) -> Any:
        """``convert`` for block results: the blocks hand back the same Arrow table for a
        repeat read of unchanged rows, whose polars frame is then made once."""
        return self._frames.convert(table, format, table)

    def candles(
        self,
        exchange: str,
        symbol: str,
        timeframe: str,
        start: TimeLike,
        end: TimeLike,
        *,
        source: Literal["auto", "exchange", "derived"] = "auto",
        format: Format = "polars",
    ) -> Any:
        """Bars opening in [start, end), one per open time (exchange first, else derived)."""
        check_market(exchange, symbol, timeframe)
        lo, hi = parse_range(start, end)
        if source == "auto":
            key = (exchange, symbol, timeframe)
            cached = self._cached(lambda blocks: blocks.candles(key, to_us(lo), to_us(hi)))
            if cached is not None:
                return self._convert_cached(cached, format)
        sql = reader.candles_sql(self.timescaledb, timeframe, source, latest=False)
        params = reader.candle_params(exchange, symbol, timeframe, source, start=lo, end=hi)
        return convert(self._table(reader.CANDLE_COLUMNS, sql, params), format)

    def latest_candles(
        self,
        exchange: str,
        symbol: str,
        timeframe: str,
        limit: int = 500,
        *,
        format: Format = "polars",
    ) -> Any:
        """The newest ``limit`` bars, oldest first."""
        check_market(exchange, symbol, timeframe)
        if limit < 1:
            raise UsageError("limit must be at least 1")
        key = (exchange, symbol, timeframe)
        cached = self._cached(lambda blocks: blocks.latest(key, limit))
        if cached is not None:
            return self._convert_cached(cached, format)
        sql = reader.candles_sql(self.timescaledb, timeframe, "auto", latest=True)
        params = reader.candle_params(exchange, symbol, timeframe, "auto", limit=limit)
        return convert(self._table(reader.CANDLE_COLUMNS, sql, params), format)

    def trades(
        self,
        exchange: str,
        symbol: str,
        start: TimeLike,
        end: TimeLike,
        *,
        format: Format = "polars",
    ) -> Any:
        check_market(exchange, symbol)
        lo, hi = parse_range(start, end)
        table = self._table(reader.TRADE_COLUMNS, reader.TRADES_SQL, (exchange, symbol, lo, hi))
        return convert(table, format)

    def book(self, exchange: str, symbol: str, at: TimeLike, *, format: Format = "polars") -> Any:
        """The latest book snapshot at or before ``at``: one row per level, bids then asks."""
        check_market(exchange, symbol)
        self._require_schema()
        try:
            rows = reader.book_rows(self._conn, exchange, symbol, parse_time(at, "at"))
        except psycopg.Error as exc:
            raise StorageError(f"query failed: {describe_error(exc)}") from None
        return convert(to_arrow(reader.BOOK_COLUMNS, rows), format)

    def latest(
        self,
        exchange: str,
        symbol: str,
        timeframes: Sequence[str] = ("1m",),
        *,
        format: Format = "polars",
    ) -> Any:
        """Newest trade, ticker, book top and candle per timeframe, one row each."""
        for timeframe in timeframes:
            check_market(exchange, symbol, timeframe)
        check_market(exchange, symbol)
        self._require_schema()
        try:
            rows = reader.latest_rows(
                self._conn, exchange, symbol, list(timeframes), self.timescaledb
            )
        except psycopg.Error as exc:
            raise StorageError(f"query failed: {describe_error(exc)}") from None
        return convert(to_arrow(reader.LATEST_COLUMNS, rows), format)

    def status(self) -> StorageStatus:
        try:
            row = self._conn.execute(
                "SELECT current_setting('server_version'),"
                " EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb')"
            ).fetchone()
            assert row is not None
            tables = (
                []
                if self.schema_version is None
                else reader.table_status(self._conn, self.timescaledb)
            )
        except psycopg.Error as exc:
            raise StorageError(f"status query failed: {describe_error(exc)}") from None
        return StorageStatus(
            url=redact(self.url),
            embedded=self.embedded,
            server_version=str(row[0]),
            timescaledb=self.timescaledb,
            timescaledb_available=bool(row[1]),
            schema_version=self.schema_version,
            tables=tables,
        )


__all__ = ["SCHEMA_VERSION", "StorageStatus", "Vault", "parse_range", "parse_time"]
