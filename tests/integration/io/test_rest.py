"""REST client against loopback aiohttp servers that misbehave like exchanges do."""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path

import pytest
from aiohttp import web

from conftest import Serve
from tickvault.errors import ExchangeError, RateLimitError
from tickvault.exchanges.base import RestRequest
from tickvault.exchanges.capture import CaptureWriter, read_captures
from tickvault.exchanges.io.backoff import Backoff
from tickvault.exchanges.io.counters import IoCounters
from tickvault.exchanges.io.policy import RestPolicy
from tickvault.exchanges.io.ratelimit import LocalBudget, RateBudget, RedisBudget
from tickvault.exchanges.io.rest import RestClient, parse_retry_after

POLICY = RestPolicy(
    limit=1000,
    window_s=1.0,
    safety=1.0,
    timeout_s=2.0,
    max_retries=3,
    backoff_base_s=0.02,
    backoff_cap_s=0.1,
)
PING = RestRequest("/ping", {"n": "1"})


def scripted(responses: list[web.Response], hits: list[float]) -> web.Application:
    """An app answering /ping with the given responses in order, then 200 {"ok": true}."""

    async def ping(request: web.Request) -> web.Response:
        hits.append(time.time())
        return responses.pop(0) if responses else web.json_response({"ok": True})

    app = web.Application()
    app.router.add_get("/ping", ping)
    return app


def client(url: str, budget: RateBudget, policy: RestPolicy = POLICY, **kw: object) -> RestClient:
    return RestClient("toy", url, budget, policy, counters=IoCounters(), rng=random.Random(7), **kw)  # type: ignore[arg-type]


def test_retry_after_forms() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now_s=1445412480.0) == 10.0


def test_backoff_is_jittered_exponential_and_capped() -> None:
    backoff = Backoff(0.1, 0.8, rng=random.Random(1))
    delays = [backoff.next_delay() for _ in range(8)]
    ceilings = [0.1, 0.2, 0.4, 0.8, 0.8, 0.8, 0.8, 0.8]
    assert all(0 <= d <= c for d, c in zip(delays, ceilings, strict=True))
    assert len(set(delays)) == len(delays)  # jittered, not a fixed ladder
    other = Backoff(0.1, 0.8, rng=random.Random(2))
    assert [other.next_delay() for _ in range(8)] != delays
    backoff.reset()
    assert backoff.next_delay() <= 0.1


async def test_5xx_then_success_is_retried(serve_app: Serve) -> None:
    hits: list[float] = []
    url = await serve_app(scripted([web.Response(status=503), web.Response(status=500)], hits))
    async with client(url, LocalBudget("toy", 1000, 1.0)) as rest:
        response = await rest.get(PING)
    assert response.status == 200 and response.text == '{"ok": true}'
    assert len(hits) == 3
    assert (rest.counters.rest_server_errors, rest.counters.rest_retries) == (2, 2)


async def test_5xx_forever_gives_up_after_max_retries(serve_app: Serve) -> None:
    hits: list[float] = []
    url = await serve_app(scripted([web.Response(status=502) for _ in range(10)], hits))
    async with client(url, LocalBudget("toy", 1000, 1.0)) as rest:
        with pytest.raises(ExchangeError, match="failed 4 times, last: HTTP 502"):
            await rest.get(PING)
    assert len(hits) == POLICY.max_retries + 1


async def test_client_error_is_not_retried(serve_app: Serve) -> None:
    hits: list[float] = []
    bad = web.json_response({"code": -1121, "msg": "Invalid symbol."}, status=400)
    url = await serve_app(scripted([bad], hits))
    async with client(url, LocalBudget("toy", 1000, 1.0)) as rest:
        with pytest.raises(ExchangeError, match=r"HTTP 400 on /ping.*Invalid symbol"):
            await rest.get(PING)
    assert len(hits) == 1 and rest.counters.rest_retries == 0


async def test_slow_response_times_out_and_is_retried(serve_app: Serve) -> None:
    calls: list[float] = []

    async def slow_once(request: web.Request) -> web.Response:
        calls.append(time.time())
        if len(calls) == 1:
            await asyncio.sleep(1.0)
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_get("/ping", slow_once)
    url = await serve_app(app)
    policy = POLICY.with_(timeout_s=0.2)
    async with client(url, LocalBudget("toy", 1000, 1.0), policy) as rest:
        started = time.monotonic()
        response = await rest.get(PING)
        elapsed = time.monotonic() - started
    assert response.status == 200 and len(calls) == 2
    assert rest.counters.rest_timeouts == 1 and rest.counters.rest_retries == 1
    assert 0.2 <= elapsed < 0.9  # waited for the timeout, not for the slow answer


