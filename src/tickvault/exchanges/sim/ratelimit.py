"""REST rate limits as the venues enforce them, per client IP. Pure: callers pass the time."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(slots=True)
class _WeightState:
    window: int = -1
    used: int = 0
    rejected: int = 0
    ban_until_s: float = 0.0
    bans: int = 0


@dataclass(slots=True)
class WeightVerdict:
    status: int  # 200, 429 or 418
    used: int
    retry_after_s: int = 0
    ban_until_ms: int = 0


class WeightLimiter:
    """Binance: request weight per IP per clock minute. Over the limit -> 429 with Retry-After
    until the minute ends; more than ``rejections_before_ban`` 429s in a minute -> an IP ban
    (418) of ``ban_s``, doubling for each repeat (Binance: 2 minutes up to 3 days)."""

    def __init__(self, limit: int, rejections_before_ban: int, ban_s: float) -> None:
        self.limit = limit
        self.rejections_before_ban = rejections_before_ban
        self.ban_s = ban_s
        self.ips: dict[str, _WeightState] = {}

    def ban(self, ip: str, now_s: float, duration_s: float) -> None:
        state = self.ips.setdefault(ip, _WeightState())
        state.ban_until_s = max(state.ban_until_s, now_s + duration_s)

    def unban_all(self) -> None:
        for state in self.ips.values():
            state.ban_until_s = 0.0

    def check(self, ip: str, weight: int, now_s: float, enforce: bool = True) -> WeightVerdict:
        state = self.ips.setdefault(ip, _WeightState())
        window = int(now_s // 60)
        if window != state.window:
            state.window, state.used, state.rejected = window, 0, 0
        if now_s < state.ban_until_s:
            return WeightVerdict(
                418, state.used, math.ceil(state.ban_until_s - now_s), int(state.ban_until_s * 1000)
            )
        if enforce and state.used + weight > self.limit:
            state.rejected += 1
            if state.rejected > self.rejections_before_ban:
                state.ban_until_s = now_s + min(self.ban_s * 2**state.bans, 3 * 86400)
                state.bans += 1
                return WeightVerdict(
                    418,
                    state.used,
                    math.ceil(state.ban_until_s - now_s),
                    int(state.ban_until_s * 1000),
                )
            return WeightVerdict(429, state.used, max(1, math.ceil((window + 1) * 60 - now_s)))
        state.used += weight
        return WeightVerdict(200, state.used)


class TokenBucket:
    """Coinbase/Kraken style: ``rate`` requests per second, bursts up to ``burst``, per key."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self.keys: dict[str, tuple[float, float]] = {}  # key -> (tokens, at_s)

    def take(self, key: str, now_s: float) -> float:
        """0 when allowed, else the seconds until a token is available."""
        tokens, at_s = self.keys.get(key, (self.burst, now_s))
        tokens = min(self.burst, tokens + (now_s - at_s) * self.rate)
        if tokens >= 1.0:
            self.keys[key] = (tokens - 1.0, now_s)
            return 0.0
        self.keys[key] = (tokens, now_s)
        return (1.0 - tokens) / self.rate
