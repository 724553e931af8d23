"""``tickvault backfill`` end to end: a settings file pointing at the simulator, PostgreSQL as
the default target, the rate budget in Redis."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from connector_kit import assert_equals_truth, count, sim_config
from typer.testing import CliRunner

from tickvault.cli import _register, app
from tickvault.errors import UsageError
from tickvault.exchanges.sim import Simulator


@contextmanager
def sim_thread(sim: Simulator) -> Iterator[Simulator]:
    """The CLI runs its own event loop, so the simulator gets a thread and a loop of its own."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(sim.start(), loop).result(30)
    try:
        yield sim
    finally:
        asyncio.run_coroutine_threadsafe(sim.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)


def settings_file(tmp_path: Path, db_url: str, redis_url: str, sim: Simulator) -> Path:
    """A tickvault.toml with the storage URLs and the simulator as Binance."""
    config = tmp_path / "tickvault.toml"
    config.write_text(
        f'database_url = "{db_url}"\nredis_url = "{redis_url}"\n'
        f'data_dir = "{tmp_path / "data"}"\n\n[endpoints.binance]\n'
        f'rest_url = "{sim.endpoints["binance"].rest_url}"\n'
        f'ws_url = "{sim.endpoints["binance"].ws_url}"\n'
    )
    return config


def test_cli_backfill_into_postgres_from_config(
    tmp_path: Path, db_url: str, redis_url: str
) -> None:
    _register()
    sim = Simulator(sim_config(symbols=["BTC-USDT", "ETH-USDT"], exchanges=("binance",)))
    with sim_thread(sim):
        config = settings_file(tmp_path, db_url, redis_url, sim)
        args = [
            "backfill", "--config", str(config), "--exchange", "binance",
            "--symbols", "BTC-USDT,ETH-USDT", "--kinds", "candles:1m,trades",
            "--since", "2025-12-31T23:45", "--until", "2026-01-01",  # the history
        ]  # fmt: skip
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
        assert_equals_truth(sim, "binance", db_url)
        again = CliRunner().invoke(app, args)  # everything done: skipped, nothing fetched
    output = " ".join(result.output.split())
    assert "100.0%" in output and "rows written to" in output and "postgresql://" in output
    assert again.exit_code == 0 and "done before" in again.output
    assert count(db_url, "SELECT count(*) FROM instruments WHERE exchange = 'binance'") == 2


def test_cli_backfill_unknown_symbol_is_a_usage_error(
    tmp_path: Path, db_url: str, redis_url: str
) -> None:
    _register()
    sim = Simulator(sim_config(symbols=["BTC-USDT"], exchanges=("binance",)))
    with sim_thread(sim):
        config = settings_file(tmp_path, db_url, redis_url, sim)
        args = [
            "backfill", "--config", str(config), "--exchange", "binance",
            "--symbols", "BTC-USDT,DOGE-XYZ", "--kinds", "trades",
            "--since", "2025-12-31T23:45", "--until", "2026-01-01",
        ]  # fmt: skip
        result = CliRunner().invoke(app, args)
    # main() prints it as one line ("error: ...") and exits with the error's code
    assert isinstance(result.exception, UsageError) and result.exception.exit_code == 2
    assert str(result.exception) == "binance does not list DOGE-XYZ"
    assert count(db_url, "SELECT count(*) FROM trades") == 0  # nothing fetched for anyone
    assert count(db_url, "SELECT count(*) FROM ingest_checkpoints") == 0
