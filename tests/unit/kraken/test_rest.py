"""REST parsers and backfill paging on recorded responses."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tickvault.errors import ExchangeError, RateLimitError
from tickvault.exchanges.kraken import rest
from tickvault.exchanges.kraken.adapter import ADAPTER
from tickvault.model import Candle, CandleSource, Side, Trade

from .conftest import Instrument, records

D = Decimal
S = 1_000_000_000
BASE_S = 1762795000  # offsets below are seconds after this


def usdt(instruments: list[Instrument]) -> Instrument:
    return next(i for i in instruments if i.exchange_symbol == "XBTUSDT")


def test_trades_page_exact(instruments: list[Instrument]) -> None:
    page, recorded = (r.raw for r in records("rest_trades.jsonl"))
    trades, last_ns, errors = rest.parse_trades(page, usdt(instruments), 5)
    assert errors == [] and last_ns == 1762820035982277754 and len(trades) == 12
    assert trades[0] == Trade(
        "kraken", "BTC-USDT", "10218208", D("105433.60000"), D("0.00027625"), Side.BUY,
        1762795433971744500, 5,
    )  # fmt: skip
    assert (trades[4].side, trades[4].ts_ns) == (Side.SELL, 1762795483306824000)
    btc = next(i for i in instruments if i.symbol == "BTC-USD")
    trades, last_ns, _ = rest.parse_trades(recorded, btc, 5)  # answered under "BTC/USD"
    assert [t.trade_id for t in trades] == ["109118758", "109118759", "109118760"]
    assert trades[0].size == D("0.00005100") and last_ns == 1790359841138228746


def test_trades_backfill_pages_forward(instruments: list[Instrument]) -> None:
    page = records("rest_trades.jsonl")[0].raw
    market = usdt(instruments)
    since, far = 1762795400 * S, 1800000000 * S
    request = ADAPTER.backfill_request(market, "trades", None, since, far)
    assert request.path == "/0/public/Trades"
    assert request.params == {"pair": "XBTUSDT", "since": str(since), "count": "1000"}
    first = ADAPTER.parse_backfill_page(market, "trades", page, None, since, far, 9)
    assert len(first.events) == 12 and first.next_cursor == "1762820035982277754"
    follow = ADAPTER.backfill_request(market, "trades", first.next_cursor, since, far)
    assert follow.params["since"] == "1762820035982277754"
    # a range ending inside the page: only its trades, and the range is complete
    until = (BASE_S + 700) * S
    bounded = ADAPTER.parse_backfill_page(market, "trades", page, None, since, until, 9)
    assert len(bounded.events) == 9 and bounded.next_cursor is None


def test_candles_derived_from_trades(instruments: list[Instrument]) -> None:
    page = records("rest_trades.jsonl")[0].raw
    market = usdt(instruments)
    since, until = (BASE_S + 380) * S, (BASE_S + 700) * S
    request = ADAPTER.backfill_request(market, "candles:1m", None, since + 7 * S, until)
    assert request.params["since"] == str(since)  # aligned to the bucket start
    result = ADAPTER.parse_backfill_page(market, "candles:1m", page, None, since, until, 9)
    assert result.next_cursor is None
    bars = result.events
    assert all(isinstance(b, Candle) and b.source is CandleSource.DERIVED for b in bars)
    assert [b.open_ns for b in bars] == [(BASE_S + o) * S for o in (380, 440, 500, 560)]  # type: ignore[union-attr]
    second = bars[1]
    assert isinstance(second, Candle) and second.closed
    assert (second.open, second.high, second.low, second.close) == (
        D("105410.10000"), D("105410.10000"), D("105351.10000"), D("105351.10000"),
    )  # fmt: skip
    assert (second.volume, second.buy_volume, second.sell_volume, second.trade_count) == (
        D("0.00955370"), D("0.00902532"), D("0.00052838"), 5,
    )  # fmt: skip
    flat = bars[2]
    assert isinstance(flat, Candle) and flat.volume == 0 and flat.trade_count == 0
    assert flat.open == flat.close == D("105351.10000")
    last = bars[3]
    assert isinstance(last, Candle) and last.closed and last.volume == D("0.01842214")


def test_candle_cursor_carries_the_open_bar(instruments: list[Instrument]) -> None:
    page = records("rest_trades.jsonl")[0].raw
    market = usdt(instruments)
    since, far = (BASE_S + 380) * S, 1800000000 * S
    first = ADAPTER.parse_backfill_page(market, "candles:1h", page, None, since, far, 9)
    assert first.next_cursor is not None
    # the same page again (Kraken repeating the edge): nothing counted twice, range done
    again = ADAPTER.parse_backfill_page(
        market, "candles:1h", page, first.next_cursor, since, far, 9
    )
    assert again.next_cursor is None
    bars = [*first.events, *again.events]
    assert sum(b.trade_count or 0 for b in bars if isinstance(b, Candle)) == 12
    assert bars[-1].open_ns == 1762819200 * S and isinstance(bars[-1], Candle)
    assert bars[-1].closed is False  # nothing seen beyond the bar's end: still forming


def test_ohlc_and_depth(instruments: list[Instrument]) -> None:
    btc = next(i for i in instruments if i.symbol == "BTC-USD")
    recorded, _ = (r.raw for r in records("rest_ohlc.jsonl"))
    bars = rest.parse_ohlc(recorded, btc, "1h", 3)
    assert [b.closed for b in bars] == [True, True, True, False]
    assert (bars[0].open_ns, bars[0].close, bars[0].volume, bars[0].trade_count) == (
        1790348400 * S, D("83777.5"), D("159.04484404"), 9205,
    )  # fmt: skip
    assert rest.ohlc_request(btc, "1h", 1790348400 * S).params == {
        "pair": "XXBTZUSD", "interval": "60", "since": "1790348400",
    }  # fmt: skip
    snapshot = rest.parse_depth(records("rest_depth.jsonl")[0].raw, usdt(instruments), 4)
    assert snapshot.asks[0] == (D("105944.30000"), D("0.136"))
    assert snapshot.bids[-1] == (D("105916.70000"), D("0.005"))
    assert snapshot.ts_ns == 1762820249 * S


def test_error_envelopes_are_clear(instruments: list[Instrument]) -> None:
    throttled, unknown, unavailable = (r.raw for r in records("rest_errors.jsonl"))
    with pytest.raises(RateLimitError) as info:
        ADAPTER.parse_backfill_page(usdt(instruments), "trades", throttled, None, 0, 1, 1)
    assert "Too many requests" in str(info.value) and info.value.retry_after_s > 0
    assert rest.is_rate_limited(throttled) and not rest.is_rate_limited(unknown)
    with pytest.raises(ExchangeError, match="Unknown asset pair") as other:
        rest.result_of(unknown)
    assert not isinstance(other.value, RateLimitError)
    with pytest.raises(rest.KrakenRetryableError):
        rest.result_of(unavailable)
    with pytest.raises(ExchangeError):
        rest.result_of("<html>502</html>")
