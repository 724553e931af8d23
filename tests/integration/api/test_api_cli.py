"""``tickvault api`` as a real process (serves, stops on SIGTERM); a taken port is refused."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tickvault.api.serve import serve
from tickvault.config import Settings
from tickvault.errors import ConfigError
from tickvault.model import Candle
from tickvault.storage.embedded import free_port
from tickvault.storage.redis_cache import RedisCache
from tickvault.storage.urls import StorageUrls

TICKVAULT = str(Path(sys.executable).with_name("tickvault"))


def fetch(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def wait_healthy(url: str, proc: subprocess.Popen[str], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        try:
            if fetch(url)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} not healthy within {timeout_s} s")


def test_cli_serves_and_stops(db_url: str, redis_url: str, tmp_path: Path) -> None:
    port, metrics_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TICKVAULT_")}
    env |= {"TICKVAULT_DATABASE_URL": db_url, "TICKVAULT_REDIS_URL": redis_url,
            "TICKVAULT_METRICS_PORT": str(metrics_port)}  # fmt: skip
    command = [TICKVAULT, "api", "--host", "127.0.0.1", "--port", str(port)]
    proc = subprocess.Popen(command, env=env, cwd=tmp_path, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    try:
        wait_healthy(f"http://127.0.0.1:{port}/health", proc)
        bar = Candle("coinbase", "ETH-USD", "1h", 3600 * 10**9, Decimal("2200.01"),
                     Decimal("2210"), Decimal("2190.5"), Decimal("2201.00"), Decimal("10.0001"),
                     True, 7200 * 10**9, 7200 * 10**9)  # fmt: skip
        RedisCache(redis_url).write_events([bar])
        status, body = fetch(
            f"http://127.0.0.1:{port}/v1/candles/latest?exchange=coinbase&symbol=ETH-USD"
            "&timeframe=1h&n=1"
        )
        assert status == 200 and body["source"] == "redis"
        assert body["candles"][0]["close"] == "2201.00" and body["candles"][0]["ts"].endswith(
            "T01:00:00Z"
        )
        # The monitoring port of the process serves the same registry.
        assert fetch(f"http://127.0.0.1:{metrics_port}/health")[0] == 200
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics") as resp:
            assert 'cache="candles",result="hit"} 1.0' in resp.read().decode()

    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err
    assert f"tickvault api on http://127.0.0.1:{port}" in out


async def test_taken_port_is_a_config_error(db_url: str, redis_url: str) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        settings = Settings(database_url=db_url, redis_url=redis_url)
        with pytest.raises(ConfigError) as caught:
            await serve(settings, StorageUrls(db_url, redis_url, ()), "127.0.0.1", port)
    assert str(caught.value) == (
        f"cannot serve the API on 127.0.0.1:{port}: the port is already in use "
        "(choose another with --port)"
    )
