from __future__ import annotations

from collections import defaultdict
from decimal import Context, Decimal, localcontext
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pipeline_helpers import trade

from tickvault.model import NS_PER_S, Candle, CandleSource, Gap, Side, Trade, timeframe_ns
from tickvault.pipeline.candles import CandleConfig, CandleDeriver, CandleOutput

START_NS = 1_733_140_800 * NS_PER_S  # a day boundary, 2024-12-02


def reference_bars(trades: list[Trade], timeframe: str) -> dict[tuple[str, str, int], Candle]:
    """The obvious computation: group trades by bucket, then fold each group."""
    length = timeframe_ns(timeframe)
    groups: dict[tuple[str, str, int], list[Trade]] = defaultdict(list)
    for t in trades:
        groups[(t.exchange, t.symbol, t.ts_ns - t.ts_ns % length)].append(t)
    bars = {}
    for (exchange, symbol, open_ns), group in groups.items():
        with localcontext(Context(prec=60)):
            volume = sum((t.size for t in group), Decimal(0))
            quote = sum((t.price * t.size for t in group), Decimal(0))
            buy = sum((t.size for t in group if t.side is Side.BUY), Decimal(0))
            sell = sum((t.size for t in group if t.side is Side.SELL), Decimal(0))
        bars[(exchange, symbol, open_ns)] = Candle(
            exchange,
            symbol,
            timeframe,
            open_ns,
            group[0].price,
            max(t.price for t in group),
            min(t.price for t in group),
            group[-1].price,
            volume,
            True,
            max(t.ts_ns for t in group),
            max(t.recv_ns for t in group),
            source=CandleSource.DERIVED,
            trade_count=len(group),
            quote_volume=quote,
            vwap=Context(prec=28).divide(quote, volume),
            buy_volume=buy,
            sell_volume=sell,
        )
    return bars


prices = st.decimals(min_value=Decimal("0.00000001"), max_value=Decimal(100_000), places=8)
sizes = st.decimals(min_value=Decimal("0.00000001"), max_value=Decimal(1000), places=8)


@st.composite
def trade_streams(draw: st.DrawFn) -> list[Trade]:
    count = draw(st.integers(1, 50))
    ts_ns = START_NS + draw(st.integers(0, 59 * NS_PER_S))
    trades = []
    for i in range(count):
        ts_ns += draw(st.integers(0, 100 * NS_PER_S))
        symbol = draw(st.sampled_from(["BTC-USDT", "ETH-USDT"]))
        trades.append(
            Trade(
                "binance",
                symbol,
                str(i),
                draw(prices),
                draw(sizes),
                draw(st.sampled_from(list(Side))),
                ts_ns,
                ts_ns + draw(st.integers(0, 10**9)),
            )
        )
    return trades


@pytest.mark.parametrize("timeframes", [("1s", "1m", "5m"), ("15s", "1m", "1h"), ("5m",)])
@settings(max_examples=35, deadline=None)
@given(trades=trade_streams(), cuts=st.lists(st.integers(0, 50), max_size=6))
def test_derived_bars_equal_the_reference(
    timeframes: tuple[str, ...], trades: list[Trade], cuts: list[int]
) -> None:
    deriver = CandleDeriver(CandleConfig(timeframes=timeframes))
    bounds = sorted({0, len(trades), *[c for c in cuts if c < len(trades)]})
    closed: list[Candle] = []
    empty = []
    for lo, hi in pairwise(bounds):
        out = deriver.add_trades(trades[lo:hi])
        # Every forming bar reported equals the reference bar of the trades seen so far.
        so_far = {t: reference_bars(trades[:hi], t) for t in timeframes}
        for bar in out.updated:
            expected = so_far[bar.timeframe][(bar.exchange, bar.symbol, bar.open_ns)]
            assert bar == Candle(**{**_fields(expected), "closed": False})
        closed += out.closed
        empty += out.empty
        assert out.late_trades == {} and out.revised == []
    longest = max(timeframe_ns(t) for t in timeframes)
    now_ns = trades[-1].ts_ns + 2 * longest + CandleConfig().close_grace_ns
    final = deriver.advance(now_ns)
    closed += final.closed
    empty += final.empty
    assert deriver.forming() == []
    for timeframe in timeframes:
        expected = reference_bars(trades, timeframe)
        got = {(c.exchange, c.symbol, c.open_ns): c for c in closed if c.timeframe == timeframe}
        assert len(got) == len([c for c in closed if c.timeframe == timeframe])  # closed once
        assert got == expected
        # Empty intervals are exactly the buckets without trades, from the first bar on.
        length = timeframe_ns(timeframe)
        horizon = now_ns - CandleConfig().close_grace_ns
        for symbol in ("BTC-USDT", "ETH-USDT"):
            opens = sorted(o for (_, s, o) in expected if s == symbol)
            if not opens:
                continue
            want = set(range(opens[0], horizon - horizon % length, length)) - set(opens)
            reported = {
                b
                for e in empty
                if e.timeframe == timeframe and e.symbol == symbol
                for b in range(e.from_open_ns, e.to_open_ns, length)
            }
            assert reported == want
            assert sum(
                e.bars for e in empty if e.timeframe == timeframe and e.symbol == symbol
            ) == len(want)


