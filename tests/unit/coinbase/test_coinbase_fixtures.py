"""Every recorded Coinbase message decoded to exact expected values (both feeds, REST)."""

from __future__ import annotations

from decimal import Decimal as D
from pathlib import Path

from tickvault.exchanges.base import FeedOutput
from tickvault.exchanges.capture import CaptureRecord, read_capture
from tickvault.exchanges.coinbase.adapter import ADAPTER
from tickvault.exchanges.coinbase.feed import CoinbaseFeed
from tickvault.model import BookDelta, BookSnapshot, Candle, Instrument, Side, Ticker, Trade

FIXTURES = Path(__file__).parents[2] / "fixtures" / "coinbase"
NS = 1_000_000_000


def inst(product_id: str, base: str, quote: str, ws_symbol: str | None = None) -> Instrument:
    return Instrument("coinbase", product_id, f"{base}-{quote}", base, quote, ws_symbol=ws_symbol)


INSTRUMENTS = [
    inst("BAND-GBP", "BAND", "GBP"),
    inst("SKL-BTC", "SKL", "BTC"),
    inst("BTC-USD", "BTC", "USD"),
    inst("ETH-USD", "ETH", "USD"),
    inst("SOL-USD", "SOL", "USD"),
]


def records(name: str) -> list[CaptureRecord]:
    return list(read_capture(FIXTURES / name))


def replay(name: str, feed: CoinbaseFeed | None = None) -> tuple[CoinbaseFeed, list[FeedOutput]]:
    feed = feed or CoinbaseFeed(INSTRUMENTS, book_depth=10)
    return feed, [feed.on_message(r.raw, r.ts_ns) for r in records(name)]


def test_exchange_2021_recording() -> None:
    recs = records("exchange_ws_2021.jsonl")
    feed, outs = replay("exchange_ws_2021.jsonl")
    ticker_ns = 1618677810244075000  # 2021-04-17T16:43:30.244075Z
    assert outs[0].events == [
        Ticker(
            "coinbase",
            "BAND-GBP",
            ticker_ns,
            recs[0].ts_ns,
            bid_price=D("14.7550"),
            ask_price=D("14.8060"),
            last_price=D("14.7775"),
            volume_24h=D("94381.28000000"),
        )
    ]
    # Same sequence as the ticker, other channel: both pass. Maker sold -> the taker bought.
    assert outs[1].events == [
        Trade(
            "coinbase",
            "BAND-GBP",
            "881613",
            D("14.7775"),
            D("0.04"),
            Side.BUY,
            ticker_ns,
            recs[1].ts_ns,
        )
    ]
    assert outs[2].events == [
        BookSnapshot(
            "coinbase",
            "BAND-GBP",
            (),
            ((D("14.8024"), D("12.77")), (D("14.8069"), D("12.49"))),
            recs[2].ts_ns,
            recs[2].ts_ns,
        )
    ]
    # An l2update for a book never snapshotted cannot be applied: resync, no event.
    assert outs[3].events == [] and outs[3].resync == ["SKL-BTC"]
    assert outs[4].events == [
        Trade(
            "coinbase",
            "SKL-BTC",
            "280232",
            D("0.00001305"),
            D("985"),
            Side.BUY,
            1618677817089723000,
            recs[4].ts_ns,
        )
    ]
    assert all(not o.errors and not o.gaps for o in outs)
    assert feed.counters.messages == 5 and feed.counters.resyncs == 1
    assert feed.books() == {"BAND-GBP": ([], [("14.8024", "12.77"), ("14.8069", "12.49")])}


def test_exchange_documented_examples() -> None:
    recs = records("exchange_ws_docs.jsonl")
    feed, outs = replay("exchange_ws_docs.jsonl")
    assert outs[0] == FeedOutput()  # subscriptions ack
    snap = outs[1].events[0]
    assert isinstance(snap, BookSnapshot)
    assert snap.bids == ((D("10101.10"), D("0.45054140")),)
    assert snap.asks == ((D("10102.55"), D("0.57753524")),)
    assert outs[2].events == [
        BookDelta(
            "coinbase",
            "BTC-USD",
            ((D("10101.80000000"), D("0.162567")),),
            (),
            1565815347265000000,
            recs[2].ts_ns,
        )
    ]
    assert outs[3].events == [
        Ticker(
            "coinbase",
            "BTC-USD",
            1504371949250000000,
            recs[3].ts_ns,
            bid_price=D("4388"),
            ask_price=D("4388.01"),
            last_price=D("4388.01000000"),
        )
    ]
    assert feed.books() == {
        "BTC-USD": (
            [("10101.80000000", "0.162567"), ("10101.10", "0.45054140")],
            [("10102.55", "0.57753524")],
        )
    }


def test_advanced_documented_examples_each_decoded() -> None:
    recs = records("advanced_ws_docs.jsonl")
    outs = [CoinbaseFeed(INSTRUMENTS, 10).on_message(r.raw, r.ts_ns) for r in recs]
    assert outs[0].events == [
        BookSnapshot(
            "coinbase",
            "BTC-USD",
            ((D("21921.73"), D("0.06317902")), (D("21921.3"), D("0.02"))),
            (),
            1675974770714964855,
            recs[0].ts_ns,
        )
    ]
    assert outs[1].events == [
        Trade(
            "coinbase",
            "ETH-USD",
            "000000000",
            D("1260.01"),
            D("0.3"),
            Side.BUY,
            1565815347265000000,
            recs[1].ts_ns,
        )
    ]
    assert outs[2].events == [
        Ticker(
            "coinbase",
            "BTC-USD",
            1675974637167359596,
            recs[2].ts_ns,
            bid_price=D("21931.98"),
            bid_size=D("8000.21"),
            ask_price=D("21933.98"),
            ask_size=D("8038.07770938"),
            last_price=D("21932.98"),
            volume_24h=D("16038.28770938"),
        )
    ]
    assert outs[3].events == [
        Candle(
            "coinbase",
            "ETH-USD",
            "5m",
            1688998200 * NS,
            D("1867.38"),
            D("1867.72"),
            D("1865.63"),
            D("1866.81"),
            D("0.20269406"),
            False,
            1686341975396251350,
            recs[3].ts_ns,
        )
    ]
    assert outs[4] == FeedOutput() and outs[5] == FeedOutput()  # heartbeats, status


