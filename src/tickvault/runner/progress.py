"""Live progress of a run (rich): per exchange, per stage, sinks and queues, twice a second.

It only reads a snapshot of the counters (``runner/tally.py``: no I/O, no locks; with
``--workers``, the workers' merged), so it costs the pipeline nothing but the rendering itself,
which happens twice a second.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from tickvault.runner.tally import Tally


def render(t: Tally, duration_s: float | None = None) -> Group:
    elapsed = t.elapsed_s
    until = f" / {duration_s:.0f} s" if duration_s else ""
    title = "tickvault run" + (f", {t.processes} workers" if t.processes > 1 else "")
    head = Text(f"{title}  {elapsed:5.1f} s{until}", style="bold")
    table = Table(
        "exchange", "messages", "msg/s", "decoded", "valid", "derived", "rejected", "gaps",
        "to PostgreSQL", "to Redis", box=None, header_style="bold cyan",
    )  # fmt: skip
    stage = t.stages
    for ex, messages in t.messages.items():
        table.add_row(
            ex,
            f"{messages:,}",
            f"{messages / elapsed:,.0f}" if elapsed > 0 else "-",
            *(
                f"{stage.get(name, {}).get(ex, 0):,}"
                for name in ("decode", "validate", "transform")
            ),
            f"{t.rejected.get(ex, 0):,}",
            f"{t.gaps.get(ex, 0):,}",
            *(f"{stage.get(name, {}).get(ex, 0):,}" for name in ("write_postgres", "write_redis")),
        )
    footer = Text("\n".join(t.footer), style="dim")
    return Group(head, table, footer)


async def show_progress(
    started: Callable[[], Awaitable[None]],
    snapshot: Callable[[], Tally],
    console: Console,
    duration_s: float | None,
) -> None:
    """Refresh until cancelled (the caller cancels it once the run has ended): ``snapshot`` is
    the run's tally (a runner's, or the workers' merged), read twice a second."""
    await started()
    with Live(render(snapshot(), duration_s), console=console, refresh_per_second=2) as live:
        with contextlib.suppress(asyncio.CancelledError):
            while True:
                await asyncio.sleep(0.5)
                live.update(render(snapshot(), duration_s))
        live.update(render(snapshot(), duration_s))
