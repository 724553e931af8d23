"""Event-loop stalls of the process under test: loop lag, GC pauses, the longest callbacks.

* loop lag: a task sleeps ``tick_s`` again and again; how late it wakes is how long anything
  ready to run (a socket read, a writer) would have waited at that moment;
* GC pauses: ``gc.callbacks`` times every collection, per generation;
* slow callbacks (``--stalls``): every callback the loop runs is timed (asyncio's
  ``Handle._run`` wrapped), and those longer than ``slow_ms`` are summed per coroutine name,
  wall time and this thread's CPU time (on a loaded machine wall time includes preemption).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections import defaultdict
from typing import Any

import numpy as np


class StallProbe:
    def __init__(self, *, tick_s: float = 0.005, slow_ms: float = 10.0, callbacks: bool = False):
        self.tick_s = tick_s
        self.slow_s = slow_ms / 1000
        self.lag_s: list[float] = []
        self.gc_pauses: dict[int, list[float]] = defaultdict(list)
        self.slow: dict[str, list[tuple[float, float]]] = defaultdict(list)  # (wall, CPU) s
        self._gc_started = 0.0
        self._task: asyncio.Task[None] | None = None
        self._patched: Any = None
        self._callbacks = callbacks

    def start(self) -> None:
        gc.callbacks.append(self._on_gc)
        self._task = asyncio.create_task(self._lag_loop(), name="stall-probe")
        if self._callbacks:
            self._patch_handles()

    async def stop(self) -> None:
        if self._on_gc in gc.callbacks:
            gc.callbacks.remove(self._on_gc)
        if self._patched is not None:
            asyncio.events.Handle._run = self._patched  # type: ignore[method-assign]
            self._patched = None
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def clear(self) -> None:
        self.lag_s.clear()
        self.gc_pauses.clear()
        self.slow.clear()

    def report(self) -> str:
        parts = []
        if self.lag_s:
            lag = np.array(self.lag_s) * 1000
            p50, p99 = np.percentile(lag, [50, 99])
            parts.append(f"loop lag p50/p99/max {p50:.1f}/{p99:.1f}/{lag.max():.0f} ms")
        for gen in sorted(self.gc_pauses):
            pauses = np.array(self.gc_pauses[gen]) * 1000
            parts.append(
                f"gc gen{gen} x{len(pauses)} max {pauses.max():.1f} ms sum {pauses.sum():.0f} ms"
            )
        if self.slow:
            top = sorted(self.slow.items(), key=lambda kv: -sum(w for w, _ in kv[1]))[:6]
            parts.append(
                f"callbacks > {self.slow_s * 1000:.0f} ms (wall, CPU ms): "
                + ", ".join(
                    f"{name} x{len(d)} max {max(w for w, _ in d) * 1000:.0f}"
                    f"/{max(c for _, c in d) * 1000:.0f}"
                    f" sum {sum(w for w, _ in d) * 1000:.0f}/{sum(c for _, c in d) * 1000:.0f}"
                    for name, d in top
                )
            )
        return " | ".join(parts)

    # -- probes ------------------------------------------------------------------------------

    async def _lag_loop(self) -> None:
        tick = self.tick_s
        while True:
            before = time.perf_counter()
            await asyncio.sleep(tick)
            self.lag_s.append(max(0.0, time.perf_counter() - before - tick))

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter()
        else:
            self.gc_pauses[info["generation"]].append(time.perf_counter() - self._gc_started)

    def _patch_handles(self) -> None:
        original = asyncio.events.Handle._run
        slow_s, slow = self.slow_s, self.slow

        clock, cpu_clock = time.perf_counter, time.thread_time

        def timed_run(handle: asyncio.events.Handle) -> None:
            what = _what(handle)  # before: a task's last step leaves no coroutine behind
            started, cpu_started = clock(), cpu_clock()
            original(handle)
            took = clock() - started
            if took > slow_s:
                slow[_describe(handle, what)].append((took, cpu_clock() - cpu_started))

        self._patched = original
        asyncio.events.Handle._run = timed_run  # type: ignore[method-assign, assignment]


def _what(handle: asyncio.events.Handle) -> object:
    owner = getattr(getattr(handle, "_callback", None), "__self__", None)
    return owner.get_coro() if isinstance(owner, asyncio.Task) else None


def _describe(handle: asyncio.events.Handle, coro: object) -> str:
    callback = getattr(handle, "_callback", None)
    owner = getattr(callback, "__self__", None)
    if isinstance(owner, asyncio.Task):
        name = getattr(coro, "__qualname__", repr(coro))
        task = owner.get_name()
        return name if task.startswith("Task-") else f"{name}[{task}]"
    name = getattr(callback, "__qualname__", None)
    return name if isinstance(name, str) else repr(callback)[:60]
