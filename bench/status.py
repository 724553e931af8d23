"""``tickvault status`` on a big trades table: newest timestamp by ``max(ts)`` vs from the indexes.

    python -m bench.status [--rows 3000000] [--days 10] [--markets 6] [--repeat 7] [--url ...]

Loads ``--rows`` trades spread over ``--days`` daily partitions and ``--markets`` markets (by
``INSERT .. SELECT generate_series``: the load is not what is measured), ANALYZEs, then times,
A/B interleaved in the same run, the old way (``SELECT max(ts) FROM trades``) and the new one
(``newest.newest``: newest partition first, skip scan of the index), and the whole
``table_status`` call. Wall-clock medians (the work is the server's, so CPU time of this process
says nothing); the two answers are checked equal.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import psycopg

from bench._server import bench_database
from tickvault.config import TimescaleSettings
from tickvault.storage.postgres.newest import newest
from tickvault.storage.postgres.reader import table_status


def _load(url: str, rows: int, days: int, markets: int) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "SELECT tv_ensure_partitions('trades', array(SELECT now() - make_interval(days => d)"
            " FROM generate_series(0, %s) d))",
            (days,),
        )
        span_s = days * 86_400
        conn.execute(
            "INSERT INTO trades (exchange, symbol, trade_id, price, size, side, ts, recv_ts)"
            " SELECT 'binance', 'SYM' || (i %% %(m)s) || '-USDT', i::text, 100 + i %% 7, 1,"
            " 'buy', now() - make_interval(secs => %(span)s * (i::float8 / %(n)s)), now()"
            " FROM generate_series(1, %(n)s) i",
            {"m": markets, "span": span_s, "n": rows},
        )
        conn.execute("ANALYZE trades")


def _time(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    call()
    return (time.perf_counter() - started) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=3_000_000)
    parser.add_argument("--days", type=int, default=10)
    parser.add_argument("--markets", type=int, default=6)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--url")
    args = parser.parse_args()
    with bench_database(args.url, TimescaleSettings(mode="off")) as url:
        started = time.perf_counter()
        _load(url, args.rows, args.days, args.markets)
        print(f"loaded {args.rows:,} trades in {time.perf_counter() - started:.1f} s")
        with psycopg.connect(url, autocommit=True) as conn:

            def old() -> object:
                row = conn.execute("SELECT max(ts) FROM trades").fetchone()
                return row[0] if row else None

            def new() -> object:
                return newest(conn, "trades", False)

            assert old() == new(), (old(), new())
            cases = {"max(ts) FROM trades": old, "newest(trades)": new}
            cases["table_status (all tables)"] = lambda: table_status(conn, False)
            times: dict[str, list[float]] = {name: [] for name in cases}
            for _ in range(args.repeat):  # interleaved: the machine's load hits both alike
                for name, call in cases.items():
                    times[name].append(_time(call))
        for name, samples in times.items():
            print(f"{name:<28} median {statistics.median(samples):9.2f} ms  "
                  f"min {min(samples):9.2f} ms  ({args.repeat} runs)")  # fmt: skip


if __name__ == "__main__":
    main()
