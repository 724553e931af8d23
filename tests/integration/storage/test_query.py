"""Vault: candle fallback rule, trades, book at a time, latest values, output formats, errors."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal

import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

from tickvault.errors import SchemaError, UsageError
from tickvault.model import BookSnapshot, Candle, CandleSource, Ticker
from tickvault.query import Vault, parse_time
from tickvault.storage.postgres import PostgresStore

from .helpers import JAN_2024_NS, NS, make_trades

D = Decimal
MIN = 60 * NS


def bar(minute: int, close: str, source: CandleSource) -> Candle:
    ts = JAN_2024_NS + minute * MIN
    c = D(close)
    return Candle(
        "binance", "BTC-USDT", "1m", ts, c, c, c, c, D("2.50"), True, ts + MIN, ts + MIN, source
    )


@pytest.fixture
def vault(db_url: str) -> Iterator[Vault]:
    with Vault.connect(url=db_url) as v:
        yield v


async def test_candles_prefer_exchange_bars_and_fall_back_to_derived(
    store: PostgresStore, vault: Vault
) -> None:
    exchange = [bar(m, f"100.{m}0", CandleSource.EXCHANGE) for m in range(3)]
    derived = [bar(m, f"200.{m}", CandleSource.DERIVED) for m in range(1, 5)]
    await store.write(exchange + derived)
    await store.flush()
    frame = vault.candles("binance", "BTC-USDT", "1m", "2024-01-01", "2024-01-01T00:05:00Z")
    assert isinstance(frame, pl.DataFrame)
    assert frame["source"].to_list() == ["exchange"] * 3 + ["derived"] * 2
    assert [str(x) for x in frame["close"].to_list()] == [
        "100.00",
        "100.10",
        "100.20",
        "200.30",
        "200.40",
    ]
    assert frame["ts"].dt.minute().to_list() == [0, 1, 2, 3, 4]
    only = vault.candles("binance", "BTC-USDT", "1m", "2024-01-01", "2024-01-02", source="derived")
    assert only.height == 4
    # half-open range: the bar opening at `end` is not included
    assert vault.candles("binance", "BTC-USDT", "1m", "2024-01-01", "2024-01-01T00:02").height == 2
    latest = vault.latest_candles("binance", "BTC-USDT", "1m", limit=2)
    assert latest["ts"].dt.minute().to_list() == [3, 4]


async def test_formats_hold_the_same_exact_values(store: PostgresStore, vault: Vault) -> None:
    trades = make_trades(50)
    await store.write(trades)
    await store.flush()
    args = ("binance", "BTC-USDT", "2024-01-01", "2024-01-02")
    arrow = vault.trades(*args, format="arrow")
    pandas = vault.trades(*args, format="pandas")
    polars = vault.trades(*args)
    assert isinstance(arrow, pa.Table) and isinstance(pandas, pd.DataFrame)
    assert arrow.num_rows == len(pandas) == polars.height == 50
    assert pa.types.is_decimal(arrow.schema.field("price").type)
    assert arrow.schema.field("ts").type == pa.timestamp("us", tz="UTC")
    want = sorted((t.ts_ns // 1000, t.trade_id, t.price, t.size) for t in trades)
    assert list(pandas["price"]) == [w[2] for w in want]  # Decimal objects, exact
    assert polars["size"].to_list() == [w[3] for w in want]
    assert arrow.column("trade_id").to_pylist() == [w[1] for w in want]


async def test_book_at_a_time_and_latest_values(store: PostgresStore, vault: Vault) -> None:
    b1 = BookSnapshot("binance", "BTC-USDT", ((D("100.5"), D("1")), (D("100.4"), D("2"))),
                      ((D("100.6"), D("3")),), JAN_2024_NS, JAN_2024_NS, 1)  # fmt: skip
    b2 = BookSnapshot("binance", "BTC-USDT", ((D("101.5"), D("1")),), ((D("101.6"), D("0.5")),),
                      JAN_2024_NS + 10 * NS, JAN_2024_NS + 10 * NS, 2)  # fmt: skip
    ticker = Ticker(
        "binance",
        "BTC-USDT",
        JAN_2024_NS,
        JAN_2024_NS,
        D("100.5"),
        D("1"),
        D("100.6"),
        D("3"),
        D("100.55"),
    )
    await store.write([b1, b2, ticker, *make_trades(3), bar(0, "100.1", CandleSource.EXCHANGE)])
    await store.flush()
    book = vault.book("binance", "BTC-USDT", datetime(2024, 1, 1, 0, 0, 5, tzinfo=UTC))
    assert book["side"].to_list() == ["bid", "bid", "ask"]
    assert [str(p) for p in book["price"].to_list()] == ["100.5", "100.4", "100.6"]
    assert book["sequence"].to_list() == [1, 1, 1]
    assert vault.book("binance", "BTC-USDT", "2024-01-01T00:00:10Z")["sequence"].to_list() == [2, 2]
    assert vault.book("binance", "BTC-USDT", "2023-12-31").height == 0
    latest = vault.latest("binance", "BTC-USDT", ["1m"])
    assert latest["kind"].to_list() == ["trade", "ticker", "book", "candle 1m"]
    assert str(latest.filter(pl.col("kind") == "book")["bid_price"][0]) == "101.5"


def test_bad_arguments_are_usage_errors(vault: Vault) -> None:
    with pytest.raises(UsageError, match="unknown exchange 'bitmex'"):
        vault.candles("bitmex", "BTC-USDT", "1m", "2024-01-01", "2024-01-02")
    with pytest.raises(UsageError, match="unknown timeframe '7m'"):
        vault.candles("binance", "BTC-USDT", "7m", "2024-01-01", "2024-01-02")
    with pytest.raises(UsageError, match="not canonical"):
        vault.trades("binance", "BTCUSDT", "2024-01-01", "2024-01-02")
    with pytest.raises(UsageError, match="empty time range"):
        vault.trades("binance", "BTC-USDT", "2024-01-02", "2024-01-01")
    with pytest.raises(UsageError, match="not an ISO-8601"):
        vault.trades("binance", "BTC-USDT", "yesterday", "2024-01-01")
    with pytest.raises(UsageError, match="unknown format"):
        vault.trades("binance", "BTC-USDT", "2024-01-01", "2024-01-02", format="csv")  # type: ignore[arg-type]


def test_times_parse_from_every_accepted_form() -> None:
    want = datetime(2024, 1, 1, tzinfo=UTC)
    assert parse_time("2024-01-01") == want
    assert parse_time("2024-01-01T00:00:00Z") == want
    assert parse_time("2024-01-01T01:00:00+01:00") == want
    assert parse_time(JAN_2024_NS) == want
    assert parse_time(datetime(2024, 1, 1)) == want


def test_missing_schema_is_reported(database_url: str) -> None:
    with Vault.connect(url=database_url) as v, pytest.raises(SchemaError, match="tickvault init"):
        v.trades("binance", "BTC-USDT", "2024-01-01", "2024-01-02")


async def test_columnar_reads_keep_every_digit(store: PostgresStore, vault: Vault) -> None:
    """Values round-trip exactly through the text → decimal128 path, or stay text if too wide."""
    tiny, wide = D("0.000000000123456789"), D("123456789012345678901234567890.123456789")
    ts = JAN_2024_NS
    bars = [
        Candle("binance", "BTC-USDT", "1m", ts, D("1.5"), D("2"), D("1"), tiny, D("3.25"),
               True, ts + MIN, ts + MIN),
        Candle("binance", "BTC-USDT", "1m", ts + MIN, D("1.5"), D("2"), D("1"), D("7"), wide,
               True, ts + 2 * MIN, ts + 2 * MIN),
    ]  # fmt: skip
    await store.write(bars)
    await store.flush()
    table = vault.candles("binance", "BTC-USDT", "1m", "2024-01-01", "2024-01-02", format="arrow")
    assert table.column("close").type == pa.decimal128(19, 18)
    assert table.column("close").to_pylist() == [tiny, D("7")]
    assert table.column("volume").to_pylist() == ["3.25", str(wide)]  # 39 digits: exact text
    assert table.column("ts").to_pylist() == [
        datetime(2024, 1, 1, tzinfo=UTC),
        datetime(2024, 1, 1, 0, 1, tzinfo=UTC),
    ]
    assert vault.candles("binance", "BTC-USDT", "1m", "2025-01-01", "2025-01-02").height == 0
