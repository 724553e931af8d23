"""A real full disk for tests: a small tmpfs, mounted for the test and unmounted after it.

Mounting needs root (CAP_SYS_ADMIN); where it is not permitted the tests using it are skipped
with the reason. :func:`fill` takes all but a few KiB of the free space with a filler file, so a
test decides exactly when the disk is full; :func:`free` deletes the filler again.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

FILLER = "filler"


@contextlib.contextmanager
def small_disk(mountpoint: Path, size_mb: int) -> Iterator[Path]:
    """``mountpoint`` as a fresh tmpfs of ``size_mb`` MiB; skips the test where mounting fails."""
    if os.geteuid() != 0:
        pytest.skip("a full-disk test mounts a small tmpfs, which needs root (CAP_SYS_ADMIN)")
    mountpoint.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_mb}m,mode=0755", "tmpfs", str(mountpoint)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip() or mounted.returncode}")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", str(mountpoint)], capture_output=True, check=True)


def free_bytes(disk: Path) -> int:
    st = os.statvfs(disk)
    return st.f_bavail * st.f_frsize


def fill(disk: Path, leave_bytes: int) -> None:
    """Take every free byte of ``disk`` but ``leave_bytes`` (rounded to whole pages)."""
    size = free_bytes(disk) - leave_bytes
    assert size > 0, f"{disk} has only {free_bytes(disk)} bytes free"
    with open(disk / FILLER, "wb") as handle:
        os.posix_fallocate(handle.fileno(), 0, size)


def free(disk: Path) -> None:
    (disk / FILLER).unlink(missing_ok=True)
