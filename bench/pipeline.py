"""The whole pipeline under rising load: simulator → runner → PostgreSQL + Redis.

    python -m bench.pipeline [--rates 2000,5000,10000,20000,50000] [--seconds 20]
                             [--symbols BTC-USDT,ETH-USDT] [--url postgresql://...] [--redis-url ...]

The simulator runs in its own process (``tickvault sim``, one core of its own as in real use);
the runner runs here, in one process, exactly as ``tickvault run`` does (every exchange, every
channel). For each step the simulator's rate is set, the runner warms up, then for ``--seconds``
this measures:

* the baseline: what the simulator generated (events/s) and sent (messages/s to the runner);
* what the runner received and processed (messages/s, events out of the stages);
* loss: trades of the window stored in PostgreSQL (or refused by validation and kept in
  quarantine) vs the simulator's truth, per market — a step is *sustained* when nothing is
  missing and everything was stored within ``--catchup`` seconds of the window's end;
* latency from the exchange timestamp to readable in Redis and to committed in PostgreSQL
  (p50, p99, over every trade of the window);
* CPU of the runner process (cores) and of the simulator, peak RSS of the runner;
* where the latency goes (``--trace``, on by default; ``runner/latency.py``): per hop, for
  each sink — venue (exchange time → our receive: the simulator's 5 ms steps, its send, the
  socket), collect (receive → stages), stages, queue (→ the write began), write —
  as p50/p99, with ``received`` (receive → stored, the pipeline's own share) and the mean hops
  of the slowest 1 % of trades; and the runner's loop lag, GC pauses and, with ``--stalls``,
  the callbacks that held the loop longest (``_stalls.py``); and the venue's own share:
  exchange time → received by an idle client in its own process (``_venue_probe.py``).

The issue asks for 5 minutes sustained per step: ``--seconds 300``. The default (20 s) keeps a
run of five steps near two minutes on this shared 2-core machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import resource
import shlex
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import psutil
import psycopg

from bench._server import bench_database
from bench._stalls import StallProbe
from tickvault.config import ExchangeEndpoints, FeedSettings, Settings, TimescaleSettings
from tickvault.monitoring.metrics import Metrics
from tickvault.runner.app import Runner, RunOptions, stage_config
from tickvault.runner.tally import Tally, latency_ms, tally
from tickvault.runner.workers import Workers
from tickvault.storage.embedded import EmbeddedRedis

EXCHANGES = ("binance", "coinbase", "kraken")
CHANNELS = ["trades", "book", "candles", "ticker"]


async def start_sim(
    symbols: list[str], rate: float, sim_args: list[str] | None = None
) -> tuple[asyncio.subprocess.Process, dict[str, ExchangeEndpoints]]:
    exe = Path(sys.executable).with_name("tickvault")
    proc = await asyncio.create_subprocess_exec(
        str(exe), "sim", "--symbols", ",".join(symbols), "--rate", str(rate), "--port-base", "0",
        "--history-s", "60", "--no-rate-limits", *(sim_args or []), stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    urls: dict[tuple[str, str], str] = {}
    for _ in range(6):
        key, _, value = (await proc.stdout.readline()).decode().strip().partition("=")
        parts = key.split("__")
        urls[parts[1].lower(), parts[2].lower()] = value
    endpoints = {
        e: ExchangeEndpoints(rest_url=urls[e, "rest_url"], ws_url=urls[e, "ws_url"])
        for e in EXCHANGES
    }
    return proc, endpoints


def stored_counts(url: str, lo_us: int, hi_us: int) -> dict[tuple[str, str], int]:
    """Trades of the window accounted for: stored, or refused by validation and kept in
    quarantine (its raw is the event as JSON, with ``ts_ns``)."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT exchange, symbol, count(*) FROM trades WHERE ts >= to_timestamp(%s / 1e6)"
            " AND ts < to_timestamp(%s / 1e6) GROUP BY 1, 2"
            " UNION ALL SELECT exchange, symbol, count(*) FROM quarantine"
            " WHERE channel = 'trades' AND reason <> 'duplicate' AND raw LIKE '{%%'"
            " AND (raw::jsonb ->> 'ts_ns')::bigint / 1000 >= %s"
            " AND (raw::jsonb ->> 'ts_ns')::bigint / 1000 < %s GROUP BY 1, 2",
            (lo_us, hi_us, lo_us, hi_us),
        ).fetchall()
    counts: dict[tuple[str, str], int] = {}
    for e, s, n in rows:
        counts[e, s] = counts.get((e, s), 0) + int(n)
    return counts


