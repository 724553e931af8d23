"""``tickvault run --workers N``: the pipeline in N processes, the markets shared out by symbol.

One runner is one event loop, so it uses at most one core; past that, more markets need more
processes. Each worker is a whole runner (collectors, stages, writers) over its share of the
symbols. Every exchange of a symbol goes to the same worker, so the checks that compare venues
(the cross-exchange outlier rule, the consistency score) still see every venue of a pair. The
workers write to the same PostgreSQL and Redis: rows are keyed by their natural keys, Redis keys
by stream, and partitions are created under an advisory lock, so they never collide; each worker
repairs only the gaps of its own markets.

The parent resolves storage once (starting the embedded servers if need be), creates or migrates
the schema once, starts the workers (``spawn``), forwards a stop, and hands on their tallies
(twice a second, and a final one with latency samples) for the live progress and one summary.
A worker that fails stops the others; the run then ends with an error naming it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import signal
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from multiprocessing.connection import Connection
from typing import Any

from tickvault.config import FeedSettings, Settings
from tickvault.errors import TickvaultError
from tickvault.runner.app import Runner, RunOptions
from tickvault.runner.feeds import require_feeds
from tickvault.runner.spill import adopt_spills, worker_spill_dir
from tickvault.runner.tally import Tally, merge, tally
from tickvault.storage.postgres.schema import init_database
from tickvault.storage.urls import StorageUrls, resolve_urls

log = logging.getLogger(__name__)

REPORT_INTERVAL_S = 0.5


class WorkerError(TickvaultError):
    """A worker process failed (its error is logged by the worker and named here)."""


def shard_feeds(feeds: Sequence[FeedSettings], n: int) -> list[list[FeedSettings]]:
    """The feeds split into at most ``n`` shards by symbol: a symbol's feeds on every exchange
    stay together; the heaviest symbols (most exchange x channel streams) are placed first, each
    on the least loaded shard. Shards left empty (fewer symbols than ``n``) are dropped."""
    if n < 1:
        raise ValueError("n must be >= 1")
    weight: dict[str, int] = {}
    for feed in feeds:
        for symbol in feed.symbols:
            weight[symbol] = weight.get(symbol, 0) + len(feed.channels)
    loads = [0] * n
    owner: dict[str, int] = {}
    for symbol in sorted(weight, key=lambda s: -weight[s]):  # stable: config order on ties
        i = loads.index(min(loads))
        owner[symbol] = i
        loads[i] += weight[symbol]
    shards: list[list[FeedSettings]] = []
    for i in range(n):
        shard = [
            feed.model_copy(update={"symbols": [s for s in feed.symbols if owner[s] == i]})
            for feed in feeds
            if any(owner[s] == i for s in feed.symbols)
        ]
        if shard:
            shards.append(shard)
    return shards


def quiet_noisy_loggers() -> None:
    """HTTP clients and servers log every request at INFO: warnings only."""
    for noisy in ("httpx", "httpcore", "websockets", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


# -- the worker process ------------------------------------------------------------------------


@dataclass
class _Job:
    index: int
    settings: Settings
    options: RunOptions


def _worker_main(job: _Job, conn: Connection) -> None:
    """A worker process: one runner over its shard, tallies to the parent, "stop" from it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the group: the parent decides
    logging.basicConfig(
        level=job.settings.log_level,
        format=f"worker {job.index}: %(levelname)s %(name)s: %(message)s",
    )
    quiet_noisy_loggers()
    try:
        asyncio.run(_work(job, conn))
    except BaseException as exc:
        with contextlib.suppress(OSError):
            conn.send(("error", f"{type(exc).__name__}: {exc}"))
        raise SystemExit(1) from None


async def _work(job: _Job, conn: Connection) -> None:
    runner = Runner(job.settings, job.options)
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, runner.stop)

    def command(name: str) -> None:
        if name == "clear":  # a measurement window begins (benches)
            for writer in runner.writers:
                writer.stats.latency_ns.clear()
        elif name == "report":
            conn.send(("report", tally(runner, latency=True)))

    def listen() -> None:  # a thread: the pipe's recv blocks
        with contextlib.suppress(EOFError, OSError):
            while (name := conn.recv()) != "stop":
                loop.call_soon_threadsafe(command, name)
        loop.call_soon_threadsafe(runner.stop)  # asked to, or the parent is gone

    threading.Thread(target=listen, name="stop-listener", daemon=True).start()

    async def report() -> None:
        await runner.wait_started()
        while True:
            conn.send(("tally", tally(runner)))
            await asyncio.sleep(REPORT_INTERVAL_S)

    reporter = asyncio.create_task(report())
    try:
        await runner.run()
    finally:
        reporter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reporter
    conn.send(("done", tally(runner, latency=True)))


# -- the parent ----------------------------------------------------------------------------------


@dataclass(eq=False)
class _Worker:
    index: int
    process: Any  # multiprocessing.Process (spawn context)
    conn: Connection
    latest: Tally = field(default_factory=Tally)
    final: Tally | None = None
    reported: asyncio.Future[Tally] | None = None
    error: str | None = None
    ended: asyncio.Event = field(default_factory=asyncio.Event)


