"""REST backfill: page through history with the adapter, write, checkpoint after every page.

For each (symbol, kind) the loop is: request the page after ``cursor``
(``adapter.backfill_request``), parse it (``adapter.parse_backfill_page``), write its events and
flush them, then save a checkpoint naming the next page. The checkpoint is saved only after the
flush, so an interrupted run loses nothing and a resumed run asks for exactly the next page: at
worst the page in flight is written twice, which idempotent writes absorb.

A checkpoint records the run's range with the cursor. A run resumes a checkpoint that started at
the same ``since``; a completed range is skipped; a completed range whose ``until`` was earlier is
extended from where it ended instead of being fetched again. A different ``since`` (or
``fresh``) starts over: the adapter's cursor means nothing outside the range it was made for.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tickvault.errors import ExchangeError, UsageError
from tickvault.exchanges.base import ExchangeAdapter
from tickvault.exchanges.io.rest import RestClient
from tickvault.exchanges.io.sinks import Checkpoint, CheckpointStore, ErrorSink, EventSink
from tickvault.model import Candle, Instrument, MarketEvent, bucket_start_ns, timeframe_ns


@dataclass(slots=True)
class TaskProgress:
    exchange: str
    symbol: str
    kind: str
    since_ns: int
    until_ns: int
    position_ns: int  # everything before this is written
    rows: int = 0
    pages: int = 0
    done: bool = False
    resumed: bool = False
    skipped: bool = False  # already complete before this run

    @property
    def fraction(self) -> float:
        span = self.until_ns - self.since_ns
        return 1.0 if span <= 0 else min(1.0, max(0.0, (self.position_ns - self.since_ns) / span))


Progress = Callable[[TaskProgress], None]


def validate_kind(kind: str) -> str:
    """``trades`` or ``candles:<timeframe>``; raises UsageError otherwise."""
    if kind == "trades":
        return kind
    name, _, timeframe = kind.partition(":")
    if name == "candles":
        try:
            timeframe_ns(timeframe)
        except ValueError as exc:
            raise UsageError(f"kind {kind!r}: {exc}") from None
        return kind
    raise UsageError(f"unknown kind {kind!r}; use trades or candles:<timeframe> (candles:1m)")


def closed_until_ns(kind: str, until_ns: int, now_ns: int) -> int:
    """Candles are fetched only once closed: the range ends at the start of the forming bar."""
    if kind.startswith("candles:"):
        return min(until_ns, bucket_start_ns(now_ns, kind.partition(":")[2]))
    return min(until_ns, now_ns)


def _event_ns(event: MarketEvent) -> int:
    return event.open_ns if isinstance(event, Candle) else event.ts_ns


class Backfiller:
    def __init__(
        self,
        adapter: ExchangeAdapter,
        rest: RestClient,
        sink: EventSink,
        checkpoints: CheckpointStore,
        *,
        errors: ErrorSink | None = None,
        concurrency: int = 4,
        progress: Progress | None = None,
        fresh: bool = False,
    ) -> None:
        self.adapter = adapter
        self.exchange = adapter.name
        self.rest = rest
        self.sink = sink
        self.checkpoints = checkpoints
        self.errors = errors
        self.progress = progress
        self.fresh = fresh  # ignore saved checkpoints
        self._slots = asyncio.Semaphore(concurrency)

    async def run(
        self,
        instruments: Sequence[Instrument],
        kinds: Sequence[str],
        since_ns: int,
        until_ns: int,
    ) -> list[TaskProgress]:
        """Backfill every (instrument, kind); the first failure is raised once all have stopped
        (each keeps its checkpoint)."""
        now_ns = time.time_ns()
        jobs = [
            self._limited(
                instrument, validate_kind(kind), since_ns, closed_until_ns(kind, until_ns, now_ns)
            )
            for instrument in instruments
            for kind in kinds
        ]
        results = await asyncio.gather(*jobs, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return [r for r in results if isinstance(r, TaskProgress)]

    async def _limited(
        self, instrument: Instrument, kind: str, since_ns: int, until_ns: int
    ) -> TaskProgress:
        async with self._slots:
            return await self.run_one(instrument, kind, since_ns, until_ns)

    async def run_one(
        self, instrument: Instrument, kind: str, since_ns: int, until_ns: int
    ) -> TaskProgress:
        symbol = instrument.symbol
        progress = TaskProgress(self.exchange, symbol, kind, since_ns, until_ns, since_ns)
        saved = (
            None
            if self.fresh
            else await self.checkpoints.load_checkpoint(self.exchange, symbol, kind)
        )
        # Where this run starts: (adapter "since" for the first page, cursor, newest stored).
        start_ns, cursor, last_ns = since_ns, None, None
        if saved is not None and saved.since_ns == since_ns:
            progress.resumed = True
            last_ns = saved.last_ns
            if saved.done and saved.until_ns is not None and saved.until_ns >= until_ns:
                progress.position_ns, progress.done, progress.skipped = until_ns, True, True
                self._report(progress)
                return progress
            if saved.done and saved.until_ns is not None:
                start_ns = saved.until_ns  # extend a completed range
            elif saved.cursor is not None:
                cursor = saved.cursor  # the cursor names the position; "since" only filters
            else:
                progress.resumed, last_ns = False, None
            progress.position_ns = max(start_ns, last_ns + 1 if last_ns is not None else since_ns)
        if until_ns <= start_ns:
            progress.done = True
            self._report(progress)
            return progress
        self._report(progress)
        while True:
            request = self.adapter.backfill_request(instrument, kind, cursor, start_ns, until_ns)
            response = await self.rest.get(request)
            page = self.adapter.parse_backfill_page(
                instrument, kind, response.text, cursor, start_ns, until_ns, response.recv_ns
            )
            if page.events:
                await self.sink.write(page.events)
                await self.sink.flush()
                newest = max(_event_ns(e) for e in page.events)
                last_ns = newest if last_ns is None else max(last_ns, newest)
            if page.errors and self.errors is not None:
                await self.errors.quarantine(page.errors)
            done = page.next_cursor is None
            if not done and page.next_cursor == cursor:
                raise ExchangeError(
                    f"{self.exchange} {symbol} {kind}: the page after cursor {cursor!r} "
                    "points back to itself; stopping instead of looping"
                )
            await self.checkpoints.save_checkpoint(
                Checkpoint(
                    self.exchange, symbol, kind, page.next_cursor, since_ns, until_ns, last_ns, done
                )
            )
            progress.rows += len(page.events)
            progress.pages += 1
            progress.done = done
            if done:
                progress.position_ns = until_ns
            elif last_ns is not None:
                progress.position_ns = max(progress.position_ns, last_ns + 1)
            self._report(progress)
            if done:
                return progress
            cursor = page.next_cursor

    def _report(self, progress: TaskProgress) -> None:
        if self.progress is not None:
            self.progress(progress)
