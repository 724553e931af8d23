"""Running a live collector (Collector + WsSession + the real adapter) against the simulator,
with its trades, gaps and decode errors written through the PostgreSQL store."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from decimal import Decimal

from connector_kit import open_store, rest_client, sim_ws_policy, stored_trades, truth_trades

from tickvault.exchanges.base import get_adapter
from tickvault.exchanges.io.collector import Collector
from tickvault.exchanges.io.counters import IoCounters
from tickvault.exchanges.io.instruments import fetch_instruments
from tickvault.exchanges.io.policy import WsPolicy
from tickvault.exchanges.io.rest import RestClient
from tickvault.exchanges.io.storage import StoreSink
from tickvault.exchanges.sim import Simulator
from tickvault.model import Trade
from tickvault.storage.postgres import PostgresStore

SYMBOL = "BTC-USDT"
CHANNELS = ["trades", "book"]
BOOK_DEPTH = 10


@dataclass
class Live:
    sim: Simulator
    exchange: str
    collector: Collector
    store: PostgresStore
    sink: StoreSink
    rest: RestClient
    counters: IoCounters
    task: asyncio.Task[None]
    errors: list[BaseException] = field(default_factory=list)

    async def wait_for(self, check: Callable[[], bool], timeout_s: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.task.done():
                self.task.result()  # a crash fails the test here, with its traceback
            if check():
                return True
            await asyncio.sleep(0.05)
        return check()

    def book(self) -> tuple[list[tuple[Decimal, Decimal]], list[tuple[Decimal, Decimal]]]:
        bids, asks = self.collector.books().get(SYMBOL, ([], []))
        return (
            [(Decimal(p), Decimal(q)) for p, q in bids],
            [(Decimal(p), Decimal(q)) for p, q in asks],
        )

    def truth_book(self, depth: int | None) -> tuple[list[tuple[Decimal, Decimal]], ...]:
        truth = self.sim.truth_book(self.exchange, SYMBOL)
        return tuple(
            [(Decimal(p), Decimal(q)) for p, q in truth[side]][:depth] for side in ("bids", "asks")
        )

    def book_matches(self, depth: int | None) -> bool:
        bids, asks = self.book()
        truth_bids, truth_asks = self.truth_book(depth)
        return bool(bids) and (bids[:depth], asks[:depth]) == (truth_bids, truth_asks)


@contextlib.asynccontextmanager
async def live_collector(
    exchange: str, db_url: str, redis_url: str, *, rate: float = 1500.0, **ws: object
) -> AsyncIterator[Live]:
    from connector_kit import sim_config

    config = sim_config(exchanges=(exchange,), rate=rate, anchor_ns=None, history_s=60)
    counters = IoCounters()
    async with Simulator(config) as sim:
        store = await open_store(db_url, batch_rows=2000)
        sink = StoreSink(store, kinds=(Trade,))
        rest = rest_client(sim, exchange, redis_url, counters=counters)
        adapter = get_adapter(exchange)
        instruments = await fetch_instruments(adapter, rest, [SYMBOL], sink)
        policy: WsPolicy = sim_ws_policy(exchange, **ws)
        collector = Collector(
            adapter, instruments, CHANNELS, sink.sinks(), base_url=sim.endpoints[exchange].ws_url,
            policy=policy, book_depth=BOOK_DEPTH, rest=rest, counters=counters,
        )  # fmt: skip
        task = asyncio.create_task(collector.run())
        live = Live(sim, exchange, collector, store, sink, rest, counters, task)
        try:
            yield live
        finally:
            collector.stop()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(task), 10)
            await rest.aclose()
            await rest.budget.close()
            await store.close()


async def stop(live: Live) -> None:
    """Stop generating, stop the collector (it drains and flushes), re-raise a crash."""
    live.sim.rate = 0.0
    live.collector.stop()
    await asyncio.wait_for(live.task, 10)


def check_stored_trades(
    live: Live, db_url: str, gaps: list[tuple[int, int]], quarantined_ns: list[int] = ()
) -> dict[str, int]:
    """No trade twice, every stored trade exactly as generated, and every generated trade in the
    collected span stored, unless a recorded gap covers its time or the message carrying it was
    quarantined (a cut-off message is a decode error: kept, counted, not a gap)."""
    stored = stored_trades(db_url, live.exchange, SYMBOL)
    assert stored, "no trade reached storage"
    ids = [row[0] for row in stored]
    assert len(ids) == len(set(ids)), "a trade was stored twice"
    published = truth_trades(
        live.sim, live.exchange, SYMBOL, stored[0][1], stored[-1][1] + 1, published_order=True
    )
    assert set(stored) <= set(published), set(stored) - set(published)
    # The collected span runs from the first to the last stored trade in the order the venue
    # published them, not by time: trades sharing the first (or last) stored trade's millisecond
    # but published before the first subscription (or after the stop) were never on a socket.
    stored_set = set(stored)
    at = [i for i, t in enumerate(published) if t in stored_set]
    truth = published[at[0] : at[-1] + 1]
    missing = [t for t in truth if t not in stored_set]
    in_gap = [t for t in missing if any(lo <= t[1] <= hi for lo, hi in gaps)]
    # a quarantined message arrived shortly after the trades it carried were generated
    in_quarantine = [
        t
        for t in missing
        if t not in in_gap and any(0 <= q - t[1] < 500_000_000 for q in quarantined_ns)
    ]
    lost = len(missing) - len(in_gap) - len(in_quarantine)
    assert lost == 0, f"{lost} trades lost outside any recorded gap or quarantined message"
    return {"stored": len(stored), "in_gaps": len(in_gap), "in_quarantine": len(in_quarantine)}
