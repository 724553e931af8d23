"""What the simulator costs per message, and how many messages per second it really delivers.

    python -m bench.sim_throughput [--rates 40000,200000] [--seconds 5]
                                   [--src src,/work/main/src] [--mix runner|exchange]
                                   [--tick-ms 20,5] [--probe] [--sim-args "--trade-stamps spread"]

Baseline, measured in the same run: the pure generator (``Market.advance``, no sockets). Then,
for each requested rate and each source tree of ``--src`` (interleaved, so an A/B comparison
sees the same machine load), ``tickvault sim`` runs in its own process and one client per
exchange subscribes as the runner does (``--mix runner``: Binance aggTrade, depth@100ms,
bookTicker, kline_1m; Coinbase Advanced market_trades, level2, ticker, candles, heartbeats;
Kraken book 10, trade, ticker, ohlc 1) or to the Coinbase Exchange feed instead (``exchange``).

``--tick-ms`` runs each tree at each generator step given (a tree whose ``tickvault sim`` has no
``--tick-ms`` option: leave it out, that tree runs its default). ``--probe``: an idle client in
a process of its own also takes one Binance trade stream and reports exchange time (``T``) →
received, p50/p99 (``_venue_probe.py``): the venue's own publish latency at that load.

Printed per run: events/s generated, messages/s the simulator sent (its own counter) and the
client received, the simulator's CPU (cores, user+system of its process over the window) and
CPU µs per message sent, and ``@0.5 core``: messages/s that cost would allow on half a core.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

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
    venue: str = ""

    @property
    def us_per_message(self) -> float:
        return self.cores * 1e6 / max(self.sent_s, 1.0)


class RawSocket:
    """A minimal WebSocket client that counts the text frames it receives without decoding
    them, so the counting process keeps up with the simulator on this 2-core machine (an
    aiohttp client decoding every message fell behind, and a client that falls behind ends up
    disconnected as a slow consumer)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, url: str) -> RawSocket:
        parts = urlsplit(url)
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        head = await reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 101"):
            raise ConnectionError(head.decode(errors="replace"))
        return cls(reader, writer)

    def send(self, opcode: int, payload: bytes) -> None:
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        n = len(payload)
        head = (
            bytes((0x80 | opcode, 0x80 | n))
            if n < 126
            else bytes((0x80 | opcode, 0xFE)) + n.to_bytes(2, "big")
        )
        self.writer.write(head + mask + masked)

    def send_json(self, body: object) -> None:
        self.send(1, json.dumps(body).encode())

    async def count(self, counter: list[int]) -> None:
        """Count text frames into ``counter[0]``; answer pings."""
        buf = bytearray()
        while True:
            data = await self.reader.read(1 << 18)
            if not data:
                return
            buf += data
            pos, size = 0, len(buf)
            while size - pos >= 2:
                opcode, n, head = buf[pos] & 0x0F, buf[pos + 1] & 0x7F, 2
                if n == 126:
                    if size - pos < 4:
                        break
                    n, head = int.from_bytes(buf[pos + 2 : pos + 4], "big"), 4
                elif n == 127:
                    if size - pos < 10:
                        break
                    n, head = int.from_bytes(buf[pos + 2 : pos + 10], "big"), 10
                if size - pos < head + n:
                    break
                if opcode == 1:
                    counter[0] += 1
                elif opcode == 9:
                    self.send(10, bytes(buf[pos + head : pos + head + n]))
                pos += head + n
            del buf[:pos]

    def close(self) -> None:
        self.writer.close()


async def _subscribe(
    urls: dict[tuple[str, str], str], symbols: list[str], mix: str
) -> list[RawSocket]:
    kinds = ("aggTrade", "depth@100ms", "bookTicker", "kline_1m")
    if mix == "exchange":
        kinds = ("trade", "aggTrade", "depth@100ms", "bookTicker")
    streams = "/".join(f"{s.replace('-', '').lower()}@{k}" for s in symbols for k in kinds)
    binance = await RawSocket.connect(f"{urls['binance', 'ws_url']}/stream?streams={streams}")
    cb = await RawSocket.connect(urls["coinbase", "ws_url"])
    if mix == "exchange":
        cb.send_json({"type": "subscribe", "product_ids": symbols,
                      "channels": ["matches", "ticker", "level2_batch"]})  # fmt: skip
    else:
        for channel in ("market_trades", "level2", "ticker", "candles"):
            cb.send_json({"type": "subscribe", "product_ids": symbols, "channel": channel})
        cb.send_json({"type": "subscribe", "channel": "heartbeats"})
    kr = await RawSocket.connect(f"{urls['kraken', 'ws_url']}/v2")
    v2 = [s.replace("-", "/") for s in symbols]
    channels = ("book", "trade", "ticker") + (() if mix == "exchange" else ("ohlc",))
    for channel in channels:
        kr.send_json({"method": "subscribe", "params": {"channel": channel, "symbol": v2}})
    return [binance, cb, kr]


