"""What the simulator costs per message, and how many messages per second it really delivers.

    python -m bench.sim_throughput [--rates 40000,200000] [--seconds 5]
                                   [--src src,/work/main/src] [--mix runner|exchange]

Baseline, measured in the same run: the pure generator (``Market.advance``, no sockets). Then,
for each requested rate and each source tree of ``--src`` (interleaved, so an A/B comparison
sees the same machine load), ``tickvault sim`` runs in its own process and one client per
exchange subscribes as the runner does (``--mix runner``: Binance aggTrade, depth@100ms,
bookTicker, kline_1m; Coinbase Advanced market_trades, level2, ticker, candles, heartbeats;
Kraken book 10, trade, ticker, ohlc 1) or to the Coinbase Exchange feed instead (``exchange``).

Printed per run: events/s generated, messages/s the simulator sent (its own counter) and the
client received, the simulator's CPU (cores, user+system of its process over the window) and
CPU µs per message sent, and ``@0.5 core``: messages/s that cost would allow on half a core.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import psutil

from tickvault.exchanges.sim.market import Market
from tickvault.exchanges.sim.spec import market_spec


def pure_generator_rate(events: int = 200_000) -> float:
    market = Market(market_spec("binance", "BTC-USDT"), seed=1)
    started = time.perf_counter()
    for i in range(events // 1000):
        market.advance(i * 1000, (i + 1) * 1000, 1000, 0.3)
    return events / (time.perf_counter() - started)


@dataclass
class Run:
    events_s: float
    sent_s: float
    received_s: float
    cores: float

    @property
    def us_per_message(self) -> float:
        return self.cores * 1e6 / max(self.sent_s, 1.0)


async def _count(ws: aiohttp.ClientWebSocketResponse, counter: list[int]) -> None:
    async for _ in ws:
        counter[0] += 1


async def _subscribe(
    session: aiohttp.ClientSession, urls: dict[tuple[str, str], str], symbols: list[str], mix: str
) -> list[aiohttp.ClientWebSocketResponse]:
    kinds = ("aggTrade", "depth@100ms", "bookTicker", "kline_1m")
    if mix == "exchange":
        kinds = ("trade", "aggTrade", "depth@100ms", "bookTicker")
    streams = "/".join(f"{s.replace('-', '').lower()}@{k}" for s in symbols for k in kinds)
    binance = await session.ws_connect(
        f"{urls['binance', 'ws_url']}/stream?streams={streams}", max_msg_size=0
    )
    cb = await session.ws_connect(urls["coinbase", "ws_url"], max_msg_size=0)
    if mix == "exchange":
        await cb.send_json({"type": "subscribe", "product_ids": symbols,
                            "channels": ["matches", "ticker", "level2_batch"]})  # fmt: skip
    else:
        for channel in ("market_trades", "level2", "ticker", "candles"):
            await cb.send_json({"type": "subscribe", "product_ids": symbols, "channel": channel})
        await cb.send_json({"type": "subscribe", "channel": "heartbeats"})
    kr = await session.ws_connect(f"{urls['kraken', 'ws_url']}/v2", max_msg_size=0)
    v2 = [s.replace("-", "/") for s in symbols]
    channels = ("book", "trade", "ticker") + (() if mix == "exchange" else ("ohlc",))
    for channel in channels:
        await kr.send_json({"method": "subscribe", "params": {"channel": channel, "symbol": v2}})
    return [binance, cb, kr]


async def live_run(
    rate: float, seconds: float, symbols: list[str], src: str, mix: str, profile: str | None = None
) -> Run:
    """The simulator runs in its own process (``tickvault sim``), as in real use, from the
    source tree ``src``; this process only counts what arrives."""
    exe = Path(sys.executable).with_name("tickvault")
    env = dict(os.environ, PYTHONPATH=str(Path(src).resolve()))
    argv = ["sim", "--symbols", ",".join(symbols), "--rate", str(rate), "--port-base", "0",
            "--history-s", "60", "--no-rate-limits"]  # fmt: skip
    command = [str(exe), *argv]
    if profile:  # cProfile of the simulator process, written when it exits
        code = (f"import cProfile, sys; sys.argv = {['tickvault', *argv]!r}; "
                f"from tickvault.cli import main; cProfile.run('main()', {profile!r})")  # fmt: skip
        command = [sys.executable, "-c", code]
    proc = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, env=env
    )
    assert proc.stdout is not None
    urls = {}
    for _ in range(6):
        key, _, value = (await proc.stdout.readline()).decode().strip().partition("=")
        urls[key.split("__")[1].lower(), key.split("__")[2].lower()] = value
    sim = psutil.Process(proc.pid)
    try:
        timeout = aiohttp.ClientTimeout(total=30)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            info_url = f"{urls['binance', 'rest_url']}/_sim/info"

            async def info() -> tuple[int, int]:
                async with session.get(info_url) as r:
                    body = await r.json()
                sent = sum(v["ws_messages"] for v in body["venues"].values())
                return body["events"], sent

            sockets = await _subscribe(session, urls, symbols, mix)
            counter = [0]
            tasks = [asyncio.create_task(_count(ws, counter)) for ws in sockets]
            await asyncio.sleep(1.0)  # warm up: snapshots, acks
            events0, sent0 = await info()
            cpu0 = sim.cpu_times()
            received0, started = counter[0], time.perf_counter()
            await asyncio.sleep(seconds)
            cpu1 = sim.cpu_times()
            elapsed = time.perf_counter() - started
            received = counter[0] - received0
            events1, sent1 = await info()
            for task in tasks:
                task.cancel()
    finally:  # the session's exit aborts the sockets; no close handshakes with a flooded peer
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
            await proc.wait()
    cpu = cpu1.user + cpu1.system - cpu0.user - cpu0.system
    return Run(
        (events1 - events0) / elapsed, (sent1 - sent0) / elapsed, received / elapsed, cpu / elapsed
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rates", default="40000,200000")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--symbols", default="BTC-USDT,ETH-USDT")
    parser.add_argument("--src", default="src", help="source trees to compare, comma separated")
    parser.add_argument("--mix", choices=("runner", "exchange"), default="runner")
    parser.add_argument("--repeat", type=int, default=1, help="runs per rate and source tree")
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--profile", help="write a cProfile of the (last) simulator run here")
    args = parser.parse_args()
    if not args.no_baseline:
        baseline = pure_generator_rate()
        print(f"baseline: pure generator {baseline:,.0f} events/s (this tree, no sockets)", flush=True)
    for rate in (float(r) for r in args.rates.split(",")):
        for _ in range(args.repeat):
            for src in args.src.split(","):
                run = asyncio.run(live_run(
                    rate, args.seconds, args.symbols.split(","), src, args.mix, args.profile
                ))
                print(
                    f"{src:>16} requested {rate:>8,.0f} ev/s: generated {run.events_s:>8,.0f} ev/s,"
                    f" sent {run.sent_s:>7,.0f} msg/s (client got {run.received_s:>7,.0f}) |"
                    f" sim CPU {run.cores:.2f} cores = {run.us_per_message:6.1f} µs/msg,"
                    f" {run.cores * 1e6 / max(run.events_s, 1):5.2f} µs/event |"
                    f" @0.5 core: {0.5e6 / run.us_per_message:>8,.0f} msg/s",
                    flush=True,
                )


if __name__ == "__main__":
    main()
