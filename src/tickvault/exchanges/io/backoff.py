"""Jittered exponential backoff ("full jitter"): a random delay in [0, min(cap, base * 2^n)].

Full jitter spreads the retries of many clients (or many sessions of one client) so a recovering
server is not hit by a synchronized wave.
"""

from __future__ import annotations

import random


class Backoff:
    def __init__(
        self,
        base_s: float = 0.5,
        cap_s: float = 30.0,
        *,
        floor_s: float = 0.0,
        rng: random.Random | None = None,
    ) -> None:
        if base_s <= 0 or cap_s < base_s:
            raise ValueError("backoff needs 0 < base_s <= cap_s")
        self.base_s = base_s
        self.cap_s = cap_s
        self.floor_s = floor_s  # minimum delay, so a tight loop can never spin
        self.attempt = 0
        self._rng = rng or random.Random()

    def next_delay(self) -> float:
        ceiling = min(self.cap_s, self.base_s * (2**self.attempt))
        self.attempt += 1
        return max(self.floor_s, self._rng.uniform(0.0, ceiling))

    def reset(self) -> None:
        self.attempt = 0
