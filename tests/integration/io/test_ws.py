"""WebSocket sessions against a loopback aiohttp exchange that drops, goes silent, expires."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from aiohttp import web
from io_testkit import MS, ToyAdapter, ToyExchangeServer, instrument

from conftest import Serve
from tickvault.exchanges.base import FeedOutput
from tickvault.exchanges.capture import CaptureWriter, read_captures
from tickvault.exchanges.io.counters import IoCounters
from tickvault.exchanges.io.policy import RestPolicy, WsPolicy
from tickvault.exchanges.io.ratelimit import LocalBudget
from tickvault.exchanges.io.rest import RestClient
from tickvault.exchanges.io.ws import WsSession
from tickvault.model import BookSnapshot, Trade

POLICY = WsPolicy(
    max_streams_per_connection=100,
    silence_timeout_s=2.0,
    reconnect_base_s=0.05,
    reconnect_cap_s=0.2,
    ping_interval_s=None,
)
SYMBOLS = ["AAA-USD", "BBB-USD"]


class Recorder:
    def __init__(self) -> None:
        self.outputs: list[FeedOutput] = []

    async def __call__(self, out: FeedOutput) -> None:
        self.outputs.append(out)

    def trades(self, symbol: str) -> list[Trade]:
        return [
            e for o in self.outputs for e in o.events if isinstance(e, Trade) and e.symbol == symbol
        ]

    def ids(self, symbol: str) -> list[int]:
        return [int(t.trade_id) for t in self.trades(symbol)]

    @property
    def gaps(self) -> list[object]:
        return [g for o in self.outputs for g in o.gaps]


async def ws_url(serve_app: Serve, server: ToyExchangeServer) -> str:
    return (await serve_app(server.app())).replace("http://", "ws://")


def session(url: str, recorder: Recorder, policy: WsPolicy = POLICY, **kw: object) -> WsSession:
    kw.setdefault("adapter", ToyAdapter())
    adapter = kw.pop("adapter")
    return WsSession(
        adapter,  # type: ignore[arg-type]
        [instrument(s) for s in SYMBOLS],
        ["trades"],
        base_url=url,
        policy=policy,
        emit=recorder,
        counters=IoCounters(),
        rng=random.Random(3),
        **kw,  # type: ignore[arg-type]
    )


async def run_until(ws: WsSession, done: Callable[[], bool], timeout_s: float = 5.0) -> None:
    task = asyncio.create_task(ws.run())
    deadline = time.monotonic() + timeout_s
    while not done():
        assert time.monotonic() < deadline, "condition not reached in time"
        assert not task.done(), task.exception()
        await asyncio.sleep(0.01)
    ws.stop()
    await asyncio.wait_for(task, 3.0)


async def test_dropped_connection_reconnects_and_records_the_outage(serve_app: Serve) -> None:
    server = ToyExchangeServer(drop_after=5)
    recorder = Recorder()
    ws = session(await ws_url(serve_app, server), recorder)
    await run_until(ws, lambda: len(server.opened) == 2 and len(recorder.ids("AAA-USD")) >= 12)
    assert ws.counters.ws_reconnects == 1 and ws.counters.ws_connects == 2
    gaps = recorder.gaps
    assert sorted(g.symbol for g in gaps) == SYMBOLS and ws.counters.gaps == 2  # type: ignore[attr-defined]
    for symbol in SYMBOLS:
        ids = recorder.ids(symbol)
        assert ids == sorted(set(ids))  # nothing twice, in order
        gap = next(g for g in gaps if g.symbol == symbol)  # type: ignore[attr-defined]
        before = [t for t in recorder.trades(symbol) if t.ts_ns <= gap.from_ns]
        assert before and gap.from_ns == before[-1].ts_ns  # the last trade seen before the drop
        # Every trade the exchange made but we never received lies inside the gap.
        missing = set(range(ids[0], ids[-1])) - set(ids)
        assert missing
        for trade_id in missing:
            assert gap.from_ns <= server.tick_ts_ms[trade_id] * MS <= gap.to_ns
    # the subscription was sent again on the new connection
    assert [json.loads(m)["op"] for m in server.received].count("subscribe") == 2


async def test_silent_feed_is_detected_by_the_watchdog(serve_app: Serve) -> None:
    server = ToyExchangeServer(silent_after=3)
    recorder = Recorder()
    policy = POLICY.with_(silence_timeout_s=0.3)
    ws = session(await ws_url(serve_app, server), recorder, policy)
    await run_until(ws, lambda: len(server.opened) == 2 and len(recorder.ids("AAA-USD")) >= 8)
    assert ws.counters.ws_silences == 1 and ws.counters.ws_reconnects == 1
    assert server.closed[0] is not None  # we closed the silent socket
    for gap in recorder.gaps:
        assert gap.to_ns - gap.from_ns >= 0.3e9  # type: ignore[attr-defined]


async def test_rollover_opens_the_new_connection_before_the_old_one_closes(
    serve_app: Serve,
) -> None:
    # The server closes every socket after 1.2 s (Binance: 24 h); we replace ours after 0.5 s.
    server = ToyExchangeServer(lifetime_s=1.2)
    recorder = Recorder()
    policy = POLICY.with_(max_lifetime_s=0.5, overlap_timeout_s=1.0)
    ws = session(await ws_url(serve_app, server), recorder, policy)
    await run_until(ws, lambda: len(server.opened) >= 3, timeout_s=4.0)
    assert ws.counters.ws_rollovers >= 2 and ws.counters.ws_reconnects == 0
    assert recorder.gaps == []
    closed_first = server.closed[0]
    assert closed_first is not None
    assert server.opened[1] < closed_first  # overlap: both were open at once
    assert closed_first - server.opened[0] < 1.2  # closed by us, before the server's limit
    for symbol in SYMBOLS:
        ids = recorder.ids(symbol)
        assert set(ids) == set(range(ids[0], ids[-1] + 1))  # no hole across the rollovers


async def test_rest_resync_fetches_a_snapshot_through_the_budget(serve_app: Serve) -> None:
    server = ToyExchangeServer(resync_after=2)
    ws, rest, adapter, snapshots = await _resync_until_snapshot(
        serve_app, server, RestPolicy(limit=100, window_s=1.0)
    )
    assert server.depth_requests == ["AAAUSD"]
    assert ws.counters.resyncs_rest == 1 and rest.counters.weight_requested == 5
    assert snapshots[0].symbol == "AAA-USD" and adapter.feeds[0].snapshots == ["AAA-USD"]


async def _resync_until_snapshot(
    serve_app: Serve, server: ToyExchangeServer, rest_policy: RestPolicy
) -> tuple[WsSession, RestClient, ToyAdapter, list[BookSnapshot]]:
    """A session on ``server`` whose book resyncs over REST, run until a snapshot came out."""
    recorder = Recorder()
    base = await serve_app(server.app())
    budget = LocalBudget("toy", 100, 1.0)
    async with RestClient("toy", base, budget, rest_policy, counters=IoCounters()) as rest:
        adapter = ToyAdapter(rest_resync=True)
        ws = session(base.replace("http://", "ws://"), recorder, rest=rest, adapter=adapter)

        def snapshots() -> list[BookSnapshot]:
            return [e for o in recorder.outputs for e in o.events if isinstance(e, BookSnapshot)]

        await run_until(ws, lambda: bool(snapshots()))
    return ws, rest, adapter, snapshots()


@pytest.mark.parametrize(
    ("errors", "failures"),
    [([(418, {"Retry-After": "1"})], 1), ([(503, {})] * 2, 1)],
    ids=["ban-longer-than-the-client-waits", "5xx-past-max-retries"],
)
async def test_a_failed_snapshot_is_asked_for_again(
    serve_app: Serve, errors: list[tuple[int, dict[str, str]]], failures: int
) -> None:
    """The feed asks for a snapshot once and waits for it: a request that fails for good (a ban
    longer than ``max_ban_wait_s``, 5xx past ``max_retries``) is asked again, after the ban,
    instead of leaving the book empty for the socket's life."""
    server = ToyExchangeServer(resync_after=2, depth_errors=errors)
    rest_policy = RestPolicy(
        limit=100, window_s=1.0, max_retries=1, backoff_base_s=0.02, backoff_cap_s=0.05,
        max_ban_wait_s=0.5,
    )  # fmt: skip
    ws, _, adapter, _ = await _resync_until_snapshot(serve_app, server, rest_policy)
    assert server.depth_requests == ["AAAUSD"] * (len(errors) + 1)
    assert ws.counters.resync_failures == failures and ws.counters.resyncs_rest == 1
    assert adapter.feeds[0].snapshots == ["AAA-USD"]
    if errors[0][0] == 418:  # asked again once the ban (Retry-After: 1) was over, not before
        assert server.depth_times[-1] - server.depth_times[0] >= 1.0


