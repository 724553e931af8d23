from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from pipeline_helpers import NOW_NS, candle, delta, snapshot, ticker, trade

from tickvault.model import NS_PER_S, Gap, Side, Trade
from tickvault.pipeline.validate import ValidationConfig, Validator


def check_one(event: Any, reason: str, validator: Validator | None = None) -> None:
    """A bad event between two good trades: rejected with ``reason``, the others pass."""
    validator = validator or Validator()
    before, after = trade(1001), trade(1002)
    result = validator.validate([before, event, after], NOW_NS)
    assert result.accepted == [before, after]
    assert [r.reason for r in result.rejected] == [reason]
    assert result.counts == {reason: 1}
    rejected = result.rejected[0]
    assert rejected.detail
    assert rejected.raw  # the payload is kept for the quarantine


def test_good_events_of_every_kind_pass() -> None:
    events = [trade(1), candle(), snapshot(), delta(), ticker()]
    result = Validator().validate(events, NOW_NS)
    assert result.accepted == events
    assert result.rejected == [] and result.counts == {}


def test_rejected_keeps_the_payload_as_json() -> None:
    bad = trade(7, price="0")
    result = Validator().validate([bad], NOW_NS)
    (rejected,) = result.rejected
    assert rejected.reason == "bad_price"
    assert (rejected.exchange, rejected.symbol, rejected.kind) == ("binance", "BTC-USDT", "trade")
    assert rejected.channel == "trades"
    assert rejected.ts_ns == bad.ts_ns and rejected.recv_ns == bad.recv_ns
    payload = json.loads(rejected.raw)
    assert payload["type"] == "trade" and payload["price"] == "0" and payload["trade_id"] == "7"


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        (trade(5, price="0"), "bad_price"),
        (trade(5, price="-1.5"), "bad_price"),
        (trade(5, price=Decimal("NaN")), "bad_price"),
        (trade(5, price=Decimal("Infinity")), "bad_price"),
        (trade(5, size="0"), "bad_size"),
        (trade(5, size="-0.1"), "bad_size"),
        (trade(5, ts_ns=NOW_NS + 11 * NS_PER_S), "future_ts"),
        (trade(5, ts_ns=1_710_000_000_000), "stale_ts"),  # milliseconds taken for ns
        (trade(""), "missing_field"),
        (
            Trade("binance", "", "5", Decimal(1), Decimal(1), Side.BUY, NOW_NS, NOW_NS),
            "missing_field",
        ),
        (
            Trade("binance", "BTC-USDT", "5", 1.5, Decimal(1), Side.BUY, NOW_NS, NOW_NS),
            "missing_field",
        ),  # type: ignore[arg-type]
        (
            Trade(7, "BTC-USDT", "5", Decimal(1), Decimal(1), Side.BUY, NOW_NS, NOW_NS),
            "missing_field",
        ),  # type: ignore[arg-type]
        (Gap("binance", "BTC-USDT", "trades", 1, 2, "disconnect"), "wrong_type"),
        ({"price": "1"}, "wrong_type"),
    ],
)
def test_trade_rules(event: Any, reason: str) -> None:
    check_one(event, reason)


def test_future_tolerance_is_configurable() -> None:
    late = trade(5, ts_ns=NOW_NS + 3 * NS_PER_S)
    assert Validator().validate([late], NOW_NS).accepted == [late]
    strict = Validator(ValidationConfig(future_tolerance_ns=NS_PER_S))
    assert strict.validate([late], NOW_NS).counts == {"future_ts": 1}


def test_max_age_refuses_old_events_only_when_set() -> None:
    old = trade(5, ts_ns=NOW_NS - 2 * 86_400 * NS_PER_S)
    assert Validator().validate([old], NOW_NS).accepted == [old]
    live = Validator(ValidationConfig(max_age_ns=86_400 * NS_PER_S))
    assert live.validate([old], NOW_NS).counts == {"stale_ts": 1}


