"""Quarantine writes: binary COPY (``PostgresStore.quarantine``) vs the former executemany.

    python -m bench.quarantine [--records 20000] [--batch 1000] [--rounds 5] [--url ...]

Both paths store the same rejects (varied JSON payloads, as the validator keeps them) into the
same ``quarantine`` table, emptied before each load, in batches of ``--batch`` (what one
writer batch of a reject storm carries). Rounds are interleaved A/B (old, new, old, new, ...)
so a noisy machine hurts both alike; the median of each is reported with the ratio, wall time
and the client's CPU time (``time.process_time``). A re-send of everything (all duplicates) is
timed too. Without ``--url`` a throwaway embedded server is started (fsync off).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Sequence

import psycopg

from bench._server import bench_database
from tickvault.config import TimescaleSettings, WriterSettings
from tickvault.storage.postgres import PostgresStore, QuarantineRecord
from tickvault.storage.postgres.partitions import us_to_datetime

START_NS = 1_704_067_200 * 1_000_000_000
PLAIN = TimescaleSettings(mode="off")
# The former store_records.quarantine: one INSERT per row through executemany.
OLD_SQL = (
    "INSERT INTO quarantine (exchange, symbol, channel, reason, detail, raw, recv_ts) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s) "
    "ON CONFLICT (exchange, recv_ts, reason, md5(raw)) DO NOTHING"
)


def rejects(n: int) -> list[QuarantineRecord]:
    return [
        QuarantineRecord(
            "binance", "price_outlier", f"price {42000 + i % 977}.5 is 12% from the median",
            f'{{"exchange":"binance","symbol":"BTC-USDT","trade_id":"{i}","price":'
            f'"{42000 + i % 977}.5","size":"0.0{i % 97 + 1}","side":"buy","ts_ns":'
            f'{START_NS + i * 1_000_000},"recv_ns":{START_NS + i * 1_000_000 + 7_000_000}}}',
            START_NS + i * 1_000_000 + 7_000_000, "BTC-USDT", "trades",
        )
        for i in range(n)
    ]  # fmt: skip


async def old_path(url: str, batches: Sequence[Sequence[QuarantineRecord]]) -> None:
    async with await psycopg.AsyncConnection.connect(url) as conn:
        for batch in batches:
            async with conn.transaction(), conn.cursor() as cur:
                await cur.executemany(
                    OLD_SQL,
                    [(q.exchange, q.symbol, q.channel, q.reason, q.detail, q.raw,
                      us_to_datetime(q.recv_ns // 1000)) for q in batch],
                )  # fmt: skip


async def new_path(store: PostgresStore, batches: Sequence[Sequence[QuarantineRecord]]) -> None:
    for batch in batches:
        await store.quarantine(batch)


def reset(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("TRUNCATE quarantine")


def stored(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM quarantine").fetchone()
    return int(row[0]) if row else 0


async def run(
    url: str, n: int, batch_size: int, rounds: int
) -> dict[str, list[tuple[float, float]]]:
    records = rejects(n)
    batches = [records[i : i + batch_size] for i in range(0, n, batch_size)]
    store = await PostgresStore.open(url, WriterSettings(), PLAIN, timed_flush=False)
    times: dict[str, list[tuple[float, float]]] = {}

    async def timed(label: str, work: Awaitable[None]) -> None:
        wall, cpu = time.perf_counter(), time.process_time()
        await work
        times.setdefault(label, []).append((time.perf_counter() - wall, time.process_time() - cpu))

    try:
        for _ in range(rounds):
            reset(url)
            await timed("old", old_path(url, batches))
            assert stored(url) == n
            await timed("old_resend", old_path(url, batches))
            reset(url)
            await timed("new", new_path(store, batches))
            assert stored(url) == n
            await timed("new_resend", new_path(store, batches))
            assert stored(url) == n
    finally:
        await store.close()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=1_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--url", default=None, help="PostgreSQL server (default: embedded)")
    args = parser.parse_args()
    with bench_database(args.url, PLAIN) as url:
        times = asyncio.run(run(url, args.records, args.batch, args.rounds))
    n = args.records
    print(f"{n:,} quarantine records in batches of {args.batch:,}; median of {args.rounds}"
          " interleaved rounds")  # fmt: skip
    print(f"{'':<28} {'records/s':>10} {'wall s':>8} {'client CPU s':>13}")
    medians = {
        k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v))
        for k, v in times.items()
    }
    for label, key in (
        ("executemany (old)", "old"),
        ("binary COPY (new)", "new"),
        ("executemany re-send", "old_resend"),
        ("binary COPY re-send", "new_resend"),
    ):
        wall, cpu = medians[key]
        print(f"{label:<28} {n / wall:>10,.0f} {wall:>8.3f} {cpu:>13.3f}")
    print(f"speed-up, first load: {medians['old'][0] / medians['new'][0]:.1f}x wall; "
          f"re-send: {medians['old_resend'][0] / medians['new_resend'][0]:.1f}x wall")  # fmt: skip


if __name__ == "__main__":
    main()
