"""IndicatorEngine.rebuild: after a gap repair, features continue as if the bars had always been
right — from the stored (corrected) bars, with the live engine's newer bars replayed on top."""

from __future__ import annotations

import math
from decimal import Decimal

import msgspec
from pipeline_series import random_walk

from tickvault.model import Candle
from tickvault.pipeline.indicators import RECENT_BARS, IndicatorConfig, IndicatorEngine
from tickvault.pipeline.records import Feature

KEY = ("binance", "ETH-USDT", "1h")
DAY_NS = 86_400 * 1_000_000_000


def by_bar(features: list[Feature]) -> dict[tuple[int, str], float]:
    return {(f.ts_ns, f.name): f.value for f in features}


def close_enough(a: float, b: float, rel: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=rel, abs_tol=rel)


def test_rebuild_continues_exactly_as_the_corrected_history_would() -> None:
    truth = random_walk(600)
    reference = by_bar(IndicatorEngine().update(truth))
    # What the live engine saw: bar 400 without some of its trades, bar 401 missing altogether.
    damaged: Candle = msgspec.structs.replace(
        truth[400], close=truth[400].open, high=truth[400].high + Decimal(5),
        volume=truth[400].volume / 3,
    )  # fmt: skip
    live = IndicatorEngine()
    stale = live.update([*truth[:400], damaged, *truth[402:451]])
    assert (
        by_bar(stale)[(truth[450].open_ns, "ema_26")] != reference[(truth[450].open_ns, "ema_26")]
    )
    # Storage, repaired, holds bars up to 440; 441..450 are still on their way to it.
    since = truth[400].open_ns
    rebuilt = live.rebuild(KEY, truth[:441], since)
    assert min(f.ts_ns for f in rebuilt) == since
    assert max(f.ts_ns for f in rebuilt) == truth[450].open_ns  # the live bars replayed on top
    after = live.update(truth[451:])  # the live stream goes on from corrected state
    got = by_bar(rebuilt + after)
    want = {k: v for k, v in reference.items() if k[0] >= since}
    assert got.keys() == want.keys()
    assert all(close_enough(got[k], want[k], 1e-12) for k in want)


def test_rebuild_from_a_warm_up_window_converges_and_keeps_the_obv_level() -> None:
    truth = random_walk(1200)
    config = IndicatorConfig()
    reference = by_bar(IndicatorEngine(config).update(truth))
    first = 900
    start = first - config.warmup_bars  # a fresh engine (tickvault gaps --fix), no live state
    anchors = {"obv": reference[(truth[first - 1].open_ns, "obv")]}
    # The session VWAP starts inside its day: the sums of that day's bars before the replay.
    day_ns = truth[start].open_ns - truth[start].open_ns % DAY_NS
    earlier = [c for c in truth[:start] if c.open_ns >= day_ns]
    assert earlier  # the warm-up begins mid-day
    seeds = {
        "vwap_session_start_ns": day_ns,
        "vwap_pv": sum((float(c.high) + float(c.low) + float(c.close)) / 3 * float(c.volume)
                       for c in earlier),
        "vwap_volume": sum(float(c.volume) for c in earlier),
    }  # fmt: skip
    rebuilt = by_bar(
        IndicatorEngine(config).rebuild(KEY, truth[start:], truth[first].open_ns, anchors, seeds)
    )
    want = {k: v for k, v in reference.items() if k[0] >= truth[first].open_ns}
    assert rebuilt.keys() == want.keys()
    assert all(close_enough(rebuilt[k], want[k], 1e-8) for k in want)
    # Without the anchor the OBV level starts from the warm-up bar instead: a visible jump;
    # without the seeds the first day's VWAP misses the bars before the replay.
    bare = by_bar(IndicatorEngine(config).rebuild(KEY, truth[start:], truth[first].open_ns))
    key = (truth[first].open_ns, "obv")
    assert not close_enough(bare[key], want[key], 1e-3)
    same_day = [c.open_ns for c in truth[start:first] if c.open_ns < day_ns + DAY_NS]
    assert same_day  # (the comparison is on bars of the replay's first day)
    since = truth[start].open_ns
    seeded = by_bar(IndicatorEngine(config).rebuild(KEY, truth[start:], since, None, seeds))
    assert all(close_enough(seeded[(t, "vwap")], reference[(t, "vwap")], 1e-12) for t in same_day)
    unseeded = by_bar(IndicatorEngine(config).rebuild(KEY, truth[start:], since))
    assert not close_enough(
        unseeded[(same_day[-1], "vwap")], reference[(same_day[-1], "vwap")], 1e-6
    )


def test_rebuild_leaves_the_live_state_when_storage_lags_beyond_the_kept_bars() -> None:
    truth = random_walk(600)
    live = IndicatorEngine()
    live.update(truth)  # the live engine is at bar 599; storage holds bars up to 99 only
    assert len(truth) - 100 > RECENT_BARS
    rebuilt = live.rebuild(KEY, truth[:100], truth[50].open_ns)
    assert max(f.ts_ns for f in rebuilt) == truth[99].open_ns and live.unbridged == 1
    assert live.last_open_ns(KEY) == truth[-1].open_ns
    reference = IndicatorEngine()
    reference.update(truth)
    after = msgspec.structs.replace(truth[-1], open_ns=truth[-1].open_ns + 3_600 * 10**9)
    assert live.update([after]) == reference.update([after])  # the live stream went on as it was
