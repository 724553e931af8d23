from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import web
from io_testkit import serve

Serve = Callable[[web.Application], Awaitable[str]]


@pytest.fixture
async def serve_app() -> AsyncIterator[Serve]:
    """Start aiohttp apps on loopback ports for one test; all stopped afterwards."""
    stops: list[Callable[[], Awaitable[None]]] = []

    async def start(app: web.Application) -> str:
        url, stop = await serve(app)
        stops.append(stop)
        return url

    yield start
    for stop in reversed(stops):
        await stop()
