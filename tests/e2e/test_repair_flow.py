"""Repaired history flows on like live data: after a sequence gap is refetched from REST, the
Redis cache holds the rebuilt bars PostgreSQL holds (no hole, no stale bar), the latest trade
did not go back in time, and the stored and cached features are those of the corrected bars.
Simulator over loopback, real PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path
from typing import Any

import msgspec
import psycopg
import pytest
import redis
from e2e_kit import SYMBOL, bucket_bars, ns, run_pipeline, stored_trades, truth_rows

from tickvault.exchanges.sim import Fault, Simulator
from tickvault.model import Candle
from tickvault.pipeline.indicators import IndicatorEngine
from tickvault.runner.app import Runner
from tickvault.runner.stats import indicator_config
from tickvault.storage.redis_keys import decode

pytestmark = [pytest.mark.postgres, pytest.mark.redis]
EXCHANGE = "coinbase"
TIMEFRAMES = (("1s", 1), ("5s", 5))


def _closed_bars(conn: psycopg.Connection[Any], timeframe: str) -> dict[int, tuple[Any, ...]]:
    rows = conn.execute(
        "SELECT ts, open, high, low, close, volume, trade_count FROM candles WHERE exchange = %s"
        " AND symbol = %s AND timeframe = %s AND source = 'derived' AND closed ORDER BY ts",
        (EXCHANGE, SYMBOL, timeframe),
    ).fetchall()
    return {ns(r[0]): tuple(r[1:]) for r in rows}


def _bars_agree(url: str) -> bool:
    """Closed derived bars are the aggregates of the stored trades, with none missing."""
    with psycopg.connect(url) as conn:
        stored = stored_trades(conn, EXCHANGE)
        for timeframe, seconds in TIMEFRAMES:
            bars = _closed_bars(conn, timeframe)
            if not bars:
                return False
            expected = {t: v for t, v in bucket_bars(stored, seconds).items() if t <= max(bars)}
            if bars != expected:
                return False
    return True


def _gap_repaired(url: str) -> bool:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT status FROM gaps WHERE channel = 'trades' AND reason = 'sequence_gap'"
        ).fetchall()
    return bool(rows) and all(r[0] == "repaired" for r in rows)


async def _until(condition: Any, url: str, timeout_s: float, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not await asyncio.to_thread(condition, url):
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.2)


async def test_repaired_history_reaches_redis_and_the_features(
    database_url: str, redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TICKVAULT_REPAIR__INTERVAL_S", "0.3")
    monkeypatch.setenv("TICKVAULT_REPAIR__SETTLE_S", "0.3")

    async def drop_trades(sim: Simulator, runner: Runner) -> None:
        sim.inject(Fault(EXCHANGE, "drop_messages", count=8, channel="market_trades"))
        await _until(_gap_repaired, database_url, 20, "the trades gap to be repaired")
        # Bars still open at the repair are rebuilt once closed: wait for that too.
        await _until(_bars_agree, database_url, 20, "derived bars to agree with the trades")

    run = await run_pipeline(EXCHANGE, database_url, redis_url, tmp_path, during=drop_trades)

    with psycopg.connect(database_url) as conn:
        stored = stored_trades(conn, EXCHANGE)
        assert stored == truth_rows(run, stored[0][4], stored[-1][4])  # the gap came back
        details = [r[0] for r in conn.execute(
            "SELECT detail FROM gaps WHERE channel = 'trades' AND reason = 'sequence_gap'"
        ).fetchall()]  # fmt: skip
        bars = {tf: _closed_bars(conn, tf) for tf, _ in TIMEFRAMES}
        features = {
            (ns(r[0]), r[1]): r[2]
            for r in conn.execute(
                "SELECT ts, name, value FROM features WHERE exchange = %s AND timeframe = '1s'",
                (EXCHANGE,),
            ).fetchall()
        }
        candles = [
            Candle(EXCHANGE, SYMBOL, "1s", ns(r[0]), r[1], r[2], r[3], r[4], r[5], True, 0, 0,
                   source="derived")  # type: ignore[arg-type]
            for r in conn.execute(
                "SELECT ts, open, high, low, close, volume FROM candles WHERE exchange = %s"
                " AND timeframe = '1s' AND source = 'derived' AND closed ORDER BY ts",
                (EXCHANGE,),
            ).fetchall()
        ]  # fmt: skip
    assert details and all("features recomputed" in d for d in details), details
    assert _bars_agree(database_url)

    cache = redis.Redis.from_url(redis_url)
    try:
        # Redis: every cached closed bar is the stored one, and none stored in the cached span
        # is missing (the repaired seconds included).
        for timeframe, _ in TIMEFRAMES:
            members = cache.zrange(f"tv:candles:{EXCHANGE}:{SYMBOL}:{timeframe}", 0, -1)
            cached = [decode(m, Candle) for m in members]
            closed = {
                c.open_ns: (c.open, c.high, c.low, c.close, c.volume, c.trade_count)
                for c in cached
                if c.closed
            }
            assert closed, timeframe
            lo, hi = min(closed), max(closed)
            in_span = {t: v for t, v in bars[timeframe].items() if lo <= t <= hi}
            assert closed == in_span, timeframe
        # The latest trade is the newest stored one: repaired trades did not move it back.
        latest = msgspec.json.decode(cache.get(f"tv:trade:{EXCHANGE}:{SYMBOL}") or b"{}")
        assert latest["trade_id"] == max(stored, key=lambda t: (t[4], int(t[0])))[0]
        # Features: those of the corrected 1 s bars, stored and cached.
        reference = IndicatorEngine(indicator_config(run.runner.settings)).update(candles)
        want = {(f.ts_ns, f.name): f.value for f in reference}
        assert features.keys() == want.keys()
        assert all(math.isclose(features[k], want[k], rel_tol=1e-9, abs_tol=1e-9) for k in want), [
            (k, features[k], want[k]) for k in want if features[k] != want[k]
        ][:5]
        hashed = cache.hgetall(f"tv:features:{EXCHANGE}:{SYMBOL}:1s")
        assert hashed
        for name, raw in hashed.items():
            value = msgspec.json.decode(raw)
            assert math.isclose(value["value"], want[(value["ts_ns"], name.decode())], rel_tol=1e-9)
            assert value["ts_ns"] == max(t for t, n in want if n == name.decode())
    finally:
        cache.close()
