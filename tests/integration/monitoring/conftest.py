"""Fixtures of the live monitoring tests: server processes stopped by their own pid."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from live_kit import Spawn


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Spawn]:
    """Start processes, output to ``<tmp>/<log_name>`` (default ``<program>-<n>.log``); each is stopped (SIGTERM, then
    SIGKILL after 10 s) at the end of the test, by its own pid, the last started first."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(
        *args: str, env: dict[str, str] | None = None, log_name: str | None = None
    ) -> subprocess.Popen[bytes]:
        name = log_name or f"{Path(args[0]).name}-{len(procs)}.log"
        log = open(tmp_path / name, "wb")  # noqa: SIM115
        proc = subprocess.Popen(
            args, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
        )
        log.close()
        procs.append(proc)
        return proc

    yield start
    for proc in reversed(procs):  # dependents first: a client drains while its servers run
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
