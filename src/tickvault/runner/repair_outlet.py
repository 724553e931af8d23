"""Where repaired history goes besides PostgreSQL: the Redis hot cache and indicator state.

A repair writes its rows to PostgreSQL itself (its checkpoints must mean "committed"), then
hands what changed to an outlet:

* **Redis**: closed bars refetched (exchange candles) or rebuilt (derived candles) and the
  newest repaired trade, written by the cache's history rule (``AsyncRedisCache.write_history``:
  they fill holes inside the cached bars and replace the bar of their open time, a derived bar
  never replaces an exchange bar, the latest trade only moves forward);
* **indicators**: the stream's closed bars from storage, from a warm-up point on, replayed
  through the indicator engine (``IndicatorEngine.rebuild``), which returns the corrected
  features of the repaired interval and everything after it.

:class:`RunnerOutlet` (inside ``tickvault run``) queues the cache writes behind the live ones on
the Redis writer (so an outage spills them like any batch) and rebuilds the live engine's own
state, so features computed after the repair continue from corrected bars.
:class:`StandaloneOutlet` (``tickvault gaps --fix``, no pipeline running) writes the history
straight to Redis when it has a cache, and rebuilds on a fresh engine; it leaves the cached
latest features alone (a running pipeline owns them).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Protocol

from tickvault.errors import StorageError
from tickvault.model import Candle, Trade
from tickvault.pipeline.indicators import IndicatorConfig, IndicatorEngine
from tickvault.pipeline.records import Feature, RepairedHistory
from tickvault.runner.sinks import WriteItem
from tickvault.storage.redis_cache import AsyncRedisCache

log = logging.getLogger(__name__)

StreamKey = tuple[str, str, str]  # exchange, symbol, timeframe


class RepairOutlet(Protocol):
    indicators: IndicatorConfig

    async def cache_history(self, events: Sequence[Trade | Candle]) -> None: ...

    async def cache_features(self, features: Sequence[Feature]) -> None: ...

    def rebuild_features(
        self,
        key: StreamKey,
        history: Sequence[Candle],
        since_ns: int,
        anchors: Mapping[str, float],
        seeds: Mapping[str, float],
    ) -> list[Feature]: ...


class RunnerOutlet:
    """Inside the runner: cache writes through the Redis writer, the live engine rebuilt."""

    def __init__(
        self, engine: IndicatorEngine, put: Callable[[WriteItem], Awaitable[None]]
    ) -> None:
        self.engine = engine
        self.indicators = engine.config
        self._put = put

    async def cache_history(self, events: Sequence[Trade | Candle]) -> None:
        if events:
            await self._put(WriteItem([RepairedHistory(list(events))]))

    async def cache_features(self, features: Sequence[Feature]) -> None:
        # Only values of the live stream's newest bar: older ones (a rebuild that could not
        # reach the live state) must not replace what the live engine cached.
        last = self.engine.last_open_ns
        current = [f for f in features if f.ts_ns >= last((f.exchange, f.symbol, f.timeframe))]
        if current:
            await self._put(WriteItem(current))

    def rebuild_features(
        self,
        key: StreamKey,
        history: Sequence[Candle],
        since_ns: int,
        anchors: Mapping[str, float],
        seeds: Mapping[str, float],
    ) -> list[Feature]:
        return self.engine.rebuild(key, history, since_ns, anchors, seeds)


class StandaloneOutlet:
    """Without a runner: history straight to Redis (if a cache is given), fresh engines."""

    def __init__(self, indicators: IndicatorConfig, cache: AsyncRedisCache | None = None) -> None:
        self.indicators = indicators
        self.cache = cache

    async def cache_history(self, events: Sequence[Trade | Candle]) -> None:
        if self.cache is None or not events:
            return
        try:
            await self.cache.write_history(events)
        except StorageError as exc:  # a cache: PostgreSQL has it, a miss reads it from there
            log.warning("repaired history not cached: %s", exc)

    async def cache_features(self, features: Sequence[Feature]) -> None:
        return None

    def rebuild_features(
        self,
        key: StreamKey,
        history: Sequence[Candle],
        since_ns: int,
        anchors: Mapping[str, float],
        seeds: Mapping[str, float],
    ) -> list[Feature]:
        return IndicatorEngine(self.indicators).rebuild(key, history, since_ns, anchors, seeds)
