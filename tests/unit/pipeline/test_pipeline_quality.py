from __future__ import annotations

import pytest
from pipeline_helpers import NOW_NS, candle, trade

from tickvault.model import NS_PER_S, DecodeError, Gap, Trade
from tickvault.pipeline.quality import QualityConfig, QualityTracker, QualityWeights
from tickvault.pipeline.reconcile import ReconcileResult
from tickvault.pipeline.records import EmptyInterval, QualityScore, ReconcileFinding
from tickvault.pipeline.validate import ValidationConfig, Validator

S = NS_PER_S


def feed(tracker: QualityTracker, events: list[object], now_ns: int = NOW_NS) -> None:
    validator = Validator(ValidationConfig(check_trade_id_order=False))
    tracker.observe_validation(validator.validate(events, now_ns), now_ns)


def score_of(
    tracker: QualityTracker, channel: str = "trades", exchange: str = "binance"
) -> QualityScore:
    (found,) = [
        s for s in tracker.scores(NOW_NS) if s.channel == channel and s.exchange == exchange
    ]
    return found


def trades(
    ids: list[int], exchange: str = "binance", price: str = "100", lag_ns: int = 10**7
) -> list[Trade]:
    return [
        trade(i, price=price, exchange=exchange, ts_ns=NOW_NS - 2 * S, lag_ns=lag_ns) for i in ids
    ]


def test_clean_stream_scores_one() -> None:
    tracker = QualityTracker()
    feed(tracker, trades(list(range(1, 101))))
    score = score_of(tracker)
    assert score.score == 1.0 and score.events == 100
    assert (score.completeness, score.validity, score.timeliness) == (1.0, 1.0, 1.0)
    assert (score.consistency, score.uniqueness) == (1.0, 1.0)


def test_trade_id_gap_lowers_completeness_by_the_missing_share() -> None:
    tracker = QualityTracker()
    ids = [i for i in range(1, 101) if not 41 <= i <= 50]
    feed(tracker, trades(ids[:45]))
    feed(tracker, trades(ids[45:]))  # the gap spans a batch boundary
    score = score_of(tracker)
    assert score.missing == 10 and score.events == 90
    assert score.completeness == pytest.approx(0.9)
    assert score.worst == "completeness"
    assert score.score == pytest.approx(0.3 * 0.9 + 0.7)


def test_rejections_lower_validity_and_duplicates_lower_uniqueness() -> None:
    tracker = QualityTracker()
    events: list[object] = trades(list(range(1, 81)))
    events += [trade(1000 + i, price="0") for i in range(20)]  # bad_price
    events += trades(list(range(1, 11)))  # ten duplicates
    feed(tracker, events)
    errors = [DecodeError("binance", "bad_json", "x", "{", NOW_NS, "BTC-USDT", "trades")] * 5
    tracker.observe_decode_errors(errors, NOW_NS)
    score = score_of(tracker)
    assert (score.events, score.rejected, score.duplicates) == (80, 25, 10)
    assert score.validity == pytest.approx(80 / 105)
    assert score.uniqueness == pytest.approx(80 / 90)
    assert score.worst == "validity"


def test_stale_stream_lowers_timeliness() -> None:
    tracker = QualityTracker()
    old = [trade(i, ts_ns=NOW_NS - 121 * S, lag_ns=S) for i in range(1, 11)]
    feed(tracker, old, now_ns=NOW_NS - 100 * S)
    score = score_of(tracker)
    assert score.staleness_ns == 120 * S  # last receive 120 s before now, budget 60 s
    assert score.timeliness == pytest.approx(0.5)
    assert score.worst == "timeliness"


def test_lag_p95_against_the_budget() -> None:
    tracker = QualityTracker()
    fast = trades(list(range(1, 95)), lag_ns=10**7)
    slow = trades(list(range(95, 101)), lag_ns=8 * S)
    feed(tracker, fast + slow)
    score = score_of(tracker)
    assert score.lag_p95_ns is not None
    assert 8 * S <= score.lag_p95_ns <= 8.8 * S  # histogram edge, within 9 %
    assert score.timeliness == pytest.approx(2 * S / score.lag_p95_ns)
    assert 0.22 < score.timeliness < 0.25


def test_cross_exchange_deviation_lowers_consistency() -> None:
    tracker = QualityTracker()
    feed(tracker, trades([1], "binance", "100") + trades([1], "coinbase", "100"))
    feed(tracker, trades([1], "kraken", "100.5"))
    kraken = score_of(tracker, exchange="kraken")
    assert kraken.deviation == pytest.approx(0.005)
    assert kraken.consistency == pytest.approx(0.5)  # half of the 1 % budget
    binance = score_of(tracker, exchange="binance")
    assert binance.deviation == pytest.approx(0.25 / 100.25)
    assert binance.consistency == pytest.approx(1 - (0.25 / 100.25) / 0.01)


def test_reconciliation_findings_lower_candle_consistency() -> None:
    tracker = QualityTracker()
    compared = [("binance", "BTC-USDT", "1m", i * 60 * S) for i in range(4)]
    finding = ReconcileFinding("binance", "BTC-USDT", "1m", 60 * S, "volume", "1", "2", 0.5)
    tracker.observe_reconcile(ReconcileResult([finding, finding], compared, 1), NOW_NS)
    score = score_of(tracker, channel="candles")
    assert score.consistency == pytest.approx(0.75)


def test_gap_events_and_empty_minutes_count_as_missing_time() -> None:
    tracker = QualityTracker()
    feed(tracker, trades([1]), now_ns=NOW_NS - 300 * S)  # seen for the whole window
    feed(tracker, trades([2]))
    tracker.observe_gaps([Gap("binance", "BTC-USDT", "trades", 0, 30 * S, "disconnect")], NOW_NS)
    assert score_of(tracker).completeness == pytest.approx(0.9)
    empties = [
        EmptyInterval("binance", "BTC-USDT", "1m", 0, 60 * S),
        EmptyInterval("binance", "BTC-USDT", "1s", 0, 50 * S),  # empty seconds are normal
    ]
    tracker.observe_empty_intervals(empties, NOW_NS)
    assert score_of(tracker).completeness == pytest.approx(0.7)


def test_missing_exchange_candles() -> None:
    tracker = QualityTracker()
    minute = 60 * S
    base = NOW_NS - 10 * minute
    bars = [
        candle(timeframe="1m", open_ns=base + i * minute, ts_ns=base + i * minute + minute - 1)
        for i in (0, 1, 3, 4)
    ]
    feed(tracker, bars)
    score = score_of(tracker, channel="candles")
    assert score.missing == 1 and score.completeness == pytest.approx(4 / 5)


def test_window_rolls() -> None:
    tracker = QualityTracker()
    feed(tracker, trades([1, 5]), now_ns=NOW_NS - 400 * S)
    feed(tracker, trades([6, 7]))
    score = score_of(tracker)
    assert score.missing == 0 and score.events == 2  # the early gap left the 300 s window


def test_weights_and_worst_are_configurable() -> None:
    weights = QualityWeights(completeness=1, validity=0, timeliness=0, consistency=0, uniqueness=3)
    tracker = QualityTracker(QualityConfig(weights=weights))
    feed(tracker, trades([1, 2, 4, 5, 5]))  # one missing id (3), one duplicate
    score = score_of(tracker)
    assert score.completeness == pytest.approx(4 / 5) and score.uniqueness == pytest.approx(4 / 5)
    assert score.score == pytest.approx((1 * 0.8 + 3 * 0.8) / 4)
    assert score.worst == "completeness"  # ties go to the first component
