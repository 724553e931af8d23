"""Cost of the candle-block marks on candle writes: the same bars written with the triggers on
and off (``ALTER TABLE candles DISABLE TRIGGER USER``), rounds interleaved on one server.

    python -m bench.candle_marks [--bars 200000] [--rounds 3] [--url postgresql://...]

Each round empties ``candles`` and ``candle_blocks``, then per mode: a first load (direct COPY),
a re-send of every bar (all duplicates: the staged path, nothing changes, nothing marked) and a
re-send of every bar closed with a new close (the staged path updating every row). Best of the
rounds, every round shown. The trades writer (``bench.writer``) touches no candle table.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from decimal import Decimal

import psycopg

from bench._server import bench_database
from tickvault.config import TimescaleSettings, WriterSettings
from tickvault.model import Candle
from tickvault.storage.postgres import PostgresStore

START_NS = 1_704_067_200 * 1_000_000_000
MIN_NS = 60 * 1_000_000_000
PLAIN = TimescaleSettings(mode="off")
SYMBOLS = ("BTC-USDT", "ETH-USDT", "SOL-USDT", "XRP-USDT")


def bars(n: int, closed: bool, bump: str = "0") -> list[Candle]:
    out = []
    per = n // len(SYMBOLS)
    for symbol in SYMBOLS:
        for m in range(per):
            o = Decimal(f"{40000 + m % 997}.{m % 100:02d}")
            ts = START_NS + m * MIN_NS
            out.append(Candle("binance", symbol, "1m", ts, o, o + 5, o - 5, o + Decimal(bump),
                              Decimal("12.5"), closed, ts + MIN_NS, ts + MIN_NS))  # fmt: skip
    return out


async def load(url: str, events: list[Candle]) -> float:
    async with await PostgresStore.open(url, WriterSettings(), PLAIN, timed_flush=False) as store:
        t0 = time.perf_counter()
        await store.write(events)
        await store.flush()
        return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bars", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--url", default=None)
    args = parser.parse_args()
    first, same, changed = (
        bars(args.bars, False),
        bars(args.bars, False),
        bars(args.bars, True, "1"),
    )
    results: dict[str, list[float]] = {}
    with bench_database(args.url, PLAIN) as url, psycopg.connect(url, autocommit=True) as conn:
        for _ in range(args.rounds):
            for marks in (True, False):
                conn.execute("TRUNCATE candles, candle_blocks")
                conn.execute("CHECKPOINT")
                switch = "ENABLE" if marks else "DISABLE"
                conn.execute(f"ALTER TABLE candles {switch} TRIGGER USER")
                label = "marks on " if marks else "marks off"
                for step, events in (("first load", first), ("re-send", same),
                                     ("re-send, all changed", changed)):  # fmt: skip
                    seconds = asyncio.run(load(url, events))
                    results.setdefault(f"{step:<22} {label}", []).append(len(events) / seconds)
        conn.execute("ALTER TABLE candles ENABLE TRIGGER USER")
    print(f"{args.bars:,} 1m candles, best of {args.rounds} rounds (bars/s)")
    for label, rates in results.items():
        rounds = ", ".join(f"{r / 1000:.0f}k" for r in rates)
        print(f"{label}  {max(rates):10,.0f}   ({rounds})")


if __name__ == "__main__":
    main()
