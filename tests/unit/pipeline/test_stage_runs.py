"""The stages' per-run shortcuts change nothing (differential tests).

Validation, quality accounting and the stages' counters handle a run of one stream's events
(a feed message holds many) with one lookup: a run is told by the *same* exchange and symbol
string objects, which the feeds share. Here the same batches go through the stages twice: as the
feeds made them, and with every event's exchange and symbol replaced by a fresh copy of the
string, so that no run forms and every event takes the per-event way. Everything must come out
the same: stored events, quarantine records, gaps, counters, validator totals, quality scores.
The events are real recorded messages of all three venues decoded by their feeds, synthetic
trades over several markets, and broken variants of both (bad, duplicate, out-of-order, stale
and foreign events), seeded.
"""

from __future__ import annotations

import random
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import pytest

from tickvault.exchanges.base import get_adapter
from tickvault.exchanges.capture import read_capture
from tickvault.model import NS_PER_S, BookDelta, BookSnapshot, MarketEvent, Side, Ticker, Trade
from tickvault.pipeline.quality import QualityTracker
from tickvault.runner.stages import Stages

FIXTURES = Path(__file__).parents[2] / "fixtures"
_RECORDINGS = {
    "binance": ("streams_2021-08-14.jsonl", "exchange_info_2021-08-14.jsonl"),
    "coinbase": ("advanced_ws_sol_session.jsonl", "rest.jsonl"),
    "kraken": ("ws_v2_recorded.jsonl", "rest_asset_pairs.jsonl"),
}


def _recorded_events() -> list[MarketEvent]:
    events: list[MarketEvent] = []
    for exchange, (stream, listing) in _RECORDINGS.items():
        adapter = get_adapter(exchange)
        instruments = []
        for record in read_capture(FIXTURES / exchange / listing):
            try:
                instruments.extend(adapter.parse_instruments(record.raw))
            except Exception:
                continue
        feed = adapter.new_feed(instruments, 10)
        for record in read_capture(FIXTURES / exchange / stream):
            if record.kind == "ws":
                events.extend(feed.on_message(record.raw, record.ts_ns).events)
    return events


def _synthetic_trades(rng: random.Random, count: int, start_ns: int) -> list[MarketEvent]:
    markets = [(e, s) for e in ("binance", "coinbase", "kraken") for s in ("BTC-USD", "ETH-USD")]
    prices = {"BTC-USD": 40_000.0, "ETH-USD": 2_500.0}
    ids = dict.fromkeys(markets, 1000)
    out: list[MarketEvent] = []
    ts_ns = start_ns
    while len(out) < count:
        market = rng.choice(markets)
        for _ in range(rng.choice([1, 1, 3, 20])):  # runs, as feed messages give them
            prices[market[1]] *= 1 + rng.gauss(0, 0.0005)
            ids[market] += 1 if rng.random() < 0.97 else rng.randint(2, 4)
            ts_ns += rng.randint(1, 5_000_000)
            out.append(
                Trade(
                    market[0],
                    market[1],
                    str(ids[market]),
                    Decimal(f"{prices[market[1]]:.2f}"),
                    Decimal(f"{rng.uniform(0.001, 2):.6f}"),
                    rng.choice([Side.BUY, Side.SELL]),
                    ts_ns,
                    ts_ns + rng.randint(1, 40_000_000),
                )
            )
    return out


