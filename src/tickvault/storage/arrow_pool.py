"""Arrow's memory pool for tickvault's reads: jemalloc, unless ``ARROW_DEFAULT_MEMORY_POOL``
says otherwise.

pyarrow's default pool on Linux is mimalloc. Measured with ``bench.query`` (2-core machine,
300 reads each): a new reader's one-day read from PostgreSQL's stored blocks had p50 0.83 ms but
p99 6.5 ms under mimalloc — one frame decompression in fifty took ~5 ms instead of ~0.2 ms
(mimalloc returning and re-faulting the freed pages) — and p99 2.7 ms under jemalloc, the same
p50. The system allocator fixes the tail too but is slower on Redis frame reads. A user who sets
``ARROW_DEFAULT_MEMORY_POOL`` keeps their choice.
"""

from __future__ import annotations

import contextlib
import os

import pyarrow as pa

_done = False


def use_jemalloc() -> None:
    """Make jemalloc the process's default Arrow pool (once; a no-op where pyarrow was built
    without it, or where the environment chose a pool)."""
    global _done
    if _done:
        return
    _done = True
    if os.environ.get("ARROW_DEFAULT_MEMORY_POOL"):
        return
    with contextlib.suppress(NotImplementedError):  # built without jemalloc: its default
        pa.set_memory_pool(pa.jemalloc_memory_pool())
