"""Writer throughput: PostgresStore vs ``psql \\copy`` (physical baseline) vs executemany.

    python -m bench.writer [--rows 1000000] [--rounds 3] [--url postgresql://...]

Every contender loads the same trades into the same ``trades`` table of one database, emptied
(``TRUNCATE`` + ``CHECKPOINT``) before each load, in one run on one server, so the ratios
compare like with like. Each round runs every contender once, in turn; the best of
``--rounds`` is reported, every round's rows/s beside it (the machine may be noisy).

1. **Streaming run** (memory check, first): trades are built in chunks of 10,000 and handed to
   the writer as a pipeline would, so the process never holds more than the writer's own bound
   plus one chunk. Peak RSS is read after it, before anything else is built. Its rows/s
   *includes* building the events.
2. **Timed rounds**: the events are built once, before the clock starts (as psql gets its CSV
   file ready before its clock starts), then:
   * ``psql \\copy`` of the same rows from a CSV file: the physical baseline (one COPY, no
     idempotency);
   * PostgresStore first load (idempotent: direct COPY, falling back to staging on a conflict);
   * PostgresStore re-send of all rows (every row a duplicate: nothing may change);
   * PostgresStore with the direct COPY disabled (always staging + ``ON CONFLICT``): what the
     optimistic path buys;
   * executemany ``INSERT .. VALUES .. ON CONFLICT`` (``--insert-rows``, default rows / 5).

Without ``--url`` a throwaway embedded server is started (fsync off: the same for everyone).
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
from collections.abc import Callable, Iterator
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
PLAIN = TimescaleSettings(mode="off")


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


async def run_writer(
    url: str, chunks: Callable[[], Iterator[list[Trade]]], writer: WriterSettings, *, direct: bool
) -> tuple[float, PostgresStore]:
    """Seconds to hand every chunk to a fresh store and flush it."""
    store = await PostgresStore.open(url, writer, PLAIN, timed_flush=False)
    store.optimistic_copy = direct
    try:
        t0 = time.perf_counter()
        for chunk in chunks():
            await store.write(chunk)
        await store.flush()
        seconds = time.perf_counter() - t0
    finally:
        await store.close()
    return seconds, store


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


def run_executemany(url: str, chunks: list[list[Trade]]) -> float:
    sql = (
        "INSERT INTO trades (exchange, symbol, ts, trade_id, price, size, side, recv_ts)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING"
    )
    t0 = time.perf_counter()
    with psycopg.connect(url) as conn:
        for chunk in chunks:
            rows = [
                (t.exchange, t.symbol, us_to_datetime(t.ts_ns // 1000), t.trade_id, t.price,
                 t.size, t.side.value, us_to_datetime(t.recv_ns // 1000))
                for t in chunk
            ]  # fmt: skip
            with conn.cursor() as cur:
                cur.executemany(sql, rows)
            conn.commit()
    return time.perf_counter() - t0


def reset(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("TRUNCATE trades")
        conn.execute("CHECKPOINT")


def stored(url: str) -> tuple[int, str]:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*), md5(string_agg(trade_id || price::text || size::text, ',' "
            "ORDER BY ts, trade_id)) FROM trades"
        ).fetchone()
    assert row is not None
    return int(row[0]), str(row[1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--insert-rows", type=int, default=None,
                        help="rows for the executemany baseline (default: --rows / 5)")  # fmt: skip
    parser.add_argument("--url", default=None, help="PostgreSQL server (default: embedded)")
    parser.add_argument("--batch-rows", type=int, default=WriterSettings().batch_rows)
    args = parser.parse_args()
    n = args.rows
    n_insert = args.insert_rows or max(n // 5, 1)
    writer = WriterSettings(batch_rows=args.batch_rows)
    times: dict[str, list[float]] = {}

    def record(label: str, seconds: float) -> None:
        times.setdefault(label, []).append(seconds)

    with bench_database(args.url, PLAIN) as url:
        rss_start = rss_mb()
        seconds, _ = asyncio.run(run_writer(url, lambda: trades(n), writer, direct=True))
        rss_writer = rss_mb()  # nothing but the writer and one chunk has been held so far
        expected = stored(url)
        assert expected[0] == n, expected
        record("streaming", seconds)
        with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
            path = Path(tmp) / "trades.csv"
            write_csv(path, n)
            os.chmod(tmp, 0o755)
            events = list(trades(n))
            for _ in range(args.rounds):
                reset(url)
                record("copy", run_psql_copy(url, path))
                assert stored(url) == expected
                reset(url)
                seconds, store = asyncio.run(
                    run_writer(url, lambda: iter(events), writer, direct=True)
                )
                record("first", seconds)
                assert stored(url) == expected and store.stats.tables["trades"].conflicts == 0
                seconds, store = asyncio.run(
                    run_writer(url, lambda: iter(events), writer, direct=True)
                )
                record("resend", seconds)
                stats = store.stats.tables["trades"]
                assert stored(url) == expected and stats.rows_duplicate == n, stats
                reset(url)
                seconds, _ = asyncio.run(
                    run_writer(url, lambda: iter(events), writer, direct=False)
                )
                record("staged", seconds)
                assert stored(url) == expected
                reset(url)
                record("many", run_executemany(url, events[: -(-n_insert // CHUNK)]))

    n_many = min(n, -(-n_insert // CHUNK) * CHUNK)
    copy_rate = n / min(times["copy"])
    print(f"rows: {n:,} trades, batch_rows={writer.batch_rows:,}, best of {args.rounds} rounds")
    print(f"{'':<38} {'rows/s (best)':>13}  {'ratio':>5}  rows/s (all rounds)")
    for label, key, rows in (
        ("psql \\copy CSV (baseline)", "copy", n),
        ("PostgresStore first load", "first", n),
        ("PostgresStore re-send (all duplicates)", "resend", n),
        ("PostgresStore staged only (no direct)", "staged", n),
        ("executemany INSERT VALUES", "many", n_many),
        ("streaming, incl. building events (1x)", "streaming", n),
    ):
        rates = sorted(rows / s for s in times[key])
        spread = ", ".join(f"{r / 1000:,.0f}k" for r in rates)
        print(f"{label:<38} {rates[-1]:>13,.0f}  {rates[-1] / copy_rate:>4.2f}x  {spread}")
    print(
        f"peak RSS: {rss_writer:,.0f} MB after the streaming run (process start: {rss_start:,.0f} MB)"
    )


if __name__ == "__main__":
    main()
