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

from tickvault.runner.tally import Tally, tally

if TYPE_CHECKING:
    from tickvault.runner.app import Runner


def render(runner: Runner, duration_s: float | None = None) -> Group:
    return render_tally(tally(runner), duration_s)


def render_tally(t: Tally, duration_s: float | None = None, title: str = "tickvault run") -> Group:
    elapsed = t.elapsed_s
    until = f" / {duration_s:.0f} s" if duration_s else ""
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


async def show_progress(runner: Runner, console: Console, duration_s: float | None) -> None:
    """Refresh until cancelled; the caller cancels it once the run has ended."""
    await runner.wait_started()
    with Live(render(runner, duration_s), console=console, refresh_per_second=2) as live:
        with contextlib.suppress(asyncio.CancelledError):
            while True:
                await asyncio.sleep(0.5)
                live.update(render(runner, duration_s))
        live.update(render(runner, duration_s))