def test_advanced_live_session_book_and_trade() -> None:
    recs = records("advanced_ws_sol_session.jsonl")
    feed, outs = replay("advanced_ws_sol_session.jsonl")
    assert [type(e) for o in outs for e in o.events] == [BookSnapshot, BookDelta, Trade]
    delta = outs[1].events[0]
    assert delta == BookDelta(
        "coinbase",
        "SOL-USD",
        ((D("120.73"), D("42.55393162")),),
        ((D("120.72"), D("0")),),
        1790396138409935310,
        recs[1].ts_ns,
    )
    assert outs[2].events == [
        Trade(
            "coinbase",
            "SOL-USD",
            "355495415",
            D("120.71"),
            D("1.29080517"),
            Side.SELL,
            1790396100114692000,
            recs[2].ts_ns,
        )
    ]
    assert feed.books() == {"SOL-USD": ([("120.73", "42.55393162"), ("120.7", "110.06502693")], [])}
    assert feed.counters.sequence_gaps == 0 and feed.counters.resyncs == 0


def test_advanced_live_control_and_trades() -> None:
    recs = records("advanced_ws_misc.jsonl")
    feed = CoinbaseFeed(INSTRUMENTS, 10)
    outs = [feed.on_message(r.raw, r.ts_ns) for r in recs[:4]]
    # acks and heartbeat: contiguous 1, 2, 3 and nothing to store
    assert all(o == FeedOutput() for o in outs[:3])
    assert [e.reason for e in outs[3].errors] == ["exchange_error"]
    assert outs[3].errors[0].detail == "authentication failure"
    eth = CoinbaseFeed(INSTRUMENTS, 10).on_message(recs[4].raw, recs[4].ts_ns)
    ts = 1790732485375232000
    assert eth.events == [  # newest first on the wire, in time order out
        Trade(
            "coinbase", "ETH-USD", "846149799", D("2668.36"), D("1"), Side.BUY, ts, recs[4].ts_ns
        ),
        Trade(
            "coinbase",
            "ETH-USD",
            "846149798",
            D("2668.35"),
            D("0.03710506"),
            Side.SELL,
            ts,
            recs[4].ts_ns,
        ),
    ]
    btc = CoinbaseFeed(INSTRUMENTS, 10).on_message(recs[5].raw, recs[5].ts_ns)
    assert btc.events == [
        Trade(
            "coinbase",
            "BTC-USD",
            "892262231",
            D("115445.28"),
            D("0.00015604"),
            Side.BUY,
            1761583479600153000,
            recs[5].ts_ns,
        )
    ]


def test_rest_fixtures() -> None:
    products, adv_products, candles, trades = records("rest.jsonl")
    instruments = ADAPTER.parse_instruments(products.raw)
    assert [
        (i.exchange_symbol, i.symbol, i.tick_size, i.lot_size, i.status) for i in instruments
    ] == [
        ("BTC-USD", "BTC-USD", D("0.01"), D("0.00000001"), "trading"),
        ("DAI-USDC", "DAI-USDC", D("0.000001"), D("0.00001"), "trading"),
        ("BTC-EUR", "BTC-EUR", D("0.01"), D("0.00000001"), "trading"),
        ("BTC-USDC", "BTC-USDC", D("0.01"), D("0.00000001"), "trading"),
        ("ETH-USD", "ETH-USD", D("0.01"), D("0.00000001"), "trading"),
    ]
    usd, usdc = ADAPTER.parse_instruments(adv_products.raw)
    assert (usd.symbol, usd.ws_symbol, usd.aliases) == ("BTC-USD", None, ("BTC-USDC",))
    assert (usdc.symbol, usdc.ws_symbol, usdc.aliases) == ("BTC-USDC", "BTC-USD", ("BTC-USD",))
    assert usdc.quote == "USDC" and usdc.tick_size == D("0.01")

    btc_usdt = inst("BTC-USDT", "BTC", "USDT")
    since, until = 1710327600 * NS, 1710331200 * NS
    page = ADAPTER.parse_backfill_page(
        btc_usdt, "candles:1h", candles.raw, None, since, until, candles.ts_ns
    )
    assert page.errors == [] and page.next_cursor is None
    assert page.events == [
        Candle(
            "coinbase",
            "BTC-USDT",
            "1h",
            since,
            D("73243.33"),
            D("73402.47"),
            D("73241.5"),
            D("73370.65"),
            D("1.56794406"),
            False,
            since,
            candles.ts_ns,
        )
    ]
    page = ADAPTER.parse_backfill_page(
        btc_usdt, "trades", trades.raw, None, since, until, trades.ts_ns
    )
    assert page.events == [
        Trade(
            "coinbase",
            "BTC-USDT",
            "18502034",
            D("73271.63000000"),
            D("0.00007448"),
            Side.BUY,
            1710327617710679000,
            trades.ts_ns,
        )
    ]
    assert page.next_cursor == "18502034"  # the page did not reach back to since_ns yet
