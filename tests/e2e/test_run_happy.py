"""Happy path per exchange: what the simulator sent is what PostgreSQL and Redis hold."""

from __future__ import annotations

import gc
from decimal import Decimal
from pathlib import Path

import msgspec
import psycopg
import pytest
import redis
from e2e_kit import SYMBOL, bucket_bars, ns, run_pipeline, stored_trades, truth_rows

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


@pytest.mark.parametrize("exchange", ["binance", "coinbase", "kraken"])
async def test_pipeline_stores_what_the_exchange_sent(
    exchange: str, database_url: str, redis_url: str, tmp_path: Path
) -> None:
    run = await run_pipeline(exchange, database_url, redis_url, tmp_path)
    runner = run.runner
    # Start-up's objects were frozen for the run (full collections skip them), and thawed after.
    assert run.frozen_while_running > 10_000 and gc.get_freeze_count() == 0
    with psycopg.connect(database_url) as conn:
        # Trades: row by row the simulator's truth over the window collected (ids, prices as
        # the exchange printed them, sizes, taker side, times).
        stored = stored_trades(conn, exchange)
        assert len(stored) > 50
        assert stored == truth_rows(run, stored[0][4], stored[-1][4])

        # Stop drained everything: every trade counted out of the stages is stored.
        pg_writer = runner.writers[0]
        assert runner.stats.validated[(exchange, "trades")] == len(stored)
        assert pg_writer.stats.channels[(exchange, "trades")] == len(stored)
        assert not list((tmp_path / "spill").rglob("*.spill"))

        # Derived candles (every configured timeframe) agree with the stored trades.
        for timeframe, seconds in (("1s", 1), ("5s", 5), ("1m", 60)):
            rows = conn.execute(
                "SELECT ts, open, high, low, close, volume, trade_count FROM candles WHERE"
                " exchange = %s AND symbol = %s AND timeframe = %s AND source = 'derived'",
                (exchange, SYMBOL, timeframe),
            ).fetchall()
            expected = bucket_bars(stored, seconds)
            assert rows, timeframe
            assert {ns(r[0]): tuple(r[1:]) for r in rows} == expected, timeframe

        # Books: the last stored top-10 is the simulator's book once the market paused.
        book = conn.execute(
            "SELECT bid_prices, bid_sizes, ask_prices, ask_sizes FROM book_snapshots"
            " WHERE exchange = %s ORDER BY ts DESC, recv_ts DESC LIMIT 1",
            (exchange,),
        ).fetchone()
        assert book is not None
        truth = run.truth_book
        assert list(zip(book[0], book[1], strict=True)) == [
            (Decimal(p), Decimal(s)) for p, s in truth["bids"]
        ]
        assert list(zip(book[2], book[3], strict=True)) == [
            (Decimal(p), Decimal(s)) for p, s in truth["asks"]
        ]

        # Tickers, quality scores, features of the 1 s bars, instruments.
        counts = conn.execute(
            "SELECT (SELECT count(*) FROM tickers WHERE exchange = %(e)s),"
            " (SELECT count(*) FROM quality_metrics WHERE exchange = %(e)s"
            "  AND metric LIKE 'quality:%%'),"
            " (SELECT count(*) FROM features WHERE exchange = %(e)s AND timeframe = '1s'),"
            " (SELECT count(*) FROM instruments WHERE exchange = %(e)s)",
            {"e": exchange},
        ).fetchone()
        assert counts is not None
        tickers, quality_rows, features, instruments = counts
        assert tickers > 0 and quality_rows >= 4 and instruments == 1
        assert features > 0  # SMA/EMA/... need a handful of closed 1 s bars
        channels = {r[0] for r in conn.execute("SELECT metric FROM quality_metrics").fetchall()}
        assert {"quality:trades", "quality:book", "quality:ticker"} <= channels

    # Redis: the latest trade is the newest stored one; the quality score is cached.
    cache = redis.Redis.from_url(redis_url)
    latest = msgspec.json.decode(cache.get(f"tv:trade:{exchange}:{SYMBOL}") or b"{}")
    assert latest["trade_id"] == stored[-1][0]
    assert cache.exists(f"tv:quality:{exchange}:{SYMBOL}:trades")
    assert cache.zcard(f"tv:candles:{exchange}:{SYMBOL}:1s") > 0
    cache.close()
