"""Events to rows, and the staged-insert SQL of each time-series table.

A batch is binary-COPYed into a per-connection temporary staging table (no constraints, no
indexes, ``ON COMMIT DELETE ROWS``), then moved with one ``INSERT .. SELECT .. ON CONFLICT``.
That keeps COPY's speed while making the write idempotent: a re-sent batch inserts nothing, and
one duplicate costs only itself, never the rest of its batch.

Times travel as integer microseconds (``ts_ns // 1000``: TIMESTAMPTZ has microsecond resolution;
no exchange publishes finer) and become TIMESTAMPTZ in the INSERT, which is exact and cheaper
than building Python datetimes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from tickvault.model import BookSnapshot, Candle, Ticker, Trade
from tickvault.storage.postgres.ddl import NATURAL_KEYS
from tickvault.storage.postgres.records import FeatureValue

Row = tuple[Any, ...]

_TS = "(TIMESTAMPTZ '1970-01-01 00:00:00+00' + {col} * INTERVAL '1 microsecond')"


@dataclass(frozen=True)
class TableSpec:
    table: str
    stage_columns: tuple[tuple[str, str], ...]  # (column, PostgreSQL type) in COPY order
    to_row: Callable[[Any], Row]
    ts_index: int  # position of the partition key (µs) in a row

    @property
    def stage(self) -> str:
        return f"tv_stage_{self.table}"

    @property
    def types(self) -> list[str]:
        return [_STAGED_AS.get(t, t) for _, t in self.stage_columns]

    def create_stage_sql(self) -> str:
        cols = ", ".join(f"{c} {_STAGED_AS.get(t, t)}" for c, t in self.stage_columns)
        return f"CREATE TEMP TABLE IF NOT EXISTS {self.stage} ({cols}) ON COMMIT DELETE ROWS"

    def copy_sql(self) -> str:
        cols = ", ".join(c for c, _ in self.stage_columns)
        return f"COPY {self.stage} ({cols}) FROM STDIN (FORMAT BINARY)"

    def _select_list(self) -> tuple[list[str], list[str]]:
        targets: list[str] = []
        exprs: list[str] = []
        for col, kind in self.stage_columns:
            if col.endswith("_us"):
                target = "ts" if col == "ts_us" else col[:-3] + "_ts"
                exprs.append(_TS.format(col=col))
            elif kind in _STAGED_AS:
                target = col
                exprs.append(f"{col}::{kind}")
            else:
                target = col
                exprs.append(col)
            targets.append(target)
        return targets, exprs

    def insert_sql(self) -> str:
        targets, exprs = self._select_list()
        key = ", ".join(NATURAL_KEYS[self.table])
        head = f"INSERT INTO {self.table} AS t ({', '.join(targets)}) "
        if self.table != "candles":
            return (
                head + f"SELECT {', '.join(exprs)} FROM {self.stage} ON CONFLICT ({key}) DO NOTHING"
            )
        # One row per bar: the closed / newest version wins inside the batch, and an existing
        # bar is replaced only by a newer or closing version of itself (so replays are no-ops).
        updates = ", ".join(
            f"{c} = EXCLUDED.{c}" for c in targets if c not in NATURAL_KEYS["candles"]
        )
        return (
            head + f"SELECT DISTINCT ON (exchange, symbol, timeframe, ts_us, source) "
            f"{', '.join(exprs)} FROM {self.stage} "
            "ORDER BY exchange, symbol, timeframe, ts_us, source, closed DESC, event_us DESC "
            f"ON CONFLICT ({key}) DO UPDATE SET {updates} "
            "WHERE NOT t.closed AND (EXCLUDED.closed OR EXCLUDED.event_ts > t.event_ts)"
        )


# Numerics travel as their exact decimal text and are cast by the server: measured ~30% faster
# than psycopg's binary numeric dumper, and exact either way.
_STAGED_AS = {"numeric": "text"}


def _us(ts_ns: int) -> int:
    return ts_ns // 1000


def _d(value: Decimal | None) -> str | None:
    return None if value is None else f"{value:f}"


def trade_row(e: Trade) -> Row:
    return (
        e.exchange,
        e.symbol,
        _us(e.ts_ns),
        e.trade_id,
        f"{e.price:f}",
        f"{e.size:f}",
        str(e.side),
        _us(e.recv_ns),
    )


def candle_row(e: Candle) -> Row:
    return (
        e.exchange, e.symbol, e.timeframe, _us(e.open_ns), e.source.value,
        f"{e.open:f}", f"{e.high:f}", f"{e.low:f}", f"{e.close:f}", f"{e.volume:f}", e.closed,
        _us(e.ts_ns), _us(e.recv_ns), e.trade_count, _d(e.quote_volume), _d(e.vwap),
        _d(e.buy_volume), _d(e.sell_volume),
    )  # fmt: skip


def book_row(e: BookSnapshot) -> Row:
    return (
        e.exchange, e.symbol, _us(e.ts_ns), _us(e.recv_ns), e.sequence, e.checksum,
        [p for p, _ in e.bids], [s for _, s in e.bids],
        [p for p, _ in e.asks], [s for _, s in e.asks],
    )  # fmt: skip


def ticker_row(e: Ticker) -> Row:
    return (
        e.exchange, e.symbol, _us(e.ts_ns), _us(e.recv_ns), _d(e.bid_price), _d(e.bid_size),
        _d(e.ask_price), _d(e.ask_size), _d(e.last_price), _d(e.volume_24h),
    )  # fmt: skip


def feature_row(e: FeatureValue) -> Row:
    return (e.exchange, e.symbol, e.timeframe, e.name, _us(e.ts_ns), e.value)


_N = "numeric"
SPECS: dict[str, TableSpec] = {
    "trades": TableSpec(
        "trades",
        (("exchange", "text"), ("symbol", "text"), ("ts_us", "int8"), ("trade_id", "text"),
         ("price", _N), ("size", _N), ("side", "text"), ("recv_us", "int8")),
        trade_row, 2,
    ),
    "candles": TableSpec(
        "candles",
        (("exchange", "text"), ("symbol", "text"), ("timeframe", "text"), ("ts_us", "int8"),
         ("source", "text"), ("open", _N), ("high", _N), ("low", _N), ("close", _N),
         ("volume", _N), ("closed", "bool"), ("event_us", "int8"), ("recv_us", "int8"),
         ("trade_count", "int8"), ("quote_volume", _N), ("vwap", _N), ("buy_volume", _N),
         ("sell_volume", _N)),
        candle_row, 3,
    ),
    "book_snapshots": TableSpec(
        "book_snapshots",
        (("exchange", "text"), ("symbol", "text"), ("ts_us", "int8"), ("recv_us", "int8"),
         ("sequence", "int8"), ("checksum", "int8"), ("bid_prices", "numeric[]"),
         ("bid_sizes", "numeric[]"), ("ask_prices", "numeric[]"), ("ask_sizes", "numeric[]")),
        book_row, 2,
    ),
    "tickers": TableSpec(
        "tickers",
        (("exchange", "text"), ("symbol", "text"), ("ts_us", "int8"), ("recv_us", "int8"),
         ("bid_price", _N), ("bid_size", _N), ("ask_price", _N), ("ask_size", _N),
         ("last_price", _N), ("volume_24h", _N)),
        ticker_row, 2,
    ),
    "features": TableSpec(
        "features",
        (("exchange", "text"), ("symbol", "text"), ("timeframe", "text"), ("name", "text"),
         ("ts_us", "int8"), ("value", "float8")),
        feature_row, 4,
    ),
}  # fmt: skip

EVENT_TABLES: dict[type, str] = {
    Trade: "trades",
    Candle: "candles",
    BookSnapshot: "book_snapshots",
    Ticker: "tickers",
    FeatureValue: "features",
}
