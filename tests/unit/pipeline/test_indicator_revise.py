"""IndicatorEngine.revise: a closed bar revised by late trades (within the deriver's late
window) is replayed from the lagging twin, so features end exactly as if the bar had closed
with its late trades: every value from the revised bar on, and every bar after."""

from __future__ import annotations

from decimal import Decimal

import msgspec
from pipeline_series import random_walk

from tickvault.model import Candle
from tickvault.pipeline.indicators import IndicatorEngine
from tickvault.pipeline.records import Feature

HOUR_NS = 3_600 * 1_000_000_000
WINDOW_NS = 5 * HOUR_NS  # 1h bars: the newest 7 bars can be revised (5 + 2)


def by_bar(features: list[Feature]) -> dict[tuple[int, str], float | None]:
    return {(f.ts_ns, f.name): f.value for f in features}


def revised(bar: Candle) -> Candle:
    """The bar with a late trade folded in: a new close, more volume."""
    close = bar.close + Decimal("0.75")
    return msgspec.structs.replace(
        bar, close=close, high=max(bar.high, close), volume=bar.volume + Decimal("3.5")
    )


def test_a_revised_bar_replays_its_stream_exactly() -> None:
    truth = random_walk(500)
    late = {396: revised(truth[396]), 398: revised(truth[398])}
    corrected = [late.get(i, bar) for i, bar in enumerate(truth)]
    reference = by_bar(IndicatorEngine().update(corrected))
    live = IndicatorEngine(late_window_ns=WINDOW_NS)
    seen = by_bar(live.update(truth[:400]))  # 396 and 398 closed without their late trades
    key = (truth[396].open_ns, "ema_12")
    assert seen[key] != reference[key]
    again = live.revise(late.values())
    assert live.revised == 2 and live.unrevised == 0
    assert min(f.ts_ns for f in again) == truth[396].open_ns
    assert max(f.ts_ns for f in again) == truth[399].open_ns  # every bar after it, replayed
    got = by_bar(again)
    lo, hi = truth[396].open_ns, truth[400].open_ns
    assert got == {k: v for k, v in reference.items() if lo <= k[0] < hi}
    after = by_bar(live.update(truth[400:]))  # the stream goes on from the replayed state
    assert after == {k: v for k, v in reference.items() if k[0] >= truth[400].open_ns}
    # and a later revision replays from the twin, which took the revised bars on its way
    late_again = revised(truth[497])
    final = [*corrected[:497], late_again, *corrected[498:]]
    reference2 = by_bar(IndicatorEngine().update(final))
    got2 = by_bar(live.revise([late_again]))
    assert got2 == {k: v for k, v in reference2.items() if k[0] >= truth[497].open_ns}


def test_a_revision_older_than_the_window_changes_nothing() -> None:
    full = random_walk(400)
    truth = full[:300]
    live = IndicatorEngine(late_window_ns=WINDOW_NS)
    before = by_bar(live.update(truth))
    assert live.revise([revised(truth[200])]) == []  # 100 bars back: beyond the 7 kept
    never_fed = msgspec.structs.replace(truth[299], exchange="kraken")
    assert live.revise([never_fed]) == []
    assert live.unrevised == 2 and live.revised == 0
    # the live state is untouched: the next bar's features are those of the unrevised series
    nxt = full[300]
    assert by_bar(live.update([nxt])) == {
        k: v
        for k, v in by_bar(IndicatorEngine().update([*truth, nxt])).items()
        if k[0] == nxt.open_ns
    }
    assert before  # fed


def test_without_a_late_window_no_twin_is_kept() -> None:
    truth = random_walk(400)[:100]
    live = IndicatorEngine()
    live.update(truth)
    assert live.revise([revised(truth[99])]) == []
    assert live.unrevised == 1


def test_revise_after_a_rebuild_replays_from_the_rebuilt_twin() -> None:
    """A gap repair's rebuild builds the twin too (the replay less the newest bars, rebased
    on the anchors where the live state is): a revision right after it is exact."""
    truth = random_walk(600)
    damaged = msgspec.structs.replace(truth[420], close=truth[420].open)
    live = IndicatorEngine(late_window_ns=WINDOW_NS)
    live.update([*truth[:420], damaged, *truth[421:500]])
    live.rebuild(("binance", "ETH-USDT", "1h"), truth[:495], truth[420].open_ns)
    late = revised(truth[497])
    corrected = [*truth[:497], late, *truth[498:]]
    reference = by_bar(IndicatorEngine().update(corrected))
    got = by_bar(live.revise([late]))
    want = {k: v for k, v in reference.items() if truth[497].open_ns <= k[0] < truth[500].open_ns}
    assert got.keys() == want.keys()
    assert all(abs((got[k] or 0) - (want[k] or 0)) <= 1e-9 * max(1.0, abs(want[k] or 0))
               for k in want)  # fmt: skip
