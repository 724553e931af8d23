from __future__ import annotations

from decimal import Decimal

from pipeline_helpers import candle, trade

from tickvault.model import NS_PER_S, Candle, CandleSource, Side
from tickvault.pipeline.candles import CandleConfig, CandleDeriver
from tickvault.pipeline.quality import QualityTracker
from tickvault.pipeline.reconcile import ReconcileConfig, Reconciler

# The real Binance BTCUSDT 1h kline of 2024-01-30 16:00 UTC (see pipeline_helpers.candle).
EXCHANGE_BAR = candle()
OPEN_NS = EXCHANGE_BAR.open_ns
HOUR_NS = 3600 * NS_PER_S


def derived_bar() -> Candle:
    """Trades giving the kline's open/high/low/close, but only 4 trades and 1 BTC of volume."""
    deriver = CandleDeriver(CandleConfig(timeframes=("1h",)))
    trades = [
        trade(1, "43519.34000000", "0.25", Side.BUY, OPEN_NS + 1 * NS_PER_S),
        trade(2, "43936.00000000", "0.25", Side.BUY, OPEN_NS + 600 * NS_PER_S),
        trade(3, "43171.00000000", "0.25", Side.SELL, OPEN_NS + 1200 * NS_PER_S),
        trade(4, "43488.71000000", "0.25", Side.SELL, OPEN_NS + 3500 * NS_PER_S),
    ]
    deriver.add_trades(trades)
    (bar,) = deriver.advance(OPEN_NS + HOUR_NS + 5 * NS_PER_S).closed
    return bar


def test_matching_bars_give_no_findings() -> None:
    ours = derived_bar()
    theirs = Candle(**{**_fields(ours), "source": CandleSource.EXCHANGE, "vwap": None})
    reconciler = Reconciler(ReconcileConfig(skip_first_derived=False))
    assert reconciler.add([theirs]).compared == []  # waits for its counterpart
    result = reconciler.add([ours])
    assert result.compared == [("binance", "BTC-USDT", "1h", OPEN_NS)]
    assert result.findings == [] and result.mismatched == 0


def test_differences_beyond_tolerance_become_findings_not_overwrites() -> None:
    ours = derived_bar()
    reconciler = Reconciler(ReconcileConfig(skip_first_derived=False))
    result = reconciler.add([ours, EXCHANGE_BAR])
    assert result.mismatched == 1
    by_field = {f.field: f for f in result.findings}
    # Prices agree exactly; volumes and counts do not (we saw 4 of 3743 trades).
    assert set(by_field) == {"volume", "quote_volume", "buy_volume", "trade_count"}
    volume = by_field["volume"]
    assert (volume.derived, volume.exchange_value) == ("1.00", "20.55495000")
    assert abs(volume.rel_diff - (20.55495 - 1) / 20.55495) < 1e-12
    assert (by_field["trade_count"].derived, by_field["trade_count"].exchange_value) == (
        "4",
        "3743",
    )
    assert ours.volume == Decimal("1.00") and EXCHANGE_BAR.volume == Decimal("20.55495000")

    # A price off by one tick is found too; within a loose tolerance it is not.
    off = Candle(**{**_fields(ours), "source": CandleSource.EXCHANGE, "high": Decimal("43936.01")})
    strict = Reconciler(ReconcileConfig(skip_first_derived=False)).compare(ours, off)
    assert [f.field for f in strict] == ["high"]
    loose = Reconciler(ReconcileConfig(price_tolerance=1e-6)).compare(ours, off)
    assert loose == []


def test_first_derived_bar_of_a_stream_is_skipped() -> None:
    ours = derived_bar()
    later = Candle(**{**_fields(ours), "open_ns": OPEN_NS + HOUR_NS})
    reconciler = Reconciler()
    theirs = [Candle(**{**_fields(bar), "source": CandleSource.EXCHANGE}) for bar in (ours, later)]
    result = reconciler.add([ours, later, *theirs])
    assert result.compared == [("binance", "BTC-USDT", "1h", OPEN_NS + HOUR_NS)]


def test_unpaired_bars_are_bounded() -> None:
    reconciler = Reconciler(ReconcileConfig(max_pending=3))
    bars = [candle(open_ns=OPEN_NS + i * HOUR_NS) for i in range(5)]
    assert reconciler.add(bars).compared == []
    assert reconciler.evicted == 2
    forming = candle(open_ns=OPEN_NS + 9 * HOUR_NS, closed=False)
    assert reconciler.add([forming]).compared == [] and reconciler.evicted == 2


def _fields(bar: Candle) -> dict[str, object]:
    return {name: getattr(bar, name) for name in bar.__struct_fields__}


def _revised(bar: Candle, **changes: object) -> Candle:
    return Candle(**{**_fields(bar), **changes})


def test_a_revised_bar_is_compared_again_and_resolved_findings_replace_the_old() -> None:
    """Late trades revise a derived bar after it was compared: what still differs comes out
    again with the revised values; what agrees now comes out as resolved (rel_diff 0), and
    the quality counts follow (one bar, counted as it compares now)."""
    ours = derived_bar()
    theirs = Candle(**{**_fields(ours), "source": CandleSource.EXCHANGE, "vwap": None,
                       "volume": ours.volume + 2, "trade_count": 6})  # fmt: skip
    reconciler = Reconciler(ReconcileConfig(skip_first_derived=False))
    quality = QualityTracker()
    first = reconciler.add([theirs, ours])
    quality.observe_reconcile(first, OPEN_NS + HOUR_NS)
    assert {f.field for f in first.findings} == {"volume", "trade_count"}
    # one late trade: the count agrees now, the volume still does not
    half = _revised(ours, volume=ours.volume + 1, trade_count=6)
    again = reconciler.revise([half])
    key = ("binance", "BTC-USDT", "1h", OPEN_NS)
    assert again.recompared == [key] and again.compared == []
    assert [(f.field, f.derived) for f in again.findings] == [("volume", "2.00")]
    assert [(f.field, f.derived, f.exchange_value, f.rel_diff) for f in again.resolved] == [
        ("trade_count", "6", "6", 0.0)
    ]
    quality.observe_reconcile(again, OPEN_NS + HOUR_NS + 1)
    # the rest: everything agrees, the bar no longer counts as mismatched
    full = _revised(ours, volume=ours.volume + 2, trade_count=6)
    last = reconciler.revise([full])
    assert last.findings == [] and [f.field for f in last.resolved] == ["volume"]
    quality.observe_reconcile(last, OPEN_NS + HOUR_NS + 2)
    (score,) = [s for s in quality.scores(OPEN_NS + HOUR_NS + 3) if s.channel == "candles"]
    assert score.consistency == 1.0


def test_a_revised_bar_still_waiting_is_compared_as_revised() -> None:
    ours = derived_bar()
    reconciler = Reconciler(ReconcileConfig(skip_first_derived=False))
    assert reconciler.add([ours]).compared == []  # waits for the exchange's bar
    revised = _revised(ours, volume=ours.volume + 1)
    assert reconciler.revise([revised]).recompared == []  # replaced where it waits
    theirs = Candle(**{**_fields(revised), "source": CandleSource.EXCHANGE, "vwap": None})
    result = reconciler.add([theirs])
    assert result.compared == [("binance", "BTC-USDT", "1h", OPEN_NS)] and result.findings == []
    # a bar never compared (skipped, or forgotten) is left alone
    assert reconciler.revise([_revised(ours, open_ns=OPEN_NS + HOUR_NS)]).recompared == []
