"""The truth endpoint's ``count`` kind agrees with the trades it counts, for any window."""

from __future__ import annotations

import asyncio

import aiohttp
from sim_helpers import pause

from tickvault.exchanges.sim import Simulator


async def test_truth_count_equals_the_trades_of_the_window(
    live_sim: Simulator, session: aiohttp.ClientSession
) -> None:
    await asyncio.sleep(0.6)
    await pause(live_sim)
    url = f"{live_sim.endpoints['kraken'].rest_url}/_sim/truth"
    everything = live_sim.truth_trades("binance", "BTC-USDT")
    assert len(everything) > 100
    first, last = everything[0]["ts_ns"], everything[-1]["ts_ns"]
    windows = [{}, {"since_ns": first}, {"until_ns": last}, {"since_ns": last + 1},
               {"since_ns": (first + last) // 2, "until_ns": last}, {"since_ns": last, "until_ns": first}]  # fmt: skip
    for window in windows:
        params = {
            "exchange": "binance",
            "symbol": "BTC-USDT",
            **{k: str(v) for k, v in window.items()},
        }
        async with session.get(url, params={**params, "kind": "trades"}) as r:
            trades = await r.json()
        async with session.get(url, params={**params, "kind": "count"}) as r:
            assert await r.json() == {"count": len(trades)}, window
    assert live_sim.truth_count("binance", "BTC-USDT") == len(everything)
