"""Read latency: one day of 1m candles (1,440 rows) and the latest 500 candles.

    python -m bench.query [--days 7] [--repeat 200] [--url postgresql://...]

Prints p50/p99 of the ``Vault`` calls (SQL + Arrow/polars frame) and of the bare SQL fetch of
the same rows (the baseline, measured in the same run), with their ratio. Without ``--url`` a
throwaway embedded server is started.

Redis: ``redis_cases`` is the hook for the hot-cache variant (the same two reads served from
Redis); it returns no cases until the cache exists, and its cases are printed with the rest.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Callable
from decimal import Decimal

from bench._server import bench_database
from tickvault.config import TimescaleSettings
from tickvault.model import Candle
from tickvault.query import Vault
from tickvault.storage.postgres import PostgresStore, reader

START_NS = 1_704_067_200 * 1_000_000_000
MIN_NS = 60 * 1_000_000_000
Case = tuple[str, Callable[[], object]]


async def load(url: str, days: int) -> None:
    async with await PostgresStore.open(
        url, timescale=TimescaleSettings(mode="off"), timed_flush=False
    ) as store:
        for symbol in ("BTC-USDT", "ETH-USDT", "SOL-USDT"):  # neighbours in the same index
            for m in range(days * 1440):
                o = Decimal(f"{40000 + m % 997}.{m % 100:02d}")
                ts = START_NS + m * MIN_NS
                await store.write([Candle("binance", symbol, "1m", ts, o, o + 5, o - 5, o + 1,
                                          Decimal("12.5"), True, ts + MIN_NS, ts + MIN_NS)])  # fmt: skip
        await store.flush()


def redis_cases(args: argparse.Namespace, last_day: tuple[str, str]) -> list[Case]:
    """Hook: (label, call) pairs reading the same candles from the Redis cache. None yet."""
    return []


def timed(call: Callable[[], object], repeat: int) -> tuple[float, float]:
    call()  # warm up (plans, imports)
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        call()
        samples.append((time.perf_counter() - t0) * 1000)
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1, int(len(samples) * 0.99))]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--days", type=int, default=7, help="days of 1m candles per symbol")
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--url", default=None, help="PostgreSQL server (default: embedded)")
    args = parser.parse_args()
    day_start = f"2024-01-{args.days:02d}" if args.days <= 28 else "2024-01-28"
    day_end = f"2024-01-{args.days + 1:02d}" if args.days <= 28 else "2024-01-29"
    with bench_database(args.url, TimescaleSettings(mode="off")) as url:
        asyncio.run(load(url, args.days))
        with Vault.connect(url=url) as vault:
            conn = vault._conn
            day_sql = reader.candles_sql(False, "1m", "auto", latest=False)
            day_params = reader.candle_params("binance", "BTC-USDT", "1m", "auto",
                                              start=day_start, end=day_end)  # fmt: skip
            last_sql = reader.candles_sql(False, "1m", "auto", latest=True)
            last_params = reader.candle_params("binance", "BTC-USDT", "1m", "auto", limit=500)
            assert len(conn.execute(day_sql, day_params).fetchall()) == 1440  # type: ignore[call-overload]
            cases: list[Case] = [
                ("SQL fetch: 1 day of 1m", lambda: conn.execute(day_sql, day_params).fetchall()),  # type: ignore[call-overload]
                ("Vault.candles: 1 day of 1m",
                 lambda: vault.candles("binance", "BTC-USDT", "1m", day_start, day_end)),
                ("SQL fetch: latest 500", lambda: conn.execute(last_sql, last_params).fetchall()),  # type: ignore[call-overload]
                ("Vault.latest_candles: 500",
                 lambda: vault.latest_candles("binance", "BTC-USDT", "1m", 500)),
            ]  # fmt: skip
            cases += redis_cases(args, (day_start, day_end))
            results = {label: timed(call, args.repeat) for label, call in cases}
    print(f"{args.days} days x 3 symbols of 1m candles; {args.repeat} runs each")
    baseline = {"1 day": results[cases[0][0]][0], "latest": results[cases[2][0]][0]}
    for label, (p50, p99) in results.items():
        base = baseline["1 day"] if "1 day" in label else baseline["latest"]
        print(f"{label:<30} p50 {p50:7.2f} ms   p99 {p99:7.2f} ms   {p50 / base:5.2f}x SQL fetch")


if __name__ == "__main__":
    main()
