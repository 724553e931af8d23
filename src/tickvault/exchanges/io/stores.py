"""Small real implementations of the storage Protocols: in memory, Redis, JSON-lines files.

The PostgreSQL store replaces them in production; these serve tests, the command line's
``--out`` file and single-machine use (Redis checkpoints survive a restart).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import IO

import msgspec
import redis.asyncio as aioredis

from tickvault.exchanges.io.sinks import Checkpoint
from tickvault.model import Candle, DecodeError, Gap, MarketEvent, Trade


def natural_key(event: MarketEvent) -> tuple[object, ...]:
    """The identity a store deduplicates on (what makes writes idempotent)."""
    if isinstance(event, Trade):
        return ("trade", event.exchange, event.symbol, event.trade_id, event.ts_ns)
    if isinstance(event, Candle):
        return ("candle", event.exchange, event.symbol, event.timeframe, event.open_ns)
    return (type(event).__name__, event.exchange, event.symbol, event.ts_ns, event.recv_ns)


class MemorySink:
    """Keeps everything in lists; ``rows`` is the idempotent view (latest version per key)."""

    def __init__(self) -> None:
        self.written: list[MarketEvent] = []
        self.gaps: list[Gap] = []
        self.errors: list[DecodeError] = []
        self.rows: dict[tuple[object, ...], MarketEvent] = {}
        self.flushes = 0

    async def write(self, events: Sequence[MarketEvent]) -> None:
        self.written.extend(events)
        for event in events:
            self.rows[natural_key(event)] = event

    async def flush(self) -> None:
        self.flushes += 1

    async def record_gaps(self, gaps: Sequence[Gap]) -> None:
        self.gaps.extend(gaps)

    async def quarantine(self, records: Sequence[DecodeError]) -> None:
        self.errors.extend(records)


class JsonlSink:
    """Appends events, gaps and errors as JSON lines (tagged by type) to one file.

    Not idempotent: a resumed backfill may append the page that was being written when it was
    interrupted a second time; deduplicate on the natural key when loading.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle: IO[bytes] = path.open("ab")
        self._encoder = msgspec.json.Encoder(decimal_format="string")

    def _lines(self, items: Sequence[msgspec.Struct]) -> None:
        self._handle.write(b"".join(self._encoder.encode(item) + b"\n" for item in items))

    async def write(self, events: Sequence[MarketEvent]) -> None:
        self._lines(events)

    async def flush(self) -> None:
        self._handle.flush()

    async def record_gaps(self, gaps: Sequence[Gap]) -> None:
        self._lines(gaps)

    async def quarantine(self, records: Sequence[DecodeError]) -> None:
        self._lines(records)

    def close(self) -> None:
        self._handle.close()


class MemoryCheckpoints:
    def __init__(self) -> None:
        self.saved: dict[tuple[str, str, str], Checkpoint] = {}
        self.saves = 0

    async def load_checkpoint(self, exchange: str, symbol: str, kind: str) -> Checkpoint | None:
        return self.saved.get((exchange, symbol, kind))

    async def save_checkpoint(self, cp: Checkpoint) -> None:
        self.saved[(cp.exchange, cp.symbol, cp.kind)] = cp
        self.saves += 1


class RedisCheckpoints:
    """Checkpoints as JSON in Redis, one key per stream: ``<prefix>:backfill:<ex>:<sym>:<kind>``."""

    def __init__(self, redis_url: str, *, key_prefix: str = "tv") -> None:
        self._redis = aioredis.Redis.from_url(redis_url)
        self._prefix = f"{key_prefix}:backfill"
        self._decode = msgspec.json.Decoder(Checkpoint).decode

    def _key(self, exchange: str, symbol: str, kind: str) -> str:
        return f"{self._prefix}:{exchange}:{symbol}:{kind}"

    async def load_checkpoint(self, exchange: str, symbol: str, kind: str) -> Checkpoint | None:
        found = await self._redis.get(self._key(exchange, symbol, kind))
        return None if found is None else self._decode(found)

    async def save_checkpoint(self, cp: Checkpoint) -> None:
        await self._redis.set(self._key(cp.exchange, cp.symbol, cp.kind), msgspec.json.encode(cp))

    async def aclose(self) -> None:
        await self._redis.aclose()
