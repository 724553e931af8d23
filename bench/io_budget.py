"""Cost of the shared rate budget per REST request: Redis (Lua GCRA) vs in-process.

Run: ``python -m bench.io_budget``. Starts a throwaway Redis, grants N weight-1 requests from a
budget large enough never to wait, and prints µs per grant and the ratio to the local budget
(the baseline, measured in the same run). A REST round trip to an exchange is 10-300 ms, so
the shared budget's cost should be a rounding error next to it.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

from tickvault.exchanges.io.ratelimit import LocalBudget, RateBudget, RedisBudget
from tickvault.storage.embedded import EmbeddedRedis

GRANTS = 3000


async def per_grant_us(budget: RateBudget) -> float:
    started = time.perf_counter()
    for _ in range(GRANTS):
        await budget.acquire(1)
    return (time.perf_counter() - started) / GRANTS * 1e6


async def per_ping_us(budget: RedisBudget) -> float:
    client = budget._redis
    started = time.perf_counter()
    for _ in range(GRANTS):
        await client.ping()
    return (time.perf_counter() - started) / GRANTS * 1e6


async def main() -> None:
    with tempfile.TemporaryDirectory(prefix="tv-bench-") as folder:
        server = EmbeddedRedis(Path(folder) / "redis", durable=False)
        server.start()
        try:
            local = await per_grant_us(LocalBudget("bench", 10**9, 1.0, burst=10**9))
            shared = RedisBudget(server.url, "bench", 10**9, 1.0, burst=10**9)
            ping_us = await per_ping_us(shared)
            redis_us = await per_grant_us(shared)
            await shared.close()
        finally:
            server.stop()
    print(f"local budget : {local:8.2f} µs/grant (baseline)")
    print(f"redis PING   : {ping_us:8.2f} µs/round trip (the floor for anything shared)")
    print(
        f"redis budget : {redis_us:8.2f} µs/grant ({redis_us / local:.1f}x local, {redis_us / ping_us:.2f}x a PING)"
    )
    print(f"a 50 ms REST round trip is {50_000 / redis_us:,.0f}x the redis budget's cost")


if __name__ == "__main__":
    asyncio.run(main())
