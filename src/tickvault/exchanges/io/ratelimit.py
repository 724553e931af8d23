"""Request-weight budgets: one per exchange, shared by every tickvault process on the host.

A budget is a token bucket in its GCRA form (one number per exchange: the "theoretical arrival
time" ``tat``): weight flows at ``limit / window_s`` per second with a burst allowance of
``burst`` weight. A request is sent only when the bucket holds its weight, so limits are
respected, not discovered by collecting 429s; and because weight is spread evenly instead of
spent at the start of each window, requests granted just before the exchange's window ends
cannot pile onto the next one.

Two corrections come from the exchange:

* the weight it reports (``X-MBX-USED-WEIGHT-1M``) includes traffic we cannot see (another tool
  on the same IP): when that leaves less than the bucket would allow before the exchange's
  window ends, ``tat`` moves forward so no more than what is left gets spent;
* ``pause`` blocks the whole exchange until a moment (``Retry-After`` of a 429, the end of a 418
  ban), for every process sharing the budget.

:class:`RedisBudget` keeps the state in Redis and changes it only in Lua scripts, which Redis runs
atomically, on Redis's clock (``TIME``), so processes with skewed clocks still agree.
:class:`LocalBudget` is the same arithmetic in memory, for a single process.
"""

from __future__ import annotations

import asyncio
import random
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis

from tickvault.exchanges.io.counters import IoCounters


def gcra(tat_us: int, now_us: int, weight: int, interval_us: int, burst: int) -> tuple[bool, int]:
    """(granted, new tat when granted else µs to wait). A request heavier than the burst is
    granted once the bucket is full, so it is never refused forever."""
    tat_us = max(tat_us, now_us)
    allowance = max(burst, weight)
    new_tat_us = tat_us + weight * interval_us
    allow_at_us = new_tat_us - allowance * interval_us
    if allow_at_us > now_us:
        return False, allow_at_us - now_us
    return True, new_tat_us


