"""The generator's steps and batches: every step's trades go to the venues at once
(``Venue.on_step``), the book and statistics channels get one merged update per ``batch_s``
(``Venue.on_batch``) holding every trade and change of the steps since, in order, with
continuous update ids."""

from __future__ import annotations

import pytest

from tickvault.errors import UsageError
from tickvault.exchanges.sim.market import Market, SimTrade, Tick
from tickvault.exchanges.sim.simulator import VENUES, Simulator
from tickvault.exchanges.sim.spec import SimConfig

ANCHOR_NS = 1_767_225_600_000_000_000
STEP_US = 5_000


class _Recorded:
    """What a venue was handed, as (ids of the trades, changes, first id, last id, ts)."""

    def __init__(self) -> None:
        self.steps: list[tuple[list[int], list[tuple[bool, int, int]], int, int, int]] = []
        self.batches: list[tuple[list[int], list[tuple[bool, int, int]], int, int, int]] = []

    @staticmethod
    def copy(tick: Tick) -> tuple[list[int], list[tuple[bool, int, int]], int, int, int]:
        # copies: the simulator merges later steps into the first step's Tick
        ids = [t.trade_id for t in tick.trades]
        return ids, list(tick.changes), tick.first_update_id, tick.last_update_id, tick.ts_us


def _simulator(
    tick_s: float, batch_s: float, stamps: str = "send"
) -> tuple[Simulator, dict[str, _Recorded]]:
    config = SimConfig(symbols=["BTC-USDT"], exchanges=("binance", "kraken"), rate=20_000.0,
                       history_s=60, anchor_ns=ANCHOR_NS, tick_s=tick_s, batch_s=batch_s,
                       trade_stamps=stamps)  # fmt: skip
    sim = Simulator(config)
    sim._build_markets()
    recorded: dict[str, _Recorded] = {}
    for exchange in config.exchanges:
        venue = sim.venues[exchange] = VENUES[exchange](sim)
        rec = recorded[exchange] = _Recorded()

        def on_step(market: Market, tick: Tick, rec: _Recorded = rec) -> None:
            rec.steps.append(rec.copy(tick))

        def on_batch(market: Market, tick: Tick, rec: _Recorded = rec) -> None:
            rec.batches.append(rec.copy(tick))

        venue.on_step = on_step  # type: ignore[method-assign]
        venue.on_batch = on_batch  # type: ignore[method-assign]
    return sim, recorded


@pytest.mark.parametrize("stamps", ["send", "spread"])
def test_trades_every_step_books_every_batch(stamps: str) -> None:
    sim, recorded = _simulator(0.005, 0.02, stamps)
    start = ANCHOR_NS // 1000
    ends = [start + STEP_US * (i + 1) for i in range(17)]  # 85 ms of 5 ms steps
    previous = start
    for end in ends:
        sim.step(previous, end)
        previous = end
    for exchange, rec in recorded.items():
        market = sim.markets[exchange]["BTC-USDT"]
        assert len(rec.steps) == 17, exchange  # 20 000 ev/s over 2 markets: events every step
        # each step's trades are handed over at its end, stamped then ("send": µs venues
        # count up from it, so no two trades tie) or across the step ("spread")
        trades: dict[int, SimTrade] = {t.trade_id: t for t in market.trades}
        for (ids, _, _, _, ts_us), end in zip(rec.steps, ends, strict=True):
            assert ids and ts_us == end
            stamped = [trades[i].ts_us for i in ids]
            if stamps == "spread":
                assert all(end - STEP_US - 1000 < ts <= end for ts in stamped)
                assert len(set(stamped)) > 1
            elif exchange == "binance":  # milliseconds
                assert set(stamped) == {end}
            else:
                assert stamped == list(range(end, end + len(ids)))
        # a batch at once, then every 20 ms, each merging every step since the last batch
        groups = [rec.steps[0:1], rec.steps[1:5], rec.steps[5:9], rec.steps[9:13], rec.steps[13:17]]
        assert len(rec.batches) == len(groups), exchange
        for batch, steps in zip(rec.batches, groups, strict=True):
            ids, changes, first_id, last_id, ts_us = batch
            assert ids == [i for s in steps for i in s[0]]
            assert changes == [c for s in steps for c in s[1]]
            assert (first_id, last_id, ts_us) == (steps[0][2], steps[-1][3], steps[-1][4])
            assert last_id - first_id + 1 == len(changes)  # Binance update ids stay continuous
        every = [i for s in rec.steps for i in s[0]]  # every trade once, in order
        assert [i for b in rec.batches for i in b[0]] == every
        assert every == [t.trade_id for t in market.trades[-len(every) :]]


@pytest.mark.parametrize("batch_s", [0.005, 0.02])
def test_step_not_shorter_than_batch_batches_every_step(batch_s: float) -> None:
    # the default: 20 ms steps and batches; steps jitter around the cadence (a late one, then
    # one that comes early), and each still gets its batch
    sim, recorded = _simulator(0.02, batch_s)
    start = ANCHOR_NS // 1000
    ends = [start + 20_000, start + 43_000, start + 59_000, start + 78_500, start + 100_000]
    previous = start
    for end in ends:
        sim.step(previous, end)
        previous = end
    for rec in recorded.values():
        assert [b[0] for b in rec.batches] == [s[0] for s in rec.steps]
        assert len(rec.batches) == 5


def test_unknown_trade_stamps_refused() -> None:
    with pytest.raises(UsageError, match="trade_stamps"):
        Simulator(SimConfig(trade_stamps="later"))
