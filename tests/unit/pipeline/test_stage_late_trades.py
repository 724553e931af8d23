"""Trades that reach the stages after their derived bar closed (a reader that stalled past the
close grace): the bar is revised and stored again, or, past the late window, a gap is recorded
for the repair to rebuild it from the stored trades. Nothing is dropped silently."""

from __future__ import annotations

from decimal import Decimal

import msgspec
from pipeline_helpers import trade

from tickvault.model import NS_PER_S, Candle, CandleSource, Gap, Trade
from tickvault.pipeline.indicators import IndicatorConfig, IndicatorEngine
from tickvault.pipeline.records import Feature
from tickvault.runner.stages import StageConfig, Stages

T0 = 1_710_000_000 * NS_PER_S


def _bars(market: list[object]) -> list[tuple[int, int, bool]]:
    return [(c.open_ns, c.trade_count or 0, c.closed) for c in market if isinstance(c, Candle)]


def test_trades_processed_after_their_bar_closed_revise_it() -> None:
    stages = Stages(StageConfig(timeframes=("1s",)))
    stages.process([trade(1, ts_ns=T0 + NS_PER_S // 2)], [], [], T0 + NS_PER_S)
    # The clock runs on while the next trades of that second still wait in the queue ...
    out, _ = stages.process([], [], [], T0 + 10 * NS_PER_S)
    assert _bars(out.market) == [(T0, 1, True)]
    # ... then they arrive, in order, 9 s late: the closed bar comes out again with them.
    late = [
        trade(2, "43520", ts_ns=T0 + 8 * NS_PER_S // 10),
        trade(3, ts_ns=T0 + 9 * NS_PER_S // 10),
    ]
    out, counts = stages.process(late, [], [], T0 + 10 * NS_PER_S)
    (revised,) = [c for c in out.market if isinstance(c, Candle)]
    assert (revised.open_ns, revised.trade_count, revised.closed) == (T0, 3, True)
    assert revised.high == Decimal("43520") and revised.volume == Decimal("0.00327000")
    assert counts.late_trades == {("binance", "revised"): 2}
    assert counts.transformed[("binance", "candles")] == 1 and out.gaps == []


def test_trades_older_than_the_late_window_become_a_gap() -> None:
    stages = Stages(StageConfig(timeframes=("1s",), late_window_ns=3 * NS_PER_S))
    stages.process([trade(1, ts_ns=T0)], [], [], T0 + NS_PER_S)
    stages.process([trade(2, ts_ns=T0 + 5 * NS_PER_S)], [], [], T0 + 6 * NS_PER_S)
    out, counts = stages.process([trade(3, ts_ns=T0 + NS_PER_S // 2)], [], [], T0 + 6 * NS_PER_S)
    assert _bars(out.market) == []
    assert out.gaps == [Gap("binance", "BTC-USDT", "trades", T0, T0 + NS_PER_S // 2, "late_trades")]
    assert counts.gaps == {("binance", "BTC-USDT", "trades", "late_trades"): 1}
    assert counts.late_trades == {("binance", "too_late"): 1}


def test_with_a_backlog_bars_close_by_what_was_received_not_by_the_clock() -> None:
    """The runner is 9 s behind (a backlog queued): the clock would close the bar under the
    trades still queued; the receive time the batch reaches does not."""
    stages = Stages(StageConfig(timeframes=("1s",)))
    first = trade(1, ts_ns=T0 + NS_PER_S // 2)
    out, _ = stages.process([first], [], [], T0 + 10 * NS_PER_S, received_to_ns=first.recv_ns)
    assert _bars(out.market) == [(T0, 1, False)]  # still forming: nothing received past its end
    queued = trade(2, ts_ns=T0 + 9 * NS_PER_S // 10)
    out, counts = stages.process([queued], [], [], T0 + 10 * NS_PER_S)  # the backlog drained
    assert counts.late_trades == {}
    assert _bars(out.market) == [(T0, 2, True)]  # closed once, with both trades


def test_a_revised_bar_replays_the_indicators_as_if_it_had_closed_complete() -> None:
    """Features of a bar revised by late trades are recomputed (and replace the stored ones:
    ``revised_features``), with every bar after it; the next bars go on from the corrected
    state. All equal to an engine fed the final bars. A bar closed and revised in the same
    batch goes to the indicators as its revision."""
    config = IndicatorConfig(
        sma_periods=(3,), ema_periods=(3,), rsi_period=3, macd=None, bollinger=(3, 2.0),
        atr_period=3,
    )  # fmt: skip
    stages = Stages(StageConfig(timeframes=("1s",), indicators=config))
    ids = iter(range(1, 10_000))

    def second(s: int, price: str, at: int = 1) -> list[Trade]:
        return [trade(next(ids), price, ts_ns=T0 + s * NS_PER_S + k * NS_PER_S // 10)
                for k in range(at, at + 3)]  # fmt: skip

    bars: dict[int, Candle] = {}
    live: list[Feature] = []
    revised: list[Feature] = []

    def run(trades: list[Trade], clock_s: float) -> None:
        out, _ = stages.process(trades, [], [], T0 + int(clock_s * NS_PER_S))
        for c in out.market:
            if isinstance(c, Candle) and c.closed:
                bars[c.open_ns] = c  # the newest version of each bar, as storage keeps it
        live.extend(out.features)
        revised.extend(out.revised_features)

    for s in range(8):
        run(second(s, f"{43500 + 7 * (s % 3) - s}.5"), s + 1.2)
    # a late trade for bar 5 (closed ~2 s ago): it is revised, and replayed with every bar
    # the indicators had after it
    run([trade(next(ids), "43600.25", ts_ns=T0 + 5 * NS_PER_S + 9 * NS_PER_S // 10)], 8.3)
    fed_after = {f.ts_ns for f in live if f.ts_ns >= T0 + 5 * NS_PER_S}
    assert {f.ts_ns for f in revised} == fed_after and min(fed_after) == T0 + 5 * NS_PER_S
    # bar 8 closes and one of its late trades comes in the same batch as bar 9's
    run(second(8, "43490.5"), 8.95)
    run([*second(9, "43480.5"), trade(next(ids), "43300.5", ts_ns=T0 + 8 * NS_PER_S + 1)], 10.2)
    reference = IndicatorEngine(config).update([bars[t] for t in sorted(bars)])
    final: dict[tuple[int, str], float | None] = {}
    for f in [*live, *revised]:  # in the order storage gets them: revisions replace
        if f in revised or (f.ts_ns, f.name) not in final:
            final[(f.ts_ns, f.name)] = f.value
    want = {(f.ts_ns, f.name): f.value for f in reference}
    assert final == want
    assert bars[T0 + 5 * NS_PER_S].trade_count == 4 and bars[T0 + 8 * NS_PER_S].trade_count == 4
    assert stages.indicators.revised == 1 and stages.indicators.unrevised == 0


def test_a_revised_bar_is_reconciled_again_and_its_finding_resolved() -> None:
    """The exchange's bar agrees with ours only once a late trade is in: at close the stages
    report a finding; the revision compares again, reports the fields as resolved (stored
    over the findings) and the quality of the candles stream counts the bar as agreeing."""
    ts = [T0 + s * NS_PER_S // 10 for s in (1, 3, 11, 13, 21)]
    trades = [trade(i + 1, f"{43500 + i}.5", ts_ns=t) for i, t in enumerate(ts)]
    late = trade(9, "43510.5", ts_ns=T0 + 19 * NS_PER_S // 10)  # in bar 1, after bar 2 began
    reference = Stages(StageConfig(timeframes=("1s",)))
    out, _ = reference.process(
        sorted([*trades, late], key=lambda t: t.ts_ns), [], [], T0 + 5 * NS_PER_S
    )
    (final,) = [c for c in out.market if isinstance(c, Candle) and c.open_ns == T0 + NS_PER_S]
    exchange_bar = msgspec.structs.replace(final, source=CandleSource.EXCHANGE, vwap=None)

    stages = Stages(StageConfig(timeframes=("1s",)))
    stages.process(trades, [], [], T0 + 2_300_000_000)  # bars 0 and 1 closed
    out, _ = stages.process([exchange_bar], [], [], T0 + 2_400_000_000)
    fields = {"high", "close", "volume", "quote_volume", "buy_volume", "trade_count"}
    assert {f.field for f in out.findings} == fields  # the late trade is bar 1's high and close
    out, counts = stages.process([late], [], [], T0 + 2_500_000_000)
    assert counts.late_trades == {("binance", "revised"): 1}
    assert {(f.field, f.rel_diff) for f in out.findings} == {(f, 0.0) for f in fields}
    (score,) = [s for s in stages.quality_scores(T0 + 3 * NS_PER_S)
                if s.channel == "candles"]  # fmt: skip
    assert score.consistency == 1.0