def reported_tat(
    now_us: int, window_us: int, limit: int, burst: int, used: int, interval_us: int
) -> int:
    """The earliest ``tat`` that keeps what is spent before the exchange's window ends within
    what it says is left (``limit - used``)."""
    window_end_us = (now_us // window_us + 1) * window_us
    return window_end_us + (burst - (limit - used)) * interval_us


class RateBudget(ABC):
    """Weight budget of one exchange: ``limit`` weight per ``window_s``, bursts of ``burst``."""

    def __init__(
        self, exchange: str, limit: int, window_s: float, burst: int | None = None
    ) -> None:
        if limit < 1 or window_s <= 0:
            raise ValueError("a budget needs limit >= 1 and window_s > 0")
        self.exchange = exchange
        self._explicit_burst = burst
        self.set_limit(limit, window_s)
        self._jitter = random.Random()

    def set_limit(self, limit: int, window_s: float) -> None:
        """Change the rate (the exchange announced its limit, e.g. exchangeInfo.rateLimits).
        The bucket's state is kept: only the flow from now on changes."""
        if limit < 1 or window_s <= 0:
            raise ValueError("a budget needs limit >= 1 and window_s > 0")
        self.limit = limit
        self.window_s = window_s
        self.burst = self._explicit_burst or max(1, limit // 10)
        self.window_us = round(window_s * 1_000_000)
        self.interval_us = max(1, self.window_us // limit)  # µs per unit of weight

    @abstractmethod
    async def try_acquire(self, weight: int) -> tuple[bool, float]:
        """(granted, seconds to wait when refused)."""

    @abstractmethod
    async def observe_used(self, used_weight: int) -> None:
        """The exchange reported ``used_weight`` spent in its current window. Applied to the
        window current when the answer arrives: if the exchange counted it in the previous
        one, we are cautious for a moment rather than over the limit."""

    @abstractmethod
    async def pause(self, seconds: float) -> None:
        """Block every request to this exchange for ``seconds`` (extends, never shortens)."""

    @abstractmethod
    async def paused_for(self) -> float:
        """Seconds until a pause ends (0 when not paused)."""

    async def acquire(
        self,
        weight: int,
        counters: IoCounters | None = None,
        before_wait: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """Wait until ``weight`` is available and take it. ``before_wait`` runs before each
        wait and may raise to stop waiting (a ban that began while this caller waited: the
        REST client stops rather than sleep it out)."""
        while True:
            granted, wait_s = await self.try_acquire(weight)
            if granted:
                if counters is not None:
                    counters.weight_requested += weight
                return
            if before_wait is not None:
                await before_wait()
            # A little jitter so waiting clients do not all ask again at the same instant.
            delay = wait_s + self._jitter.uniform(0.0005, 0.005)
            if counters is not None:
                counters.budget_wait_s += delay
            await asyncio.sleep(delay)

    async def close(self) -> None:  # noqa: B027 - optional hook
        pass


class LocalBudget(RateBudget):
    """In-process budget (one process only)."""

    def __init__(
        self, exchange: str, limit: int, window_s: float, burst: int | None = None
    ) -> None:
        super().__init__(exchange, limit, window_s, burst)
        self._tat_us = 0
        self._paused_until_us = 0

    async def try_acquire(self, weight: int) -> tuple[bool, float]:
        now_us = time.time_ns() // 1000
        if self._paused_until_us > now_us:
            return False, (self._paused_until_us - now_us) / 1e6
        granted, value = gcra(self._tat_us, now_us, weight, self.interval_us, self.burst)
        if not granted:
            return False, value / 1e6
        self._tat_us = value
        return True, 0.0

    async def observe_used(self, used_weight: int) -> None:
        now_us = time.time_ns() // 1000
        floor_us = reported_tat(
            now_us, self.window_us, self.limit, self.burst, used_weight, self.interval_us
        )
        self._tat_us = max(self._tat_us, floor_us)

    async def pause(self, seconds: float) -> None:
        self._paused_until_us = max(
            self._paused_until_us, time.time_ns() // 1000 + round(seconds * 1e6)
        )

    async def paused_for(self) -> float:
        return max(0.0, (self._paused_until_us - time.time_ns() // 1000) / 1e6)


_NOW = """
local t = redis.call('TIME')
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
"""

# KEYS pause key, tat key; ARGV weight, interval µs, burst.
# Returns {1, 0} or {0, µs to wait}. Mirrors gcra() above.
_ACQUIRE = (
    _NOW
    + """
local paused_until = tonumber(redis.call('GET', KEYS[1]) or '0')
if paused_until > now_us then return {0, paused_until - now_us} end
local weight = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local allowance = math.max(tonumber(ARGV[3]), weight)
local tat = math.max(tonumber(redis.call('GET', KEYS[2]) or '0'), now_us)
local new_tat = tat + weight * interval
local allow_at = new_tat - allowance * interval
if allow_at > now_us then return {0, allow_at - now_us} end
redis.call('SET', KEYS[2], string.format('%d', new_tat), 'PX', math.ceil((new_tat - now_us) / 1000) + 1000)
return {1, 0}
"""
)

# KEYS tat key; ARGV window µs, limit, burst, used, interval µs. Mirrors reported_tat().
_OBSERVE = (
    _NOW
    + """
local window_us = tonumber(ARGV[1])
local window = math.floor(now_us / window_us)
local interval = tonumber(ARGV[5])
local floor_tat = (window + 1) * window_us + (tonumber(ARGV[3]) - (tonumber(ARGV[2]) - tonumber(ARGV[4]))) * interval
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
-- A floor already past changes nothing (the bucket counts from now then). It happens whenever
-- the key has expired (a second after its time) before the answer came: its expiry would be
-- negative, which SET refuses.
if floor_tat > tat and floor_tat > now_us then
  redis.call('SET', KEYS[1], string.format('%d', floor_tat), 'PX', math.ceil((floor_tat - now_us) / 1000) + 1000)
end
return 1
"""
)

# KEYS pause key; ARGV µs. Extends the pause, never shortens it.
_PAUSE = (
    _NOW
    + """
local until_us = now_us + tonumber(ARGV[1])
if until_us > tonumber(redis.call('GET', KEYS[1]) or '0') then
  redis.call('SET', KEYS[1], string.format('%d', until_us), 'PX', math.ceil(tonumber(ARGV[1]) / 1000) + 1000)
end
return 1
"""
)

_PAUSED_FOR = (
    _NOW
    + """
return math.max(0, tonumber(redis.call('GET', KEYS[1]) or '0') - now_us)
"""
)


class RedisBudget(RateBudget):
    """Budget shared through Redis by every process using the same ``key_prefix``."""

    def __init__(
        self,
        redis_url: str,
        exchange: str,
        limit: int,
        window_s: float,
        burst: int | None = None,
        *,
        key_prefix: str = "tv",
    ) -> None:
        super().__init__(exchange, limit, window_s, burst)
        self._redis = aioredis.Redis.from_url(redis_url)
        self._pause_key = f"{key_prefix}:ratelimit:{exchange}:pause"
        self._tat_key = f"{key_prefix}:ratelimit:{exchange}:tat"
        self._acquire = self._redis.register_script(_ACQUIRE)
        self._observe = self._redis.register_script(_OBSERVE)
        self._pause = self._redis.register_script(_PAUSE)
        self._paused_for = self._redis.register_script(_PAUSED_FOR)

    async def try_acquire(self, weight: int) -> tuple[bool, float]:
        granted, wait_us = await self._acquire(
            keys=[self._pause_key, self._tat_key], args=[weight, self.interval_us, self.burst]
        )
        return bool(granted), int(wait_us) / 1e6

    async def observe_used(self, used_weight: int) -> None:
        await self._observe(
            keys=[self._tat_key],
            args=[self.window_us, self.limit, self.burst, used_weight, self.interval_us],
        )

    async def pause(self, seconds: float) -> None:
        await self._pause(keys=[self._pause_key], args=[max(1, round(seconds * 1e6))])

    async def paused_for(self) -> float:
        return int(await self._paused_for(keys=[self._pause_key])) / 1e6

    async def close(self) -> None:
        await self._redis.aclose()
