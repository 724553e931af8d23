"""Decoding real Binance messages into exact normalized events, and rejecting bad ones."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from tickvault.exchanges.binance.decode import Decoder
from tickvault.exchanges.binance.feed import BinanceFeed
from tickvault.exchanges.binance.symbols import SymbolMap
from tickvault.model import BookSnapshot, Candle, Instrument, Side, Ticker, Trade

from .helpers import RECORDING, find, records

D = Decimal
RECV = 1_700_000_000_000_000_000
DOCS = "documented_examples.jsonl"
STREAMS = "streams_2021-08-14.jsonl"


@pytest.fixture
def decoder(instruments: list[Instrument]) -> Decoder:
    return Decoder(SymbolMap(instruments))


def test_documented_trade_enveloped_and_raw(decoder: Decoder) -> None:
    docs = records(DOCS)
    expected = Trade(
        "binance", "BNB-BTC", "12345", D("0.001"), D("100"), Side.SELL,
        1672515782136 * 1_000_000, RECV,
    )  # fmt: skip
    enveloped = decoder.decode(docs[1].raw, RECV)
    raw_stream = decoder.decode(docs[2].raw.encode(), RECV)  # bytes work as well as str
    assert enveloped.events == [expected] and not enveloped.errors
    assert raw_stream.events == [expected] and not raw_stream.errors
    assert enveloped.stream == ("BNB-BTC", "trades")


def test_recorded_agg_trade_taker_buy(decoder: Decoder) -> None:
    record = find(RECORDING, '"a":15683430')
    decoded = decoder.decode(record.raw, record.ts_ns)
    assert decoded.events == [
        Trade(
            "binance", "NKN-USDT", "15683430", D("0.35280000"), D("58.00000000"), Side.BUY,
            1633998523963 * 1_000_000, record.ts_ns,
        )
    ]  # fmt: skip


def test_recorded_forming_kline(decoder: Decoder) -> None:
    record = find(RECORDING, '"t":1633998480000,"T":1633998539999,"s":"NKNUSDT"')
    (candle,) = decoder.decode(record.raw, record.ts_ns).events
    assert candle == Candle(
        "binance", "NKN-USDT", "1m", 1633998480000 * 1_000_000,
        D("0.35270000"), D("0.35280000"), D("0.35220000"), D("0.35280000"),
        D("25877.00000000"), False, 1633998523963 * 1_000_000, record.ts_ns,
        trade_count=30, quote_volume=D("9116.04600000"),
        buy_volume=D("58.00000000"), sell_volume=D("25819.00000000"),
    )  # fmt: skip


def test_recorded_closed_kline(decoder: Decoder) -> None:
    record = find(STREAMS, '"E":1628952421387')
    (candle,) = decoder.decode(record.raw, record.ts_ns).events
    assert isinstance(candle, Candle)
    assert candle.closed is True and candle.symbol == "FTM-USDT" and candle.timeframe == "1m"
    assert candle.open_ns == 1628952360000 * 1_000_000
    assert (candle.open, candle.high, candle.low, candle.close) == (
        D("0.34064000"), D("0.34070000"), D("0.33934000"), D("0.33964000"),
    )  # fmt: skip
    assert candle.volume == D("209224.30000000") and candle.trade_count == 82
    assert candle.buy_volume == D("156133.30000000")
    assert candle.sell_volume == D("53091.00000000")
    assert candle.quote_volume == D("71058.51891400")


def test_recorded_book_ticker(decoder: Decoder) -> None:
    record = find(RECORDING, '"u":499869768,"s":"NKNUSDT"')
    assert decoder.decode(record.raw, record.ts_ns).events == [
        Ticker(
            "binance", "NKN-USDT", record.ts_ns, record.ts_ns,
            bid_price=D("0.35210000"), bid_size=D("672.00000000"),
            ask_price=D("0.35260000"), ask_size=D("3199.00000000"),
        )
    ]  # fmt: skip


def test_documented_24h_ticker(decoder: Decoder) -> None:
    decoded = decoder.decode(records(DOCS)[3].raw, RECV)
    assert decoded.events == [
        Ticker(
            "binance", "BNB-BTC", 123456789 * 1_000_000, RECV,
            bid_price=D("0.0024"), bid_size=D("10"), ask_price=D("0.0026"), ask_size=D("100"),
            last_price=D("0.0025"), volume_24h=D("10000"),
        )
    ]  # fmt: skip


def test_documented_partial_depth_is_a_snapshot(decoder: Decoder) -> None:
    decoded = decoder.decode(records(DOCS)[4].raw, RECV)
    assert decoded.events == [
        BookSnapshot(
            "binance", "BNB-BTC", ((D("0.0024"), D("10")),), ((D("0.0026"), D("100")),),
            RECV, RECV, sequence=160,
        )
    ]  # fmt: skip


def test_recorded_depth_update_goes_to_the_book(decoder: Decoder) -> None:
    record = find(RECORDING, '"U":499869753,"u":499869754')
    decoded = decoder.decode(record.raw, record.ts_ns)
    assert decoded.events == [] and decoded.depth is not None
    symbol, event = decoded.depth
    assert symbol == "NKN-USDT"
    assert (event.first_id, event.last_id, event.ts_ns) == (
        499869753, 499869754, 1633998512568 * 1_000_000,
    )  # fmt: skip
    assert event.bids == [(D("0.35170000"), D("4265.00000000"))]
    assert event.asks == [(D("0.35290000"), D("10968.00000000"))]


def test_control_messages(decoder: Decoder) -> None:
    docs = records(DOCS)
    ack = decoder.decode(docs[0].raw, RECV)
    assert ack.control and not ack.events and not ack.errors
    shutdown = decoder.decode(docs[5].raw, RECV)
    assert shutdown.shutdown_ns == 1770123456789 * 1_000_000 and not shutdown.errors
    error = decoder.decode(docs[6].raw, RECV)
    assert [e.reason for e in error.errors] == ["exchange_error"]
    assert error.errors[0].detail == "code -1121: Invalid symbol."


@pytest.mark.parametrize("name", [RECORDING, STREAMS])
def test_every_recorded_stream_message_decodes(decoder: Decoder, name: str) -> None:
    count = 0
    for record in records(name):
        if record.kind == "ws":
            decoded = decoder.decode(record.raw, record.ts_ns)
            assert not decoded.errors, decoded.errors
            assert decoded.events or decoded.depth is not None
            count += 1
    assert count == {RECORDING: 265, STREAMS: 49}[name]


AGG = '{"stream":"nknusdt@aggTrade","data":{"e":"aggTrade","E":1633998523963,"s":"NKNUSDT","a":15683430,"p":"0.35280000","q":"58.00000000","f":19862790,"l":19862790,"T":1633998523963,"m":false,"M":true}}'


def _mutate(path: str, value: object) -> str:
    message = json.loads(AGG)
    message["data"][path] = value
    return json.dumps(message)


def _without(key: str) -> str:
    message = json.loads(AGG)
    del message["data"][key]
    return json.dumps(message)


KLINE_1MONTH = find(RECORDING, '"s":"NKNUSDT","i":"1m"').raw.replace('"i":"1m"', '"i":"1M"')

BAD = [
    ("malformed_json", AGG[:-7]),  # truncated frame
    ("malformed_json", "not json"),
    ("schema", _mutate("E", "1633998523963")),  # wrong-typed field
    ("schema", _without("p")),
    ("schema", "[1, 2]"),
    ("bad_decimal", _mutate("p", "1e-05")),
    ("bad_decimal", _mutate("p", "NaN")),
    ("bad_decimal", _mutate("q", "-58")),
    ("bad_decimal", _mutate("p", "")),
    ("unknown_symbol", _mutate("s", "FOOBAR")),
    ("unknown_stream", AGG.replace("nknusdt@aggTrade", "nknusdt@blockTrade")),
    ("unknown_event", json.dumps({**json.loads(AGG)["data"], "e": "outboundAccountPosition"})),
    ("unsupported_timeframe", KLINE_1MONTH),
    ("exchange_error", '{"code":-1121,"msg":"Invalid symbol."}'),
]


@pytest.mark.parametrize(("reason", "raw"), BAD)
def test_bad_input_is_a_counted_decode_error_and_the_feed_goes_on(
    instruments: list[Instrument], reason: str, raw: str
) -> None:
    feed = BinanceFeed(instruments, 5)
    out = feed.on_message(raw, RECV)
    assert out.events == []
    assert [(e.reason, e.raw, e.recv_ns) for e in out.errors] == [(reason, raw, RECV)]
    assert out.errors[0].detail
    assert feed.counters.decode_errors == 1 and feed.error_counts == {reason: 1}
    good = feed.on_message(AGG, RECV + 1)
    assert len(good.events) == 1 and not good.errors
    assert feed.counters.messages == 2


def test_schema_error_names_the_field(decoder: Decoder) -> None:
    (error,) = decoder.decode(_mutate("E", "1633998523963"), RECV).errors
    assert "$.E" in error.detail
    assert (error.channel, error.symbol) == ("trades", "NKN-USDT")
