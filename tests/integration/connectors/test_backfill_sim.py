"""Backfill of every exchange against the simulator, into PostgreSQL: equal to the truth row by
row, resumable after an interruption, inside the rate limits."""

from __future__ import annotations

from decimal import Decimal

import pytest
from connector_kit import (
    ANCHOR_NS,
    EXCHANGES,
    SINCE_NS,
    HttpLog,
    count,
    open_store,
    rest_client,
    sim_config,
    stored_candles,
    stored_trades,
    truth_candles,
    truth_trades,
)

from tickvault.errors import ExchangeError
from tickvault.exchanges.base import get_adapter
from tickvault.exchanges.binance.adapter import BinanceAdapter
from tickvault.exchanges.io.backfill import Backfiller, TaskProgress
from tickvault.exchanges.io.counters import IoCounters
from tickvault.exchanges.io.instruments import fetch_instruments
from tickvault.exchanges.io.storage import StoreSink
from tickvault.exchanges.sim import Fault, Simulator

SYMBOLS = ["BTC-USDT", "ETH-USDT"]
KINDS = ["trades", "candles:1m"]


def adapter_for(exchange: str, page_limit: int = 500):  # type: ignore[no-untyped-def]
    # Binance pages of 500 so a 15-minute history takes a few pages (real default: 1000).
    return BinanceAdapter(page_limit=page_limit) if exchange == "binance" else get_adapter(exchange)


async def run_backfill(
    sim: Simulator,
    exchange: str,
    db_url: str,
    redis_url: str,
    *,
    counters: IoCounters | None = None,
    progress: list[TaskProgress] | None = None,
    on_page: object = None,
    http_log: HttpLog | None = None,
) -> list[TaskProgress]:
    adapter = adapter_for(exchange)
    store = await open_store(db_url)
    http = http_log.client() if http_log is not None else None
    try:
        async with rest_client(sim, exchange, redis_url, counters=counters, http=http) as rest:
            target = StoreSink(store)
            instruments = await fetch_instruments(adapter, rest, SYMBOLS, target)

            def report(p: TaskProgress) -> None:
                if progress is not None:
                    progress.append(p)
                if callable(on_page):
                    on_page(p)

            runner = Backfiller(
                adapter, rest, target, target, errors=target, progress=report, concurrency=2
            )
            return await runner.run(instruments, KINDS, SINCE_NS, ANCHOR_NS)
    finally:
        await store.close()
        if http is not None:
            await http.aclose()


def assert_equals_truth(sim: Simulator, exchange: str, db_url: str) -> None:
    for symbol in SYMBOLS:
        stored = stored_trades(db_url, exchange, symbol)
        truth = truth_trades(sim, exchange, symbol, SINCE_NS, ANCHOR_NS)
        assert len(truth) > 1000
        assert stored == truth
        candles = stored_candles(db_url, exchange, symbol, "1m")
        expected = truth_candles(sim, exchange, symbol, "1m", SINCE_NS, ANCHOR_NS)
        assert len(expected) == 15
        if exchange == "coinbase":  # Coinbase candles carry no trade count
            expected = [(*c[:6], None, c[7]) for c in expected]
        if exchange == "kraken":
            # Kraken candles are built from the trades (OHLC serves only the latest 720 bars):
            # the newest bar cannot be known closed before a later trade shows up.
            assert [c[:7] for c in candles] == [c[:7] for c in expected]
            assert all(c[7] for c in candles[:-1])
        else:
            assert candles == expected


@pytest.mark.parametrize("exchange", EXCHANGES)
async def test_backfill_equals_truth_and_stores_instruments(
    exchange: str, db_url: str, redis_url: str
) -> None:
    counters = IoCounters()
    async with Simulator(sim_config(symbols=SYMBOLS, exchanges=(exchange,))) as sim:
        results = await run_backfill(sim, exchange, db_url, redis_url, counters=counters)
        assert_equals_truth(sim, exchange, db_url)
        venue_limits = sim.venues[exchange].stats()
    assert {(r.symbol, r.kind, r.done) for r in results} == {
        (s, k, True) for s in SYMBOLS for k in KINDS
    }
    # instruments: every listed market, with precision, mapped to canonical symbols
    with_precision = count(
        db_url,
        "SELECT count(*) FROM instruments WHERE exchange = %s AND symbol = ANY(%s)"
        " AND tick_size IS NOT NULL AND lot_size IS NOT NULL",
        exchange,
        SYMBOLS,
    )
    assert with_precision == 2
    tick = count(
        db_url,
        "SELECT count(*) FROM instruments WHERE exchange = %s AND symbol = 'BTC-USDT'"
        " AND tick_size = %s",
        exchange,
        Decimal("0.1") if exchange == "kraken" else Decimal("0.01"),
    )
    assert tick == 1
    checkpoints = count(
        db_url, "SELECT count(*) FROM ingest_checkpoints WHERE exchange = %s AND done", exchange
    )
    assert checkpoints == len(SYMBOLS) * len(KINDS)
    # inside the limits: nothing refused, nothing banned
    assert counters.rate_limited == counters.bans == 0, (counters, venue_limits)
    assert 429 not in counters.rest_status and 418 not in counters.rest_status


@pytest.mark.parametrize("exchange", EXCHANGES)
async def test_interrupted_backfill_resumes_to_the_same_rows(
    exchange: str, db_url: str, redis_url: str
) -> None:
    async with Simulator(sim_config(symbols=SYMBOLS, exchanges=(exchange,))) as sim:
        armed: list[int] = []

        def break_after_first_trades_page(p: TaskProgress) -> None:
            if p.kind == "trades" and p.pages == 1 and not armed:
                # the next REST answer is cut in half: the run stops with an error mid-range
                sim.inject(Fault(exchange, "malformed_json", scope="rest", count=1))
                armed.append(1)

        first: list[TaskProgress] = []
        with pytest.raises(ExchangeError):
            await run_backfill(
                sim,
                exchange,
                db_url,
                redis_url,
                progress=first,
                on_page=break_after_first_trades_page,
            )
        assert armed
        done_before = count(db_url, "SELECT count(*) FROM ingest_checkpoints WHERE done")
        resumed_reports: list[TaskProgress] = []
        await run_backfill(sim, exchange, db_url, redis_url, progress=resumed_reports)
        assert_equals_truth(sim, exchange, db_url)
    # one stream stopped midway (the others finished: streams fail independently) and the
    # second run picked it up from its checkpoint, skipping the completed ones
    assert done_before < len(SYMBOLS) * len(KINDS)
    assert any(r.resumed and not r.skipped and r.pages > 0 for r in resumed_reports)
    assert sum(1 for r in resumed_reports if r.skipped) == done_before