async def test_socket_resync_sends_the_adapters_messages(serve_app: Serve) -> None:
    server = ToyExchangeServer(resync_after=2)
    recorder = Recorder()
    ws = session(await ws_url(serve_app, server), recorder, adapter=ToyAdapter(rest_resync=False))
    wanted = json.dumps({"op": "resync", "symbol": "AAA-USD"})
    await run_until(ws, lambda: wanted in server.received)
    assert ws.counters.resyncs_ws == 1 and server.depth_requests == []


async def test_pings_are_answered_and_application_pings_sent(serve_app: Serve) -> None:
    server = ToyExchangeServer(server_ping=b"tv-ping")
    recorder = Recorder()
    policy = POLICY.with_(app_ping_message='{"op":"ping"}', app_ping_interval_s=0.1)
    ws = session(await ws_url(serve_app, server), recorder, policy)
    await run_until(ws, lambda: server.received.count('{"op":"ping"}') >= 2 and bool(server.pongs))
    assert server.pongs == [b"tv-ping"]  # the server's ping frame got its pong, same payload
    assert json.loads(server.received[0])["op"] == "subscribe"


async def test_every_message_is_captured(serve_app: Serve, tmp_path: Path) -> None:
    server = ToyExchangeServer()
    recorder = Recorder()
    url = await ws_url(serve_app, server)
    with CaptureWriter(tmp_path, compress=True) as capture:
        ws = session(url, recorder, capture=capture)
        await run_until(ws, lambda: len(recorder.ids("BBB-USD")) >= 5)
    records = list(read_captures(sorted(tmp_path.iterdir())))
    assert len(records) == ws.counters.ws_messages == ws.counters.captured
    assert all(r.kind == "ws" and r.url.startswith(f"{url}/ws?symbols=") for r in records)
    assert [json.loads(r.raw)["id"] for r in records if '"BBB-USD"' in r.raw] == recorder.ids(
        "BBB-USD"
    )