def _symbols(trades: list[Trade]) -> list[str]:
    return sorted({t.symbol for t in trades})


def _fields(candle: Candle) -> dict[str, object]:
    return {name: getattr(candle, name) for name in candle.__struct_fields__}


def test_bar_closes_when_a_later_trade_arrives_and_reports_empty_buckets() -> None:
    deriver = CandleDeriver(CandleConfig(timeframes=("1m",)))
    t0 = START_NS
    first = deriver.add_trades(
        [
            trade(1, "100", "1", Side.BUY, t0 + 1 * NS_PER_S),
            trade(2, "102", "2", Side.SELL, t0 + 20 * NS_PER_S),
            trade(3, "99", "1", Side.UNKNOWN, t0 + 50 * NS_PER_S),
        ]
    )
    assert first.closed == [] and len(first.updated) == 1
    bar = first.updated[0]
    assert (bar.open, bar.high, bar.low, bar.close) == (
        Decimal(100),
        Decimal(102),
        Decimal(99),
        Decimal(99),
    )
    assert bar.volume == Decimal(4) and bar.quote_volume == Decimal(100 + 204 + 99)
    assert bar.vwap == Decimal("100.75")
    assert (bar.buy_volume, bar.sell_volume, bar.trade_count) == (Decimal(1), Decimal(2), 3)
    assert bar.source is CandleSource.DERIVED and not bar.closed
    # A trade three minutes later closes the bar; the two minutes between are empty.
    second = deriver.add_trades([trade(4, "101", "1", Side.BUY, t0 + 185 * NS_PER_S)])
    assert [c.open_ns for c in second.closed] == [t0] and second.closed[0].closed
    assert [(e.from_open_ns, e.to_open_ns, e.bars) for e in second.empty] == [
        (t0 + 60 * NS_PER_S, t0 + 180 * NS_PER_S, 2)
    ]
    assert [c.open_ns for c in second.updated] == [t0 + 180 * NS_PER_S]


def test_quiet_stream_closes_on_advance_after_the_grace() -> None:
    deriver = CandleDeriver(CandleConfig(timeframes=("1m",), close_grace_ns=2 * NS_PER_S))
    t0 = START_NS
    deriver.add_trades([trade(1, ts_ns=t0 + NS_PER_S)])
    assert deriver.advance(t0 + 61 * NS_PER_S).closed == []  # within the grace
    out = deriver.advance(t0 + 62 * NS_PER_S)
    assert [c.open_ns for c in out.closed] == [t0] and out.empty == []
    later = deriver.advance(t0 + 242 * NS_PER_S)
    assert later.closed == []
    assert [(e.from_open_ns, e.to_open_ns) for e in later.empty] == [
        (t0 + 60 * NS_PER_S, t0 + 240 * NS_PER_S)
    ]
    assert deriver.advance(t0 + 242 * NS_PER_S).empty == []  # reported once


def test_a_late_trade_revises_its_closed_bar() -> None:
    deriver = CandleDeriver(CandleConfig(timeframes=("1m", "5m")))
    t0 = START_NS
    first = deriver.add_trades([trade(1, ts_ns=t0 + NS_PER_S), trade(2, ts_ns=t0 + 61 * NS_PER_S)])
    (closed,) = first.closed
    assert closed.trade_count == 1
    out: CandleOutput = deriver.add_trades([trade(3, "43000", "5", ts_ns=t0 + 30 * NS_PER_S)])
    # The closed 1m bar comes out again with the late trade: it is now the bar's close.
    (revised,) = out.revised
    assert (revised.timeframe, revised.open_ns, revised.closed) == ("1m", t0, True)
    assert revised.trade_count == 2 and revised.volume == Decimal("5.00109000")
    assert (revised.open, revised.close, revised.low) == (
        Decimal("43519.34"), Decimal("43000"), Decimal("43000")
    )  # fmt: skip
    assert out.revised_trades == {"binance": 1} and out.late_trades == {}
    (five,) = [c for c in out.updated if c.timeframe == "5m"]
    assert five.trade_count == 3  # the forming 5m bar takes it as usual, by exchange time
    assert five.close == Decimal("43519.34")  # trade 2 (t0+61 s) is still the newest


