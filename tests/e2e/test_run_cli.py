"""``tickvault run --sim`` as a process: metrics while it runs, SIGTERM drains, then
``tickvault quality`` reads the stored scores."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psycopg
import pytest
from typer.testing import CliRunner

from tickvault.cli import _register, app
from tickvault.storage.embedded import free_port

pytestmark = [pytest.mark.postgres, pytest.mark.redis]
TICKVAULT = str(Path(sys.executable).with_name("tickvault"))


def _metric(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels``."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def _env(database_url: str, redis_url: str, tmp_path: Path, port: int) -> dict[str, str]:
    (tmp_path / "none.toml").write_text("")
    return {
        **os.environ,
        "TICKVAULT_DATABASE_URL": database_url,
        "TICKVAULT_REDIS_URL": redis_url,
        "TICKVAULT_DATA_DIR": str(tmp_path),
        "TICKVAULT_METRICS_PORT": str(port),
        "TICKVAULT_CONFIG": str(tmp_path / "none.toml"),
        "COLUMNS": "200",  # rich wraps tables to the terminal; there is none here
    }


def _sigterm(proc: subprocess.Popen[bytes], timeout_s: float) -> str:
    """SIGTERM, then the output of a clean drain: exit 0, a summary."""
    proc.send_signal(signal.SIGTERM)
    try:
        out, _ = proc.communicate(timeout=timeout_s)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = out.decode()
    assert proc.returncode == 0, text[-3000:]
    assert "SIGTERM: draining" in text and "summary" in text, text[-3000:]
    return text


def test_sigterm_drains_and_quality_reads_the_stored_scores(
    database_url: str, redis_url: str, tmp_path: Path
) -> None:
    port = free_port()
    env = _env(database_url, redis_url, tmp_path, port)
    cmd = [TICKVAULT, "run", "--sim", "--quiet", "--duration", "120", "--sim-rate", "500",
           "--symbols", "BTC-USDT", "--quality-interval", "1"]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        metrics = ""
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:
            time.sleep(0.3)
            try:
                metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
            except httpx.HTTPError:
                continue
            stored = _metric(metrics, "tickvault_events_out_total", stage="write_postgres")
            if stored > 0 and _metric(metrics, "tickvault_quality_score") > 0:
                break
        else:
            raise AssertionError("the run never stored anything")
        for name, labels in (
            ("tickvault_events_out_total", {"stage": "validate", "channel": "trades"}),
            ("tickvault_events_out_total", {"stage": "write_redis"}),
            ("tickvault_messages_received_total", {"exchange": "kraken"}),
            ("tickvault_batch_size_rows_count", {"stage": "stages"}),
            ("tickvault_write_latency_seconds_count", {"sink": "postgres"}),
            ("tickvault_stream_freshness_seconds", {"stage": "stored"}),
            ("tickvault_storage_up", {"backend": "redis"}),
        ):
            assert _metric(metrics, name, **labels) > 0, (name, labels)
        assert "tickvault_queue_depth_items" in metrics
        ready = httpx.get(f"http://127.0.0.1:{port}/ready", timeout=5)
        assert ready.status_code == 200, ready.text
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    text = _sigterm(proc, timeout_s=60)
    assert "late trades (after their bar closed):" in text, text[-3000:]
    assert not list(tmp_path.rglob("*.spill"))
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT count(*), count(DISTINCT exchange) FROM trades").fetchone()
        assert row is not None and row[0] > 0 and row[1] == 3

    # In process (the CLI's imports cost seconds per process on a loaded machine).
    _register()
    result = CliRunner().invoke(
        app, ["quality", "--config", str(tmp_path / "none.toml")], env=env, terminal_width=200
    )
    assert result.exit_code == 0, result.output
    quality = result.output
    for word in ("binance", "coinbase", "kraken", "BTC-USDT", "trades", "worst"):
        assert word in quality, quality


def test_workers_serve_metrics_each_and_sigterm_drains_them_all(
    database_url: str, redis_url: str, tmp_path: Path
) -> None:
    port = free_port()
    while free_port() == port + 1:  # worker 1 serves on port + 1
        pass
    env = _env(database_url, redis_url, tmp_path, port)
    cmd = [TICKVAULT, "run", "--sim", "--quiet", "--duration", "120", "--sim-rate", "500",
           "--symbols", "BTC-USDT,ETH-USDT", "--workers", "2", "--quality-interval", "1"]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        stored = {}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not all(stored.get(p) for p in (port, port + 1)):
            time.sleep(0.3)
            for p in (port, port + 1):
                with contextlib.suppress(httpx.HTTPError):
                    text = httpx.get(f"http://127.0.0.1:{p}/metrics", timeout=2).text
                    stored[p] = _metric(text, "tickvault_events_out_total", stage="write_postgres")
        assert all(stored.get(p) for p in (port, port + 1)), stored
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    text = _sigterm(proc, timeout_s=90)
    assert "worker 0: BTC-USDT" in text and "worker 1: ETH-USDT" in text, text[-3000:]
    assert not list(tmp_path.rglob("*.spill"))
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT symbol, count(DISTINCT exchange) FROM trades GROUP BY 1 ORDER BY 1"
        ).fetchall()
    assert rows == [("BTC-USDT", 3), ("ETH-USDT", 3)]


def test_workers_must_be_at_least_one() -> None:
    _register()
    result = CliRunner().invoke(app, ["run", "--sim", "--workers", "0"])
    assert result.exit_code != 0
    assert str(result.exception) == "--workers must be >= 1"


def test_an_error_prints_as_one_line_with_its_brackets(tmp_path: Path) -> None:
    """User errors go through rich, whose markup once ate ``[[feeds]]`` from the message."""
    (tmp_path / "empty.toml").write_text("")
    env = {**os.environ, "TICKVAULT_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none",
           "TICKVAULT_DATA_DIR": str(tmp_path), "COLUMNS": "200"}  # fmt: skip
    cmd = [TICKVAULT, "run", "--workers", "2", "--config", str(tmp_path / "empty.toml")]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == (
        "error: no feeds configured: add [[feeds]] to tickvault.toml (exchange, symbols, "
        "channels) or run `tickvault run --sim`"
    )
