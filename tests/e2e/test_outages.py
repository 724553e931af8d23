"""No loss, no duplicates: real PostgreSQL and Redis servers stopped and started again inside
the tests while the runner collects from the simulator; a runner killed with SIGKILL and
restarted, its hole filled by gap repair. Stored trades are compared with the simulator's
truth row by row."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import redis
from e2e_kit import SYMBOL, ns, run_pipeline, stored_trades, trades_in, truth_rows, wait_for

from tickvault.exchanges.sim import Simulator
from tickvault.runner.app import Runner
from tickvault.storage.embedded import EmbeddedPostgres, EmbeddedRedis, free_port

pytestmark = [pytest.mark.postgres, pytest.mark.redis]
TICKVAULT = str(Path(sys.executable).with_name("tickvault"))


async def test_postgres_stopped_mid_run_loses_and_duplicates_nothing(
    redis_url: str, tmp_path: Path, server_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Buffering alone must be enough: no gap repair to paper over a loss.
    monkeypatch.setenv("TICKVAULT_REPAIR__ENABLED", "false")
    # Under the session's server folder: the postgres OS user cannot enter pytest's tmp_path.
    root = server_root / f"outage-{tmp_path.name}"
    server = EmbeddedPostgres(root, durable=False, port=free_port(), timescaledb=False)
    await asyncio.to_thread(server.start)
    seen: dict[str, Any] = {}

    async def outage(sim: Simulator, runner: Runner) -> None:
        sink = runner.writers[0].sink
        sink.max_memory_rows = 50  # past 50 buffered rows, batches spill to disk
        await asyncio.to_thread(server.stop)
        collected = trades_in(runner, "binance")
        spill = tmp_path / "spill" / "postgres"
        await wait_for(lambda: any(spill.glob("*.spill")), 20, "batches spilled to disk")
        await asyncio.sleep(1.5)
        seen["collected_while_down"] = trades_in(runner, "binance") - collected
        seen["healthy_while_down"] = sink.healthy
        await asyncio.to_thread(server.start)  # same port, same data
        await wait_for(lambda: sink.healthy, 30, "the backlog to be replayed")
        seen["spilled_bytes"] = sink.stats.spilled_total_bytes
        seen["replayed"] = sink.stats.delivered_after_outage
        seen["left_on_disk"] = list(spill.glob("*.spill"))

    try:
        run = await run_pipeline("binance", server.url, redis_url, tmp_path, during=outage)
        with psycopg.connect(server.url) as conn:
            stored = stored_trades(conn, "binance")
    finally:
        await asyncio.to_thread(server.stop)
    assert seen["collected_while_down"] > 0 and not seen["healthy_while_down"]
    assert seen["spilled_bytes"] > 0 and seen["replayed"] > 0 and not seen["left_on_disk"]
    ids = [row[0] for row in stored]
    assert len(ids) == len(set(ids))
    assert stored == truth_rows(run, stored[0][4], stored[-1][4])


async def test_redis_stopped_mid_run_and_the_cache_catches_up(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TICKVAULT_REPAIR__ENABLED", "false")
    server = EmbeddedRedis(tmp_path / "redis", durable=False, port=free_port())
    await asyncio.to_thread(server.start)
    url = server.url
    seen: dict[str, Any] = {}

    async def outage(sim: Simulator, runner: Runner) -> None:
        sink = runner.writers[1].sink
        await asyncio.to_thread(server.stop)
        seen["down_ns"] = time.time_ns()
        collected = trades_in(runner, "binance")
        await wait_for(lambda: not sink.healthy, 20, "the Redis writer to buffer")
        await asyncio.sleep(1.5)
        seen["collected_while_down"] = trades_in(runner, "binance") - collected
        seen["up_ns"] = time.time_ns()
        await asyncio.to_thread(server.start)  # same port, empty (not durable)
        await wait_for(lambda: sink.healthy, 30, "the backlog to be replayed")
        seen["replayed"] = sink.stats.delivered_after_outage

    try:
        run = await run_pipeline("binance", database_url, url, tmp_path, during=outage)
        client = redis.Redis.from_url(url)
        latest = json.loads(client.get(f"tv:trade:binance:{SYMBOL}") or b"{}")
        bars = {int(s) for _, s in client.zrange(f"tv:candles:binance:{SYMBOL}:1s", 0, -1,
                                                  withscores=True)}  # fmt: skip
        client.close()
    finally:
        await asyncio.to_thread(server.stop)
    assert seen["collected_while_down"] > 0 and seen["replayed"] > 0
    with psycopg.connect(database_url) as conn:
        stored = stored_trades(conn, "binance")
    assert stored == truth_rows(run, stored[0][4], stored[-1][4])
    # The restarted, empty cache holds the newest trade and the 1 s bars of the outage,
    # which only the replay of the buffered batches could have written.
    assert str(latest.get("trade_id")) == stored[-1][0], latest
    down = {t[4] // 10**9 for t in stored if seen["down_ns"] <= t[4] < seen["up_ns"] - 10**9}
    score_unit = 10 ** (len(str(max(bars))) - 10)  # score: open time in ms (s, µs, ns alike)
    assert down and down <= {b // score_unit for b in bars}


def _urls_from_sim(proc: subprocess.Popen[str]) -> dict[str, str]:
    urls: dict[str, str] = {}
    assert proc.stdout is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        if line.startswith("TICKVAULT_ENDPOINTS__COINBASE__"):
            key, _, value = line.strip().partition("=")
            urls[key.rsplit("__", 1)[1].lower()] = value
        if len(urls) == 2:
            return urls
    raise AssertionError(f"the simulator printed no endpoints (exit {proc.poll()})")


def _count(url: str, query: str) -> int:
    try:
        with psycopg.connect(url, connect_timeout=2) as conn:
            row = conn.execute(query).fetchone()
    except psycopg.Error:  # schema not there yet
        return 0
    return int(row[0]) if row else 0


def _until(condition: Any, timeout_s: float, what: str, *procs: subprocess.Popen[Any]) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        for proc in procs:
            assert proc.poll() is None, f"a process exited early ({proc.args}) waiting for {what}"
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def test_kill_9_and_restart_lose_and_duplicate_nothing(
    database_url: str, redis_url: str, tmp_path: Path
) -> None:
    env = {**os.environ, "COLUMNS": "200"}
    env.pop("TICKVAULT_CONFIG", None)
    sim_cmd = [TICKVAULT, "sim", "--exchanges", "coinbase", "--symbols", SYMBOL, "--rate", "300",
               "--port-base", "0", "--history-s", "60"]  # fmt: skip
    sim = subprocess.Popen(sim_cmd, env=env, stdout=subprocess.PIPE, text=True)
    runs: list[subprocess.Popen[bytes]] = []
    try:
        urls = _urls_from_sim(sim)
        config = tmp_path / "tickvault.toml"
        config.write_text(
            f'database_url = "{database_url}"\nredis_url = "{redis_url}"\n'
            f'data_dir = "{tmp_path}"\ntimeframes = ["1s", "1m"]\n'
            "[repair]\ninterval_s = 0.5\nsettle_s = 0.5\n"
            f'[[feeds]]\nexchange = "coinbase"\nsymbols = ["{SYMBOL}"]\n'
            'channels = ["trades", "book"]\n'
            f'[endpoints.coinbase]\nrest_url = "{urls["rest_url"]}"\nws_url = "{urls["ws_url"]}"\n'
        )
        run_cmd = [TICKVAULT, "run", "--config", str(config), "--quiet"]

        def start(n: int) -> subprocess.Popen[bytes]:
            log = open(tmp_path / f"run{n}.log", "wb")  # noqa: SIM115 (closed with the process)
            runs.append(subprocess.Popen(run_cmd, env=env, stdout=log, stderr=subprocess.STDOUT))
            return runs[-1]

        first = start(1)
        stored = "SELECT count(*) FROM trades"
        _until(lambda: _count(database_url, stored) > 0, 40, "the first run to store", first)
        time.sleep(1.0)
        first.send_signal(signal.SIGKILL)  # no drain, no flush: whatever it held is gone
        first.wait(10)
        before = _count(database_url, stored)
        time.sleep(1.5)  # trades the exchange publishes while nobody listens

        second = start(2)
        repaired = (
            "SELECT count(*) FROM gaps WHERE channel = 'trades' AND reason = 'disconnect'"
            " AND status = 'repaired'"
        )
        _until(lambda: _count(database_url, repaired) > 0, 40, "the restart gap repair", second)
        assert _count(database_url, stored) > before
        httpx.post(f"{urls['rest_url']}/_sim/rate", json={"rate": 0}, timeout=5)
        time.sleep(1.0)
        second.send_signal(signal.SIGTERM)
        assert second.wait(60) == 0, (tmp_path / "run2.log").read_text()[-3000:]
        truth = httpx.get(
            f"{urls['rest_url']}/_sim/truth",
            params={"exchange": "coinbase", "symbol": SYMBOL, "kind": "trades"},
            timeout=10,
        ).json()
    finally:
        for proc in [*runs, sim]:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    with psycopg.connect(database_url) as conn:
        rows = stored_trades(conn, "coinbase")
        gap = conn.execute(
            "SELECT from_ts, to_ts, detail FROM gaps WHERE channel = 'trades'"
            " AND reason = 'disconnect' AND status = 'repaired'"
        ).fetchone()
    assert gap is not None and ns(gap[1]) - ns(gap[0]) > 1.5e9, gap  # the whole downtime
    ids = [row[0] for row in rows]
    assert len(ids) == len(set(ids)), "a duplicate reached storage"
    first_ns, last_ns = rows[0][4], rows[-1][4]
    expected = [
        (t["trade_id"], Decimal(t["price"]), Decimal(t["size"]), t["side"],
         t["ts_ns"] // 1000 * 1000)
        for t in truth
        if first_ns <= t["ts_ns"] // 1000 * 1000 <= last_ns
    ]  # fmt: skip
    assert rows == expected