def test_a_late_trade_in_a_bucket_reported_empty_makes_its_bar() -> None:
    deriver = CandleDeriver(CandleConfig(timeframes=("1m",)))
    t0 = START_NS
    out = deriver.add_trades([trade(1, ts_ns=t0), trade(2, ts_ns=t0 + 125 * NS_PER_S)])
    assert [(e.from_open_ns, e.to_open_ns) for e in out.empty] == [
        (t0 + 60 * NS_PER_S, t0 + 120 * NS_PER_S)
    ]
    late = deriver.add_trades([trade(3, ts_ns=t0 + 70 * NS_PER_S)])
    assert [(c.open_ns, c.trade_count, c.closed) for c in late.revised] == [
        (t0 + 60 * NS_PER_S, 1, True)
    ]


def test_trades_older_than_the_late_window_are_counted_not_folded() -> None:
    deriver = CandleDeriver(CandleConfig(timeframes=("1s",), late_window_ns=5 * NS_PER_S))
    t0 = START_NS
    deriver.add_trades([trade(1, ts_ns=t0), trade(2, ts_ns=t0 + 20 * NS_PER_S)])
    out = deriver.add_trades(
        [trade(3, ts_ns=t0 + 2 * NS_PER_S), trade(4, ts_ns=t0 + 16 * NS_PER_S)]
    )
    assert out.late_trades == {"binance": 1}  # 18 s behind: beyond the 5 s window
    # ... recorded as a gap over its bucket, for the repair to rebuild the bars from storage
    assert out.late_gaps == [
        Gap("binance", "BTC-USDT", "trades", t0 + 2 * NS_PER_S, t0 + 2 * NS_PER_S, "late_trades")
    ]
    assert out.revised_trades == {"binance": 1}
    assert [c.open_ns for c in out.revised] == [t0 + 16 * NS_PER_S]  # 4 s behind: revised
    # Closed bars are kept only as far back as the window.
    (builder,) = deriver._builders[("binance", "BTC-USDT")]
    assert all(o >= t0 + 14 * NS_PER_S for o in builder.recent)


@pytest.mark.parametrize("timeframes", [("1s", "1m"), ("15s", "5m")])
@settings(max_examples=40, deadline=None)
@given(trades=trade_streams(), delays=st.lists(st.integers(0, 4), min_size=50, max_size=50),
       cuts=st.lists(st.integers(0, 50), max_size=6))  # fmt: skip
def test_out_of_order_arrival_ends_with_the_reference_bars(
    timeframes: tuple[str, ...], trades: list[Trade], delays: list[int], cuts: list[int]
) -> None:
    """Trades arrive up to four places late, in batches, with the clock advancing between
    batches: closed bars and their revisions end equal to the bars of the trades in exchange
    time order (equal times in arrival order)."""
    order = sorted(range(len(trades)), key=lambda i: i + delays[i])
    # Each market's first trade comes first: a builder revises only from its first bucket on.
    firsts = [next(i for i, t in enumerate(trades) if t.symbol == s) for s in _symbols(trades)]
    arrived = [trades[i] for i in firsts] + [trades[i] for i in order if i not in firsts]
    deriver = CandleDeriver(CandleConfig(timeframes=timeframes, late_window_ns=600 * NS_PER_S))
    bounds = sorted({0, len(arrived), *[c for c in cuts if c < len(arrived)]})
    final: dict[tuple[str, str, str, int], Candle] = {}

    def keep(bars: list[Candle]) -> None:
        for bar in bars:
            final[(bar.timeframe, bar.exchange, bar.symbol, bar.open_ns)] = bar

    for lo, hi in pairwise(bounds):
        out = deriver.add_trades(arrived[lo:hi])
        keep(out.closed)
        keep(out.revised)
        assert out.late_trades == {}
        keep(deriver.advance(max(t.ts_ns for t in arrived[:hi])).closed)
    longest = max(timeframe_ns(t) for t in timeframes)
    keep(deriver.advance(trades[-1].ts_ns + 2 * longest + CandleConfig().close_grace_ns).closed)
    # exchange time order; equal times keep arrival order
    in_time = sorted(arrived, key=lambda t: t.ts_ns)
    for timeframe in timeframes:
        got = {(e, s, o): c for (t, e, s, o), c in final.items() if t == timeframe}
        assert got == reference_bars(in_time, timeframe)


def test_unknown_timeframe_is_a_config_error() -> None:
    with pytest.raises(ValueError, match="unknown timeframe"):
        CandleConfig(timeframes=("7m",))
