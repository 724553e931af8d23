"""Bad input becomes a DecodeError with a reason, is counted, and the feed carries on."""

from __future__ import annotations

import pytest

from tickvault.exchanges.coinbase.feed import CoinbaseFeed
from tickvault.model import BookDelta, Instrument, Trade

BTC = Instrument("coinbase", "BTC-USD", "BTC-USD", "BTC", "USD")

MATCH = (
    '{"type":"match","trade_id":280232,"side":"sell","size":"985","price":"0.00001305",'
    '"product_id":"BTC-USD","sequence":177100030,"time":"2021-04-17T16:43:37.089723Z"}'
)
TRADES = (
    '{"channel":"market_trades","client_id":"","timestamp":"2023-02-09T20:19:35.39625135Z",'
    '"sequence_num":0,"events":[{"type":"snapshot","trades":[{"trade_id":"1","product_id":"BTC-USD",'
    '"price":"1260.01","size":"0.3","side":"BUY","time":"2019-08-14T20:42:27.265Z"}]}]}'
)
SNAPSHOT = '{"type":"snapshot","product_id":"BTC-USD","bids":[["10101.10","0.45"]],"asks":[["10102.55","0.57"]]}'
L2UPDATE = '{"type":"l2update","product_id":"BTC-USD","time":"2019-08-14T20:42:27.265Z","changes":[["buy","10101.80000000","0.162567"]]}'

CASES = [
    ("not json", "malformed_json"),
    (MATCH[:40], "malformed_json"),  # truncated frame
    (TRADES[:-3], "malformed_json"),
    ("[1, 2]", "schema"),
    ("{}", "unknown_type"),
    ('{"type":"done","product_id":"BTC-USD"}', "unknown_type"),
    (
        '{"channel":"level3","timestamp":"2023-02-09T20:19:35Z","sequence_num":0,"events":[]}',
        "unknown_type",
    ),
    (MATCH.replace('"trade_id":280232', '"trade_id":"x280232"'), "schema"),
    (MATCH.replace('"price":"0.00001305"', '"price":0.00001305'), "schema"),
    (MATCH.replace('"sequence":177100030,', ""), "schema"),
    (MATCH.replace('"0.00001305"', '"NaN"'), "bad_decimal"),
    (MATCH.replace('"985"', '"1e-05"'), "bad_decimal"),
    (MATCH.replace('"985"', '"-985"'), "bad_value"),
    (MATCH.replace("BTC-USD", "DOGE-USD"), "unknown_product"),
    (MATCH.replace('"side":"sell"', '"side":"ask"'), "bad_side"),
    (MATCH.replace("2021-04-17T16:43:37.089723Z", "2021-04-17 16:43"), "bad_time"),
    (MATCH.replace("2021-04-17T16:43:37.089723Z", "2021-02-30T16:43:37Z"), "bad_time"),
    (TRADES.replace('"1260.01"', '"1e3"'), "bad_decimal"),
    (TRADES.replace('"BUY"', '"HOLD"'), "bad_side"),
    (TRADES.replace("BTC-USD", "XRP-USD"), "unknown_product"),
    (TRADES.replace('"sequence_num":0', '"sequence_num":"0"'), "schema"),
    (TRADES.replace('"size":"0.3"', '"size":["0.3"]'), "schema"),
    (SNAPSHOT.replace('"0.45"', '"-0.45"'), "bad_level"),
    (SNAPSHOT.replace('["10101.10","0.45"]', '["10101.10","0.45",3]'), "schema"),
    (
        '{"type":"error","message":"Failed to subscribe","reason":"level2 requires authentication"}',
        "exchange_error",
    ),
]


@pytest.mark.parametrize(("raw", "reason"), CASES)
def test_bad_message_is_a_decode_error_and_feed_continues(raw: str, reason: str) -> None:
    feed = CoinbaseFeed([BTC], book_depth=5)
    out = feed.on_message(raw, 7)
    assert [e.reason for e in out.errors] == [reason]
    error = out.errors[0]
    assert error.raw == raw and error.recv_ns == 7 and error.exchange == "coinbase" and error.detail
    assert out.events == [] and feed.counters.decode_errors == 1
    # the next good message is decoded normally
    good = feed.on_message(MATCH, 8)
    assert [type(e) for e in good.events] == [Trade] and good.errors == []


def test_bytes_that_are_not_utf8() -> None:
    out = CoinbaseFeed([BTC], 5).on_message(b'{"type":"match","price":"\xff"}', 1)
    assert [e.reason for e in out.errors] == ["malformed_json"]


def test_bad_book_update_resyncs_that_book() -> None:
    feed = CoinbaseFeed([BTC], book_depth=5)
    feed.on_message(SNAPSHOT, 1)
    out = feed.on_message(L2UPDATE.replace('"0.162567"', '"NaN"'), 2)
    assert [e.reason for e in out.errors] == ["bad_decimal"] and out.errors[0].symbol == "BTC-USD"
    assert out.resync == ["BTC-USD"] and feed.books() == {}
    # further updates wait for the snapshot the resubscription brings
    assert feed.on_message(L2UPDATE, 3).events == []
    feed.on_message(SNAPSHOT, 4)
    assert [type(e) for e in feed.on_message(L2UPDATE, 5).events] == [BookDelta]


def test_bad_advanced_book_message_resyncs_named_books() -> None:
    feed = CoinbaseFeed([BTC], book_depth=5)
    snap = (
        '{"channel":"l2_data","timestamp":"2023-02-09T20:32:50Z","sequence_num":0,"events":[{"type":"snapshot",'
        '"product_id":"BTC-USD","updates":[{"side":"bid","event_time":"","price_level":"1","new_quantity":"2"}]}]}'
    )
    feed.on_message(snap, 1)
    bad = snap.replace('"sequence_num":0', '"sequence_num":1').replace('"snapshot"', '"update"')
    bad = bad.replace('"new_quantity":"2"', '"new_quantity":2')
    out = feed.on_message(bad, 2)
    assert [e.reason for e in out.errors] == ["schema"] and out.resync == ["BTC-USD"]
    assert out.gaps == [] and feed.counters.sequence_gaps == 0  # the numbering itself was fine