def test_duplicates_are_refused_within_and_across_batches() -> None:
    validator = Validator()
    first = validator.validate([trade(1), trade(2), trade(1)], NOW_NS)
    assert [t.trade_id for t in first.accepted] == ["1", "2"]
    assert first.counts == {"duplicate": 1}
    second = validator.validate([trade(2), trade(3)], NOW_NS)
    assert [t.trade_id for t in second.accepted] == ["3"]
    assert validator.totals == {"duplicate": 2}
    # Same id on another exchange or symbol is a different trade.
    other = validator.validate([trade(1, exchange="kraken"), trade(1, symbol="ETH-USDT")], NOW_NS)
    assert len(other.accepted) == 2


def test_duplicate_memory_is_bounded_per_stream() -> None:
    validator = Validator(ValidationConfig(duplicate_window=3, check_trade_id_order=False))
    validator.validate([trade(i) for i in range(1, 5)], NOW_NS)  # id 1 falls out of the window
    result = validator.validate([trade(1), trade(4)], NOW_NS)
    assert [t.trade_id for t in result.accepted] == ["1"]
    assert result.counts == {"duplicate": 1}


def test_trade_ids_must_not_go_backwards() -> None:
    validator = Validator()
    result = validator.validate([trade(10), trade(8), trade(11)], NOW_NS)
    assert [t.trade_id for t in result.accepted] == ["10", "11"]
    assert result.counts == {"sequence_regression": 1}
    lenient = Validator(ValidationConfig(check_trade_id_order=False))
    assert len(lenient.validate([trade(10), trade(8)], NOW_NS).accepted) == 2


def test_book_sequences() -> None:
    validator = Validator()
    events = [
        snapshot(sequence=100),
        delta(101, 103),
        delta(101, 103),  # repeat
        delta(99, 102),  # goes back
        delta(105, 104),  # first > last
        delta(104, 110),
        snapshot(sequence=50),  # a new snapshot restarts the sync epoch
        delta(51, 52),
    ]
    result = validator.validate(events, NOW_NS)
    assert result.accepted == [events[0], events[1], events[5], events[6], events[7]]
    assert [r.reason for r in result.rejected] == [
        "duplicate",
        "sequence_regression",
        "sequence_regression",
    ]
    validator.reset("binance", "NKN-USDT")
    assert validator.validate([delta(1, 2)], NOW_NS).rejected == []


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        (snapshot(bids=(("0.35300000", "1"),)), "crossed_book"),
        (snapshot(bids=(("0.35260000", "1"),)), "crossed_book"),  # locked counts as crossed
        (snapshot(bids=(("0", "1"),)), "bad_price"),
        (snapshot(asks=(("0.4", "-1"),)), "bad_size"),
        (delta(bids=(("0.36", "5"),)), "crossed_book"),
        (delta(bids=(("-0.36", "5"),)), "bad_price"),
        (snapshot(ts_ns=NOW_NS + 60 * NS_PER_S), "future_ts"),
        (ticker(bid="0.36"), "crossed_book"),
        (ticker(bid="0"), "bad_price"),
        (ticker(bid_size="-1"), "bad_size"),
        (ticker(ts_ns=5), "stale_ts"),
    ],
)
def test_book_and_ticker_rules(event: Any, reason: str) -> None:
    check_one(event, reason)


def test_zero_sizes_delete_levels_and_are_valid() -> None:
    # A delta setting a bid above the ask is fine when it deletes (size 0) that level.
    event = delta(bids=(("0.36", "0"),))
    assert Validator().validate([event], NOW_NS).accepted == [event]


