"""``tickvault backfill`` end to end: real CLI, real Redis, a loopback history server."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import msgspec
import pytest
from aiohttp import web
from io_testkit import ToyHistoryServer, serve
from typer.testing import CliRunner

from tickvault.cli import _register, app
from tickvault.errors import ExchangeError
from tickvault.exchanges.base import ADAPTERS
from tickvault.exchanges.io.policy import REST_POLICIES, RestPolicy
from tickvault.exchanges.io.stores import natural_key
from tickvault.model import Candle, Trade


@contextmanager
def server_thread(application: web.Application) -> Iterator[str]:
    """The CLI runs its own event loop, so the server gets a thread and a loop of its own."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    url, stop = asyncio.run_coroutine_threadsafe(serve(application), loop).result(5)
    try:
        yield url
    finally:
        asyncio.run_coroutine_threadsafe(stop(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)


def test_cli_backfill_resumes_after_a_failure(
    tmp_path: Path, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(ADAPTERS, "toy", "io_testkit:ADAPTER")
    monkeypatch.setitem(REST_POLICIES, "toy", RestPolicy(limit=1000, window_s=1.0))
    monkeypatch.setenv("TICKVAULT_REDIS_URL", redis_url)
    monkeypatch.setenv("TICKVAULT_DATA_DIR", str(tmp_path / "data"))
    _register()
    out = tmp_path / "events.jsonl"
    server = ToyHistoryServer()
    server.fail_after, server.fail_status = 9, 400
    args = [
        "backfill", "--exchange", "toy", "--symbols", "AAA-USD", "--kinds", "candles:1m,trades",
        "--since", "2024-01-01", "--until", "2024-01-01T01:00", "--out", str(out),
    ]  # fmt: skip
    runner = CliRunner()
    with server_thread(server.app()) as url:
        failed = runner.invoke(app, [*args, "--rest-url", url])
        assert isinstance(failed.exception, ExchangeError)
        server.heal()
        first_pages = len(server.log)
        resumed = runner.invoke(app, [*args, "--rest-url", url])
        assert resumed.exit_code == 0, resumed.output
        # 7 candle pages and 19 trade pages in all (each stream ends on an empty page), each
        # asked for once: the resumed run fetched only what the failed one had not
        assert first_pages == 9 and len(server.log) == len(set(server.log)) == 7 + 19
    decoder = msgspec.json.Decoder(Trade | Candle)
    events = [decoder.decode(line) for line in out.read_bytes().splitlines()]
    unique = {natural_key(e) for e in events}
    assert len(unique) == 60 + 180  # the whole hour, once the duplicates are merged
    assert "100.0%" in resumed.output and "rows written" in resumed.output
