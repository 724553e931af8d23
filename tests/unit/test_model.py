from decimal import Decimal

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tickvault.model import (
    Candle,
    Side,
    Trade,
    bucket_start_ns,
    decimal_str,
    parse_decimal,
    split_symbol,
    timeframe_ns,
)


@given(st.decimals(allow_nan=False, allow_infinity=False, places=8, min_value=0, max_value=10**9))
def test_decimal_strings_round_trip_exactly(value: Decimal) -> None:
    text = f"{value:f}"
    assert decimal_str(parse_decimal(text)) == text


@pytest.mark.parametrize(
    "bad", ["NaN", "nan", "Infinity", "-inf", "1e-05", "1E5", "", "abc", "1.2.3"]
)
def test_parse_decimal_rejects_non_plain_numbers(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_decimal(bad)


def test_trailing_zeros_survive() -> None:
    assert str(parse_decimal("43519.34000000")) == "43519.34000000"


def test_trade_round_trips_through_msgpack() -> None:
    trade = Trade("binance", "BTC-USDT", "1", Decimal("0.00100000"), Decimal("5"), Side.BUY, 1, 2)
    back = msgspec.msgpack.decode(msgspec.msgpack.encode(trade), type=Trade)
    assert back == trade
    assert str(back.price) == "0.00100000"


def test_buckets_align_to_epoch() -> None:
    ts = 1_706_630_461_123_000_000
    assert bucket_start_ns(ts, "1m") == 1_706_630_460_000_000_000
    assert bucket_start_ns(ts, "1h") == 1_706_630_400_000_000_000
    with pytest.raises(ValueError, match="unknown timeframe"):
        timeframe_ns("7m")


def test_split_symbol() -> None:
    assert split_symbol("BTC-USDT") == ("BTC", "USDT")
    for bad in ["BTCUSDT", "-USD", "BTC-", "A-B-C"]:
        with pytest.raises(ValueError):
            split_symbol(bad)


def test_candle_defaults() -> None:
    one = Decimal(1)
    candle = Candle("kraken", "BTC-USD", "1m", 0, one, one, one, one, one, True, 0, 0)
    assert candle.source == "exchange"
    assert candle.trade_count is None
