"""Keep writing while a store is down: buffer in memory, spill to disk past a bound, replay.

:class:`ResilientSink` wraps any sink whose ``write`` raises :class:`StorageError` when the
server is unreachable. A failed batch, and every batch after it, joins a FIFO backlog: in memory
up to ``max_memory_rows``, then in spill files (MessagePack, one batch per file, fsynced). A
background task retries the oldest batch until the server answers, then delivers the backlog in
order. Writes are idempotent downstream (natural keys), so a batch delivered twice after a crash
changes nothing. Spill files left by a killed process are replayed at the next start.

When the spill folder's disk is full (or unwritable), a batch that would have been spilled
stays in memory instead, past the bound: nothing handed to ``write`` is dropped. The failure is
counted (``stats.spill_failures``), its reason kept in ``stats.spill_error`` and logged; a
half-written spill file is removed. Rows still only in memory when ``drain`` gives up are logged
as an error and left in ``stats.unsaved_rows``: they die with the process, loudly.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import itertools
import logging
import os
import shutil
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import msgspec

from tickvault.errors import StorageError
from tickvault.model import BookDelta, BookSnapshot, Candle, Gap, Ticker, Trade
from tickvault.pipeline.records import Feature, QualityScore, RepairedHistory
from tickvault.pipeline.records import Signal as PipelineSignal
from tickvault.storage.postgres.records import (
    FeatureRevision,
    FeatureValue,
    QualityMetric,
    QuarantineRecord,
    Signal,
)

log = logging.getLogger(__name__)

# Every record type a runner sink may carry. A spilled batch is a list of (type name, record)
# pairs, so untagged structs (the storage records) come back as what they were.
SPILLABLE: dict[str, type[msgspec.Struct]] = {
    t.__name__ if t is not PipelineSignal else "PipelineSignal": t
    for t in (
        Trade, Candle, BookSnapshot, BookDelta, Ticker, Gap, FeatureValue, QualityMetric,
        QuarantineRecord, Signal, Feature, QualityScore, PipelineSignal, RepairedHistory,
        FeatureRevision,
    )
}  # fmt: skip
_NAME_OF: dict[type[msgspec.Struct], str] = {t: n for n, t in SPILLABLE.items()}
_Batch = list[Any]
_encoder = msgspec.msgpack.Encoder(decimal_format="string")
_pairs_decoder = msgspec.msgpack.Decoder(list[tuple[str, msgspec.Raw]])
# Files written before records other than market events went through a sink.
_legacy_decoder = msgspec.msgpack.Decoder(list[Trade | Candle | BookSnapshot | BookDelta | Ticker])


def encode_batch(batch: Sequence[Any]) -> bytes:
    """MessagePack of a batch; raises TypeError for a record type that cannot be spilled."""
    try:
        return _encoder.encode([(_NAME_OF[type(item)], item) for item in batch])
    except KeyError as exc:
        raise TypeError(f"cannot spill {exc.args[0].__name__} records") from None


def decode_batch(payload: bytes) -> _Batch:
    try:
        pairs = _pairs_decoder.decode(payload)
    except msgspec.ValidationError:
        return list(_legacy_decoder.decode(payload))
    return [msgspec.msgpack.decode(raw, type=SPILLABLE[name]) for name, raw in pairs]


class Sink(Protocol):
    name: str

    async def write(self, events: Sequence[Any]) -> None: ...


@dataclass
class SpillStats:
    backlog_rows: int = 0
    memory_rows: int = 0
    spilled_bytes: int = 0  # bytes currently on disk
    spilled_total_bytes: int = 0  # bytes ever spilled
    failures: int = 0
    delivered_after_outage: int = 0
    spill_failures: int = 0  # batches kept in memory because the spill folder refused them
    spill_error: str = ""  # why, the last time: names the folder, the cause and the fix
    unsaved_rows: int = 0  # rows neither delivered nor on disk when drain() gave up


class ResilientSink:
    def __init__(
        self,
        sink: Sink,
        spill_dir: Path,
        *,
        max_memory_rows: int = 200_000,
        retry_interval_s: float = 1.0,
    ) -> None:
        self.sink = sink
        self.name = sink.name
        self.spill_dir = spill_dir
        self.max_memory_rows = max_memory_rows
        self.retry_interval_s = retry_interval_s
        self.stats = SpillStats()
        # Each backlog item is an in-memory batch or the path of a spilled one.
        self._backlog: deque[_Batch | Path] = deque()
        self._seq = itertools.count()
        self._lock = asyncio.Lock()
        self._retry_task: asyncio.Task[None] | None = None
        spill_dir.mkdir(parents=True, exist_ok=True)
        for partial in spill_dir.glob("*.tmp"):  # a spill cut short by a crash: never counted
            partial.unlink(missing_ok=True)
        for path in sorted(spill_dir.glob("*.spill")):  # left by an earlier process
            self._backlog.append(path)
            size = path.stat().st_size
            self.stats.spilled_bytes += size
            self.stats.backlog_rows += 1  # row count unknown until read; counted as one
        if self._backlog:
            log.warning("%s: replaying %d spilled batches", self.name, len(self._backlog))

    @property
    def healthy(self) -> bool:
        return not self._backlog

    async def write(self, events: Sequence[Any]) -> None:
        """Deliver now if the sink is healthy, else queue behind the backlog. Never raises
        StorageError: an outage is absorbed here."""
        batch: _Batch = list(events)
        if not batch:
            return
        async with self._lock:
            if not self._backlog:
                try:
                    await self.sink.write(batch)
                    return
                except StorageError as exc:
                    self.stats.failures += 1
                    log.warning("%s unavailable, buffering: %s", self.name, exc)
            self._enqueue(batch)
        self._ensure_retry()

    def _enqueue(self, batch: _Batch) -> None:
        self.stats.backlog_rows += len(batch)
        if self.stats.memory_rows + len(batch) <= self.max_memory_rows:
            self._backlog.append(batch)
            self.stats.memory_rows += len(batch)
            return
        payload = encode_batch(batch)
        path = self.spill_dir / f"{time.time_ns():020d}-{next(self._seq):08d}.spill"
        tmp = path.with_suffix(".tmp")
        try:
            with open(tmp, "wb") as handle:
                handle.write(payload)
                handle.flush()
                os.fsync(handle.fileno())
            tmp.rename(path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            self._keep_in_memory(batch, exc)
            return
        self._backlog.append(path)
        self.stats.spilled_bytes += len(payload)
        self.stats.spilled_total_bytes += len(payload)

    def _keep_in_memory(self, batch: _Batch, exc: OSError) -> None:
        """The spill folder refused a batch: hold it in memory, past the bound, and say why."""
        self._backlog.append(batch)
        self.stats.memory_rows += len(batch)
        self.stats.spill_failures += 1
        cause = exc.strerror or str(exc)
        if exc.errno == errno.ENOSPC:
            cause += " (disk full)"
        self.stats.spill_error = (
            f"{self.name}: cannot spill to {self.spill_dir}: {cause}; {self.stats.memory_rows:,}"
            " rows held in memory instead; free space there or set another spill folder"
        )
        log.error("%s", self.stats.spill_error)

    def _ensure_retry(self) -> None:
        if self._backlog and (self._retry_task is None or self._retry_task.done()):
            self._retry_task = asyncio.create_task(self._retry_loop(), name=f"{self.name}-replay")

    async def _retry_loop(self) -> None:
        while self._backlog:
            delivered = await self._deliver_oldest()
            if not delivered:
                await asyncio.sleep(self.retry_interval_s)

    async def _deliver_oldest(self) -> bool:
        async with self._lock:
            if not self._backlog:
                return True
            item = self._backlog[0]
            batch = decode_batch(item.read_bytes()) if isinstance(item, Path) else item
            try:
                await self.sink.write(batch)
            except StorageError:
                self.stats.failures += 1
                return False
            self._backlog.popleft()
            self.stats.delivered_after_outage += len(batch)
            self.stats.backlog_rows = max(0, self.stats.backlog_rows - len(batch))
            if isinstance(item, Path):
                self.stats.spilled_bytes -= item.stat().st_size
                item.unlink()
            else:
                self.stats.memory_rows -= len(batch)
            return True

    async def drain(self, timeout_s: float | None = None) -> bool:
        """Wait until the backlog is delivered (True) or the timeout passes (False); what is
        left stays in memory/spill files (memory batches are spilled so nothing is lost)."""
        self._ensure_retry()
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while self._backlog:
            if deadline is not None and time.monotonic() >= deadline:
                await self._spill_memory()
                self.stats.unsaved_rows = self.stats.memory_rows
                if self.stats.unsaved_rows:
                    log.error(
                        "%s: %d rows were neither written nor spilled and are lost at exit: %s",
                        self.name, self.stats.unsaved_rows, self.stats.spill_error,
                    )  # fmt: skip
                return False
            await asyncio.sleep(0.05)
        self.stats.unsaved_rows = 0
        return True

    async def _spill_memory(self) -> None:
        async with self._lock:
            items = list(self._backlog)
            self._backlog.clear()
            self.stats.memory_rows = 0
            limit, self.max_memory_rows = self.max_memory_rows, 0
            for item in items:
                if isinstance(item, Path):
                    self._backlog.append(item)
                else:
                    self.stats.backlog_rows -= len(item)
                    self._enqueue(item)
            self.max_memory_rows = limit

    async def close(self) -> None:
        if self._retry_task is not None:
            self._retry_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._retry_task


# -- spill folders of several runs ------------------------------------------------------------

SINKS = ("postgres", "redis")  # the runner's ResilientSink folders under its spill folder


def worker_spill_dir(root: Path, index: int) -> Path:
    return root / f"worker-{index}"


def adopt_spills(root: Path, keep: Sequence[Path]) -> int:
    """Spill files that no runner of this run would replay (left under ``root`` itself or under
    another worker's folder, by a run with a different ``--workers``: one runner keeps
    ``[root]``, N workers keep their own folders) moved into ``keep[0]``'s folders, so they are
    replayed; returns the files moved. Names are time-ordered and unique
    per process; a clash gets the source folder's name appended."""
    target = keep[0]
    moved = 0
    sources = [root, *sorted(root.glob("worker-*"))] if root.is_dir() else []
    for source in sources:
        if source in keep:
            continue
        for sink in SINKS:
            folder = source / sink
            if not folder.is_dir():
                continue
            (target / sink).mkdir(parents=True, exist_ok=True)
            for path in sorted(folder.glob("*.spill")):
                dest = target / sink / path.name
                if dest.exists():
                    dest = dest.with_name(f"{path.stem}-{source.name}.spill")
                shutil.move(path, dest)
                moved += 1
    if moved:
        log.warning("adopted %d spill files of an earlier run into %s", moved, target)
    return moved
