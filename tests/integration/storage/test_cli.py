"""``tickvault init | status | query``: happy paths in-process, error paths as the user sees them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import polars as pl
import psycopg
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from tickvault.cli import _register, app, main
from tickvault.errors import SchemaError
from tickvault.storage.embedded import free_port
from tickvault.storage.postgres import PostgresStore

from .helpers import make_trades

_register()
runner = CliRunner()


def env(url: str, tmp_path: Path) -> dict[str, str]:
    return {"TICKVAULT_DATABASE_URL": url, "TICKVAULT_DATA_DIR": str(tmp_path), "COLUMNS": "200"}


def run_main(args: list[str], url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
             capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:  # fmt: skip
    """The real entry point (error handling included), in-process: (exit code, stderr)."""
    for key, value in env(url, tmp_path).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(sys, "argv", ["tickvault", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    return int(exit_info.value.code or 0), capsys.readouterr().err


def test_init_status_and_queries(database_url: str, tmp_path: Path) -> None:
    e = env(database_url, tmp_path)
    first = runner.invoke(app, ["init"], env=e)
    assert first.exit_code == 0, first.output
    assert (
        "schema version 3 (applied 1, 2, 3)" in first.output
        and "native partitioning" in first.output
    )
    again = runner.invoke(app, ["init"], env=e)
    assert "already current" in again.output

    async def load() -> None:
        async with await PostgresStore.open(database_url, timed_flush=False) as store:
            await store.write(make_trades(120))
            await store.flush()
            await store.refresh_derived_candles("1m", 0, 2**62)

    import asyncio

    asyncio.run(load())
    status = runner.invoke(app, ["status"], env=e)
    assert status.exit_code == 0, status.output
    assert "TimescaleDB: off" in status.output and "schema version: 3" in status.output
    assert "│ trades             │ 120  │ 2024-01-01T00:01:59+00:00" in status.output

    base = ["query", "candles", "-e", "binance", "-s", "BTC-USDT", "--start", "2024-01-01",
            "--end", "2024-01-02"]  # fmt: skip
    shown = runner.invoke(app, base, env=e)
    assert shown.exit_code == 0, shown.output
    assert "derived" in shown.output and "2024-01-01T00:01:00+00:00" in shown.output
    csv = tmp_path / "c.csv"
    assert runner.invoke(app, [*base, "--out", str(csv)], env=e).exit_code == 0
    frame = pl.read_csv(csv)
    assert frame.height == 2 and frame["trade_count"].to_list() == [60, 60]
    parquet = tmp_path / "t.parquet"
    trades = ["query", "trades", "-e", "binance", "-s", "BTC-USDT", "--start", "2024-01-01"]
    done = runner.invoke(app, [*trades, "--out", str(parquet)], env=e)
    assert "wrote 120 rows" in done.output
    assert pq.read_table(parquet).column("price").to_pylist()[0] == make_trades(1)[0].price
    latest = runner.invoke(app, ["query", "latest", "-e", "binance", "-s", "BTC-USDT"], env=e)
    assert "trade" in latest.output and "candle 1m" in latest.output
    book = runner.invoke(app, ["query", "book", "-e", "binance", "-s", "BTC-USDT"], env=e)
    assert "no rows" in book.output


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["query", "trades", "-e", "binance", "-s", "BTC-USDT", "--start", "2024-02-01",
          "--end", "2024-01-01"], 2, "empty time range"),
        (["query", "trades", "-e", "binance", "-s", "BTC-USDT", "--start", "01/02/2024"], 2,
         "not an ISO-8601"),
        (["query", "candles", "-e", "ftx", "-s", "BTC-USDT", "--start", "2024-01-01"], 2,
         "unknown exchange 'ftx'"),
        (["query", "candles", "-e", "binance", "-s", "BTC-USDT", "-t", "2m", "--start",
          "2024-01-01"], 2, "unknown timeframe '2m'"),
        (["query", "trades", "-e", "binance", "-s", "BTC-USDT", "--start", "2024-01-01"], 3,
         "no tickvault schema; run `tickvault init`"),
        (["query", "trades", "-e", "binance", "-s", "BTCUSDT", "--start", "2024-01-01"], 2,
         "not canonical"),
        (["backfill", "-e", "ftx", "-s", "BTC-USDT", "--since", "2024-01-01"], 2,
         "unknown exchange 'ftx'"),
        (["backfill", "-e", "binance", "-s", "BTC-USDT", "--since", "last tuesday"], 2,
         "--since: 'last tuesday' is not a date"),
        (["backfill", "-e", "binance", "-s", "BTC-USDT", "--since", "2024-02-01", "--until",
          "2024-01-01"], 2, "--until must be later than --since"),
        (["status"], 0, ""),
    ],
)  # fmt: skip
def test_errors_are_one_line(
    args: list[str], code: int, message: str, database_url: str, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    exit_code, err = run_main(args, database_url, tmp_path, monkeypatch, capsys)
    assert exit_code == code
    if message:
        assert err.startswith("error: ") and message in err
        assert err.count("\n") == 1 and "Traceback" not in err


def test_bad_out_file_and_unreachable_database(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["query", "trades", "-e", "binance", "-s", "BTC-USDT", "--start", "2024-01-01"]
    code, err = run_main(
        [*args, "--out", str(tmp_path / "x.xlsx")], db_url, tmp_path, monkeypatch, capsys
    )
    assert code == 2 and "--out must end in .csv or .parquet" in err
    # the installed entry point, in a fresh process, against a port nobody listens on
    dead = f"postgresql://postgres:secret@127.0.0.1:{free_port()}/postgres"
    proc = subprocess.run(
        [sys.executable, "-c", "from tickvault.cli import main; main()", "status"],
        env={**env(dead, tmp_path), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 3
    assert proc.stderr.startswith(
        "error: cannot connect to PostgreSQL at postgresql://postgres:***@"
    )
    assert proc.stderr.count("\n") == 1 and "secret" not in proc.stderr


def _set_schema_version(url: str, version: int) -> None:
    with psycopg.connect(url) as conn:
        conn.execute("DELETE FROM tv_schema_version WHERE version > %s", (version,))
        conn.execute(
            "INSERT INTO tv_schema_version (version, name) VALUES (%s, 'test') "
            "ON CONFLICT DO NOTHING",
            (version,),
        )


def test_wrong_schema_version_is_one_line_naming_the_fix(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    query = ["query", "trades", "-e", "binance", "-s", "BTC-USDT", "--start", "2024-01-01"]
    _set_schema_version(db_url, 1)  # an older tickvault's schema
    code, err = run_main(query, db_url, tmp_path, monkeypatch, capsys)
    assert code == 3 and err.count("\n") == 1 and "Traceback" not in err
    assert "has schema version 1, this tickvault needs 3; run `tickvault init`" in err
    code, _ = run_main(["status"], db_url, tmp_path, monkeypatch, capsys)
    assert code == 0  # status still reports what is there, with the fix
    status = runner.invoke(app, ["status"], env=env(db_url, tmp_path))
    assert "schema version: 1 (this tickvault needs 3: run `tickvault init`)" in status.output

    _set_schema_version(db_url, 99)  # written by a newer tickvault
    for args in (query, ["init"]):
        code, err = run_main(args, db_url, tmp_path, monkeypatch, capsys)
        assert code == 3 and err.count("\n") == 1, err
        assert "has schema version 99, newer than this tickvault's 3; upgrade tickvault" in err

    async def open_store() -> None:
        await PostgresStore.open(db_url, timed_flush=False)

    import asyncio

    with pytest.raises(SchemaError, match="newer than this tickvault's 3; upgrade tickvault"):
        asyncio.run(open_store())


def test_timescale_on_without_a_usable_extension(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    # The suite's server never preloads TimescaleDB: installed or not, mode "on" cannot work.
    monkeypatch.setenv("TICKVAULT_TIMESCALE__MODE", "on")
    code, err = run_main(["init"], database_url, tmp_path, monkeypatch, capsys)
    assert code == 3 and err.startswith("error: ") and err.count("\n") == 1
    assert "TimescaleDB" in err or "timescaledb" in err
    assert 'set timescale.mode = "auto"' in err and "Traceback" not in err
    with psycopg.connect(database_url) as conn:
        tables = conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
        assert tables.fetchone() == (0,)  # nothing half-created