async def truth_counts(
    client: httpx.AsyncClient, endpoints: dict[str, ExchangeEndpoints], symbols: list[str],
    lo_us: int, hi_us: int,
) -> dict[tuple[str, str], int]:  # fmt: skip
    counts = {}
    for exchange in EXCHANGES:
        for symbol in symbols:
            params = {"exchange": exchange, "symbol": symbol, "kind": "count",
                      "since_ns": str(lo_us * 1000), "until_ns": str(hi_us * 1000)}  # fmt: skip
            r = await client.get(f"{endpoints[exchange].rest_url}/_sim/truth", params=params)
            counts[exchange, symbol] = int(r.json()["count"])
    return counts


async def sim_info(
    client: httpx.AsyncClient, endpoints: dict[str, ExchangeEndpoints]
) -> dict[str, Any]:
    r = await client.get(f"{endpoints['binance'].rest_url}/_sim/info")
    return r.json()  # type: ignore[no-any-return]


def sent_messages(info: dict[str, Any]) -> int:
    """Messages the simulator sent to its clients, all venues (its own counters)."""
    total = 0
    for venue in info.get("venues", {}).values():
        total += int(venue.get("ws_messages", 0))
    return total


async def start_venue_probe(ws_url: str, seconds: float, symbol: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench._venue_probe", ws_url, str(seconds), symbol,
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def read_venue_probe(proc: asyncio.subprocess.Process) -> str:
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), 40)
        result = json.loads(out)
    except (TimeoutError, ValueError):
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        return "no answer"
    if not result.get("trades"):
        return str(result.get("error", "no trades"))
    return f"p50/p99 {result['p50_ms']:.1f}/{result['p99_ms']:.1f} ms ({result['trades']:,} trades)"


def percentiles(latency: dict[str, tuple[float, float]], sink: str) -> str:
    if sink not in latency:
        return "-"
    p50, p99 = latency[sink]
    return f"{p50:,.0f} / {p99:,.0f} ms"


