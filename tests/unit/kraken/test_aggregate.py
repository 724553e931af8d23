"""Kraken candle history from trades: the pipeline's fold, plus flat bars and a page cursor."""

from __future__ import annotations

from decimal import Context, Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from tickvault.exchanges.kraken.aggregate import (
    CandleCursor,
    aggregate,
    decode_cursor,
    encode_cursor,
)
from tickvault.model import Candle, Side, Trade
from tickvault.pipeline.candles import CandleConfig, CandleDeriver

MIN = 60_000_000_000
T0 = 1_704_067_200_000_000_000
RECV = T0 + 10**15


def _trades(steps: list[tuple[int, int, int, int]]) -> list[Trade]:
    out, ts = [], T0
    for i, (gap_ms, price, size, side) in enumerate(steps):
        ts += gap_ms * 1_000_000
        out.append(Trade("kraken", "BTC-USD", str(i + 1), Decimal(price) / 100,
                         Decimal(size) / 10**8, (Side.BUY, Side.SELL, Side.UNKNOWN)[side],
                         ts, RECV))  # fmt: skip
    return out


steps = st.lists(
    st.tuples(
        st.integers(0, 400_000),  # up to ~7 minutes between trades: empty 1m buckets happen
        st.integers(1, 10**9),
        st.integers(1, 10**12),
        st.integers(0, 2),
    ),
    min_size=1,
    max_size=120,
)


def _paged(trades: list[Trade], cuts: list[int]) -> tuple[list[Candle], CandleCursor]:
    """Page by page, the cursor through its JSON form between pages, as a backfill does."""
    cursor, out, start = CandleCursor(T0), [], 0
    for end in [*sorted(cuts), len(trades)]:
        finished, bar = aggregate(
            trades[start:end], "1m", cursor.bar, exchange="kraken", symbol="BTC-USD", recv_ns=RECV
        )
        out += finished
        cursor = decode_cursor(encode_cursor(CandleCursor(T0, bar)))
        start = max(start, end)
    return out, cursor


@settings(max_examples=150, deadline=None)
@given(steps, st.lists(st.integers(0, 120), max_size=5))
def test_pages_fold_like_the_pipeline_with_flat_bars_for_empty_buckets(
    step_list: list[tuple[int, int, int, int]], cuts: list[int]
) -> None:
    trades = _trades(step_list)
    kraken, cursor = _paged(trades, [c for c in cuts if c <= len(trades)])
    deriver = CandleDeriver(CandleConfig(timeframes=("1m",)))
    live = deriver.add_trades(trades)
    # traded buckets: the very same bars as the pipeline derives (recv_ns: the page's)
    traded = [c for c in kraken if c.trade_count]
    assert traded == live.closed
    # empty buckets: exactly the pipeline's EmptyIntervals, as flat bars at the previous close
    flats = [c for c in kraken if not c.trade_count]
    assert [c.open_ns for c in flats] == [
        t for run in live.empty for t in range(run.from_open_ns, run.to_open_ns, MIN)
    ]
    closes = {c.open_ns: c.close for c in kraken}
    for flat in flats:
        assert flat.open == flat.high == flat.low == flat.close == closes[flat.open_ns - MIN]
        assert flat.volume == 0 and flat.vwap is None and flat.ts_ns == flat.open_ns
    # the bar still open is the pipeline's forming bar
    assert cursor.bar is not None and live.updated[0].open_ns == cursor.bar.open_ns
    assert live.updated[0].trade_count == cursor.bar.trade_count
    assert live.updated[0].quote_volume == cursor.bar.quote_volume


def test_sums_are_exact_beyond_28_digits() -> None:
    # 8-decimal price x 8-decimal size: 26 significant digits each, summed past 28 digits
    big = [Trade("kraken", "BTC-USD", str(i), Decimal("123456789.12345678"),
                 Decimal("98765432.87654321"), Side.BUY, T0 + i, RECV)
           for i in range(3)]  # fmt: skip
    finished, bar = aggregate(big, "1m", None, exchange="kraken", symbol="BTC-USD", recv_ns=RECV)
    assert not finished and bar is not None
    exact = Context(prec=100).multiply(Decimal("370370367.37037034"), Decimal("98765432.87654321"))
    assert bar.quote_volume == exact  # 34 digits: the default 28-digit context would round
    assert len(exact.as_tuple().digits) > 28


def test_a_stored_cursor_resumes() -> None:
    # a cursor as checkpoints hold it: next since, the open bar (11 fields), the last trade id
    old = (
        f'[{T0},[{T0},"105000.1","105010.2","104990.3","105005.4","0.5","52502.7","0.3",'
        '"0.2",4,' + str(T0 + 5) + "],7]"
    )
    cursor = decode_cursor(old)
    assert cursor.bar is not None and cursor.bar.trade_count == 4 and cursor.last_trade_id == 7
    later = _trades([(61_000, 10_500_000_00, 10**8, 0)])
    finished, bar = aggregate(
        later, "1m", cursor.bar, exchange="kraken", symbol="BTC-USD", recv_ns=RECV
    )
    assert [c.trade_count for c in finished] == [4] and finished[0].recv_ns == RECV
    assert finished[0].close == Decimal("105005.4") and bar is not None