def _broken(rng: random.Random, events: list[MarketEvent]) -> list[Any]:
    """Seeded edits: repeats, reorderings, bad numbers, spikes, far times, foreign objects."""
    out: list[Any] = []
    for event in events:
        roll = rng.random()
        if roll < 0.03:
            out.extend([event, event])
        elif roll < 0.05 and out:
            out.insert(len(out) - 1, event)
        elif roll < 0.07 and type(event) is Trade:
            out.append(msgspec.structs.replace(event, price=event.price * 3))
        elif roll < 0.08 and type(event) is Trade:
            out.append(msgspec.structs.replace(event, size=Decimal("-1")))
        elif roll < 0.09 and type(event) is Trade:
            out.append(msgspec.structs.replace(event, price=Decimal("NaN")))
        elif roll < 0.10:
            out.append(msgspec.structs.replace(event, ts_ns=event.ts_ns + 3600 * NS_PER_S))
        elif roll < 0.11:
            out.append(msgspec.structs.replace(event, ts_ns=5))
        elif roll < 0.115:
            out.append({"exchange": "kraken", "symbol": "BTC-USD"})
        elif roll < 0.12 and type(event) is Trade:
            out.append(msgspec.structs.replace(event, trade_id=""))
        elif roll < 0.2 and type(event) in (BookDelta, BookSnapshot) and event.bids:  # type: ignore[union-attr]
            bids = list(event.bids)  # type: ignore[union-attr]
            price, size = bids[0]
            bids[0] = rng.choice(
                [(-price, size), (price, -size), (Decimal("NaN"), size), (price, 1.5), (price,)]
            )
            out.append(msgspec.structs.replace(event, bids=tuple(bids)))
        else:
            out.append(event)
    return out


def _unshared(event: Any) -> Any:
    """The same event with exchange and symbol strings no other event shares."""
    if not isinstance(event, msgspec.Struct):
        return event
    return msgspec.structs.replace(
        event,
        exchange="".join(list(event.exchange)),  # type: ignore[attr-defined]
        symbol="".join(list(event.symbol)),  # type: ignore[attr-defined]
    )


def _run(batches: list[tuple[list[Any], int]]) -> tuple[bytes, list[Any], Any]:
    stages = Stages()
    outputs: list[Any] = []
    for events, now_ns in batches:
        out, counts = stages.process(events, [], [], now_ns)
        outputs.append((out.market, out.quarantine, out.gaps, out.features, out.signals))
        parts = (counts.collected, counts.validated, counts.transformed, counts.rejects)
        outputs.append(sorted((repr(k), v) for part in parts for k, v in part.items()))
    last_ns = batches[-1][1]
    state = [
        stages.validator.totals,
        stages.quality.scores(last_ns),
        sorted(stages.quality._prices.items()),
    ]
    return msgspec.json.encode(outputs), state, stages


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_runs_change_nothing(seed: int) -> None:
    rng = random.Random(seed)
    recorded = _recorded_events()
    start_ns = max(e.recv_ns for e in recorded)
    events = _broken(rng, recorded + _synthetic_trades(rng, 6000, start_ns))
    batches: list[tuple[list[Any], int]] = []
    at = 0
    while at < len(events):
        size = rng.choice([1, 7, 100, 500])
        chunk = events[at : at + size]
        now_ns = max((getattr(e, "recv_ns", 0) for e in chunk), default=0) or start_ns
        batches.append((chunk, now_ns))
        at += size
    shared, shared_state, stages = _run(batches)
    unshared, unshared_state, _ = _run([([_unshared(e) for e in b], n) for b, n in batches])
    assert shared == unshared
    assert shared_state == unshared_state
    assert stages.validator.totals.get("duplicate", 0) > 50  # the edits took effect
    assert len(stages.quality._prices) >= 3


def test_quality_keeps_the_last_price_of_each_market() -> None:
    """Trades and two-sided tickers set a market's price; the last of a batch wins."""
    now_ns = 1_710_000_000 * NS_PER_S
    tracker = QualityTracker()
    trade = Trade("kraken", "BTC-USD", "1", Decimal("100"), Decimal("1"), Side.BUY, now_ns, now_ns)
    ticker = Ticker("kraken", "BTC-USD", now_ns + 1, now_ns + 1, Decimal("101"), None,
                    Decimal("103"), None)  # fmt: skip
    one_sided = Ticker("kraken", "BTC-USD", now_ns + 2, now_ns + 2, Decimal("90"))
    later = msgspec.structs.replace(trade, trade_id="2", price=Decimal("99"), ts_ns=now_ns + 3)
    from tickvault.pipeline.validate import Validator

    validator = Validator()
    tracker.observe_validation(validator.validate([trade, ticker, one_sided], now_ns), now_ns)
    assert tracker._prices == {"BTC-USD": {"kraken": (102.0, now_ns + 1)}}
    tracker.observe_validation(validator.validate([later], now_ns), now_ns)
    assert tracker._prices == {"BTC-USD": {"kraken": (99.0, now_ns + 3)}}
