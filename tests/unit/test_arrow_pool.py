"""The readers switch Arrow to jemalloc (decode tails, see tickvault.storage.arrow_pool),
unless the environment chose a pool."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

CHECK = (
    "import pyarrow as pa; from tickvault.storage import arrow_pool;"
    " arrow_pool.use_jemalloc(); print(pa.default_memory_pool().backend_name)"
)


def _backend(env: dict[str, str]) -> str:
    out = subprocess.run([sys.executable, "-c", CHECK], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_readers_use_jemalloc() -> None:
    pa = pytest.importorskip("pyarrow")
    try:
        pa.jemalloc_memory_pool()
    except NotImplementedError:
        pytest.skip("pyarrow built without jemalloc")
    env = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    assert _backend(env) == "jemalloc"


def test_a_pool_chosen_in_the_environment_is_kept() -> None:
    assert _backend({**os.environ, "ARROW_DEFAULT_MEMORY_POOL": "system"}) == "system"
