"""WebSocket v1 fixtures (the public recordings) decoded to exact values."""

from __future__ import annotations

from decimal import Decimal

from tickvault.exchanges.kraken.feed import KrakenFeed
from tickvault.model import BookDelta, BookSnapshot, Candle, Side, Ticker, Trade

from .conftest import Instrument, replay

D = Decimal


def test_xbtusd_book10_recording_verifies_every_update(instruments: list[Instrument]) -> None:
    feed = KrakenFeed(instruments, 10)
    outs = replay(feed, "ws_v1_book_xbtusd.jsonl")
    snapshot = outs[0].events[0]
    assert isinstance(snapshot, BookSnapshot) and snapshot.symbol == "BTC-USD"
    assert snapshot.asks[0] == (D("5711.80000"), D("8.13439401"))
    assert snapshot.bids[0] == (D("5711.70000"), D("0.00749800"))
    assert snapshot.ts_ns == 1557070784848047000  # newest level time
    deltas = [out.events[0] for out in outs[1:]]
    assert all(isinstance(d, BookDelta) for d in deltas)
    assert [d.checksum for d in deltas] == [2470128591, 4148072505, 3093569863]
    assert feed.counters.checksum_failures == 0 and feed.counters.resyncs == 0
    # update 2 inserts 5709.4 into a full depth-10 side: the worst bid falls out, and the
    # delta says so with an explicit delete
    assert deltas[1].bids == (
        (D("5709.20000"), D("8.00000000")),
        (D("5709.40000"), D("0.30000000")),
        (D("5705.90000"), D(0)),
    )
    bids, asks = feed.books()["BTC-USD"]
    assert bids == [
        ("5711.70000", "0.00749800"), ("5709.40000", "0.30000000"), ("5709.20000", "8.00000000"),
        ("5707.80000", "2.50000000"), ("5707.40000", "4.33000000"), ("5707.00000", "0.00200000"),
        ("5706.90000", "1.17300000"), ("5706.40000", "0.85600000"), ("5706.30000", "1.00000000"),
        ("5705.90000", "7.62400000"),
    ]  # fmt: skip
    assert asks[0] == ("5711.80000", "8.13439401") and len(asks) == 10


def test_misc_recording(instruments: list[Instrument]) -> None:
    feed = KrakenFeed(instruments, 10)
    status, sub, trade_out, ticker_out, xmr_book, sc_book, beat, ohlc_out, eth = replay(
        feed, "ws_v1_misc.jsonl"
    )
    assert status.events == status.errors == sub.errors == beat.errors == []
    assert trade_out.events == [
        Trade("kraken", "XMR-USD", "1618678142.557535:0", D("354.11000000"), D("0.89594024"),
              Side.SELL, 1618678142557535000, 1618678142600000000)
    ]  # fmt: skip
    (ticker,) = ticker_out.events
    assert ticker == Ticker(
        "kraken", "WAVES-EUR", 1618678143000000000, 1618678143000000000,
        bid_price=D("13.232900"), bid_size=D("185.18432037"), ask_price=D("13.253900"),
        ask_size=D("35.72892241"), last_price=D("13.253900"), volume_24h=D("72035.05488104"),
    )  # fmt: skip
    # updates of books this recording slice never snapshotted cannot be applied: reported
    for out in (xmr_book, sc_book):
        assert out.events == [] and [e.reason for e in out.errors] == ["book_not_synced"]
    (bar,) = ohlc_out.events
    assert isinstance(bar, Candle) and bar.timeframe == "5m" and bar.symbol == "BTC-USD"
    assert (bar.open, bar.high, bar.low, bar.close, bar.vwap, bar.volume, bar.trade_count) == (
        D("3586.70000"), D("3586.70000"), D("3586.60000"), D("3586.60000"), D("3586.68894"),
        D("0.03373000"), 2,
    )  # fmt: skip
    assert bar.open_ns == 1542057300000000000 and bar.ts_ns == 1542057314748456000
    (eth_snapshot,) = eth.events
    assert isinstance(eth_snapshot, BookSnapshot) and eth_snapshot.symbol == "ETH-USD"
    assert eth_snapshot.asks[0] == (D("1185.36000"), D("266.13742360"))
    assert eth_snapshot.bids[-1] == (D("1184.98000"), D("63.29169047"))
    assert feed.counters.decode_errors == 2
