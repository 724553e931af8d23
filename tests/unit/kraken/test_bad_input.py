"""Bad input never raises and never vanishes: each becomes a DecodeError with its reason,
and the feed keeps working afterwards."""

from __future__ import annotations

import pytest

from tickvault.exchanges.kraken.feed import KrakenFeed

from .conftest import Instrument, records

TRADE = (
    '{"channel":"trade","type":"update","data":[{"symbol":"BTC/USD","side":"buy",'
    '"price":PRICE,"qty":0.00044780,"ord_type":"limit","trade_id":109116693,'
    '"timestamp":"2026-09-25T17:48:26.844359Z"}]}'
)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("{not json", "malformed_json"),
        (TRADE.replace("PRICE", "83744.3")[:57], "malformed_json"),  # truncated frame
        ("[993,[[\"354.11\",\"0.8\",\"1618678142.5\",\"s\",\"l\",\"\"]],\"tra", "malformed_json"),
        ('{"channel":"spread","type":"update","data":[]}', "unknown_channel"),
        ('[1,{"x":1},"spread","XBT/USD"]', "unknown_channel"),
        (TRADE.replace("PRICE", "true"), "schema"),  # wrong type
        (TRADE.replace("PRICE", '"NaN"'), "bad_number"),
        (TRADE.replace("PRICE", "NaN"), "malformed_json"),
        (TRADE.replace("PRICE", "1e-05"), "bad_number"),
        (TRADE.replace("PRICE", "-1.5"), "bad_number"),
        (TRADE.replace("PRICE", "1.5").replace("BTC/USD", "NOPE/USD"), "unknown_symbol"),
        (TRADE.replace("PRICE", "1.5").replace('"buy"', '"up"'), "schema"),
        (TRADE.replace("PRICE", "1.5").replace("2026-09-25T", "2026-13-25T"), "bad_timestamp"),
        ('[993,[["1e-05","0.8","1618678142.5","s","l",""]],"trade","XMR/USD"]', "bad_number"),
        ('[993,[[354.11,"0.8","1618678142.5","s","l",""]],"trade","XMR/USD"]', "schema"),
        ('[993,[["354.11","0.8","1618678142.5","s","l",""]],"trade","NOPE/USD"]', "unknown_symbol"),
        ('{"channel":"book","type":"update","data":[{"symbol":"BTC/USD","bids":[{"price":1}]}]}', "schema"),
        ('{"channel":"ohlc","type":"update","data":[{"symbol":"BTC/USD","interval":21600,'
         '"interval_begin":"2026-09-25T00:00:00Z","open":1,"high":1,"low":1,"close":1,"volume":1}]}',
         "unsupported_interval"),
        ('[993,[["354.11","0.8","1618678142.²","s","l",""]],"trade","XMR/USD"]', "bad_timestamp"),
        ('[993,[["354.11","0.8","١٦١٨.5","s","l",""]],"trade","XMR/USD"]', "bad_timestamp"),
        ('[0,{"b":[["5710.70000","4.8","1557070785.037000"]],"c":"²"},"book-10","XBT/USD"]', "schema"),
        ('{"event":"surprise"}', "unknown_event"),
        ('[1,"x"]', "schema"),
    ],
)  # fmt: skip
def test_bad_message_becomes_decode_error(
    instruments: list[Instrument], raw: str, reason: str
) -> None:
    feed = KrakenFeed(instruments, 10)
    out = feed.on_message(raw, 7)
    assert out.events == []
    assert [e.reason for e in out.errors] == [reason]
    assert out.errors[0].raw == raw and out.errors[0].recv_ns == 7 and out.errors[0].detail
    assert feed.counters.decode_errors == 1
    # and the feed keeps going
    good = records("ws_v2_recorded.jsonl")[3]
    assert len(feed.on_message(good.raw, good.ts_ns).events) == 1


def test_one_bad_trade_in_a_batch_keeps_the_others(instruments: list[Instrument]) -> None:
    feed = KrakenFeed(instruments, 10)
    (record,) = [r for r in records("ws_v2_docs.jsonl") if '"trade"' in r.raw]
    out = feed.on_message(record.raw.replace('"qty":6423.46326', '"qty":0'), 1)
    assert [t.trade_id for t in out.events] == ["4665847"]  # type: ignore[union-attr]
    assert [e.reason for e in out.errors] == ["bad_number"]


def test_bad_book_message_for_a_synced_book_resyncs(instruments: list[Instrument]) -> None:
    feed = KrakenFeed(instruments, 10)
    (snapshot,) = records("ws_v2_book_guide.jsonl")
    feed.on_message(snapshot.raw, snapshot.ts_ns)
    bad = '{"channel":"book","type":"update","data":[{"symbol":"BTC/USD","bids":[{"price":"NaN","qty":1}],"asks":[],"checksum":1}]}'
    out = feed.on_message(bad, 99)
    assert [e.reason for e in out.errors] == ["bad_number"]
    assert out.resync == ["BTC-USD"] and [g.reason for g in out.gaps] == ["decode_error"]
