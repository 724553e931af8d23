"""TimescaleDB mode: hypertables, compression, continuous aggregates, policies.

Skipped cleanly when the extension is not installed (see ``timescale_server_url``).
"""

from __future__ import annotations

from decimal import Decimal

import polars as pl
import psycopg
import pytest

from tickvault.config import TimescaleSettings
from tickvault.model import Candle
from tickvault.query import Vault
from tickvault.storage.postgres import PostgresStore
from tickvault.storage.postgres.schema import init_database
from tickvault.storage.postgres.timescale import CAGG_TIMEFRAMES, cagg_name

from .helpers import JAN_2024_NS, NS, make_trades
from .test_derived import reference

pytestmark = pytest.mark.timescaledb

SETTINGS = TimescaleSettings(mode="on", retention_trades="400 days")


def test_init_builds_hypertables_aggregates_and_policies(timescale_url: str) -> None:
    first = init_database(timescale_url, SETTINGS)
    assert first.timescaledb and first.applied == (1, 2, 3)
    assert init_database(timescale_url, SETTINGS).applied == ()
    with psycopg.connect(timescale_url) as conn:
        hypertables = conn.execute(
            "SELECT hypertable_name, compression_enabled FROM timescaledb_information.hypertables"
            " WHERE hypertable_schema = 'public' ORDER BY 1"
        ).fetchall()
        assert hypertables == [(t, True) for t in
                               ("book_snapshots", "candles", "features", "tickers", "trades")]  # fmt: skip
        chunk = conn.execute(
            "SELECT time_interval FROM timescaledb_information.dimensions"
            " WHERE hypertable_name = 'trades'"
        ).fetchone()
        assert chunk is not None and chunk[0].days == 1
        views = conn.execute(
            "SELECT view_name, materialized_only FROM timescaledb_information.continuous_aggregates"
        ).fetchall()
        assert sorted(views) == sorted((cagg_name(t), False) for t in CAGG_TIMEFRAMES)
        jobs = conn.execute(
            "SELECT proc_name, coalesce(hypertable_name, '') FROM timescaledb_information.jobs"
        ).fetchall()
        assert ("policy_retention", "trades") in jobs
        assert ("policy_compression", "trades") in jobs
        assert sum(1 for j in jobs if j[0] == "policy_refresh_continuous_aggregate") == 6


async def test_writer_and_real_time_aggregates(timescale_url: str) -> None:
    init_database(timescale_url, SETTINGS)
    trades = make_trades(900, step_ns=5 * NS)  # 75 minutes of 2024-01-01, distinct times
    one = Decimal("1")
    exchange_bar = Candle("binance", "BTC-USDT", "1m", JAN_2024_NS + 60 * NS, one, one, one, one,
                          one, True, JAN_2024_NS, JAN_2024_NS)  # fmt: skip
    async with await PostgresStore.open(
        timescale_url, timescale=SETTINGS, timed_flush=False
    ) as store:
        await store.write(trades)
        await store.write(trades[:100])  # replay: nothing changes
        await store.flush()
        assert store.stats.tables["trades"].rows_inserted == 900
        await store.write([exchange_bar])
        await store.flush()
    with Vault.connect(url=timescale_url) as vault:
        assert vault.timescaledb
        for timeframe in ("1m", "5m", "1h"):
            frame = vault.candles("binance", "BTC-USDT", timeframe, "2024-01-01", "2024-01-02")
            want = reference(trades, timeframe)
            if timeframe == "1m":  # the exchange's own bar wins over the aggregate
                assert frame["source"][1] == "exchange" and frame["close"][1] == one
                frame = frame.filter(pl.col("source") == "derived")
                del want[("BTC-USDT", (JAN_2024_NS + 60 * NS) // 1000)]
            assert frame.height == len(want)
            assert set(frame["source"].to_list()) == {"derived"}
            for row in frame.iter_rows(named=True):
                bar = want[("BTC-USDT", int(row["ts"].timestamp()) * 1_000_000)]
                got = {k: str(row[k]) for k in ("open", "high", "low", "close")}
                assert got == {k: bar[k] for k in ("open", "high", "low", "close")}
                assert row["volume"] == bar["volume"] and row["trade_count"] == bar["trade_count"]
        status = vault.status()
        assert (
            status.timescaledb and next(t for t in status.tables if t.table == "trades").rows == 900
        )
