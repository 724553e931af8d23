"""``tickvault sim``: serve the simulated exchanges on loopback and print their base URLs."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from typing import Annotated

import typer
from rich.console import Console

from tickvault.cli import app
from tickvault.errors import UsageError
from tickvault.exchanges.sim import SimConfig, Simulator
from tickvault.exchanges.sim.spec import DEFAULT_TICK_S, TRADE_STAMPS

console = Console(highlight=False, soft_wrap=True)


@app.command("sim")
def sim(
    symbols: Annotated[
        str, typer.Option(help="Canonical symbols, comma separated.")
    ] = "BTC-USDT,ETH-USDT",
    exchanges: Annotated[
        str, typer.Option(help="Exchanges to simulate.")
    ] = "binance,coinbase,kraken",
    rate: Annotated[
        float, typer.Option(help="Live market events per second, all markets.")
    ] = 1000.0,
    port_base: Annotated[
        int, typer.Option(help="Binance port; Coinbase +1, Kraken +2. 0: any free ports.")
    ] = 18000,
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    seed: Annotated[int, typer.Option(help="Seed of the synthetic market.")] = 1,
    history_s: Annotated[int, typer.Option(help="Seconds of REST history before start.")] = 7200,
    duration: Annotated[float | None, typer.Option(help="Stop after this many seconds.")] = None,
    tick_ms: Annotated[
        float, typer.Option(help="Generator step in ms; the step's events are sent at its end.")
    ] = DEFAULT_TICK_S * 1000,
    trade_stamps: Annotated[
        str,
        typer.Option(
            help="Trades' exchange times: 'send' (the step's end, when they are sent) or "
            "'spread' (across the step: each waits up to --tick-ms to be sent)."
        ),
    ] = "send",
    no_rate_limits: Annotated[bool, typer.Option(help="Do not enforce REST rate limits.")] = False,
    truth_file: Annotated[
        str | None, typer.Option(help="Write the ground truth (JSONL) on exit.")
    ] = None,
) -> None:
    """Serve Binance, Coinbase and Kraken REST + WebSocket APIs over a synthetic market.

    Prints the settings that point tickvault at it (TICKVAULT_ENDPOINTS__...); faults and
    the ground truth are under /_sim/ on every port (see docs/simulator.md).
    """
    if rate < 0:
        raise UsageError("--rate must be >= 0")
    if not 0 < tick_ms <= 1000:
        raise UsageError("--tick-ms must be in (0, 1000]")
    if trade_stamps not in TRADE_STAMPS:
        raise UsageError(f"--trade-stamps must be one of {', '.join(TRADE_STAMPS)}")
    config = SimConfig(
        symbols=[s.strip().upper() for s in symbols.split(",") if s.strip()],
        exchanges=tuple(e.strip() for e in exchanges.split(",") if e.strip()),
        rate=rate,
        port_base=port_base,
        host=host,
        seed=seed,
        history_s=history_s,
        tick_s=tick_ms / 1000,
        trade_stamps=trade_stamps,
        rate_limits=not no_rate_limits,
        truth_file=truth_file,
        freeze_gc=True,  # its own process: nothing else's garbage is kept by the freeze
    )
    asyncio.run(_serve(config, duration))


async def _serve(config: SimConfig, duration: float | None) -> None:
    try:
        simulator = Simulator(config)
        await simulator.start()
    except OSError as exc:
        raise UsageError(
            f"cannot listen on {config.host} from port {config.port_base}: {exc.strerror}"
        ) from None
    try:
        for exchange, endpoints in simulator.endpoints.items():
            name = exchange.upper()
            console.print(f"TICKVAULT_ENDPOINTS__{name}__REST_URL={endpoints.rest_url}")
            console.print(f"TICKVAULT_ENDPOINTS__{name}__WS_URL={endpoints.ws_url}")
        console.print(
            f"# control: {next(iter(simulator.endpoints.values())).rest_url}/_sim/info", style="dim"
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), duration)
    finally:
        await simulator.stop()
        stats = simulator.stats()
        console.print(f"# events generated: {stats['events']}; ws messages: "
                      f"{sum(v['ws_messages'] for v in stats['venues'].values())}", style="dim")  # fmt: skip
