"""``tickvault init``, ``tickvault status`` and ``tickvault query ...``: the stored history."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import pyarrow as pa
import typer
from rich.console import Console
from rich.table import Table

from tickvault.cli import app
from tickvault.cli.common import ConfigOption, settings_from
from tickvault.errors import StorageError, UsageError
from tickvault.query import SCHEMA_VERSION, Vault, convert
from tickvault.storage.postgres.connection import redact
from tickvault.storage.postgres.schema import init_database
from tickvault.storage.urls import resolve_urls

console = Console(soft_wrap=True)
CandleChoice = Literal["auto", "exchange", "derived"]
query_app = typer.Typer(help="Read stored candles, trades, books and latest values.")
app.add_typer(query_app, name="query")

_SHOWN_ROWS = 60

Exchange = Annotated[str, typer.Option("--exchange", "-e", help="binance, coinbase or kraken.")]
Symbol = Annotated[str, typer.Option("--symbol", "-s", help="Canonical BASE-QUOTE, e.g. BTC-USDT.")]
Start = Annotated[str, typer.Option("--start", help="ISO-8601 date or time (UTC if naive).")]
End = Annotated[
    str | None, typer.Option("--end", help="ISO-8601 date or time, exclusive (default: now).")
]
Out = Annotated[
    Path | None, typer.Option("--out", "-o", help="Write to a .csv or .parquet file instead.")
]


@app.command("init")
def init(config: ConfigOption = None) -> None:
    """Create or upgrade the database schema (safe to run again)."""
    settings = settings_from(config)
    url = resolve_urls(settings, need_redis=False).database_url
    result = init_database(url, settings.timescale)
    mode = "TimescaleDB" if result.timescaledb else "PostgreSQL (native partitioning)"
    done = f"applied {', '.join(map(str, result.applied))}" if result.applied else "already current"
    console.print(f"schema version {result.version} ({done}) on {redact(url)}: {mode}")
    if result.note:
        console.print(f"note: {result.note}")


@app.command("status")
def status(config: ConfigOption = None) -> None:
    """What storage is connected, its mode and schema, and what each table holds."""
    with _vault(config) as vault:
        st = vault.status()
    where = "embedded" if st.embedded else "configured"
    console.print(f"PostgreSQL {st.server_version} at {st.url} ({where})")
    available = "installed" if st.timescaledb_available else "not installed"
    console.print(f"TimescaleDB: {'on' if st.timescaledb else 'off'} ({available} on the server)")
    if st.schema_version is None:
        console.print("schema: none — run `tickvault init`")
        return
    note = ""
    if st.schema_version < SCHEMA_VERSION:
        note = f" (this tickvault needs {SCHEMA_VERSION}: run `tickvault init`)"
    elif st.schema_version > SCHEMA_VERSION:
        note = f" (newer than this tickvault's {SCHEMA_VERSION}: upgrade tickvault)"
    console.print(f"schema version: {st.schema_version}{note}")
    table = Table("table", "rows", "newest")
    for t in st.tables:
        rows = f"~{t.rows:,}" if t.estimated else f"{t.rows:,}"
        table.add_row(t.table, rows, t.newest.isoformat() if t.newest else "-")
    console.print(table)


@query_app.command("candles")
def query_candles(
    exchange: Exchange,
    symbol: Symbol,
    start: Start,
    timeframe: Annotated[str, typer.Option("--timeframe", "-t", help="1m, 1h, 1d, ...")] = "1m",
    end: End = None,
    source: Annotated[
        CandleChoice, typer.Option(help="auto (exchange, else derived), exchange or derived.")
    ] = "auto",
    out: Out = None,
    config: ConfigOption = None,
) -> None:
    """Candles opening in [start, end): exchange bars, else derived ones."""
    with _vault(config) as vault:
        data = vault.candles(
            exchange, symbol, timeframe, start, _end(end), source=source, format="arrow"
        )  # type: ignore[arg-type]
    _emit(data, out, f"{exchange} {symbol} {timeframe} candles")


@query_app.command("trades")
def query_trades(
    exchange: Exchange,
    symbol: Symbol,
    start: Start,
    end: End = None,
    out: Out = None,
    config: ConfigOption = None,
) -> None:
    """Trades in [start, end)."""
    with _vault(config) as vault:
        data = vault.trades(exchange, symbol, start, _end(end), format="arrow")
    _emit(data, out, f"{exchange} {symbol} trades")


@query_app.command("book")
def query_book(
    exchange: Exchange,
    symbol: Symbol,
    at: Annotated[str | None, typer.Option("--at", help="Time of the book (default: now).")] = None,
    out: Out = None,
    config: ConfigOption = None,
) -> None:
    """The latest book snapshot at or before --at."""
    with _vault(config) as vault:
        data = vault.book(exchange, symbol, _end(at), format="arrow")
    _emit(data, out, f"{exchange} {symbol} book")


@query_app.command("latest")
def query_latest(
    exchange: Exchange,
    symbol: Symbol,
    timeframe: Annotated[
        str | None, typer.Option("--timeframe", "-t", help="Show the latest N bars of it.")
    ] = None,
    limit: Annotated[int, typer.Option(help="Bars shown with --timeframe.")] = 20,
    out: Out = None,
    config: ConfigOption = None,
) -> None:
    """Newest trade, ticker, book top and 1m bar; or the latest --limit bars of --timeframe."""
    with _vault(config) as vault:
        if timeframe is None:
            data = vault.latest(exchange, symbol, format="arrow")
        else:
            data = vault.latest_candles(exchange, symbol, timeframe, limit, format="arrow")
    _emit(data, out, f"{exchange} {symbol} latest")


def _vault(config: Path | None) -> Vault:
    return Vault.connect(settings_from(config))


def _end(value: str | None) -> str | datetime:
    return datetime.now(UTC) if value is None else value


def _emit(table: pa.Table, out: Path | None, title: str) -> None:
    if out is not None:
        _write(table, out)
        console.print(f"wrote {table.num_rows} rows to {out}")
        return
    if table.num_rows == 0:
        console.print(f"{title}: no rows")
        return
    view = Table(*table.column_names, title=title)
    for row in table.slice(0, _SHOWN_ROWS).to_pylist():
        view.add_row(*(_cell(v) for v in row.values()))
    console.print(view)
    if table.num_rows > _SHOWN_ROWS:
        console.print(f"... {table.num_rows - _SHOWN_ROWS} more rows (use --out to get them all)")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _write(table: pa.Table, out: Path) -> None:
    suffix = out.suffix.lower()
    try:
        if suffix == ".csv":
            convert(table, "polars").write_csv(out)
        elif suffix == ".parquet":
            import pyarrow.parquet as pq

            pq.write_table(table, out)
        else:
            raise UsageError(f"--out must end in .csv or .parquet, got {out.name!r}")
    except OSError as exc:
        raise StorageError(f"cannot write {out}: {exc.strerror or exc}") from None