async def test_429_retry_after_pauses_every_client_sharing_the_budget(
    serve_app: Serve, redis_url: str
) -> None:
    hits: list[float] = []
    url = await serve_app(scripted([web.Response(status=429, headers={"Retry-After": "1"})], hits))
    first = client(url, RedisBudget(redis_url, "toy", 1000, 1.0))
    second = client(url, RedisBudget(redis_url, "toy", 1000, 1.0))  # "another process"
    async with first, second:
        task = asyncio.create_task(first.get(PING))
        while not hits:
            await asyncio.sleep(0.005)
        await asyncio.sleep(0.05)  # the 429 has been answered and the pause stored
        other = await second.get(PING)
        await task
    assert other.status == 200
    assert first.counters.rate_limited == 1
    # Nothing reached the server during the 1 s pause, from either client.
    assert len(hits) == 3 and min(hits[1:]) - hits[0] >= 0.95
    assert second.counters.budget_wait_s >= 0.8


async def test_418_ban_stops_the_exchange_until_it_ends(serve_app: Serve, redis_url: str) -> None:
    hits: list[float] = []
    ban = web.Response(status=418, headers={"Retry-After": "1"})
    url = await serve_app(scripted([ban], hits))
    async with client(url, RedisBudget(redis_url, "toy", 1000, 1.0)) as rest:
        response = await rest.get(PING)
    assert response.status == 200 and rest.counters.bans == 1
    assert len(hits) == 2 and hits[1] - hits[0] >= 0.95


async def test_long_ban_raises_and_keeps_other_clients_off(
    serve_app: Serve, redis_url: str
) -> None:
    hits: list[float] = []
    ban = web.Response(status=418, headers={"Retry-After": "7200"})
    url = await serve_app(scripted([ban], hits))
    first = client(url, RedisBudget(redis_url, "toy", 1000, 1.0))
    second = client(url, RedisBudget(redis_url, "toy", 1000, 1.0))
    async with first, second:
        with pytest.raises(RateLimitError) as caught:
            await first.get(PING)
        assert caught.value.banned and caught.value.retry_after_s == 7200
        with pytest.raises(RateLimitError, match="paused for another"):
            await second.get(PING)
    assert len(hits) == 1  # the second client never reached the banned server


async def test_a_ban_that_begins_while_a_request_waits_for_budget_stops_it(
    serve_app: Serve, redis_url: str
) -> None:
    """A request already waiting for budget when another one meets a long 418 stops with the
    ban too (it used to sleep the ban out inside the budget's wait, hours for a real ban)."""
    hits: list[float] = []
    ban = web.Response(status=418, headers={"Retry-After": "7200"})
    url = await serve_app(scripted([ban], hits))
    slow = RestPolicy(limit=2, window_s=2.0, safety=1.0, timeout_s=2.0, max_ban_wait_s=0.5)
    budget = RedisBudget(redis_url, "toy", 2, 2.0, burst=1)  # one request per second
    async with client(url, budget, slow) as first, client(url, budget, slow) as second:
        await budget.acquire(1)  # the bucket is empty: the next requests wait ~1 s for budget
        started = time.monotonic()
        # both wait in the budget; the one granted first meets the 418 (a 7,200 s ban), the
        # other is still waiting then, and stops
        outcomes = await asyncio.wait_for(
            asyncio.gather(first.get(PING), second.get(PING), return_exceptions=True), 5
        )
        assert time.monotonic() - started < 3.0  # not the 7,200 s of the ban
    assert all(isinstance(o, RateLimitError) and o.banned for o in outcomes)
    messages = sorted(str(o) for o in outcomes)
    assert "IP banned" in messages[0] and "paused for another" in messages[1], messages
    assert len(hits) == 1


async def test_used_weight_header_holds_requests_to_the_next_window(
    serve_app: Serve, redis_url: str
) -> None:
    hits: list[float] = []

    async def weighted(request: web.Request) -> web.Response:
        hits.append(time.time())
        # Somebody else on this IP already used 95 of the 100 weight of this window.
        return web.json_response({}, headers={"X-MBX-USED-WEIGHT-1M": "95"})

    app = web.Application()
    app.router.add_get("/ping", weighted)
    url = await serve_app(app)
    policy = POLICY.with_(limit=100, window_s=1.0, safety=1.0, weight_header="x-mbx-used-weight-1m")
    async with client(url, RedisBudget(redis_url, "toy", 100, 1.0), policy) as rest:
        await rest.get(RestRequest("/ping", {}, weight=10))
        await rest.get(RestRequest("/ping", {}, weight=10))
    assert rest.counters.weight_used == 95
    assert int(hits[1]) > int(hits[0])  # the second request waited for a fresh window