async def live_run(
    rate: float,
    seconds: float,
    symbols: list[str],
    src: str,
    mix: str,
    profile: str | None = None,
    tick_ms: float | None = None,
    probe: bool = False,
    sim_args: list[str] | None = None,
) -> Run:
    """The simulator runs in its own process (``tickvault sim``), as in real use, from the
    source tree ``src``; this process only counts what arrives."""
    exe = Path(sys.executable).with_name("tickvault")
    env = dict(os.environ, PYTHONPATH=str(Path(src).resolve()))
    argv = ["sim", "--symbols", ",".join(symbols), "--rate", str(rate), "--port-base", "0",
            "--history-s", "60", "--no-rate-limits"]  # fmt: skip
    if tick_ms is not None:
        argv += ["--tick-ms", str(tick_ms)]
    argv += sim_args or []
    command = [str(exe), *argv]
    if profile:  # cProfile of the simulator process, written when it exits
        code = (f"import cProfile, sys; sys.argv = {['tickvault', *argv]!r}; "
                f"from tickvault.cli import main; cProfile.run('main()', {profile!r})")  # fmt: skip
        command = [sys.executable, "-c", code]
    proc = await asyncio.create_subprocess_exec(*command, stdout=asyncio.subprocess.PIPE, env=env)
    assert proc.stdout is not None
    urls = {}
    for _ in range(6):
        key, _, value = (await proc.stdout.readline()).decode().strip().partition("=")
        urls[key.split("__")[1].lower(), key.split("__")[2].lower()] = value
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
            info_url = f"{urls['binance', 'rest_url']}/_sim/info"

            sim = psutil.Process(proc.pid)

            async def info() -> tuple[int, int, float]:
                """Events, data messages handed to the clients, CPU seconds, read together
                inside the simulator (a tree without ``cpu_s``: the process's CPU read here)."""
                async with session.get(info_url) as r:
                    body = await r.json()
                sent = sum(v["ws_messages"] for v in body["venues"].values())
                cpu = body.get("cpu_s")
                if cpu is None:
                    times = sim.cpu_times()
                    cpu = times.user + times.system
                return body["events"], sent, cpu

            sockets = await _subscribe(urls, symbols, mix)
            counter = [0]
            tasks = [asyncio.create_task(ws.count(counter)) for ws in sockets]
            await asyncio.sleep(1.0)  # warm up: snapshots, acks
            venue_probe = None
            if probe:
                venue_probe = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "bench._venue_probe", urls["binance", "ws_url"],
                    str(seconds), symbols[0], stdout=asyncio.subprocess.PIPE,
                )  # fmt: skip
            events0, sent0, cpu0 = await info()
            received0, started = counter[0], time.perf_counter()
            await asyncio.sleep(seconds)
            events1, sent1, cpu1 = await info()
            venue = ""
            if venue_probe is not None:
                out, _ = await asyncio.wait_for(venue_probe.communicate(), 60)
                result = json.loads(out or b"{}")
                venue = (
                    f"venue p50/p99 {result['p50_ms']:.1f}/{result['p99_ms']:.1f} ms"
                    if result.get("trades")
                    else f"venue {result}"
                )
            elapsed = time.perf_counter() - started
            received = counter[0] - received0
            for task in tasks:
                task.cancel()
            for ws in sockets:
                ws.close()
    finally:
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
            await proc.wait()
    return Run(
        (events1 - events0) / elapsed,
        (sent1 - sent0) / elapsed,
        received / elapsed,
        (cpu1 - cpu0) / elapsed,
        venue,
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
    parser.add_argument("--tick-ms", help="generator steps to run each tree at, comma separated")
    parser.add_argument("--sim-args", default="", help="more `tickvault sim` options, quoted")
    parser.add_argument(
        "--probe", action="store_true", help="measure the venue's latency to an idle client"
    )
    args = parser.parse_args()
    if not args.no_baseline:
        baseline = pure_generator_rate()
        print(
            f"baseline: pure generator {baseline:,.0f} events/s (this tree, no sockets)", flush=True
        )
    ticks: list[float | None] = (
        [float(t) for t in args.tick_ms.split(",")] if args.tick_ms else [None]
    )
    variants = [(src, tick) for src in args.src.split(",") for tick in ticks]
    for rate in (float(r) for r in args.rates.split(",")):
        for _ in range(args.repeat):
            for src, tick in variants:
                run = asyncio.run(
                    live_run(rate, args.seconds, args.symbols.split(","), src, args.mix,
                             args.profile, tick, args.probe, shlex.split(args.sim_args))
                )  # fmt: skip
                label = src if tick is None else f"{src} {tick:g} ms"
                print(
                    f"{label:>16} requested {rate:>8,.0f} ev/s: generated {run.events_s:>8,.0f} ev/s,"
                    f" sent {run.sent_s:>7,.0f} msg/s (client got {run.received_s:>7,.0f}) |"
                    f" sim CPU {run.cores:.2f} cores = {run.us_per_message:6.1f} µs/msg,"
                    f" {run.cores * 1e6 / max(run.events_s, 1):5.2f} µs/event |"
                    f" @0.5 core: {0.5e6 / run.us_per_message:>8,.0f} msg/s"
                    f"{' | ' + run.venue if run.venue else ''}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
