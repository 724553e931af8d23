"""Live progress of a run (rich): per exchange, per stage, sinks and queues, twice a second.

It only reads the runner's counters (no I/O, no locks), so it costs the pipeline nothing but
the rendering itself, which happens twice a second.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from tickvault.runner.stats import by_exchange

if TYPE_CHECKING:
    from tickvault.runner.app import Runner


def render(runner: Runner, duration_s: float | None = None) -> Group:
    stats = runner.stats
    elapsed = stats.elapsed_s
    until = f" / {duration_s:.0f} s" if duration_s else ""
    head = Text(f"tickvault run  {elapsed:5.1f} s{until}", style="bold")
    table = Table(
        "exchange", "messages", "msg/s", "decoded", "valid", "derived", "rejected", "gaps",
        "to PostgreSQL", "to Redis", box=None, header_style="bold cyan",
    )  # fmt: skip
    collected = by_exchange(stats.collected.items())
    validated = by_exchange(stats.validated.items())
    transformed = by_exchange(stats.transformed.items())
    rejected = by_exchange(stats.rejects.items())
    gaps = by_exchange(stats.gaps.items())
    written = [by_exchange(w.stats.channels.items()) for w in runner.writers]
    for feed in runner.feeds:
        ex = feed.exchange
        messages = feed.counters.ws_messages
        table.add_row(
            ex,
            f"{messages:,}",
            f"{messages / elapsed:,.0f}" if elapsed > 0 else "-",
            f"{collected.get(ex, 0):,}",
            f"{validated.get(ex, 0):,}",
            f"{transformed.get(ex, 0):,}",
            f"{rejected.get(ex, 0):,}",
            f"{gaps.get(ex, 0):,}",
            *(f"{w.get(ex, 0):,}" for w in written),
        )
    queues = [f"stages {runner.ingest.qsize()}"]
    queues += [f"{f.exchange} {f.collector.queue.qsize()}" for f in runner.feeds]
    sinks = []
    for writer in runner.writers:
        s = writer.sink.stats
        state = "up" if writer.sink.healthy else "DOWN, buffering"
        sinks.append(
            f"{writer.backend}: {state}, {writer.stats.batches:,} batches, queue "
            f"{writer.queue.qsize()}, backlog {s.backlog_rows:,} rows, spilled {s.spilled_bytes:,} B"
        )
        if s.spill_error:
            sinks.append(f"  spill failed {s.spill_failures:,}x: {s.spill_error}")
    footer = Text("queues: " + ", ".join(queues) + "\n" + "\n".join(sinks), style="dim")
    return Group(head, table, footer)


async def show_progress(runner: Runner, console: Console, duration_s: float | None) -> None:
    """Refresh until cancelled; the caller cancels it once the run has ended."""
    await runner.wait_started()
    with Live(render(runner, duration_s), console=console, refresh_per_second=2) as live:
        with contextlib.suppress(asyncio.CancelledError):
            while True:
                await asyncio.sleep(0.5)
                live.update(render(runner, duration_s))
        live.update(render(runner, duration_s))
