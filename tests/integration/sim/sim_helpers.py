"""Helpers for the simulator tests (plain aiohttp clients, no tickvault connectors)."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from typing import Any

import aiohttp

from tickvault.exchanges.sim import SimConfig, Simulator

ANCHOR_NS = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z: fixed history for determinism


def quick_config(**overrides: Any) -> SimConfig:
    values: dict[str, Any] = {
        "symbols": ["BTC-USDT"],
        "rate": 0.0,
        "history_s": 900,
        "anchor_ns": ANCHOR_NS,
        "tick_s": 0.01,
    }
    values.update(overrides)
    return SimConfig(**values)


async def recv_json(ws: aiohttp.ClientWebSocketResponse, timeout: float = 3.0) -> Any:
    msg = await ws.receive(timeout=timeout)
    assert msg.type == aiohttp.WSMsgType.TEXT, msg
    return json.loads(msg.data, parse_float=Decimal)


async def drain(ws: aiohttp.ClientWebSocketResponse, quiet_s: float = 0.3) -> list[Any]:
    """Everything the server sends until it has been quiet for ``quiet_s``."""
    out = []
    while True:
        try:
            msg = await ws.receive(timeout=quiet_s)
        except TimeoutError:
            return out
        if msg.type != aiohttp.WSMsgType.TEXT:
            return out
        out.append(json.loads(msg.data, parse_float=Decimal))


async def pause(sim: Simulator, settle_s: float = 0.25) -> None:
    """Stop generating events and let batched streams flush."""
    sim.rate = 0.0
    await asyncio.sleep(settle_s)


def as_book(levels: list[list[str]]) -> dict[Decimal, Decimal]:
    return {Decimal(p): Decimal(q) for p, q in levels}


async def collect(ws: aiohttp.ClientWebSocketResponse, seconds: float) -> list[Any]:
    """Everything received during ``seconds``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    out = []
    while (left := deadline - loop.time()) > 0:
        try:
            msg = await ws.receive(timeout=left)
        except TimeoutError:
            break
        if msg.type != aiohttp.WSMsgType.TEXT:
            break
        out.append(json.loads(msg.data, parse_float=Decimal))
    return out
