"""Collector: streams split over connections, a bounded queue with counted backpressure."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from io_testkit import ToyAdapter, ToyExchangeServer, instrument

from conftest import Serve
from tickvault.exchanges.io.collector import Collector, plan_connections
from tickvault.exchanges.io.counters import IoCounters
from tickvault.exchanges.io.policy import WsPolicy
from tickvault.exchanges.io.sinks import Sinks
from tickvault.exchanges.io.stores import MemorySink
from tickvault.model import MarketEvent, Trade

POLICY = WsPolicy(
    max_streams_per_connection=2,
    silence_timeout_s=2.0,
    reconnect_base_s=0.05,
    reconnect_cap_s=0.2,
    ping_interval_s=None,
)
SYMBOLS = ["AAA-USD", "BBB-USD", "CCC-USD", "DDD-USD", "EEE-USD"]


class SlowSink(MemorySink):
    """A store that takes 30 ms per batch: the queue fills up behind it."""

    async def write(self, events: Sequence[MarketEvent]) -> None:
        await asyncio.sleep(0.03)
        await super().write(events)


def ids(sink: MemorySink, symbol: str) -> list[int]:
    return [int(e.trade_id) for e in sink.written if isinstance(e, Trade) and e.symbol == symbol]


async def run_for(collector: Collector, done: object, timeout_s: float = 5.0) -> None:
    task = asyncio.create_task(collector.run())
    deadline = time.monotonic() + timeout_s
    while not done():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not reached in time"
        assert not task.done(), task.exception()
        await asyncio.sleep(0.01)
    collector.stop()
    await asyncio.wait_for(task, 5.0)


def test_plan_connections_respects_the_stream_limit() -> None:
    instruments = [instrument(s) for s in SYMBOLS]
    plan = plan_connections(instruments, ["trades", "book"], 4)
    assert [[i.symbol for i in group] for group in plan] == [
        SYMBOLS[0:2],
        SYMBOLS[2:4],
        SYMBOLS[4:],
    ]
    assert len(plan_connections(instruments, ["trades", "book", "ticker"], 2)) == 5  # >= 1 each


async def test_symbols_are_spread_over_connections(serve_app: Serve) -> None:
    server = ToyExchangeServer(symbols=SYMBOLS)
    sink = MemorySink()
    url = (await serve_app(server.app())).replace("http://", "ws://")
    collector = Collector(
        ToyAdapter(),
        [instrument(s) for s in SYMBOLS],
        ["trades"],
        Sinks(sink, sink, sink),
        base_url=url,
        policy=POLICY,
        counters=IoCounters(),
    )
    await run_for(collector, lambda: all(len(ids(sink, s)) >= 5 for s in SYMBOLS))
    assert sorted(map(tuple, server.connection_symbols)) == [
        ("AAA-USD", "BBB-USD"),
        ("CCC-USD", "DDD-USD"),
        ("EEE-USD",),
    ]
    assert collector.counters.ws_connects == 3
    assert collector.counters.events_out == len(sink.written)
    assert sink.flushes >= 1  # flushed on stop


async def test_slow_sink_backpressure_is_bounded_counted_and_lossless(serve_app: Serve) -> None:
    server = ToyExchangeServer(symbols=SYMBOLS[:2], interval_s=0.005)
    sink = SlowSink()
    url = (await serve_app(server.app())).replace("http://", "ws://")
    collector = Collector(
        ToyAdapter(),
        [instrument(s) for s in SYMBOLS[:2]],
        ["trades"],
        Sinks(sink, sink, sink),
        base_url=url,
        policy=POLICY,
        queue_size=4,
        counters=IoCounters(),
    )
    await run_for(
        collector, lambda: collector.counters.queue_waits >= 5 and len(ids(sink, "AAA-USD")) >= 20
    )
    counters = collector.counters
    assert counters.queue_depth_max <= 4 and counters.queue_wait_s > 0
    assert counters.ws_reconnects == 0
    for symbol in SYMBOLS[:2]:
        got = ids(sink, symbol)
        assert got == list(range(got[0], got[0] + len(got)))  # every message, in order
    # what was queued when we stopped was drained into the sink, not dropped
    assert counters.events_out == len(sink.written) == counters.ws_messages


async def test_gaps_reach_the_gap_sink(serve_app: Serve) -> None:
    server = ToyExchangeServer(symbols=SYMBOLS[:2], drop_after=3)
    sink = MemorySink()
    url = (await serve_app(server.app())).replace("http://", "ws://")
    collector = Collector(
        ToyAdapter(),
        [instrument(s) for s in SYMBOLS[:2]],
        ["trades"],
        Sinks(sink, sink, sink),
        base_url=url,
        policy=POLICY,
        counters=IoCounters(),
    )
    await run_for(collector, lambda: len(sink.gaps) == 2 and len(ids(sink, "AAA-USD")) >= 8)
    assert {(g.symbol, g.channel, g.reason) for g in sink.gaps} == {
        ("AAA-USD", "trades", "disconnect"),
        ("BBB-USD", "trades", "disconnect"),
    }
    assert collector.counters.gaps == 2 and collector.counters.ws_reconnects == 1
