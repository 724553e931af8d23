"""Backfill of every exchange against the simulator, into PostgreSQL: equal to the truth row by
row, resumable after an interruption, inside the rate limits."""

from __future__ import annotations

import pytest
from connector_kit import (
    EXCHANGES,
    KINDS,
    SYMBOLS,
    assert_equals_truth,
    count,
    run_backfill,
    sim_config,
)

from tickvault.errors import ExchangeError
from tickvault.exchanges.io.backfill import TaskProgress
from tickvault.exchanges.io.counters import IoCounters
from tickvault.exchanges.sim import Fault, Simulator


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
        " AND tick_size = %s::numeric",
        exchange,
        "0.1" if exchange == "kraken" else "0.01",
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
