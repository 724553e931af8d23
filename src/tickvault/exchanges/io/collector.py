"""A collector per exchange: as many WebSocket sessions as the streams need, one bounded queue.

Sessions put each message's :class:`FeedOutput` on a bounded ``asyncio.Queue``; one consumer
drains it in batches into the sinks (events, gaps, decode errors). When the sinks fall behind the
queue fills and sessions wait on ``put``: the slowdown reaches the sockets instead of memory
growing without bound. Every wait is counted (``queue_waits``, ``queue_wait_s``).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Sequence

from tickvault.exchanges.base import ExchangeAdapter, FeedOutput
from tickvault.exchanges.capture import CaptureWriter
from tickvault.exchanges.io.counters import IoCounters, counters_for
from tickvault.exchanges.io.policy import WsPolicy, ws_policy
from tickvault.exchanges.io.rest import RestClient
from tickvault.exchanges.io.sinks import Sinks
from tickvault.exchanges.io.ws import WsSession
from tickvault.model import Instrument


def plan_connections(
    instruments: Sequence[Instrument], channels: Sequence[str], max_streams: int
) -> list[list[Instrument]]:
    """Split instruments so each connection carries at most ``max_streams`` symbol x channel
    streams (at least one symbol per connection)."""
    per_connection = max(1, max_streams // max(1, len(channels)))
    items = list(instruments)
    return [items[i : i + per_connection] for i in range(0, len(items), per_connection)]


class Collector:
    def __init__(
        self,
        adapter: ExchangeAdapter,
        instruments: Sequence[Instrument],
        channels: Sequence[str],
        sinks: Sinks,
        *,
        base_url: str,
        policy: WsPolicy | None = None,
        book_depth: int = 10,
        rest: RestClient | None = None,
        queue_size: int = 1000,
        batch_max: int = 500,
        counters: IoCounters | None = None,
        capture: CaptureWriter | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.exchange = adapter.name
        self.sinks = sinks
        self.policy = policy or ws_policy(self.exchange)
        self.counters = counters if counters is not None else counters_for(self.exchange)
        self.batch_max = batch_max
        self.queue: asyncio.Queue[FeedOutput] = asyncio.Queue(maxsize=queue_size)
        self.sessions = [
            WsSession(
                adapter,
                group,
                channels,
                base_url=base_url,
                policy=self.policy,
                emit=self._put,
                book_depth=book_depth,
                rest=rest,
                counters=self.counters,
                capture=capture,
                rng=rng,
            )
            for group in plan_connections(
                instruments, channels, self.policy.max_streams_per_connection
            )
        ]
        self._stop = asyncio.Event()

    def stop(self) -> None:
        self._stop.set()

    def books(self) -> dict[str, tuple[list[tuple[str, str]], list[tuple[str, str]]]]:
        """Every session's current books, {symbol: (bids, asks)} of decimal strings."""
        books: dict[str, tuple[list[tuple[str, str]], list[tuple[str, str]]]] = {}
        for session in self.sessions:
            if session.feed is not None:
                books.update(session.feed.books())
        return books

    async def run(self) -> None:
        """Run every session until :meth:`stop`; then drain the queue and flush the sinks."""
        consumer = asyncio.create_task(self._consume())
        sessions = [asyncio.create_task(session.run()) for session in self.sessions]
        stop_wait = asyncio.create_task(self._stop.wait())
        try:
            done, _ = await asyncio.wait(
                {consumer, stop_wait, *sessions}, return_when=asyncio.FIRST_COMPLETED
            )
            for task in done - {stop_wait}:
                task.result()  # a session or the consumer failed: raise it here
        finally:
            stop_wait.cancel()
            for session in self.sessions:
                session.stop()
            if consumer.done():  # nobody drains the queue: sessions blocked on put never return
                for task in sessions:
                    task.cancel()
            await asyncio.gather(*sessions, return_exceptions=True)
            if not consumer.done():
                await self.queue.join()
            consumer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await consumer
            await self.sinks.events.flush()

    async def _put(self, out: FeedOutput) -> None:
        if self.queue.full():
            self.counters.queue_waits += 1
            started_s = time.monotonic()
            await self.queue.put(out)
            self.counters.queue_wait_s += time.monotonic() - started_s
        else:
            self.queue.put_nowait(out)
        self.counters.queue_depth_max = max(self.counters.queue_depth_max, self.queue.qsize())

    async def _consume(self) -> None:
        while True:
            batch = [await self.queue.get()]
            while len(batch) < self.batch_max and not self.queue.empty():
                batch.append(self.queue.get_nowait())
            merged = FeedOutput()
            for out in batch:
                merged.extend(out)
            try:
                if merged.events:
                    await self.sinks.events.write(merged.events)
                    self.counters.events_out += len(merged.events)
                if merged.gaps:
                    await self.sinks.gaps.record_gaps(merged.gaps)
                if merged.errors:
                    await self.sinks.errors.quarantine(merged.errors)
                    self.counters.errors_out += len(merged.errors)
            finally:
                for _ in batch:
                    self.queue.task_done()
