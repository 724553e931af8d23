"""Events to COPY text, and the SQL of each time-series table's two write paths.

A batch is encoded once, in PostgreSQL's COPY text format, straight from the events (no
intermediate row tuples). The store then tries the **direct** path: ``COPY`` into the target
table itself, in its own transaction. The table's unique natural-key index makes that safe: if
any row already exists (or appears twice in the batch) the COPY fails with a unique violation
and rolls back whole, and the store falls back to the **staged** path with the same bytes:
``COPY`` into a per-connection temporary table shaped ``LIKE`` the target, then one
``INSERT .. SELECT .. ON CONFLICT``. So new data costs what a plain COPY costs, a re-sent batch
still inserts nothing, and one duplicate costs only itself.

Text, not binary: numerics then travel as their exact decimal text (``str(Decimal)``: scientific
notation such as ``1.0E-7`` is read back by PostgreSQL with the same scale, so
``0.00000010`` stays ``0.00000010``), which is ~10x cheaper to produce in Python than the binary
numeric format; and timestamps are formatted from integer ns with a per-second cache.
Timestamps keep microseconds (``ts_ns // 1000``, floor): TIMESTAMPTZ has no finer resolution
and no exchange publishes finer.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
from psycopg import errors as pg_errors

from tickvault.model import BookSnapshot, Candle, Level, Ticker, Trade
from tickvault.storage.postgres.ddl import NATURAL_KEYS
from tickvault.storage.postgres.records import FeatureValue

NULL = "\\N"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SECONDS: dict[int, str] = {}  # epoch second -> "YYYY-MM-DD HH:MM:SS." (bounded memo)
_SECONDS_MAX = 200_000


def _second(s: int) -> str:
    text = _SECONDS.get(s)
    if text is None:
        if len(_SECONDS) >= _SECONDS_MAX:
            _SECONDS.clear()
        text = _SECONDS[s] = (_EPOCH + timedelta(seconds=s)).strftime("%Y-%m-%d %H:%M:%S.")
    return text


def ts_text(ts_ns: int) -> str:
    """``ts_ns`` as TIMESTAMPTZ input text, truncated to the microsecond (``ts_ns // 1000``)."""
    s, frac_ns = divmod(ts_ns, 1_000_000_000)
    text = _SECONDS.get(s) or _second(s)
    return f"{text}{frac_ns // 1000:06d}+00"


_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _t(value: str) -> str:
    """Text field, escaped for COPY text format."""
    return value.translate(_ESCAPES)


def _n(value: Decimal | None) -> str:
    return NULL if value is None else str(value)


def _i(value: int | None) -> str:
    return NULL if value is None else str(int(value))


def _f(value: float | None) -> str:
    if value is None:
        return NULL
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return repr(float(value))  # shortest text that reads back as the same double


def _array(values: Sequence[Decimal]) -> str:
    return "{" + ",".join(str(v) for v in values) + "}"


def _levels(levels: Sequence[Level]) -> tuple[str, str]:
    return _array([p for p, _ in levels]), _array([s for _, s in levels])


def trade_fields(e: Trade) -> tuple[str, ...]:
    return (_t(e.exchange), _t(e.symbol), ts_text(e.ts_ns), _t(e.trade_id), str(e.price),
            str(e.size), _t(str(e.side)), ts_text(e.recv_ns))  # fmt: skip


def candle_fields(e: Candle) -> tuple[str, ...]:
    return (
        _t(e.exchange), _t(e.symbol), _t(e.timeframe), ts_text(e.open_ns), _t(str(e.source)),
        str(e.open), str(e.high), str(e.low), str(e.close), str(e.volume),
        "t" if e.closed else "f", ts_text(e.ts_ns), ts_text(e.recv_ns), _i(e.trade_count),
        _n(e.quote_volume), _n(e.vwap), _n(e.buy_volume), _n(e.sell_volume),
    )  # fmt: skip


def book_fields(e: BookSnapshot) -> tuple[str, ...]:
    bid_prices, bid_sizes = _levels(e.bids)
    ask_prices, ask_sizes = _levels(e.asks)
    return (_t(e.exchange), _t(e.symbol), ts_text(e.ts_ns), ts_text(e.recv_ns), _i(e.sequence),
            _i(e.checksum), bid_prices, bid_sizes, ask_prices, ask_sizes)  # fmt: skip


def ticker_fields(e: Ticker) -> tuple[str, ...]:
    return (
        _t(e.exchange), _t(e.symbol), ts_text(e.ts_ns), ts_text(e.recv_ns), _n(e.bid_price),
        _n(e.bid_size), _n(e.ask_price), _n(e.ask_size), _n(e.last_price), _n(e.volume_24h),
    )  # fmt: skip


def feature_fields(e: FeatureValue) -> tuple[str, ...]:
    return (_t(e.exchange), _t(e.symbol), _t(e.timeframe), _t(e.name), ts_text(e.ts_ns),
            _f(e.value))  # fmt: skip


def encode_trades(batch: Sequence[Trade]) -> bytes:
    """The hot path: one f-string per trade, no escaping; checked afterwards as a whole.

    If any text field held a tab, newline, CR or backslash, the tab/newline counts or the
    backslash/CR scan catch it and the batch is re-encoded field by field with escaping.
    """
    seconds = _SECONDS
    lines: list[str] = []
    append = lines.append
    for e in batch:
        s, f = divmod(e.ts_ns, 1_000_000_000)
        ts = seconds.get(s) or _second(s)
        rs, rf = divmod(e.recv_ns, 1_000_000_000)
        recv = seconds.get(rs) or _second(rs)
        append(
            f"{e.exchange}\t{e.symbol}\t{ts}{f // 1000:06d}+00\t{e.trade_id}\t{e.price}\t"
            f"{e.size}\t{e.side}\t{recv}{rf // 1000:06d}+00\n"
        )
    data = "".join(lines).encode()
    n = len(batch)
    if data.count(b"\n") != n or data.count(b"\t") != 7 * n or b"\\" in data or b"\r" in data:
        return encode_lines(batch, trade_fields)
    return data


def encode_lines(batch: Sequence[Any], fields: Callable[[Any], tuple[str, ...]]) -> bytes:
    return "".join(["\t".join(fields(e)) + "\n" for e in batch]).encode()


@dataclass(frozen=True)
class TableSpec:
    table: str
    columns: tuple[str, ...]  # target columns, in COPY order
    fields: Callable[[Any], tuple[str, ...]]  # event -> COPY text fields (escaped)
    ts_attr: str  # event attribute (ns) holding the partition key
    fast_encode: Callable[[Sequence[Any]], bytes] | None = None

    def encode(self, batch: Sequence[Any]) -> bytes:
        """The batch as COPY text; the same bytes serve the direct and the staged path."""
        if self.fast_encode is not None:
            return self.fast_encode(batch)
        return encode_lines(batch, self.fields)

    @property
    def stage(self) -> str:
        return f"tv_stage_{self.table}"

    def create_stage_sql(self) -> str:
        # LIKE copies the column types and NOT NULLs, no indexes: COPY into it is cheap.
        return (
            f"CREATE TEMP TABLE IF NOT EXISTS {self.stage} (LIKE {self.table}) "
            "ON COMMIT DELETE ROWS"
        )

    def copy_sql(self, *, staged: bool) -> str:
        return f"COPY {self.stage if staged else self.table} ({', '.join(self.columns)}) FROM STDIN"

    def insert_sql(self) -> str:
        cols = ", ".join(self.columns)
        key = ", ".join(NATURAL_KEYS[self.table])
        head = f"INSERT INTO {self.table} AS t ({cols}) "
        if self.table != "candles":
            return head + f"SELECT {cols} FROM {self.stage} ON CONFLICT ({key}) DO NOTHING"
        # One row per bar: the closed / newest version wins inside the batch, and an existing
        # bar is replaced only by a newer or closing version of itself (so replays are no-ops).
        updates = ", ".join(
            f"{c} = EXCLUDED.{c}" for c in self.columns if c not in NATURAL_KEYS["candles"]
        )
        return (
            head + f"SELECT DISTINCT ON ({key}) {cols} FROM {self.stage} "
            f"ORDER BY {key}, closed DESC, event_ts DESC "
            f"ON CONFLICT ({key}) DO UPDATE SET {updates} "
            "WHERE NOT t.closed AND (EXCLUDED.closed OR EXCLUDED.event_ts > t.event_ts)"
        )


async def copy_direct(conn: psycopg.AsyncConnection[Any], spec: TableSpec, data: bytes) -> bool:
    """COPY into the table itself; False (and nothing written) if any row's key exists."""
    try:
        async with (
            conn.transaction(),
            conn.cursor() as cur,
            cur.copy(spec.copy_sql(staged=False)) as copy,
        ):
            await copy.write(data)
    except pg_errors.UniqueViolation:
        return False
    return True


async def copy_staged(conn: psycopg.AsyncConnection[Any], spec: TableSpec, data: bytes) -> int:
    """COPY into the staging table, then insert what is new; returns the rows inserted."""
    async with conn.transaction(), conn.cursor() as cur:
        async with cur.copy(spec.copy_sql(staged=True)) as copy:
            await copy.write(data)
        await cur.execute(spec.insert_sql())
        return max(cur.rowcount, 0)


SPECS: dict[str, TableSpec] = {
    "trades": TableSpec(
        "trades",
        ("exchange", "symbol", "ts", "trade_id", "price", "size", "side", "recv_ts"),
        trade_fields, "ts_ns", encode_trades,
    ),
    "candles": TableSpec(
        "candles",
        ("exchange", "symbol", "timeframe", "ts", "source", "open", "high", "low", "close",
         "volume", "closed", "event_ts", "recv_ts", "trade_count", "quote_volume", "vwap",
         "buy_volume", "sell_volume"),
        candle_fields, "open_ns",
    ),
    "book_snapshots": TableSpec(
        "book_snapshots",
        ("exchange", "symbol", "ts", "recv_ts", "sequence", "checksum", "bid_prices",
         "bid_sizes", "ask_prices", "ask_sizes"),
        book_fields, "ts_ns",
    ),
    "tickers": TableSpec(
        "tickers",
        ("exchange", "symbol", "ts", "recv_ts", "bid_price", "bid_size", "ask_price",
         "ask_size", "last_price", "volume_24h"),
        ticker_fields, "ts_ns",
    ),
    "features": TableSpec(
        "features",
        ("exchange", "symbol", "timeframe", "name", "ts", "value"),
        feature_fields, "ts_ns",
    ),
}  # fmt: skip

EVENT_TABLES: dict[type, str] = {
    Trade: "trades",
    Candle: "candles",
    BookSnapshot: "book_snapshots",
    Ticker: "tickers",
    FeatureValue: "features",
}