def counting_server(
    limit: int, window_s: float, log: dict[int, int], rejected: list[int], retry_after: str = "1"
) -> web.Application:
    """A server enforcing ``limit`` requests per fixed window, like Binance's weight counter."""

    async def handler(request: web.Request) -> web.Response:
        window = int(time.time() // window_s)
        log[window] = log.get(window, 0) + 1
        if log[window] > limit:
            rejected.append(window)
            return web.Response(status=429, headers={"Retry-After": retry_after})
        return web.json_response({"used": log[window]})

    app = web.Application()
    app.router.add_get("/ping", handler)
    return app


async def _hammer(clients: list[RestClient], per_client: int) -> None:
    await asyncio.gather(*(c.get(PING) for c in clients for _ in range(per_client)))


async def test_redis_budget_is_shared_and_never_exceeded(serve_app: Serve, redis_url: str) -> None:
    per_window: dict[int, int] = {}
    rejected: list[int] = []
    url = await serve_app(counting_server(10, 0.5, per_window, rejected))
    # 8 per window for tickvault, spread evenly: headroom for the time a request takes to arrive.
    policy = POLICY.with_(limit=10, window_s=0.5, safety=0.8)
    clients = [
        client(url, RedisBudget(redis_url, "toy", policy.budget, 0.5), policy) for _ in range(2)
    ]
    started = time.monotonic()
    await _hammer(clients, 12)
    elapsed = time.monotonic() - started
    for c in clients:
        await c.aclose()
    assert rejected == [] and sum(per_window.values()) == 24
    assert max(per_window.values()) <= 10
    # 24 requests at 8 per window (burst 1) take 2.9 windows.
    assert len(per_window) >= 3 and elapsed > 2.5 * 0.5


async def test_separate_local_budgets_would_exceed_the_limit(serve_app: Serve) -> None:
    # The contrast to the test above: two processes each with its own budget overrun the server.
    per_window: dict[int, int] = {}
    rejected: list[int] = []
    url = await serve_app(counting_server(10, 0.5, per_window, rejected, retry_after="0"))
    policy = POLICY.with_(limit=10, window_s=0.5, safety=0.8)
    clients = [client(url, LocalBudget("toy", policy.budget, 0.5), policy) for _ in range(2)]
    await _hammer(clients, 20)
    for c in clients:
        await c.aclose()
    assert rejected and max(per_window.values()) > 10
    assert sum(c.counters.rate_limited for c in clients) >= 1


async def test_successful_responses_are_captured(serve_app: Serve, tmp_path: Path) -> None:
    hits: list[float] = []
    url = await serve_app(scripted([web.Response(status=500)], hits))
    with CaptureWriter(tmp_path, compress=False) as capture:
        async with client(url, LocalBudget("toy", 1000, 1.0), capture=capture) as rest:
            await rest.get(PING)
            await rest.get(PING)
    records = list(read_captures(sorted(tmp_path.iterdir())))
    assert [(r.exchange, r.kind, r.raw) for r in records] == [("toy", "rest", '{"ok": true}')] * 2
    assert records[0].url == f"{url}/ping?n=1"
    assert rest.counters.captured == 2


@pytest.mark.parametrize("kind", ["redis", "local"])
async def test_a_weight_report_after_the_bucket_expired_is_taken(kind: str, redis_url: str) -> None:
    """Redis drops the bucket's key a second after its time. An answer that comes later (a slow
    exchange, a stalled process) still reports the weight used: a floor already past changes
    nothing. It used to be written with a negative expiry, which Redis refuses, so the request
    failed with a ResponseError (and a live book waiting for that snapshot stayed empty)."""
    # 1 weight a second over an hour, burst 1: with 0 used the floor is the hour's start + 1 s,
    # past except in the hour's first 2 s (the expiry went negative past start + 2 s).
    budget: RateBudget = (
        RedisBudget(redis_url, "toy", 3600, 3600.0, burst=1)
        if kind == "redis"
        else LocalBudget("toy", 3600, 3600.0, burst=1)
    )
    try:
        await budget.observe_used(0)  # no bucket state yet (expired, or never granted)
        assert await budget.try_acquire(1) == (True, 0.0)
        await budget.observe_used(3600)  # all used: nothing more until the hour ends
        granted, wait_s = await budget.try_acquire(1)
        assert not granted and wait_s > 0
    finally:
        await budget.close()


def test_gcra_spreads_weight_and_honours_the_reported_weight() -> None:
    from tickvault.exchanges.io.ratelimit import gcra, reported_tat

    # 10 weight per second (100 ms each), burst 2: two at once, then one every 100 ms.
    tat, now = 0, 1_000_000
    granted, tat = gcra(tat, now, 1, 100_000, 2)
    assert granted
    granted, tat = gcra(tat, now, 1, 100_000, 2)
    assert granted
    refused, wait_us = gcra(tat, now, 1, 100_000, 2)
    assert not refused and wait_us == 100_000
    assert gcra(0, now, 50, 100_000, 2)[0]  # heavier than the burst: granted when full
    # the exchange says 8 of 10 are used in the window ending at 2 s: 2 left, burst 2
    assert reported_tat(1_500_000, 1_000_000, 10, 2, 8, 100_000) == 2_000_000