async def step(
    runner: Runner | Workers, url: str, sim_proc: psutil.Process, client: httpx.AsyncClient,
    endpoints: dict[str, ExchangeEndpoints], symbols: list[str], rate: float, seconds: float,
    warmup_s: float, catchup_s: float, probe: StallProbe, with_probe: bool,
) -> bool:  # fmt: skip
    await client.post(f"{endpoints['binance'].rest_url}/_sim/rate", json={"rate": rate})
    await asyncio.sleep(warmup_s)
    if isinstance(runner, Workers):
        runner.clear_latency()
        procs = [psutil.Process(w.process.pid) for w in runner.workers]
    else:
        for writer in runner.writers:
            writer.stats.latency_ns.clear()
        if runner.trace is not None:
            runner.trace.clear()
        procs = [psutil.Process()]
    probe.clear()
    venue_probe = (
        await start_venue_probe(endpoints["binance"].ws_url, seconds, symbols[0])
        if with_probe
        else None
    )
    # Every counter is read right at the window's bounds (the probe's start, the trace summary
    # and the probe's report take a while under load: counted in but not timed, they inflated
    # the rates — the simulator "generated" up to 1.7x what was asked at 40 000 ev/s).
    cpu0, sim_cpu0 = [p.cpu_times() for p in procs], sim_proc.cpu_times()
    info0 = await sim_info(client, endpoints)
    msgs0, events0, rejects0, _ = _counts(await _tally(runner, latency=False))
    # Window bounds on whole milliseconds: Binance times are milliseconds.
    lo_us, started = time.time_ns() // 1_000_000 * 1000, time.perf_counter()
    await asyncio.sleep(seconds)
    hi_us, elapsed = time.time_ns() // 1_000_000 * 1000, time.perf_counter() - started
    info1 = await sim_info(client, endpoints)
    cpu1, sim_cpu1 = [p.cpu_times() for p in procs], sim_proc.cpu_times()
    # Latency of what was stored in the window (the catch-up below queries the simulator's
    # truth, a load of its own that is not the pipeline's).
    msgs1, events1, rejects1, latency = _counts(await _tally(runner, latency=True))
    msgs, events = msgs1 - msgs0, events1 - events0
    stalls = (
        "loop lag and GC: in the workers, not measured"
        if isinstance(runner, Workers)
        else probe.report()
    )
    venue = await read_venue_probe(venue_probe) if venue_probe is not None else "off"
    trace = None if isinstance(runner, Workers) else runner.trace
    hops = {b: trace.summary(b) for b in ("redis", "postgres")} if trace else {}
    generated = (info1["events"] - info0["events"]) / elapsed
    sent = (sent_messages(info1) - sent_messages(info0)) / elapsed
    deadline = time.monotonic() + catchup_s
    while True:  # everything of the window stored within catchup_s of its end?
        # The truth too is read again: under load the generator's last ticks lag the clock.
        truth = await truth_counts(client, endpoints, symbols, lo_us, hi_us)
        stored = await asyncio.to_thread(stored_counts, url, lo_us, hi_us)
        missing = {k: n - stored.get(k, 0) for k, n in truth.items() if n != stored.get(k, 0)}
        if not missing or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.25)
    rejects = {
        f"{k[0]}:{k[2]}": n - rejects0.get(k, 0)
        for k, n in rejects1.items()
        if n > rejects0.get(k, 0)
    }
    per_process = [
        (b.user + b.system - a.user - a.system) / elapsed for a, b in zip(cpu0, cpu1, strict=True)
    ]
    cores = sum(per_process)
    split = f" ({' + '.join(f'{c:.2f}' for c in per_process)})" if len(per_process) > 1 else ""
    sim_cores = (sim_cpu1.user + sim_cpu1.system - sim_cpu0.user - sim_cpu0.system) / elapsed
    trades = sum(truth.values())
    ok = not missing
    print(
        f"rate {rate:>7,.0f}: sim generated {generated:>7,.0f} ev/s, sent {sent:>7,.0f} msg/s |"
        f" runner got {msgs / elapsed:>7,.0f} msg/s (x{msgs / elapsed / max(sent, 1):.2f}),"
        f" {events / elapsed:>7,.0f} ev/s (x{events / elapsed / max(generated, 1):.2f} of"
        f" generated) | trades {trades:,} {'all stored' if ok else f'MISSING {missing}'} |"
        f" latency Redis {percentiles(latency, 'redis')}, PostgreSQL"
        f" {percentiles(latency, 'postgres')} | CPU runner {cores:.2f} cores{split},"
        f" sim {sim_cores:.2f} | rejected {rejects or 'none'} | peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MB",
        flush=True,
    )
    for backend, summary in hops.items():
        if summary is not None:
            print(f"    {backend:>8} {summary.line()}", flush=True)
    print(f"    runner   {stalls}", flush=True)
    print(f"    venue    exchange time → an idle client (binance {symbols[0]} trades): {venue}",
          flush=True)  # fmt: skip
    return ok


async def _tally(runner: Runner | Workers, *, latency: bool) -> Tally:
    """The run's counters now (the workers': one round trip, latency samples always)."""
    if isinstance(runner, Workers):
        return await runner.report()
    return tally(runner, latency=latency)


def _counts(
    t: Tally,
) -> tuple[int, int, dict[tuple[str, ...], int], dict[str, tuple[float, float]]]:
    """Messages in, events validated, rejects, and latency p50/p99 (ms) per sink."""
    validated = sum(t.stages.get("validate", {}).values())
    return sum(t.messages.values()), validated, t.rejects, latency_ms(t.latency_ns)


