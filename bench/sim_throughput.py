"""How many messages per second the simulator really delivers on this machine.

    python -m bench.sim_throughput [--rates 5000,20000,50000] [--seconds 3]

Baseline, measured in the same run: the pure generator (``Market.advance``, no sockets). Then,
for each requested rate, one client per exchange subscribed to every channel of every symbol
counts what it receives over real loopback sockets. Printed: events/s generated, messages/s
received, and the ratios achieved/requested and live/pure-generator.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

import aiohttp

from tickvault.exchanges.sim.market import Market
from tickvault.exchanges.sim.spec import market_spec


def pure_generator_rate(events: int = 200_000) -> float:
    market = Market(market_spec("binance", "BTC-USDT"), seed=1)
    started = time.perf_counter()
    for i in range(events // 1000):
        market.advance(i * 1000, (i + 1) * 1000, 1000, 0.3)
    return events / (time.perf_counter() - started)


async def _count(ws: aiohttp.ClientWebSocketResponse, counter: list[int]) -> None:
    async for _ in ws:
        counter[0] += 1


async def live_rate(rate: float, seconds: float, symbols: list[str]) -> tuple[float, float]:
    """The simulator runs in its own process (``tickvault sim``), as in real use; this process
    only counts what arrives."""
    exe = Path(sys.executable).with_name("tickvault")
    proc = await asyncio.create_subprocess_exec(
        str(exe), "sim", "--symbols", ",".join(symbols), "--rate", str(rate), "--port-base", "0",
        "--history-s", "60", "--no-rate-limits", stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    urls = {}
    for _ in range(6):
        key, _, value = (await proc.stdout.readline()).decode().strip().partition("=")
        urls[key.split("__")[1].lower(), key.split("__")[2].lower()] = value
    try:
        async with aiohttp.ClientSession() as session:
            info_url = f"{urls['binance', 'rest_url']}/_sim/info"
            streams = "/".join(
                f"{s.replace('-', '').lower()}@{k}"
                for s in symbols
                for k in ("trade", "aggTrade", "depth@100ms", "bookTicker")
            )
            sockets = [
                await session.ws_connect(
                    f"{urls['binance', 'ws_url']}/stream?streams={streams}", max_msg_size=0
                )
            ]
            cb = await session.ws_connect(urls["coinbase", "ws_url"], max_msg_size=0)
            await cb.send_json(
                {
                    "type": "subscribe",
                    "product_ids": symbols,
                    "channels": ["matches", "ticker", "level2_batch"],
                }
            )
            kr = await session.ws_connect(f"{urls['kraken', 'ws_url']}/v2", max_msg_size=0)
            v2 = [s.replace("-", "/") for s in symbols]
            for channel in ("book", "trade", "ticker"):
                await kr.send_json(
                    {"method": "subscribe", "params": {"channel": channel, "symbol": v2}}
                )
            sockets += [cb, kr]
            counter = [0]
            tasks = [asyncio.create_task(_count(ws, counter)) for ws in sockets]
            await asyncio.sleep(0.5)  # warm up: snapshots, acks
            async with session.get(info_url) as r:
                events0 = (await r.json())["events"]
            received0, started = counter[0], time.perf_counter()
            await asyncio.sleep(seconds)
            async with session.get(info_url) as r:
                events = (await r.json())["events"] - events0
            elapsed = time.perf_counter() - started
            received = counter[0] - received0
            for task in tasks:
                task.cancel()
            for ws in sockets:
                await ws.close()
    finally:
        proc.terminate()
        await proc.wait()
    return events / elapsed, received / elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rates", default="5000,20000,50000")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--symbols", default="BTC-USDT,ETH-USDT")
    args = parser.parse_args()
    baseline = pure_generator_rate()
    print(f"baseline: pure generator {baseline:,.0f} events/s (one core, no sockets)")
    for rate in (float(r) for r in args.rates.split(",")):
        events_s, messages_s = asyncio.run(live_rate(rate, args.seconds, args.symbols.split(",")))
        print(
            f"requested {rate:>8,.0f} ev/s: generated {events_s:>8,.0f} ev/s "
            f"(x{events_s / rate:.2f} of requested, x{events_s / baseline:.2f} of pure), "
            f"client received {messages_s:>8,.0f} msg/s"
        )


if __name__ == "__main__":
    main()
