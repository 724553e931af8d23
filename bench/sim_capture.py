"""Record what the runner would receive from the simulator, for offline stage benchmarks.

    python -m bench.sim_capture OUT_DIR [--rate 40000] [--seconds 5] [--symbols BTC-USDT,ETH-USDT]

The simulator runs in its own process (``tickvault sim``) as in ``bench.pipeline``; here one
collector per exchange (every channel, the runner's book depths) connects to it and writes every
raw WebSocket and REST message to ``OUT_DIR/<exchange>-*.jsonl.gz`` (the capture format of
``tickvault.exchanges.capture``). Events are discarded: no PostgreSQL, no Redis. ``bench.stages
--capture OUT_DIR`` then replays the files through feeds, stages and row encoders.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence
from pathlib import Path

from bench.pipeline import CHANNELS, EXCHANGES, start_sim
from tickvault.exchanges.base import get_adapter
from tickvault.exchanges.capture import CaptureWriter
from tickvault.exchanges.io.collector import Collector
from tickvault.exchanges.io.instruments import fetch_instruments
from tickvault.exchanges.io.policy import rest_policy
from tickvault.exchanges.io.ratelimit import LocalBudget
from tickvault.exchanges.io.rest import RestClient
from tickvault.exchanges.io.sinks import Sinks
from tickvault.model import DecodeError, Gap, MarketEvent
from tickvault.runner.feeds import FULL_BOOK_DEPTH, FULL_BOOK_VENUES


class Discard:
    """Every sink of a collector; counts what it is given."""

    def __init__(self) -> None:
        self.events = 0

    async def write(self, events: Sequence[MarketEvent]) -> None:
        self.events += len(events)

    async def flush(self) -> None:
        return None

    async def record_gaps(self, gaps: Sequence[Gap]) -> None:
        return None

    async def quarantine(self, records: Sequence[DecodeError]) -> None:
        return None


async def capture(out: Path, rate: float, seconds: float, symbols: list[str]) -> None:
    proc, endpoints = await start_sim(symbols, rate)
    sink = Discard()
    writers: list[CaptureWriter] = []
    rests: list[RestClient] = []
    try:
        collectors = []
        for exchange in EXCHANGES:
            adapter = get_adapter(exchange)
            policy = rest_policy(exchange)
            writer = CaptureWriter(out, prefix=exchange)
            writers.append(writer)
            budget = LocalBudget(exchange, policy.limit, policy.window_s)
            rest = RestClient(
                exchange, endpoints[exchange].rest_url, budget, policy, capture=writer
            )
            rests.append(rest)
            instruments = await fetch_instruments(adapter, rest, symbols)
            collectors.append(
                Collector(
                    adapter,
                    instruments,
                    CHANNELS,
                    Sinks(sink, sink, sink),
                    base_url=endpoints[exchange].ws_url,
                    book_depth=FULL_BOOK_DEPTH if exchange in FULL_BOOK_VENUES else 10,
                    rest=rest,
                    capture=writer,
                )
            )
        tasks = [asyncio.create_task(c.run()) for c in collectors]
        await asyncio.sleep(seconds)
        for collector in collectors:
            collector.stop()
        await asyncio.gather(*tasks)
    finally:
        for rest in rests:
            await rest.aclose()
        for writer in writers:
            writer.close()
        proc.terminate()
        await proc.wait()
    print(f"{sink.events:,} events in {seconds:g} s captured to {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--rate", type=float, default=40_000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--symbols", default="BTC-USDT,ETH-USDT")
    args = parser.parse_args()
    asyncio.run(capture(args.out, args.rate, args.seconds, args.symbols.split(",")))


if __name__ == "__main__":
    main()