async def main_async(args: argparse.Namespace, url: str, redis_url: str) -> None:
    symbols = args.symbols.split(",")
    rates = [float(r) for r in args.rates.split(",")]
    proc, endpoints = await start_sim(symbols, rates[0], shlex.split(args.sim_args))
    data_dir = Path(tempfile.mkdtemp(prefix="tickvault-bench-"))
    settings = Settings(
        database_url=url, redis_url=redis_url, data_dir=data_dir, endpoints=endpoints,
        feeds=[FeedSettings(exchange=e, symbols=symbols, channels=CHANNELS) for e in EXCHANGES],  # type: ignore[arg-type]
    )  # fmt: skip
    stages = stage_config(settings)
    if not args.cross_check:
        # Off on request only: the simulator's venues are independent walks, each pulled weakly
        # back to its start price, so they stay well inside the 5 % cross-venue rule.
        validation = replace(stages.validation, cross_min_exchanges=1_000)
        stages = replace(stages, validation=validation)
    options = RunOptions(spill_dir=data_dir / "spill", stages=stages, trace_latency=args.trace)
    if args.redis_linger_ms is not None:
        options.redis_linger_s = args.redis_linger_ms / 1000
    if args.postgres_linger_ms is not None:
        options.postgres_linger_s = args.postgres_linger_ms / 1000
    runner: Runner | Workers
    if args.workers > 1:
        options.trace_latency = False  # per-hop traces stay in each worker
        runner = Workers(settings, options, args.workers)
    else:
        runner = Runner(settings, options, metrics=Metrics())
    task = asyncio.create_task(runner.run())
    best = 0.0
    probe = StallProbe(callbacks=args.stalls)
    try:
        await asyncio.wait_for(runner.wait_started(), 60)
        probe.start()
        async with httpx.AsyncClient(timeout=60) as client:
            sim_proc = psutil.Process(proc.pid)
            for rate in rates:
                ok = await step(runner, url, sim_proc, client, endpoints, symbols, rate,
                                args.seconds, args.warmup, args.catchup, probe,
                                args.venue_probe)  # fmt: skip
                if not ok:
                    break
                best = rate
    finally:
        await probe.stop()
        runner.stop()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 120)
        proc.terminate()
        await proc.wait()
    print(f"highest rate sustained with zero loss: {best:,.0f} events/s requested"
          f" ({args.seconds:g} s per step; the issue's target is 5 min: --seconds 300)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="2000,5000,10000,20000,50000")
    parser.add_argument("--seconds", type=float, default=20.0, help="measured window per step")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--catchup", type=float, default=5.0, help="seconds allowed to store")
    parser.add_argument("--symbols", default="BTC-USDT,ETH-USDT")
    parser.add_argument(
        "--cross-check",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="keep the cross-exchange outlier rule, as `tickvault run` has it (default: on)",
    )
    parser.add_argument(
        "--trace",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="report where the latency goes, hop by hop (default: on)",
    )
    parser.add_argument(
        "--venue-probe",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="measure the venue's own latency with an idle client (default: on)",
    )
    parser.add_argument(
        "--stalls", action="store_true", help="time every loop callback; name the slow ones"
    )
    parser.add_argument(
        "--sim-args", default="", help="more `tickvault sim` options, quoted (e.g. --tick-ms 5)"
    )
    parser.add_argument(
        "--workers", type=int, default=1,
        help="run the pipeline in N processes, the symbols shared out (tickvault run --workers)",
    )  # fmt: skip
    parser.add_argument("--redis-linger-ms", type=float, help="RunOptions.redis_linger_s, in ms")
    parser.add_argument(
        "--postgres-linger-ms", type=float, help="RunOptions.postgres_linger_s, in ms"
    )
    parser.add_argument("--url", help="PostgreSQL server (default: a throwaway one)")
    parser.add_argument("--redis-url", help="Redis (default: a throwaway one)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with bench_database(args.url, TimescaleSettings()) as url:
        redis_server = None
        redis_url = args.redis_url
        if redis_url is None:
            redis_server = EmbeddedRedis(
                Path(tempfile.mkdtemp(prefix="tickvault-redis-")), durable=False
            )
            redis_url = redis_server.start()
        try:
            asyncio.run(main_async(args, url, redis_url))
        finally:
            if redis_server is not None:
                redis_server.stop()


if __name__ == "__main__":
    main()
