"""``tickvault replay FILE...``: reprocess raw captures through the live decoders and books."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import msgspec
import psycopg
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from tickvault.cli import app
from tickvault.cli.common import ConfigOption, settings_from
from tickvault.errors import StorageError, UsageError
from tickvault.exchanges.replay import InstrumentSource, JsonlEventWriter, Replay, ReplayStats
from tickvault.model import Instrument

console = Console()
err_console = Console(stderr=True)

_INSTRUMENTS_SQL = (
    "SELECT exchange_symbol, symbol, base, quote, tick_size, lot_size, status, ws_symbol, "
    "aliases FROM instruments WHERE exchange = %s ORDER BY symbol"
)


def postgres_instruments(database_url: str) -> InstrumentSource:
    """Stored instruments from the ``instruments`` table; a database without the table holds
    none. Connects only when asked, i.e. when a capture lacks an exchange's instrument list."""

    def load(exchange: str) -> Sequence[Instrument]:
        try:
            with psycopg.connect(database_url, connect_timeout=10) as conn:
                rows = conn.execute(_INSTRUMENTS_SQL, (exchange,)).fetchall()
        except psycopg.errors.UndefinedTable:
            return []
        except psycopg.Error as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise StorageError(f"cannot read the stored {exchange} instruments: {first}") from None
        return [
            Instrument(
                exchange, exchange_id, symbol, base, quote, tick, lot, status, ws, tuple(aka)
            )
            for exchange_id, symbol, base, quote, tick, lot, status, ws, aka in rows
        ]

    return load


def stats_table(stats: ReplayStats) -> Table:
    """Rows are measures, columns the exchanges (and the total when there are several)."""
    names = sorted(stats.exchanges)
    table = Table(title="replay", title_justify="left")
    table.add_column("measure")
    for name in names:
        table.add_column(name, justify="right")
    several = len(names) > 1
    if several:
        table.add_column("total", justify="right")

    def row(label: str, values: list[int | str], total: int | str | None = None) -> None:
        cells = [str(v) for v in values]
        if several:
            cells.append("" if total is None else str(total))
        table.add_row(label, *cells)

    per = [stats.exchanges[n] for n in names]
    row("instruments", [f"{s.instruments} ({s.instruments_from or '-'})" for s in per])
    row("messages", [s.messages for s in per], stats.messages)
    row("REST book snapshots", [s.snapshot_records for s in per])
    row("reconnects", [s.reconnects for s in per])
    for kind, total in stats.events_by_type.items():
        row(f"events: {kind}", [s.events_by_type.get(kind, 0) for s in per], total)
    row("decode errors", [s.decode_errors for s in per], stats.decode_errors)
    for reason, total in stats.errors_by_reason.items():
        row(f"  {reason}", [s.errors_by_reason.get(reason, 0) for s in per], total)
    row("sequence gaps", [s.sequence_gaps for s in per], stats.sequence_gaps)
    row("checksum failures", [s.checksum_failures for s in per], stats.checksum_failures)
    row("crossed books", [s.crossed_books for s in per], sum(s.crossed_books for s in per))
    row("resyncs", [s.resyncs for s in per], sum(s.resyncs for s in per))
    return table


@app.command("replay")
def replay(
    files: Annotated[list[Path], typer.Argument(help="Capture files (.jsonl, .jsonl.gz, .zst).")],
    out: Annotated[
        Path | None, typer.Option("--out", help="Write the normalized events as JSON lines.")
    ] = None,
    books_out: Annotated[
        Path | None, typer.Option("--books-out", help="Write every symbol's final L2 book.")
    ] = None,
    depth: Annotated[int, typer.Option("--depth", help="Book depth of the feeds.")] = 10,
    config: ConfigOption = None,
) -> None:
    """Replay captures through the live decoders and book builders; print the stats."""
    if depth < 1:
        raise UsageError("--depth must be at least 1")
    settings = settings_from(config)
    source = postgres_instruments(settings.database_url) if settings.database_url else None
    handle = open(out, "wb") if out is not None else None  # noqa: SIM115 - closed below
    writer = JsonlEventWriter(handle) if handle is not None else None
    engine = Replay(
        book_depth=depth,
        instrument_source=source,
        event_sink=writer,
        on_warning=lambda text: err_console.print(f"warning: {escape(text)}", highlight=False),
    )
    try:
        stats = engine.run(files)
        if writer is not None:
            writer.flush()
    finally:
        if handle is not None:
            handle.close()
    if books_out is not None:
        books_out.write_bytes(msgspec.json.encode(engine.books()) + b"\n")
    console.print(stats_table(stats))
    bad = f"{stats.malformed_lines} malformed, {stats.truncated_lines} truncated"
    console.print(
        f"{stats.lines} capture lines in {stats.files} files ({bad}); "
        f"{stats.messages} messages in {stats.elapsed_s:.3f} s = "
        f"{stats.messages_per_s:,.0f} messages/s",
        highlight=False,
    )
    if writer is not None:
        console.print(f"{writer.written} events written to {out}", highlight=False)
    sys.stdout.flush()
