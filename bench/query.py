"""Read latency: one day of 1m candles (1,440 rows) and the latest 500 candles.

    python -m bench.query [--days 7] [--repeat 200] [--url postgresql://...]

Prints p50/p99 of the ``Vault`` calls (polars frame, what a user gets) and of the bare SQL
fetch of the same rows into Python tuples (the baseline, measured in the same run), with their
ratio. ``Vault`` three ways: uncached (``block_cache=False``: SQL → Arrow), from the candle
blocks cached in PostgreSQL (warm: the stored frames), and cold (the stream's blocks deleted
before each read, outside the timing: the read builds and stores them). "Warm" is a repeat read
by one reader: it holds the blocks it decoded, so PostgreSQL checks their row versions and sends
no frame (``held_blocks.py``); "warm, new reader" drops what the reader holds before each read
(outside the timing), so the stored frames travel and are decoded, as in a fresh process.
Without ``--url`` a throwaway embedded server is started.

Redis (``redis_cases``): the same two reads served from the hot cache — the latest 500 bars
both as Candle events (``RedisCache.latest_candles``: ZRANGE + decoding) and as a polars frame
(``RedisCache.latest_candles_frame``, served from the stream's stored Arrow frame; "new reader"
as above: the blob fetched and decoded, not the reader's held table), and the last
day's 1,440 bars (``RedisCache.candles_frame``; and ZRANGEBYSCORE + decoding the members into
Candles or columns, the work the stored frame saves) — plus the bare ZRANGE of the 500 members, and the HTTP API
(``tickvault api``'s app, in a thread of this process, over loopback with a keep-alive
connection): ``/v1/candles/latest?n=500`` (a Redis hit) and ``/v1/candles`` for one day
(PostgreSQL). Without ``--redis-url`` a throwaway embedded Redis is started.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from http.client import HTTPConnection
from pathlib import Path

import msgspec
from aiohttp import web
from prometheus_client import CollectorRegistry

from bench._server import bench_database
from tickvault.api.serve import build
from tickvault.config import CacheSettings, Settings, TimescaleSettings
from tickvault.model import Candle
from tickvault.monitoring.metrics import Metrics
from tickvault.query import Vault, convert
from tickvault.storage.embedded import EmbeddedRedis
from tickvault.storage.postgres import PostgresStore, reader
from tickvault.storage.redis_cache import RedisCache, candles_table
from tickvault.storage.redis_keys import decode
from tickvault.storage.urls import StorageUrls

START_NS = 1_704_067_200 * 1_000_000_000
MIN_NS = 60 * 1_000_000_000
Case = tuple[str, Callable[[], object]]


def bar(symbol: str, m: int) -> Candle:
    o = Decimal(f"{40000 + m % 997}.{m % 100:02d}")
    ts = START_NS + m * MIN_NS
    return Candle("binance", symbol, "1m", ts, o, o + 5, o - 5, o + 1, Decimal("12.5"), True,
                  ts + MIN_NS, ts + MIN_NS)  # fmt: skip


async def load(url: str, days: int) -> None:
    async with await PostgresStore.open(
        url, timescale=TimescaleSettings(mode="off"), timed_flush=False
    ) as store:
        for symbol in ("BTC-USDT", "ETH-USDT", "SOL-USDT"):  # neighbours in the same index
            for m in range(days * 1440):
                await store.write([bar(symbol, m)])
        await store.flush()


PREFIX = "tvbench"  # keys of their own, in case --redis-url names a server in use


def redis_cases(
    args: argparse.Namespace, last_day: tuple[str, str], url: str, stack: contextlib.ExitStack
) -> tuple[list[Case], RedisCache]:
    """(label, call) pairs reading the same candles from Redis, directly and over HTTP."""
    redis_url = args.redis_url or stack.enter_context(_embedded_redis())
    settings = CacheSettings(candles_kept=1440, key_prefix=PREFIX)
    cache = RedisCache(redis_url, settings)
    stack.callback(cache.close)
    first = (args.days - 1) * 1440
    cache.write_events([bar("BTC-USDT", m) for m in range(first, first + 1440)])
    key = cache.keys.candles("binance", "BTC-USDT", "1m")
    stack.callback(cache.client.delete, key)
    lo_ms, hi_ms = (int(datetime.fromisoformat(t).replace(tzinfo=UTC).timestamp() * 1000)
                    for t in last_day)  # fmt: skip

    def day_raw() -> list[bytes]:
        return cache.client.zrangebyscore(key, lo_ms, f"({hi_ms}")  # type: ignore[return-value]

    def day() -> list[Candle]:
        return [decode(member, Candle) for member in day_raw()]

    def day_frame() -> object:
        return cache.candles_frame("binance", "BTC-USDT", "1m", lo_ms * 1_000_000,
                                   hi_ms * 1_000_000)  # fmt: skip

    def day_members_frame() -> object:  # the JSON members decoded into columns (no stored frame)
        return convert(candles_table(day_raw()), "polars")

    assert len(day()) == 1440 and len(cache.latest_candles("binance", "BTC-USDT", "1m", 500)) == 500
    assert len(day_frame()) == 1440  # type: ignore[arg-type]
    assert len(day_members_frame()) == 1440  # type: ignore[arg-type]
    assert len(cache.latest_candles_frame("binance", "BTC-USDT", "1m", 500)) == 500
    port = stack.enter_context(_api_server(url, redis_url, settings))
    http = HTTPConnection("127.0.0.1", port)  # keep-alive: one connection for every request
    stack.callback(http.close)

    def get(path: str) -> bytes:
        http.request("GET", path)
        resp = http.getresponse()
        body = resp.read()
        assert resp.status == 200, body
        return body

    market = "exchange=binance&symbol=BTC-USDT&timeframe=1m"
    latest_path = f"/v1/candles/latest?{market}&n=500"
    day_path = f"/v1/candles?{market}&start={last_day[0]}&end={last_day[1]}"
    assert b'"source":"redis","count":500' in get(latest_path)
    assert b'"count":1440' in get(day_path)
    return [
        ("Redis ZRANGE bytes: latest 500", lambda: cache.client.zrange(key, -500, -1)),
        (
            "Redis: latest 500 Candles",
            lambda: cache.latest_candles("binance", "BTC-USDT", "1m", 500),
        ),
        (
            "Redis: latest 500 frame",
            lambda: cache.latest_candles_frame("binance", "BTC-USDT", "1m", 500),
        ),
        (
            "Redis: latest 500 frame, new reader",
            lambda: cache.latest_candles_frame("binance", "BTC-USDT", "1m", 500),
        ),
        (
            "Redis: latest 500 frame, after a write",
            lambda: cache.latest_candles_frame("binance", "BTC-USDT", "1m", 500),
        ),
        ("Redis: 1 day of 1m Candles", day),
        ("Redis: 1 day of 1m frame", day_frame),
        ("Redis: 1 day of 1m frame, new reader", day_frame),
        ("Redis: 1 day of 1m frame, after a write", day_frame),
        ("Redis: 1 day of 1m from members", day_members_frame),
        ("HTTP latest 500 (Redis)", lambda: get(latest_path)),
        ("HTTP 1 day of 1m (PostgreSQL)", lambda: get(day_path)),
    ], cache


@contextlib.contextmanager
def _embedded_redis() -> Iterator[str]:
    root = Path(tempfile.mkdtemp(prefix="tickvault-bench-redis-", dir="/tmp"))
    server = EmbeddedRedis(root, durable=False)
    try:
        yield server.start()
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def _api_server(url: str, redis_url: str, cache: CacheSettings) -> Iterator[int]:
    """The API app on an ephemeral loopback port, its event loop in a thread of its own."""
    loop = asyncio.new_event_loop()
    settings = Settings(database_url=url, redis_url=redis_url, cache=cache)
    metrics = Metrics(CollectorRegistry(), process_metrics=False)
    app, _ = build(settings, StorageUrls(url, redis_url, ()), metrics=metrics)
    runner = web.AppRunner(app, access_log=None)

    async def start() -> int:
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        return int(runner.addresses[0][1])

    thread = threading.Thread(target=loop.run_forever, name="bench-api", daemon=True)
    thread.start()
    try:
        yield asyncio.run_coroutine_threadsafe(start(), loop).result(30)
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


class _Writes:
    """ "After a write": before each sample (untimed) the stream changes as a live feed changes
    it — the newest bar's close moves (a forming bar updated) and every tenth time a new bar
    opens after it — in PostgreSQL (its own connection, as a writer process) and in Redis."""

    def __init__(self, url: str, days: int, cache: RedisCache) -> None:
        import psycopg

        self._conn = psycopg.connect(url, autocommit=True)
        self._cache = cache
        self._m = days * 1440 - 1  # the newest bar loaded
        self._n = 0

    def next(self) -> None:
        self._n += 1
        if self._n % 10 == 0:
            self._m += 1
        candle = bar("BTC-USDT", self._m)
        moved = msgspec.structs.replace(candle, close=candle.close + Decimal(self._n % 7) / 100)
        self._conn.execute(
            "INSERT INTO candles (exchange, symbol, timeframe, ts, source, open, high, low, close,"
            " volume, closed, event_ts, recv_ts) VALUES (%s, %s, '1m', to_timestamp(%s / 1e9),"
            " 'exchange', %s, %s, %s, %s, %s, false, now(), now())"
            " ON CONFLICT (exchange, symbol, timeframe, ts, source) DO UPDATE SET close ="
            " EXCLUDED.close, event_ts = EXCLUDED.event_ts",
            (moved.exchange, moved.symbol, moved.open_ns, moved.open, moved.high, moved.low,
             moved.close, moved.volume),
        )  # fmt: skip
        self._cache.write_events([moved])

    def close(self) -> None:
        self._conn.close()


def timed(
    call: Callable[[], object], repeat: int, prepare: Callable[[], object] | None = None
) -> tuple[float, float, float]:
    """p50 and p99 (ms) of ``call``, and the p50 of this process's CPU time per call (ms: less
    sensitive to a loaded machine than wall time); ``prepare`` runs before each sample, untimed."""
    call()  # warm up (plans, imports)
    samples = []
    cpu = []
    for _ in range(repeat):
        if prepare is not None:
            prepare()
        t0, c0 = time.perf_counter(), time.process_time()
        call()
        samples.append((time.perf_counter() - t0) * 1000)
        cpu.append((time.process_time() - c0) * 1000)
    samples.sort()
    p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))]
    return statistics.median(samples), p99, statistics.median(cpu)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--days", type=int, default=7, help="days of 1m candles per symbol")
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--url", default=None, help="PostgreSQL server (default: embedded)")
    parser.add_argument("--redis-url", default=None, help="Redis server (default: embedded)")
    args = parser.parse_args()
    day_start = f"2024-01-{args.days:02d}" if args.days <= 28 else "2024-01-28"
    day_end = f"2024-01-{args.days + 1:02d}" if args.days <= 28 else "2024-01-29"
    with (
        bench_database(args.url, TimescaleSettings(mode="off")) as url,
        contextlib.ExitStack() as stack,
    ):
        asyncio.run(load(url, args.days))
        with (
            Vault.connect(url=url) as vault,
            Vault.connect(url=url, block_cache=False) as uncached,
        ):
            conn = vault._conn
            day_sql = reader.candles_sql(False, "1m", "auto", latest=False)
            day_params = reader.candle_params("binance", "BTC-USDT", "1m", "auto",
                                              start=day_start, end=day_end)  # fmt: skip
            last_sql = reader.candles_sql(False, "1m", "auto", latest=True)
            last_params = reader.candle_params("binance", "BTC-USDT", "1m", "auto", limit=500)
            assert len(conn.execute(day_sql, day_params).fetchall()) == 1440  # type: ignore[call-overload]

            def day(v: Vault) -> Callable[[], object]:
                return lambda: v.candles("binance", "BTC-USDT", "1m", day_start, day_end)

            def latest(v: Vault) -> Callable[[], object]:
                return lambda: v.latest_candles("binance", "BTC-USDT", "1m", 500)

            def forget() -> None:  # the stream's cached blocks, gone: the next read builds them
                conn.execute("DELETE FROM candle_blocks WHERE symbol = 'BTC-USDT'")

            cases: list[Case] = [
                ("SQL fetch: 1 day of 1m", lambda: conn.execute(day_sql, day_params).fetchall()),  # type: ignore[call-overload]
                ("Vault.candles uncached: 1 day", day(uncached)),
                ("Vault.candles blocks warm: 1 day", day(vault)),
                ("Vault.candles blocks warm, new reader: 1 day", day(vault)),
                ("Vault.candles blocks, after a write: 1 day", day(vault)),
                ("Vault.candles blocks cold: 1 day", day(vault)),
                ("SQL fetch: latest 500", lambda: conn.execute(last_sql, last_params).fetchall()),  # type: ignore[call-overload]
                ("Vault.latest uncached: 500", latest(uncached)),
                ("Vault.latest blocks warm: 500", latest(vault)),
                ("Vault.latest blocks warm, new reader: 500", latest(vault)),
                ("Vault.latest blocks, after a write: 500", latest(vault)),
                ("Vault.latest blocks cold: 500", latest(vault)),
            ]  # fmt: skip
            more, cache = redis_cases(args, (day_start, day_end), url, stack)
            cases += more

            def new_reader() -> None:  # what this process holds, gone (frames read again)
                vault.forget_held()
                cache.forget_held()

            writes = _Writes(url, args.days, cache)
            stack.callback(writes.close)
            prepare = {"cold": forget, "new reader": new_reader, "after a write": writes.next}
            results = {
                label: timed(call, args.repeat,
                             next((p for k, p in prepare.items() if k in label), None))
                for label, call in cases
            }  # fmt: skip
    print(f"{args.days} days x 3 symbols of 1m candles; {args.repeat} runs each")
    baseline = {
        "1 day": results["SQL fetch: 1 day of 1m"][0],
        "latest": results["SQL fetch: latest 500"][0],
    }
    for label, (p50, p99, cpu) in results.items():
        base = baseline["1 day"] if "1 day" in label else baseline["latest"]
        print(f"{label:<44} p50 {p50:7.2f} ms   p99 {p99:7.2f} ms   {p50 / base:5.2f}x SQL fetch"
              f"   client CPU p50 {cpu:6.2f} ms")  # fmt: skip


if __name__ == "__main__":
    main()