class Workers:
    """Runs the shards; ``stop()`` drains them all; ``tally()`` is their merged counters."""

    def __init__(self, settings: Settings, options: RunOptions, n: int) -> None:
        if n < 2:
            raise ValueError("Workers needs n >= 2 (one runner: use Runner)")
        self.settings = settings
        self.options = options
        self.n = n
        self.urls: StorageUrls | None = None
        self.workers: list[_Worker] = []
        self.shards: list[list[FeedSettings]] = []  # worker i's feeds, once started
        self._started = asyncio.Event()
        self._stopping = False

    def stop(self) -> None:
        self._stopping = True
        self._send("stop")

    def _send(self, command: str) -> None:
        for worker in self.workers:
            with contextlib.suppress(OSError):
                worker.conn.send(command)

    def clear_latency(self) -> None:
        """Forget the latency samples so far (a bench's measurement window begins)."""
        self._send("clear")

    async def report(self) -> Tally:
        """The merged tally now, latency samples included (one round trip to every worker)."""
        loop = asyncio.get_running_loop()
        for worker in self.workers:
            worker.reported = loop.create_future()
        self._send("report")
        parts = await asyncio.gather(*(w.reported for w in self.workers if w.reported))
        return merge(list(parts))

    async def wait_started(self) -> None:
        await self._started.wait()

    def tally(self) -> Tally:
        parts = []
        for w in self.workers:
            part = replace(w.final or w.latest)
            part.footer = [f"worker {w.index} {line}" for line in part.footer]
            parts.append(part)
        return merge(parts)

    async def run(self) -> Tally:
        settings = self.settings
        require_feeds(settings)  # before storage is touched, as one runner would refuse
        self.urls = urls = await asyncio.to_thread(resolve_urls, settings)
        await asyncio.to_thread(init_database, urls.database_url, settings.timescale)
        base = settings.model_copy(
            update={"database_url": urls.database_url, "redis_url": urls.redis_url}
        )
        self.shards = shards = shard_feeds(base.feeds, self.n)
        spill_root = self.options.spill_dir or settings.data_dir / "spill"
        spills = [worker_spill_dir(spill_root, i) for i in range(len(shards))]
        await asyncio.to_thread(adopt_spills, spill_root, spills)
        context = multiprocessing.get_context("spawn")
        loop = asyncio.get_running_loop()
        for i, feeds in enumerate(shards):
            port = base.metrics_port
            if port:  # one port per worker: base, base + 1, ... (0: each an ephemeral one)
                port += i
            job = _Job(
                i,
                base.model_copy(update={"feeds": feeds, "metrics_port": port}),
                replace(self.options, spill_dir=spills[i], init_schema=False),
            )
            ours, theirs = context.Pipe()
            process = context.Process(
                target=_worker_main, args=(job, theirs), name=f"tickvault-worker-{i}"
            )
            process.start()
            theirs.close()
            worker = _Worker(i, process, ours)
            self.workers.append(worker)
            loop.add_reader(ours.fileno(), self._on_readable, worker)
            if self._stopping:
                worker.conn.send("stop")
        for i, shard in enumerate(shards):
            log.info(
                "worker %d: %s", i, ", ".join(dict.fromkeys(s for f in shard for s in f.symbols))
            )
        try:
            await asyncio.gather(*(w.ended.wait() for w in self.workers))
        finally:
            for w in self.workers:
                loop.remove_reader(w.conn.fileno())
            for w in self.workers:
                await asyncio.to_thread(w.process.join, 30)
                if w.process.is_alive():
                    w.process.kill()
                w.conn.close()
        failed = [w for w in self.workers if w.error is not None or w.final is None]
        if failed:
            raise WorkerError(
                "; ".join(
                    f"worker {w.index} failed: {w.error or f'exit code {w.process.exitcode}'}"
                    for w in failed
                )
            )
        return self.tally()

    def _on_readable(self, worker: _Worker) -> None:
        try:
            kind, payload = worker.conn.recv()
        except (EOFError, OSError):  # the process is gone
            self._ended(worker, error=None if worker.final else "ended without a report")
            return
        if kind == "tally":
            worker.latest = payload
            if len(self.workers) == len(self.shards) and all(
                w.latest.elapsed_s > 0 for w in self.workers
            ):
                self._started.set()  # every worker reports from its running pipeline
        elif kind == "report":
            if worker.reported is not None and not worker.reported.done():
                worker.reported.set_result(payload)
        elif kind == "done":
            worker.final = payload
            self._ended(worker, error=None)
        elif kind == "error":
            self._ended(worker, error=str(payload))

    def _ended(self, worker: _Worker, *, error: str | None) -> None:
        if worker.ended.is_set():
            return
        loop = asyncio.get_running_loop()
        loop.remove_reader(worker.conn.fileno())
        worker.error = error
        worker.ended.set()
        if worker.reported is not None and not worker.reported.done():
            worker.reported.set_exception(WorkerError(f"worker {worker.index} ended"))
        if error is not None:
            log.error("worker %d failed: %s; stopping the others", worker.index, error)
            self.stop()
