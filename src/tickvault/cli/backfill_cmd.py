"""``tickvault backfill``: page through an exchange's REST history into storage, resumably.

Default: events, instruments, quarantine and checkpoints go to PostgreSQL (the configured
``database_url``, else the embedded server), the rate budget lives in Redis (same rule). With
``--out FILE.jsonl`` events go to the file instead and checkpoints to Redis: no PostgreSQL
needed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from tickvault.cli import app
from tickvault.cli.common import ConfigOption, settings_from
from tickvault.config import Settings
from tickvault.errors import UsageError
from tickvault.exchanges.base import ExchangeAdapter, get_adapter
from tickvault.exchanges.capture import CaptureWriter
from tickvault.exchanges.io.backfill import Backfiller, TaskProgress, validate_kind
from tickvault.exchanges.io.instruments import fetch_instruments
from tickvault.exchanges.io.policy import rest_policy
from tickvault.exchanges.io.ratelimit import RedisBudget
from tickvault.exchanges.io.rest import RestClient
from tickvault.exchanges.io.sinks import CheckpointStore, ErrorSink, EventSink, InstrumentStore
from tickvault.exchanges.io.storage import StoreSink
from tickvault.exchanges.io.stores import JsonlSink, RedisCheckpoints
from tickvault.storage.urls import resolve_urls

console = Console()


def parse_time_ns(text: str, option: str) -> int:
    """``2024-01-01``, ``2024-01-01T12:00``, ``2024-01-01T12:00:00+02:00``; UTC unless given."""
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"{option}: {text!r} is not a date or ISO-8601 time") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp()) * 1_000_000_000 + when.microsecond * 1000


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


class _RowsColumn(ProgressColumn):
    """Rows written and rows per second (wall clock)."""

    def render(self, task: Task) -> Text:
        rows = int(task.fields.get("rows", 0))
        elapsed_s = task.elapsed or 0.0
        rate = rows / elapsed_s if elapsed_s > 0 else 0.0
        return Text(f"{rows:>9,} rows {rate:>8,.0f}/s")


def _redis_url(settings: Settings) -> str:
    if settings.redis_url:
        return settings.redis_url
    from tickvault.storage.embedded import ensure_embedded

    return ensure_embedded(settings.data_dir, postgres=False, redis=True)["redis_url"]


class _Target:
    """Where one run writes: events, decode errors, checkpoints, instruments."""

    def __init__(
        self,
        events: EventSink,
        errors: ErrorSink,
        checkpoints: CheckpointStore,
        instruments: InstrumentStore | None,
        redis_url: str,
        where: str,
    ) -> None:
        self.events, self.errors, self.checkpoints = events, errors, checkpoints
        self.instruments, self.redis_url, self.where = instruments, redis_url, where


@contextlib.asynccontextmanager
async def _target(settings: Settings, out: Path | None) -> AsyncIterator[_Target]:
    if out is not None:
        redis_url = _redis_url(settings)
        sink, checkpoints = (
            JsonlSink(out),
            RedisCheckpoints(redis_url, key_prefix=_prefix(settings)),
        )
        try:
            yield _Target(sink, sink, checkpoints, None, redis_url, str(out))
        finally:
            sink.close()
            await checkpoints.aclose()
        return
    from tickvault.storage.postgres import PostgresStore
    from tickvault.storage.postgres.connection import redact

    urls = resolve_urls(settings)
    store = await PostgresStore.open(urls.database_url, settings.writer, settings.timescale)
    async with store:
        target = StoreSink(store)
        yield _Target(target, target, target, target, urls.redis_url, redact(urls.database_url))


def _prefix(settings: Settings) -> str:
    return settings.cache.key_prefix


@app.command("backfill")
def backfill(
    exchange: Annotated[str, typer.Option("--exchange", "-e", help="binance, coinbase, kraken")],
    symbols: Annotated[str, typer.Option("--symbols", "-s", help="BTC-USDT,ETH-USDT")],
    since: Annotated[str, typer.Option(help="start, e.g. 2024-01-01 (UTC unless given)")],
    kinds: Annotated[str, typer.Option(help="trades and/or candles:<tf>")] = "candles:1m",
    until: Annotated[str | None, typer.Option(help="end (exclusive); default now")] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="write events as JSON lines to this file instead of PostgreSQL"),
    ] = None,
    fresh: Annotated[bool, typer.Option(help="ignore saved checkpoints")] = False,
    capture: Annotated[
        Path | None, typer.Option(help="also keep every raw response in this folder")
    ] = None,
    rest_url: Annotated[str | None, typer.Option(help="override the exchange's REST URL")] = None,
    concurrency: Annotated[int, typer.Option(min=1, help="streams fetched at once")] = 2,
    config: ConfigOption = None,
) -> None:
    """Fetch history page by page; a checkpoint after every page makes an interrupted run
    resume where it stopped. Requests stay within the exchange's rate limit, shared by every
    tickvault process on this host (through Redis)."""
    settings = settings_from(config)
    since_ns = parse_time_ns(since, "--since")
    until_ns = parse_time_ns(until, "--until") if until else time.time_ns()
    if until_ns <= since_ns:
        raise UsageError("--until must be later than --since")
    kind_list = [validate_kind(k) for k in _split(kinds)]
    symbol_list = _split(symbols)
    if not symbol_list or not kind_list:
        raise UsageError("give at least one symbol and one kind")
    adapter = get_adapter(exchange)
    endpoints = settings.endpoints.get(exchange)
    base_url = rest_url or (endpoints.rest_url if endpoints else None)
    if base_url is None:
        raise UsageError(f"no REST URL configured for {exchange}; pass --rest-url")
    asyncio.run(
        _run(settings, adapter, base_url, symbol_list, kind_list, since_ns, until_ns, out, fresh,
             capture, concurrency)
    )  # fmt: skip


async def _run(
    settings: Settings,
    adapter: ExchangeAdapter,
    base_url: str,
    symbols: list[str],
    kinds: list[str],
    since_ns: int,
    until_ns: int,
    out: Path | None,
    fresh: bool,
    capture_dir: Path | None,
    concurrency: int,
) -> None:
    exchange = adapter.name
    policy = rest_policy(exchange)
    capture = CaptureWriter(capture_dir, prefix=exchange) if capture_dir else None
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>5.1f}%"),
        _RowsColumn(),
        TimeRemainingColumn(),
    )
    async with _target(settings, out) as target:
        budget = RedisBudget(
            target.redis_url, exchange, policy.budget, policy.window_s, key_prefix=_prefix(settings)
        )
        try:
            with Progress(*columns, console=console) as bar:
                tasks: dict[tuple[str, str], TaskID] = {}

                def report(p: TaskProgress) -> None:
                    key = (p.symbol, p.kind)
                    span_s = max(1e-9, (p.until_ns - p.since_ns) / 1e9)
                    if key not in tasks:
                        tasks[key] = bar.add_task(f"{p.symbol} {p.kind}", total=span_s, rows=0)
                    state = " (done before)" if p.skipped else ""
                    bar.update(
                        tasks[key],
                        completed=p.fraction * span_s,
                        rows=p.rows,
                        description=f"{p.symbol} {p.kind}{state}",
                    )

                async with RestClient(exchange, base_url, budget, policy, capture=capture) as rest:
                    instruments = await fetch_instruments(
                        adapter, rest, symbols, target.instruments
                    )
                    runner = Backfiller(
                        adapter,
                        rest,
                        target.events,
                        target.checkpoints,
                        errors=target.errors,
                        concurrency=concurrency,
                        progress=report,
                        fresh=fresh,
                    )
                    results = await runner.run(instruments, kinds, since_ns, until_ns)
                    counters = rest.counters
            total = sum(r.rows for r in results)
            console.print(
                f"{exchange}: {total:,} rows written to {target.where}; "
                f"{counters.rest_requests:,} requests, {counters.rate_limited} rate-limited, "
                f"{counters.bans} bans, {counters.budget_wait_s:.1f} s waiting for the budget"
            )
        finally:
            if capture is not None:
                capture.close()
            await budget.close()
