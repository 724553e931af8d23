"""The runner's GC freezes: start-up's objects at once, every stream's state once it exists."""

from __future__ import annotations

import asyncio
import gc
import time
from pathlib import Path

import pytest
from e2e_kit import SYMBOL, settings_for, trades_in, wait_for

from tickvault.exchanges.sim import SimConfig, Simulator
from tickvault.monitoring.metrics import Metrics
from tickvault.runner.app import Runner, RunOptions

pytestmark = [pytest.mark.postgres, pytest.mark.redis]
REFREEZE_S = 8.0  # the first trades come well within this, even on a loaded machine


def tracked(obj: object) -> bool:
    """In a collected generation (``gc.get_objects`` leaves the frozen ones out)."""
    return any(o is obj for o in gc.get_objects())


async def test_stream_state_made_after_the_start_is_frozen_by_the_refreeze(
    database_url: str, redis_url: str, tmp_path: Path
) -> None:
    config = SimConfig(symbols=[SYMBOL], exchanges=("binance",), rate=300, history_s=60)
    async with Simulator(config) as sim:
        settings = settings_for("binance", sim.endpoints, database_url, redis_url, tmp_path)
        options = RunOptions(spill_dir=tmp_path / "spill", refreeze_after_s=(REFREEZE_S,))
        runner = Runner(settings, options, metrics=Metrics(process_metrics=False))
        task = asyncio.create_task(runner.run())
        try:
            await asyncio.wait_for(runner.wait_started(), 30)
            started = time.monotonic()
            frozen_at_start = gc.get_freeze_count()
            await wait_for(lambda: trades_in(runner, "binance") > 0, REFREEZE_S, "trades")
            # The market's duplicate window was made on its first trades, after the start.
            window = runner.stages.validator._trades[("binance", SYMBOL)].window.keys
            assert tracked(window)
            await asyncio.sleep(REFREEZE_S + 0.5 - (time.monotonic() - started))
            assert not tracked(window)  # frozen: full collections no longer walk it
            assert gc.get_freeze_count() > frozen_at_start
        finally:
            runner.stop()
            await asyncio.wait_for(task, 60)
    assert gc.get_freeze_count() == 0 and tracked(window)  # all collectable again after the run
