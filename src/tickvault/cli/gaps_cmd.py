"""``tickvault gaps [--exchange] [--symbol] [--status] [--fix]``: list recorded gaps, repair them.

``--fix`` repairs the selected gaps now (default: every one not repaired yet, failed ones
included whatever their attempt count) through the same :class:`GapRepairer` as the runner:
REST within the exchange's shared rate budget, checkpoints, idempotent writes.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from tickvault.cli import app
from tickvault.cli.common import ConfigOption, settings_from
from tickvault.config import Settings
from tickvault.errors import UsageError
from tickvault.exchanges.base import get_adapter
from tickvault.exchanges.io.instruments import load_instruments
from tickvault.exchanges.io.policy import rest_policy
from tickvault.exchanges.io.ratelimit import RedisBudget
from tickvault.exchanges.io.rest import RestClient
from tickvault.model import EXCHANGES, NS_PER_S
from tickvault.runner.repair import PENDING, GapRepairer, RepairResult, RestSource
from tickvault.runner.repair_outlet import StandaloneOutlet
from tickvault.runner.stats import indicator_config
from tickvault.storage.postgres import PostgresStore
from tickvault.storage.postgres.records import GAP_STATUSES, GapRecord
from tickvault.storage.redis_cache import AsyncRedisCache
from tickvault.storage.urls import resolve_urls

console = Console(highlight=False, soft_wrap=True)
_STYLE = {"open": "yellow", "repairing": "cyan", "repaired": "green", "failed": "red"}


@app.command("gaps")
def gaps(
    config: ConfigOption = None,
    exchange: Annotated[str | None, typer.Option("--exchange", "-e", help="Only this one.")] = None,
    symbol: Annotated[str | None, typer.Option("--symbol", "-s", help="Only this symbol.")] = None,
    status: Annotated[
        str | None, typer.Option(help=f"Only this status: {', '.join(GAP_STATUSES)}.")
    ] = None,
    fix: Annotated[bool, typer.Option("--fix", help="Repair the selected gaps now.")] = False,
    limit: Annotated[int, typer.Option(min=1, help="Rows shown (newest).")] = 50,
) -> None:
    """Gaps recorded in storage (reconnects, sequence breaks, restarts, missing candles);
    ``--fix`` refetches them from the exchanges' REST history."""
    settings = settings_from(config)
    if exchange is not None and exchange not in EXCHANGES:
        raise UsageError(f"unknown exchange {exchange!r}; known: {', '.join(EXCHANGES)}")
    if status is not None and status not in GAP_STATUSES:
        raise UsageError(f"unknown status {status!r}; known: {', '.join(GAP_STATUSES)}")
    if fix and status == "repaired":
        raise UsageError("--fix repairs gaps not repaired yet; drop --status repaired")
    asyncio.run(_main(settings, exchange, symbol, status, fix, limit))


async def _main(
    settings: Settings,
    exchange: str | None,
    symbol: str | None,
    status: str | None,
    fix: bool,
    limit: int,
) -> None:
    urls = await asyncio.to_thread(resolve_urls, settings, need_redis=fix)
    store = await PostgresStore.open(
        urls.database_url, settings.writer, settings.timescale, timed_flush=False
    )
    try:
        chosen = await store.list_gaps(exchange, symbol, status)
        if not fix:
            _show(chosen, limit)
            return
        todo = [g for g in chosen if g.status in PENDING or g.status == status]
        if not todo:
            console.print("nothing to repair")
            return
        results = await _fix(settings, urls.redis_url, store, todo)
    finally:
        await store.close()
    _show([r.gap for r in results], limit, results)
    failed = [r for r in results if r.status == "failed"]
    repaired = sum(r.status == "repaired" for r in results)
    console.print(f"repaired {repaired}, failed {len(failed)}, of {len(results)} gaps")
    if failed:
        raise typer.Exit(1)


async def _fix(
    settings: Settings, redis_url: str, store: PostgresStore, todo: list[GapRecord]
) -> list[RepairResult]:
    results: list[RepairResult] = []
    async with contextlib.AsyncExitStack() as stack:
        sources: dict[str, RestSource] = {}
        for name in sorted({g.exchange for g in todo}):
            endpoints = settings.endpoints.get(name)
            if endpoints is None:
                raise UsageError(f"no endpoints configured for {name}")
            adapter = get_adapter(name)
            policy = rest_policy(name)
            budget = RedisBudget(
                redis_url, name, policy.budget, policy.window_s,
                key_prefix=settings.cache.key_prefix,
            )  # fmt: skip
            stack.push_async_callback(budget.close)
            rest = await stack.enter_async_context(
                RestClient(name, endpoints.rest_url, budget, policy)
            )
            listed = await load_instruments(adapter, rest)
            sources[name] = RestSource(adapter, rest, {i.symbol: i for i in listed})
        cache = AsyncRedisCache(redis_url, settings.cache)
        stack.push_async_callback(cache.close)
        outlet = StandaloneOutlet(indicator_config(settings), cache)
        repairer = GapRepairer(store, sources, settings.repair, settings.timeframes, outlet=outlet)
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
        with Progress(*columns, console=console, transient=True) as bar:
            task = bar.add_task("repairing", total=len(todo))
            for gap in todo:
                bar.update(task, description=f"{gap.exchange} {gap.symbol} {gap.channel}")
                results.append(await repairer.repair(gap))
                bar.advance(task)
    return results


def _time(ts_ns: int) -> str:
    return datetime.fromtimestamp(ts_ns / NS_PER_S, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _show(gaps: list[GapRecord], limit: int, results: list[RepairResult] | None = None) -> None:
    if not gaps:
        console.print("no gaps recorded")
        return
    outcome = {r.gap.id: r for r in results or []}
    table = Table(
        title=f"gaps ({len(gaps)}{', newest ' + str(limit) if len(gaps) > limit else ''})"
    )
    for name in ("id", "exchange", "symbol", "channel", "from (UTC)", "span", "reason"):
        table.add_column(name, justify="right" if name in ("id", "span") else "left")
    for name in ("status", "tries", "detail"):
        table.add_column(name)
    for gap in gaps[-limit:]:
        result = outcome.get(gap.id)
        state = result.status if result is not None else gap.status
        detail = result.detail if result is not None else gap.detail or ""
        tries = gap.attempts + (result is not None and result.status == "failed")
        table.add_row(
            str(gap.id), gap.exchange, gap.symbol, gap.channel, _time(gap.from_ns),
            f"{(gap.to_ns - gap.from_ns) / NS_PER_S:.3f}s", gap.reason,
            f"[{_STYLE.get(state, 'white')}]{state}[/]", str(tries), detail,
        )  # fmt: skip
    console.print(table)
