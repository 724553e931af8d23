"""What a run has counted so far, as plain data: the live progress and the end-of-run summary
read it, and ``--workers`` processes send it to their parent, which adds theirs up (``merge``).

A tally is a snapshot of a runner's counters (no references into the runner), so it can be
pickled through a pipe; latency samples ride along only when asked (the final report).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from tickvault.runner.stats import by_exchange

if TYPE_CHECKING:
    from tickvault.runner.app import Runner


def _add_into(total: dict[str, int], part: dict[str, int]) -> None:
    for key, n in part.items():
        total[key] = total.get(key, 0) + n


@dataclass
class Tally:
    elapsed_s: float = 0.0
    messages: dict[str, int] = field(default_factory=dict)  # exchange -> ws messages
    # stage ("decode", "validate", "transform", "write_postgres", "write_redis") -> exchange -> n
    stages: dict[str, dict[str, int]] = field(default_factory=dict)
    rejected: dict[str, int] = field(default_factory=dict)  # exchange -> records
    gaps: dict[str, int] = field(default_factory=dict)  # exchange -> gaps found
    rejects: dict[tuple[str, ...], int] = field(default_factory=dict)  # (exchange, stage, reason)
    late_trades: dict[str, int] = field(default_factory=dict)  # "revised" / "too_late" -> trades
    latency_ns: dict[str, np.ndarray] = field(default_factory=dict)  # sink -> samples (int64)
    footer: list[str] = field(default_factory=list)  # queues and sinks, one line each
    sample_stream: tuple[str, str] | None = None  # (exchange, symbol) the summary queries
    processes: int = 1  # runners counted in (worker processes, once merged)


def tally(runner: Runner, *, latency: bool = False) -> Tally:
    """A snapshot of ``runner``'s counters (cheap: no I/O; ``latency`` copies the samples)."""
    stats = runner.stats
    stages = {
        "decode": by_exchange(stats.collected.items()),
        "validate": by_exchange(stats.validated.items()),
        "transform": by_exchange(stats.transformed.items()),
    }
    for writer in runner.writers:
        stages[writer.stage] = by_exchange(writer.stats.channels.items())
    late: dict[str, int] = {}
    for (_, outcome), n in stats.late_trades.items():
        late[outcome] = late.get(outcome, 0) + n
    queues = [f"stages {runner.ingest.qsize()}"]
    queues += [f"{f.exchange} {f.collector.queue.qsize()}" for f in runner.feeds]
    footer = ["queues: " + ", ".join(queues)]
    for writer in runner.writers:
        s = writer.sink.stats
        state = "up" if writer.sink.healthy else "DOWN, buffering"
        footer.append(
            f"{writer.backend}: {state}, {writer.stats.batches:,} batches, queue "
            f"{writer.queue.qsize()}, backlog {s.backlog_rows:,} rows, spilled {s.spilled_bytes:,} B"
        )
        if s.spill_error:
            footer.append(f"  spill failed {s.spill_failures:,}x: {s.spill_error}")
    sample = None
    if runner.feeds and runner.feeds[0].instruments:
        sample = (runner.feeds[0].exchange, runner.feeds[0].instruments[0].symbol)
    return Tally(
        elapsed_s=stats.elapsed_s,
        messages={f.exchange: f.counters.ws_messages for f in runner.feeds},
        stages=stages,
        rejected=by_exchange(stats.rejects.items()),
        gaps=by_exchange(stats.gaps.items()),
        rejects=dict(stats.rejects),
        late_trades=late,
        latency_ns={
            w.backend: np.fromiter(w.stats.latency_ns, dtype=np.int64)
            for w in runner.writers
            if latency
        },
        footer=footer,
        sample_stream=sample,
    )


def merge(parts: list[Tally]) -> Tally:
    """The tallies of processes that ran side by side: counts added, the longest elapsed
    time, latency samples pooled, footers kept in order (prefixed by the caller)."""
    total = Tally(processes=0)
    for part in parts:
        total.processes += part.processes
        total.elapsed_s = max(total.elapsed_s, part.elapsed_s)
        _add_into(total.messages, part.messages)
        for stage, per in part.stages.items():
            _add_into(total.stages.setdefault(stage, {}), per)
        _add_into(total.rejected, part.rejected)
        _add_into(total.gaps, part.gaps)
        for key, n in part.rejects.items():
            total.rejects[key] = total.rejects.get(key, 0) + n
        _add_into(total.late_trades, part.late_trades)
        for sink, samples in part.latency_ns.items():
            held = total.latency_ns.get(sink)
            total.latency_ns[sink] = samples if held is None else np.concatenate([held, samples])
        total.footer += part.footer
        if total.sample_stream is None:
            total.sample_stream = part.sample_stream
    return total


def latency_ms(samples: dict[str, np.ndarray]) -> dict[str, tuple[float, float]]:
    """p50 and p99 (ms) per sink, for sinks with samples."""
    out = {}
    for sink, values in samples.items():
        if values.size:
            p50, p99 = np.percentile(values, [50, 99]) / 1e6
            out[sink] = (float(p50), float(p99))
    return out
