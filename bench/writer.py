"""Writer throughput: PostgresStore vs ``psql \\copy`` (physical baseline) vs executemany.

    python -m bench.writer [--rows 1000000] [--url postgresql://...]

All three load the same trades into the same (emptied) ``trades`` table of one database in one
run, so the ratios compare like with like. The writer runs first, with idempotency on (staging
table + ON CONFLICT), and its peak RSS is measured then; trades are generated in chunks so the
bench itself holds little beyond what the writer buffers. Without ``--url`` a throwaway embedded
server is started (fsync off: the same for every contender).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import resource
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import psycopg

from bench._server import bench_database
from tickvault.config import TimescaleSettings, WriterSettings
from tickvault.model import Side, Trade
from tickvault.storage.postgres import PostgresStore
from tickvault.storage.postgres.partitions import us_to_datetime

START_NS = 1_704_067_200 * 1_000_000_000  # 2024-01-01: backfill-style data, partitions on demand
CHUNK = 10_000


def trades(n: int) -> Iterator[list[Trade]]:
    """n trades over ~n/20 seconds, in chunks; prices and sizes as exchanges send them."""
    for lo in range(0, n, CHUNK):
        chunk = []
        for i in range(lo, min(n, lo + CHUNK)):
            ts = START_NS + i * 50_000_000
            price = Decimal(f"{42000 + (i * 37) % 500}.{(i * 7919) % 100:02d}")
            size = Decimal(f"0.{(i * 104729) % 100000 + 1:08d}")
            side = Side.BUY if i % 3 else Side.SELL
            chunk.append(
                Trade("binance", "BTC-USDT", str(i), price, size, side, ts, ts + 9_000_000)
            )
        yield chunk


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def run_writer(url: str, n: int, writer: WriterSettings) -> tuple[float, float]:
    """Seconds for a first load and for re-sending everything (all duplicates)."""
    out: list[float] = []
    store = await PostgresStore.open(url, writer, TimescaleSettings(mode="off"), timed_flush=False)
    try:
        for _ in range(2):
            t0 = time.perf_counter()
            for chunk in trades(n):
                await store.write(chunk)
            await store.flush()
            out.append(time.perf_counter() - t0)
    finally:
        await store.close()
    stats = store.stats.tables["trades"]
    assert stats.rows_inserted == n and stats.rows_duplicate == n, stats
    return out[0], out[1]


def write_csv(path: Path, n: int) -> None:
    with path.open("w", newline="") as handle:
        out = csv.writer(handle)
        for chunk in trades(n):
            out.writerows(
                (t.exchange, t.symbol, us_to_datetime(t.ts_ns // 1000).isoformat(), t.trade_id,
                 t.price, t.size, t.side.value, us_to_datetime(t.recv_ns // 1000).isoformat())
                for t in chunk
            )  # fmt: skip


def run_psql_copy(url: str, path: Path) -> float:
    psql = shutil.which("psql") or "/usr/lib/postgresql/15/bin/psql"
    command = (
        f"\\copy trades (exchange, symbol, ts, trade_id, price, size, side, recv_ts) "
        f"FROM '{path}' WITH (FORMAT csv)"
    )
    t0 = time.perf_counter()
    subprocess.run([psql, url, "-q", "-v", "ON_ERROR_STOP=1", "-c", command], check=True)
    return time.perf_counter() - t0


def run_executemany(url: str, n: int) -> float:
    sql = (
        "INSERT INTO trades (exchange, symbol, ts, trade_id, price, size, side, recv_ts)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING"
    )
    t0 = time.perf_counter()
    with psycopg.connect(url) as conn:
        for chunk in trades(n):
            rows = [
                (t.exchange, t.symbol, us_to_datetime(t.ts_ns // 1000), t.trade_id, t.price,
                 t.size, t.side.value, us_to_datetime(t.recv_ns // 1000))
                for t in chunk
            ]  # fmt: skip
            with conn.cursor() as cur:
                cur.executemany(sql, rows)
            conn.commit()
    return time.perf_counter() - t0


def truncate(url: str) -> None:
    with psycopg.connect(url) as conn:
        conn.execute("TRUNCATE trades")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--insert-rows", type=int, default=None,
                        help="rows for the executemany baseline (default: --rows / 5)")  # fmt: skip
    parser.add_argument("--url", default=None, help="PostgreSQL server (default: embedded)")
    parser.add_argument("--batch-rows", type=int, default=WriterSettings().batch_rows)
    args = parser.parse_args()
    n = args.rows
    n_insert = args.insert_rows or max(n // 5, 1)
    writer = WriterSettings(batch_rows=args.batch_rows)
    with bench_database(args.url, TimescaleSettings(mode="off")) as url:
        rss_before = rss_mb()
        w_first, w_replay = asyncio.run(run_writer(url, n, writer))
        rss_writer = rss_mb()
        truncate(url)
        with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
            path = Path(tmp) / "trades.csv"
            write_csv(path, n)
            os.chmod(tmp, 0o755)
            copy_s = run_psql_copy(url, path)
        truncate(url)
        many_s = run_executemany(url, n_insert)
    t0 = time.perf_counter()
    for _ in trades(n):  # what building the events costs (the pipeline has them already)
        pass
    gen_s = time.perf_counter() - t0

    def rate(rows: int, seconds: float) -> float:
        return rows / seconds

    copy_rate = rate(n, copy_s)
    print(f"rows: {n:,} trades (batch_rows={writer.batch_rows:,})")
    print(f"psql \\copy CSV (baseline)    {copy_rate:>12,.0f} rows/s   1.00x")
    for label, rows, seconds in (
        ("PostgresStore (idempotent)", n, w_first),
        ("  same, minus event building", n, w_first - gen_s),
        ("PostgresStore re-send (dups)", n, w_replay),
        ("executemany INSERT VALUES", n_insert, many_s),
    ):
        r = rate(rows, seconds)
        print(f"{label:<29} {r:>12,.0f} rows/s   {r / copy_rate:.2f}x")
    print(f"peak RSS: {rss_writer:,.0f} MB after the writer (process start: {rss_before:,.0f} MB)")


if __name__ == "__main__":
    main()
