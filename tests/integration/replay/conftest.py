"""Helpers for the replay tests: the CLI, fixture paths, stored instruments in PostgreSQL."""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import msgspec
import psycopg
import pytest

from tickvault import cli
from tickvault.exchanges.capture import read_capture
from tickvault.exchanges.kraken.adapter import ADAPTER as KRAKEN
from tickvault.model import Instrument

FIXTURES = Path(__file__).parents[2] / "fixtures"
BINANCE_RECORDING = FIXTURES / "binance" / "recording_2021-10-12.jsonl.gz"


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str


@pytest.fixture
def run_cli(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> Iterator[object]:
    """Runs ``tickvault`` in-process through its real entry point (error handling included),
    from an empty folder and without a configured database unless ``database_url`` is given."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TICKVAULT_CONFIG", raising=False)
    monkeypatch.delenv("TICKVAULT_DATABASE_URL", raising=False)

    def run(args: Sequence[str | Path], database_url: str | None = None) -> CliResult:
        if database_url is not None:
            monkeypatch.setenv("TICKVAULT_DATABASE_URL", database_url)
        monkeypatch.setenv("COLUMNS", "200")  # rich: one table row per line
        monkeypatch.setattr(sys, "argv", ["tickvault", *map(str, args)])
        code = 0
        try:
            cli.main()
        except SystemExit as exc:
            code = int(exc.code or 0)
        captured = capsys.readouterr()
        monkeypatch.delenv("TICKVAULT_DATABASE_URL", raising=False)
        return CliResult(code, captured.out, captured.err)

    yield run


def events_by_type(path: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    for line in path.read_bytes().splitlines():
        kind = msgspec.json.decode(line)["type"]
        counts[kind] = counts.get(kind, 0) + 1
    return dict(sorted(counts.items()))


def table_row(stdout: str, label: str) -> list[str]:
    """The cells of the stats table's row ``label`` (box characters removed)."""
    for line in stdout.splitlines():
        cells = [c.strip() for c in line.strip("│ ").split("│")]
        if cells and cells[0] == label:
            return cells[1:]
    raise AssertionError(f"no row {label!r} in:\n{stdout}")


def _kraken_extra(base: str, quote: str, price_decimals: int, key: str | None = None) -> Instrument:
    """Markets of the Kraken WebSocket fixtures that the AssetPairs fixture does not list; the
    precisions are those their recorded messages carry (as in tests/unit/kraken)."""
    return Instrument(
        "kraken", key or f"{base}{quote}", f"{base}-{quote}", base, quote,
        Decimal(1).scaleb(-price_decimals), Decimal("0.00000001"),
        ws_symbol=f"{base}/{quote}", aliases=(f"{base}{quote}",),
    )  # fmt: skip


def kraken_instruments() -> list[Instrument]:
    listed = [
        instrument
        for record in read_capture(FIXTURES / "kraken" / "rest_asset_pairs.jsonl")
        for instrument in KRAKEN.parse_instruments(record.raw)
    ]
    return [
        *listed,
        _kraken_extra("ALGO", "USD", 5),
        _kraken_extra("MATIC", "USD", 4),
        _kraken_extra("XMR", "USD", 8, "XXMRZUSD"),
        _kraken_extra("WAVES", "EUR", 6),
        _kraken_extra("SC", "EUR", 6),
        _kraken_extra("ETH", "USD", 5, "XETHZUSD"),
    ]


# The storage schema's instruments table (tickvault.storage.postgres), as the replay reads it.
INSTRUMENTS_DDL = """
CREATE TABLE instruments (
    exchange text NOT NULL, symbol text NOT NULL, exchange_symbol text NOT NULL,
    base text NOT NULL, quote text NOT NULL, tick_size numeric, lot_size numeric,
    status text NOT NULL, ws_symbol text, aliases text[] NOT NULL DEFAULT '{}',
    updated_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (exchange, symbol))
"""


def store_instruments(database_url: str, instruments: Sequence[Instrument]) -> None:
    with psycopg.connect(database_url) as conn:
        conn.execute(INSTRUMENTS_DDL)
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO instruments (exchange, symbol, exchange_symbol, base, quote, "
                "tick_size, lot_size, status, ws_symbol, aliases) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                [
                    (i.exchange, i.symbol, i.exchange_symbol, i.base, i.quote, i.tick_size,
                     i.lot_size, i.status, i.ws_symbol, list(i.aliases))
                    for i in instruments
                ],
            )  # fmt: skip