class SlowRecorder(Recorder):
    """Each message costs 1 ms of blocking work, as decoding a large one does."""

    async def __call__(self, out: FeedOutput) -> None:
        time.sleep(0.001)
        self.outputs.append(out)


async def test_a_backlog_of_messages_does_not_hold_the_loop(serve_app: Serve) -> None:
    """After a stall the socket holds many messages and ``recv`` hands them over without
    suspending: the reader gives the loop back every few ms instead of working through the
    whole backlog in one go (the stages and writers, and every message's latency, waited)."""
    burst = 400

    async def burst_then_wait(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.receive()  # the subscription
        for i in range(burst):  # in the socket at once: one read on the client's side
            await ws.send_str(json.dumps({"s": "AAA-USD", "id": i, "ts": 1, "p": "1", "q": "1"}))
        async for _ in ws:  # until the client closes
            pass
        return ws

    app = web.Application()
    app.router.add_get("/ws", burst_then_wait)
    url = (await serve_app(app)).replace("http://", "ws://")
    gaps: list[float] = []

    async def watch() -> None:
        while True:
            before = time.perf_counter()
            await asyncio.sleep(0)
            gaps.append(time.perf_counter() - before)

    recorder = SlowRecorder()
    watcher = asyncio.create_task(watch())
    try:
        await run_until(session(url, recorder), lambda: len(recorder.outputs) >= burst, 10.0)
    finally:
        watcher.cancel()
    assert recorder.ids("AAA-USD") == list(range(burst))  # all of it, in order
    assert max(gaps) < 0.1  # the whole backlog takes 0.4 s; slices of ~5 ms
