"""The restart rule on every channel: after a runner died and came back, the downtime is a gap on
trades, on the exchange's candles (both refetched from the simulator's REST history, bar for bar)
and on the book and ticker (recorded, marked unrepairable with the reason, never retried).

The two sessions are written the way a runner writes them (REST-decoded events, stored with
their receive times before and after the second session began), so the hole spans whole
minutes without a test that waits for minutes. Real PostgreSQL and loopback sockets."""

from __future__ import annotations

import time
from decimal import Decimal

import psycopg
import pytest
from e2e_kit import SYMBOL, ns

from tickvault.config import RepairSettings, Settings
from tickvault.exchanges.base import get_adapter
from tickvault.exchanges.io import LocalBudget, RestClient, rest_policy
from tickvault.exchanges.io.backfill import Backfiller
from tickvault.exchanges.io.instruments import fetch_instruments
from tickvault.exchanges.io.storage import StoreSink
from tickvault.exchanges.sim import SimConfig, Simulator
from tickvault.model import NS_PER_S, BookSnapshot, Ticker
from tickvault.runner.gapscan import GapScanner
from tickvault.runner.repair import GapRepairer, RestSource
from tickvault.storage.postgres import PostgresStore
from tickvault.storage.postgres.schema import init_database

pytestmark = [pytest.mark.postgres]
MINUTE_NS = 60 * NS_PER_S
CHANNELS = ["trades", "candles", "book", "ticker"]


def _book(ts_ns: int) -> BookSnapshot:
    level = ((Decimal("100.5"), Decimal("1")),)
    return BookSnapshot("binance", SYMBOL, level, ((Decimal("100.6"), Decimal("2")),), ts_ns,
                        time.time_ns(), 7)  # fmt: skip


def _ticker(ts_ns: int) -> Ticker:
    return Ticker("binance", SYMBOL, ts_ns, time.time_ns(), Decimal("100.5"), Decimal("1"))


async def test_restart_holes_on_every_channel(database_url: str) -> None:
    settings = Settings(
        database_url=database_url,
        timeframes=["1m"],
        repair=RepairSettings(candle_scan_timeframe=None),  # the restart rule alone
    )
    init_database(database_url, settings.timescale)
    config = SimConfig(symbols=[SYMBOL], exchanges=("binance",), rate=0, history_s=600)
    async with Simulator(config) as sim:
        anchor = sim.anchor_us * 1000  # end of the REST history, a whole minute
        adapter = get_adapter("binance")
        policy = rest_policy("binance")
        budget = LocalBudget("binance", policy.budget, policy.window_s)
        rest_url = sim.endpoints["binance"].rest_url
        async with (
            await PostgresStore.open(database_url) as store,
            RestClient("binance", rest_url, budget, policy) as rest,
        ):
            instruments = await fetch_instruments(adapter, rest, [SYMBOL])
            sink = StoreSink(store)

            async def collect(since_ns: int, until_ns: int) -> None:
                backfiller = Backfiller(adapter, rest, sink, sink, fresh=True)
                await backfiller.run(instruments, ["trades", "candles:1m"], since_ns, until_ns)
                edges = (since_ns + NS_PER_S, until_ns - NS_PER_S)
                await store.write([*map(_book, edges), *map(_ticker, edges)])
                await store.flush()

            # The first runner, killed at anchor - 5 min; the second, collecting from - 2 min.
            await collect(anchor - 8 * MINUTE_NS, anchor - 5 * MINUTE_NS)
            session_start_ns = time.time_ns()
            await collect(anchor - 2 * MINUTE_NS, anchor)

            scanner = GapScanner(store, settings, [("binance", SYMBOL, CHANNELS)], session_start_ns)
            found = await scanner.scan(time.time_ns())
            assert await scanner.scan(time.time_ns()) == []  # each hole is recorded once
            spans = {g.channel: (g.from_ns, g.to_ns, g.reason) for g in found}
            assert set(spans) == set(CHANNELS)
            assert spans["candles"] == (anchor - 6 * MINUTE_NS, anchor - 2 * MINUTE_NS,
                                        "disconnect")  # fmt: skip
            assert spans["book"][:2] == spans["ticker"][:2] == (
                anchor - 5 * MINUTE_NS - NS_PER_S, anchor - 2 * MINUTE_NS + NS_PER_S
            )  # fmt: skip
            t_from, t_to, _ = spans["trades"]
            assert anchor - 6 * MINUTE_NS <= t_from < anchor - 5 * MINUTE_NS
            assert anchor - 2 * MINUTE_NS <= t_to < anchor - MINUTE_NS

            # Book and ticker: recorded already unrepairable, with the reason.
            gaps = {g.channel: g for g in await store.list_gaps("binance")}
            for channel in ("book", "ticker"):
                assert gaps[channel].status == "unrepairable"
                assert "not served over REST" in (gaps[channel].detail or "")
            assert gaps["trades"].status == gaps["candles"].status == "open"

            sources = {"binance": RestSource(adapter, rest, {i.symbol: i for i in instruments})}
            repairer = GapRepairer(store, sources, settings.repair, settings.timeframes)
            pending = await repairer.pending("binance")
            assert sorted(g.channel for g in pending) == ["candles", "trades"]
            results = [await repairer.repair(g) for g in pending]
            assert [r.status for r in results] == ["repaired", "repaired"], results

        with psycopg.connect(database_url) as conn:
            rows = conn.execute(
                "SELECT ts, open, high, low, close, volume, closed FROM candles WHERE"
                " exchange = 'binance' AND timeframe = '1m' AND source = 'exchange' ORDER BY ts"
            ).fetchall()
            trade_ids = [r[0] for r in conn.execute(
                "SELECT trade_id FROM trades WHERE exchange = 'binance' ORDER BY ts, trade_id::numeric"
            ).fetchall()]  # fmt: skip
            statuses = dict(
                conn.execute("SELECT channel, status FROM gaps WHERE exchange = 'binance'")
            )
        truth = sim.truth_candles("binance", SYMBOL, "1m", anchor - 8 * MINUTE_NS, anchor)
        # Every minute of the 8 is stored once, as the exchange serves it: the 3 of the downtime
        # came back from REST.
        assert [(ns(r[0]), *r[1:]) for r in rows] == [
            (b["open_ns"], Decimal(b["open"]), Decimal(b["high"]), Decimal(b["low"]),
             Decimal(b["close"]), Decimal(b["volume"]), b["closed"])
            for b in truth
        ]  # fmt: skip
        assert len(rows) == 8
        market = sim.market("binance", SYMBOL)
        wire = [str(t.agg_id) for t in market.trades
                if anchor - 8 * MINUTE_NS <= t.ts_us * 1000 < anchor]  # fmt: skip
        assert trade_ids == wire  # the trades of the downtime too, none twice
        assert statuses == {"trades": "repaired", "candles": "repaired",
                            "book": "unrepairable", "ticker": "unrepairable"}  # fmt: skip
