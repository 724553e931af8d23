"""Where a trade's time goes between its exchange timestamp and storage (opt-in, for benches).

A :class:`LatencyTrace` attached to the runner (``RunOptions.trace_latency``) records, for every
live trade a writer stores, the hops of its path in nanoseconds:

* ``venue``: exchange timestamp → our receive (the venue's publish cadence, its send, the
  network, and any time the message waited in our socket buffer while the loop was busy);
* ``collect``: receive → the stages take it (decode, collector queue, ingest queue);
* ``stages``: the stage batch it was processed in (validate … quality), start to hand-off;
* ``queue``: handed to the writer → its write began (writer queue, batching, an earlier write);
* ``write``: the write itself (PostgreSQL: COPY and commit; Redis: pipeline executed).

Per-batch hops cost a few stamps per batch; per-trade hops one list append per trade per writer.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from tickvault.model import Trade

HOPS = ("venue", "collect", "stages", "queue", "write")


@dataclass
class _Samples:
    """One writer's per-trade samples: one array per hop, plus the total (ts → stored)."""

    hops: dict[str, array[int]] = field(default_factory=lambda: {h: array("q") for h in HOPS})
    total: array[int] = field(default_factory=lambda: array("q"))

    def clear(self) -> None:
        for samples in self.hops.values():
            del samples[:]
        del self.total[:]


@dataclass(frozen=True)
class HopSummary:
    """p50/p99 of each hop, of ``received`` (receive → stored: the pipeline's own share) and
    of the total (exchange time → stored), and the mean hops of the slowest 1 % of trades."""

    trades: int
    p50_ms: dict[str, float]
    p99_ms: dict[str, float]
    slowest_ms: dict[str, float]  # mean of each hop over the trades at or past the total's p99

    def line(self) -> str:
        parts = [
            f"{h} {self.p50_ms[h]:.1f}/{self.p99_ms[h]:.1f}" for h in (*HOPS, "received", "total")
        ]
        slow = " + ".join(f"{h} {self.slowest_ms[h]:.0f}" for h in HOPS)
        return f"p50/p99 ms: {', '.join(parts)} | slowest 1 %: {slow}"


class LatencyTrace:
    def __init__(self) -> None:
        self._by_backend: dict[str, _Samples] = {}

    def clear(self) -> None:
        for samples in self._by_backend.values():
            samples.clear()

    def record(
        self,
        backend: str,
        trades: Iterable[Trade],
        staged_ns: int,
        emitted_ns: int,
        write_ns: int,
        done_ns: int,
    ) -> None:
        """The trades of one stage batch, stored by ``backend`` at ``done_ns``."""
        samples = self._by_backend.setdefault(backend, _Samples())
        hops = samples.hops
        venue, collect, total = hops["venue"], hops["collect"], samples.total
        n = 0
        for trade in trades:
            venue.append(trade.recv_ns - trade.ts_ns)
            collect.append(staged_ns - trade.recv_ns)
            total.append(done_ns - trade.ts_ns)
            n += 1
        if n:
            hops["stages"].extend(array("q", [emitted_ns - staged_ns]) * n)
            hops["queue"].extend(array("q", [write_ns - emitted_ns]) * n)
            hops["write"].extend(array("q", [done_ns - write_ns]) * n)

    def summary(self, backend: str) -> HopSummary | None:
        samples = self._by_backend.get(backend)
        if samples is None or not samples.total:
            return None
        total = np.frombuffer(samples.total, dtype=np.int64)
        columns = {h: np.frombuffer(samples.hops[h], dtype=np.int64) for h in HOPS}
        columns["received"] = total - columns["venue"]  # our share: receive → stored
        columns["total"] = total
        slow = total >= np.percentile(total, 99)
        return HopSummary(
            trades=len(total),
            p50_ms={h: float(np.percentile(c, 50)) / 1e6 for h, c in columns.items()},
            p99_ms={h: float(np.percentile(c, 99)) / 1e6 for h, c in columns.items()},
            slowest_ms={h: float(c[slow].mean()) / 1e6 for h, c in columns.items()},
        )


def live_trades(records: Sequence[object]) -> list[Trade]:
    return [r for r in records if type(r) is Trade]  # type: ignore[misc]