def test_delta_levels_updated_twice_count_as_their_last_update() -> None:
    # Coinbase l2_data may set a price and remove it again in one message: not live, not crossed.
    event = delta(bids=(("0.35170000", "1"), ("0.36", "5"), ("0.36", "0")))
    assert Validator().validate([event], NOW_NS).accepted == [event]
    check_one(delta(bids=(("0.36", "0"), ("0.36", "5"))), "crossed_book")


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"low": Decimal("43600")}, "bad_ohlc"),  # low above open
        ({"high": Decimal("43400")}, "bad_ohlc"),  # high below close
        ({"close": Decimal("43100")}, "bad_ohlc"),  # close below low
        ({"low": Decimal("44000"), "high": Decimal("43000")}, "bad_ohlc"),
        ({"open": Decimal("0")}, "bad_price"),
        ({"volume": Decimal("-1")}, "bad_size"),
        ({"quote_volume": Decimal("-1")}, "bad_size"),
        ({"trade_count": -3}, "bad_size"),
        ({"timeframe": "1M"}, "bad_timeframe"),
        ({"open_ns": NOW_NS + 3600 * NS_PER_S, "ts_ns": NOW_NS}, "future_ts"),
    ],
)
def test_candle_rules(fields: dict[str, Any], reason: str) -> None:
    check_one(candle(**fields), reason)


def test_candle_volume_zero_is_valid_and_closed_bars_are_unique() -> None:
    validator = Validator()
    quiet = candle(volume=Decimal(0), quote_volume=Decimal(0), buy_volume=Decimal(0))
    forming = candle(open_ns=quiet.open_ns + 3600 * NS_PER_S, closed=False)
    result = validator.validate([quiet, forming, quiet, forming], NOW_NS)
    assert result.accepted == [quiet, forming]
    assert result.counts == {"duplicate": 2}
    update = candle(open_ns=forming.open_ns, closed=False, ts_ns=forming.ts_ns + 1)
    assert validator.validate([update], NOW_NS).accepted == [update]


def walk(count: int, start_id: int, price: str = "100", exchange: str = "binance") -> list[Trade]:
    return [trade(start_id + i, price=price, exchange=exchange) for i in range(count)]


def test_outlier_against_the_stream_median() -> None:
    validator = Validator()
    warm = validator.validate(walk(40, 1), NOW_NS)
    assert len(warm.accepted) == 40
    spike, fine = trade(41, price="115"), trade(42, price="108")
    result = validator.validate([spike, fine], NOW_NS)
    assert result.accepted == [fine]
    assert result.counts == {"outlier_stream": 1}


def test_a_lasting_move_heals_after_half_a_window() -> None:
    config = ValidationConfig(outlier_window=40, outlier_refresh_every=4)
    validator = Validator(config)
    validator.validate(walk(40, 1), NOW_NS)
    moved = validator.validate(walk(40, 100, price="130"), NOW_NS)
    assert 0 < moved.counts["outlier_stream"] < 30
    assert moved.accepted[-1].price == Decimal("130")  # the new level is accepted again


def test_outlier_against_other_exchanges() -> None:
    validator = Validator()
    validator.validate(walk(40, 1, exchange="coinbase") + walk(40, 1, exchange="kraken"), NOW_NS)
    # binance runs 7 % above both peers: within its own window, far from the others.
    result = validator.validate(walk(40, 1, price="107"), NOW_NS)
    # The first 20 pass: no median yet (warm-up); the next 20 are refused.
    assert len(result.accepted) == 20
    assert result.counts == {"outlier_cross": 20}
    near = validator.validate([trade(100, price="103")], NOW_NS)
    assert len(near.accepted) == 1


def test_no_cross_check_with_a_single_peer() -> None:
    validator = Validator()
    validator.validate(walk(40, 1, exchange="coinbase"), NOW_NS)
    result = validator.validate(walk(40, 1, price="107"), NOW_NS)
    assert result.rejected == []


def test_stream_goes_on_after_many_rejections() -> None:
    validator = Validator()
    events: list[Any] = []
    for i in range(1, 301):
        events.append(trade(i, price="0" if i % 3 == 0 else "100"))
    result = validator.validate(events, NOW_NS)
    assert len(result.accepted) == 200 and result.counts == {"bad_price": 100}
    assert validator.totals == {"bad_price": 100}
