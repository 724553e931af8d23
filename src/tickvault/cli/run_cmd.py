"""``tickvault run`` (the whole pipeline in one process) and ``tickvault quality``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from typing import Annotated

import typer
from rich.console import Console
from rich.logging import RichHandler

from tickvault.cli import app
from tickvault.cli.common import ConfigOption, settings_from
from tickvault.config import Settings
from tickvault.errors import StorageError, UsageError
from tickvault.runner.app import Runner, RunOptions
from tickvault.runner.tally import tally
from tickvault.runner.workers import Workers, quiet_noisy_loggers

console = Console(highlight=False, soft_wrap=True)


@app.command("run")
def run(
    config: ConfigOption = None,
    sim: Annotated[
        bool, typer.Option("--sim", help="Collect from the built-in simulator (offline).")
    ] = False,
    duration: Annotated[
        float | None, typer.Option(help="Stop after this many seconds (default: until Ctrl-C).")
    ] = None,
    sim_rate: Annotated[
        float, typer.Option(help="With --sim: market events per second, all markets.")
    ] = 2000.0,
    symbols: Annotated[
        str | None,
        typer.Option(help="With --sim: canonical symbols, comma separated (BTC-USDT,ETH-USDT)."),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No live progress.")] = False,
    quality_interval: Annotated[
        float | None, typer.Option(help="Seconds between quality scores (default 10, --sim 5).")
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            help="Processes to run the pipeline in, the symbols shared out among them "
            "(default: the settings' workers, 1).",
        ),
    ] = None,
) -> None:
    """Collect → validate → transform → quality → PostgreSQL + Redis, until stopped.

    Feeds, timeframes and indicators come from the settings; storage is the configured
    PostgreSQL/Redis, else the embedded servers. SIGINT/SIGTERM drain and flush everything
    before exit; a summary follows.
    """
    settings = settings_from(config)
    if duration is not None and duration <= 0:
        raise UsageError("--duration must be > 0")
    if sim_rate < 0:
        raise UsageError("--sim-rate must be >= 0")
    if not sim and symbols is not None:
        raise UsageError("--symbols selects simulated markets; configure [[feeds]] otherwise")
    chosen = [s.strip().upper() for s in symbols.split(",") if s.strip()] if symbols else None
    if workers is not None and workers < 1:
        raise UsageError("--workers must be >= 1")
    interval = quality_interval or (5.0 if sim else 10.0)
    _setup_logging(settings)
    n = workers or settings.workers
    asyncio.run(_run(settings, sim, duration, sim_rate, chosen, quiet, interval, n))


def _setup_logging(settings: Settings) -> None:
    handler = RichHandler(console=console, show_path=False, rich_tracebacks=False)
    logging.basicConfig(level=settings.log_level, handlers=[handler], format="%(message)s")
    quiet_noisy_loggers()


async def _run(
    settings: Settings,
    sim: bool,
    duration: float | None,
    sim_rate: float,
    symbols: list[str] | None,
    quiet: bool,
    quality_interval: float,
    workers: int = 1,
) -> None:
    from tickvault.runner import summary

    options = RunOptions(duration_s=duration, quality_interval_s=quality_interval)
    async with contextlib.AsyncExitStack() as stack:
        if sim:
            from tickvault.runner.simrun import simulated

            settings, simulator = await stack.enter_async_context(
                simulated(settings, rate=sim_rate, symbols=symbols)
            )
            console.print(
                f"simulator: {', '.join(simulator.endpoints)} x "
                f"{', '.join(simulator.config.symbols)} at {sim_rate:g} events/s"
            )
        job = Workers(settings, options, workers) if workers > 1 else Runner(settings, options)
        _install_signals(job)
        progress = None
        if not quiet:
            from tickvault.runner.progress import show_progress

            snapshot = job.tally if isinstance(job, Workers) else lambda: tally(job)
            progress = asyncio.create_task(
                show_progress(job.wait_started, snapshot, console, duration)
            )
        try:
            await job.run()
        finally:
            if progress is not None:
                progress.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await progress
        console.print()
        if job.urls is None:
            return
        where = "embedded" if job.urls.embedded else "configured"
        console.print(f"storage: {where} ({', '.join(job.urls.embedded) or 'URLs'})")
        if isinstance(job, Workers):  # their final tallies, latency samples included
            found = await summary.collect_tally(job.tally(), settings, job.urls)
        else:
            found = await summary.collect(job)
        summary.render(found, console)


def _install_signals(runner: Runner | Workers) -> None:
    loop = asyncio.get_running_loop()

    def first(signame: str) -> None:
        console.print(f"{signame}: draining and flushing (again to abort)")
        runner.stop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)  # a second signal takes the default action

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, first, sig.name)


@app.command("quality")
def quality(
    config: ConfigOption = None,
    exchange: Annotated[str | None, typer.Option("--exchange", "-e", help="Only this one.")] = None,
) -> None:
    """The latest stored quality score of every stream, with its worst component."""
    import psycopg

    from tickvault.runner.summary import quality_table, stored_quality
    from tickvault.storage.postgres.connection import connect_sync, describe_error
    from tickvault.storage.urls import resolve_urls

    settings = settings_from(config)
    url = resolve_urls(settings, need_redis=False).database_url
    with connect_sync(url) as conn:
        try:
            rows = stored_quality(conn)
        except psycopg.errors.UndefinedTable:
            raise StorageError(
                "no tickvault schema in this database: run `tickvault init`"
            ) from None
        except psycopg.Error as exc:
            raise StorageError(f"reading quality scores failed: {describe_error(exc)}") from None
    if exchange is not None:
        rows = [r for r in rows if r.exchange == exchange]
    if not rows:
        console.print("no quality scores stored yet: `tickvault run` computes them periodically")
        return
    console.print(quality_table(rows))
