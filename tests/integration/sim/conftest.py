"""Fixtures of the simulator tests: real loopback servers and a plain aiohttp client."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from sim_helpers import quick_config

from tickvault.exchanges.sim import Simulator


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


@pytest.fixture
async def live_sim() -> AsyncIterator[Simulator]:
    async with Simulator(quick_config(rate=3000.0, anchor_ns=None)) as sim:
        yield sim
