"""Gap repair against the simulator's REST history: a sequence gap in the live feed is recorded
and refetched by the runner; a hole in stored candles is found, listed and fixed through
``tickvault gaps``. Real PostgreSQL, Redis and loopback sockets."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
from e2e_kit import SYMBOL, run_pipeline, stored_trades, trades_in, truth_rows
from typer.testing import CliRunner

from tickvault.cli import _register, app
from tickvault.config import RepairSettings, Settings
from tickvault.errors import UsageError
from tickvault.exchanges.base import get_adapter
from tickvault.exchanges.io import LocalBudget, RestClient, rest_policy
from tickvault.exchanges.io.backfill import Backfiller
from tickvault.exchanges.io.instruments import fetch_instruments
from tickvault.exchanges.io.storage import StoreSink
from tickvault.exchanges.sim import Fault, SimConfig, Simulator
from tickvault.model import NS_PER_S, Gap
from tickvault.runner.app import Runner
from tickvault.runner.gapscan import GapScanner
from tickvault.storage.postgres import PostgresStore
from tickvault.storage.postgres.schema import init_database

pytestmark = [pytest.mark.postgres, pytest.mark.redis]
MINUTE_NS = 60 * NS_PER_S


async def test_sequence_gap_is_recorded_and_repaired_from_rest(
    database_url: str, redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Short rounds for the test; production waits 30 s between them.
    monkeypatch.setenv("TICKVAULT_REPAIR__INTERVAL_S", "0.3")
    monkeypatch.setenv("TICKVAULT_REPAIR__SETTLE_S", "0.3")

    async def drop_trades(sim: Simulator, runner: Runner) -> None:
        sim.inject(Fault("coinbase", "drop_messages", count=5, channel="market_trades"))
        await asyncio.sleep(0.5)
        assert trades_in(runner, "coinbase") > 0

        def repaired() -> bool:
            with psycopg.connect(database_url) as conn:
                rows = conn.execute(
                    "SELECT status FROM gaps WHERE channel = 'trades' AND reason = 'sequence_gap'"
                ).fetchall()
            return bool(rows) and all(r[0] == "repaired" for r in rows)

        await _wait(repaired, 20, "the trades gap to be repaired")

    run = await run_pipeline("coinbase", database_url, redis_url, tmp_path, during=drop_trades)
    with psycopg.connect(database_url) as conn:
        stored = stored_trades(conn, "coinbase")
        gaps = conn.execute(
            "SELECT channel, status, detail, attempt_count FROM gaps WHERE reason = 'sequence_gap'"
        ).fetchall()
    ids = [row[0] for row in stored]
    assert len(ids) == len(set(ids)), "a duplicate reached storage"
    # Every true trade between the first and the last stored one is stored, exactly as sent:
    # the five dropped messages came back from REST.
    assert stored == truth_rows(run, stored[0][4], stored[-1][4])
    trade_gaps = [g for g in gaps if g[0] == "trades"]
    assert trade_gaps and all(g[1] == "repaired" and "rows from REST" in g[2] for g in trade_gaps)
    # Books have no REST history: marked unrepairable with the reason, never retried.
    assert {g[1] for g in gaps if g[0] == "book"} <= {"unrepairable", "open"}


# -- tickvault gaps (CLI) and the candle-hole scan ------------------------------------------


@pytest.fixture
def sim_thread() -> Iterator[Simulator]:
    """A simulator on its own event loop (the CLI runs ``asyncio.run`` in this thread)."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    sim = Simulator(SimConfig(symbols=[SYMBOL], exchanges=("binance",), rate=0, history_s=360))
    asyncio.run_coroutine_threadsafe(sim.__aenter__(), loop).result(30)
    try:
        yield sim
    finally:
        asyncio.run_coroutine_threadsafe(sim.__aexit__(None, None, None), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


async def _wait(condition: Any, timeout_s: float, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not await asyncio.to_thread(condition):
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.2)


async def _store_history_with_hole(url: str, rest_url: str, hole: tuple[int, int]) -> None:
    """History before and after ``hole`` through the real backfill, then derived 1m bars."""
    adapter = get_adapter("binance")
    policy = rest_policy("binance")
    async with (
        await PostgresStore.open(url) as store,
        RestClient(
            "binance", rest_url, LocalBudget("binance", policy.budget, policy.window_s), policy
        ) as rest,
    ):
        instruments = await fetch_instruments(adapter, rest, [SYMBOL])
        sink = StoreSink(store)
        start_ns, end_ns = hole[0] - 3 * MINUTE_NS, hole[1] + 2 * MINUTE_NS
        for since_ns, until_ns in ((start_ns, hole[0]), (hole[1], end_ns)):
            backfiller = Backfiller(adapter, rest, sink, sink, fresh=True)
            await backfiller.run(instruments, ["trades"], since_ns, until_ns)
        await store.refresh_derived_candles("1m", start_ns, end_ns, "binance", SYMBOL)


def test_candle_hole_found_listed_and_fixed_by_the_cli(
    sim_thread: Simulator, database_url: str, redis_url: str, tmp_path: Path
) -> None:
    sim = sim_thread
    endpoints = sim.endpoints["binance"]
    anchor_ns = sim.anchor_us * 1000  # end of the REST history (a whole minute)
    hole = (anchor_ns - 3 * MINUTE_NS, anchor_ns - 2 * MINUTE_NS)  # one whole 1m bar
    init_database(database_url, Settings(database_url=database_url).timescale)
    asyncio.run(_store_history_with_hole(database_url, endpoints.rest_url, hole))

    settings = Settings(database_url=database_url, timeframes=["1m"], repair=RepairSettings())

    async def scan() -> list[Gap]:
        async with await PostgresStore.open(database_url) as store:
            scanner = GapScanner(store, settings, [("binance", SYMBOL, ["trades"])], 0)
            found = await scanner.scan(anchor_ns + MINUTE_NS)
            await store.record_gaps(  # a book gap and one on a symbol the exchange lacks
                [Gap("binance", SYMBOL, "book", hole[0], hole[1], "sequence_gap"),
                 Gap("binance", "DOGE-USDT", "trades", hole[0], hole[1], "disconnect")]
            )  # fmt: skip
            return found

    found = asyncio.run(scan())
    assert [(g.channel, g.from_ns, g.to_ns, g.reason) for g in found] == [
        ("trades", hole[0], hole[1], "missing_candle")
    ]
    config = tmp_path / "tickvault.toml"
    config.write_text(
        f'database_url = "{database_url}"\nredis_url = "{redis_url}"\n'
        f'data_dir = "{tmp_path}"\ntimeframes = ["1m"]\n'
        f'[endpoints.binance]\nrest_url = "{endpoints.rest_url}"\nws_url = "{endpoints.ws_url}"\n'
    )
    _register()
    cli = CliRunner()

    def gaps(*args: str) -> Any:
        return cli.invoke(app, ["gaps", "--config", str(config), *args], env={"COLUMNS": "220"})

    listed = gaps()
    assert listed.exit_code == 0, listed.output
    assert "missing_candle" in listed.output and listed.output.count("open") == 3

    fixed = gaps("--fix")
    # The unknown symbol fails (exit 1, reason shown); the others are done.
    assert fixed.exit_code == 1, fixed.output
    assert "repaired 1, failed 1, of 3 gaps" in fixed.output
    assert "does not list DOGE-USDT" in fixed.output and "unrepairable" in fixed.output

    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT symbol, channel, status, attempt_count FROM gaps ORDER BY id"
        ).fetchall()
        assert rows == [
            (SYMBOL, "trades", "repaired", 0),
            (SYMBOL, "book", "unrepairable", 0),
            ("DOGE-USDT", "trades", "failed", 1),
        ]
        # The hole is filled: stored trades equal the truth around it, row by row.
        stored = stored_trades(conn, "binance")
        bar = conn.execute(
            "SELECT trade_count FROM candles WHERE exchange = 'binance' AND timeframe = '1m'"
            " AND source = 'derived' AND ts = to_timestamp(%s)",
            (hole[0] // NS_PER_S,),
        ).fetchone()
    market = sim.market("binance", SYMBOL)
    wire = {str(t.trade_id): str(t.agg_id) for t in market.trades}
    truth = [t for t in truth_rows_of(sim, wire) if stored[0][4] <= t[4] <= stored[-1][4]]
    assert stored == truth
    in_hole = [t for t in truth if hole[0] <= t[4] < hole[1]]
    assert in_hole and bar is not None and bar[0] == len(in_hole)  # the bar was rebuilt

    assert "repaired" in gaps("--status", "repaired").output
    failed = gaps("--status", "failed", "-e", "binance")
    assert "DOGE-USDT" in failed.output and SYMBOL not in failed.output
    bad = gaps("--status", "bogus")  # main() prints it as one line and exits with 2
    assert isinstance(bad.exception, UsageError) and bad.exception.exit_code == 2
    assert str(bad.exception).startswith("unknown status 'bogus'; known: open,")


def truth_rows_of(sim: Simulator, wire: dict[str, str]) -> list[tuple[Any, ...]]:
    return [
        (wire[t["trade_id"]], Decimal(t["price"]), Decimal(t["size"]), t["side"],
         t["ts_ns"] // 1000 * 1000)
        for t in sim.truth_trades("binance", SYMBOL)
    ]  # fmt: skip
