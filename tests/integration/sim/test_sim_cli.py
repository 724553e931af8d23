"""``tickvault sim`` prints settings that tickvault's config accepts, and serves them."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import aiohttp

from tickvault.config import load_settings


async def test_cli_prints_endpoint_settings_that_work(tmp_path: Path) -> None:
    exe = Path(sys.executable).with_name("tickvault")
    truth = tmp_path / "truth.jsonl"
    proc = await asyncio.create_subprocess_exec(
        str(exe), "sim", "--symbols", "BTC-USDT", "--port-base", "0", "--history-s", "60",
        "--rate", "200", "--duration", "1.5", "--truth-file", str(truth),
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    env = {}
    for _ in range(6):
        line = (await asyncio.wait_for(proc.stdout.readline(), 10)).decode().strip()
        key, _, value = line.partition("=")
        env[key] = value
    os.environ.update(env)
    try:
        settings = load_settings()
    finally:
        for key in env:
            os.environ.pop(key, None)
    assert set(settings.endpoints) == {"binance", "coinbase", "kraken"}
    async with aiohttp.ClientSession() as session:
        rest = settings.endpoints["kraken"].rest_url
        async with session.get(f"{rest}/0/public/Time") as r:
            assert (await r.json())["error"] == []
        async with session.get(f"{settings.endpoints['binance'].rest_url}/_sim/info") as r:
            info = await r.json()
        assert info["symbols"]["coinbase"] == ["BTC-USDT"]
    assert await asyncio.wait_for(proc.wait(), 10) == 0
    lines = truth.read_text().splitlines()
    assert sum('"kind":"book"' in line for line in lines) == 3
    assert sum('"kind":"trade"' in line for line in lines) > 100
