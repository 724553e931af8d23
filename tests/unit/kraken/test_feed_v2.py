"""WebSocket v2 fixtures decoded to exact values."""

from __future__ import annotations

from decimal import Decimal

from tickvault.exchanges.kraken.feed import KrakenFeed
from tickvault.model import BookDelta, BookSnapshot, Candle, CandleSource, Side, Ticker, Trade

from .conftest import Instrument, replay

D = Decimal


def test_algo_snapshot_and_update_verify(instruments: list[Instrument]) -> None:
    feed = KrakenFeed(instruments, 10)
    status, snap_out, update_out = replay(feed, "ws_v2_book_algo.jsonl")
    assert status.events == [] and status.errors == []
    (snapshot,) = snap_out.events
    assert isinstance(snapshot, BookSnapshot)
    assert snapshot.symbol == "ALGO-USD" and snapshot.checksum == 2375857985
    assert snapshot.bids[0] == (D("0.12291"), D("27039.62776299"))
    assert snapshot.bids[4] == (D("0.12280"), D("9705.60000000"))
    assert str(snapshot.bids[4][1]) == "9705.60000000"  # trailing zeros kept
    assert snapshot.asks[0] == (D("0.12307"), D("600.00000000"))
    assert snapshot.asks[-1] == (D("0.12322"), D("4718.99755630"))
    assert snapshot.ts_ns == snapshot.recv_ns == 1727923617000000000  # no timestamp sent
    (delta,) = update_out.events
    assert isinstance(delta, BookDelta)
    assert delta.bids == ((D("0.12275"), D("6597.51731160")),) and delta.asks == ()
    assert delta.checksum == 1100635717
    assert delta.ts_ns == 1727923617050170000  # 2024-10-03T02:46:57.050170Z
    assert feed.counters.checksum_failures == 0 and feed.counters.messages == 3
    bids, asks = feed.books()["ALGO-USD"]
    assert bids[6] == ("0.12275", "6597.51731160") and len(bids) == len(asks) == 10


def test_recorded_ticker_trade_ohlc(instruments: list[Instrument]) -> None:
    feed = KrakenFeed(instruments, 10)
    status, ack, ticker_out, trade_out, ohlc_out, refused = replay(feed, "ws_v2_recorded.jsonl")
    assert status.events == status.errors == ack.events == ack.errors == []
    (ticker,) = ticker_out.events
    assert ticker == Ticker(
        "kraken", "BTC-USD", 1790358506844359000, 1790358506850000000,
        bid_price=D("83744.2"), bid_size=D("0.56251979"), ask_price=D("83744.3"),
        ask_size=D("0.00044780"), last_price=D("83744.3"), volume_24h=D("3156.84782110"),
    )  # fmt: skip
    (trade,) = trade_out.events
    assert trade == Trade(
        "kraken", "BTC-USD", "109116693", D("83744.3"), D("0.00044780"), Side.BUY,
        1790358506844359000, 1790358506851000000,
    )  # fmt: skip
    (bar,) = ohlc_out.events
    assert isinstance(bar, Candle) and bar.closed is False and bar.timeframe == "1m"
    assert (bar.open_ns, bar.open, bar.high, bar.low, bar.close, bar.volume) == (
        1790358480000000000, D("83729.5"), D("83745.2"), D("83729.4"), D("83744.3"), D("0.21155628"),
    )  # fmt: skip
    assert (
        bar.trade_count == 33 and bar.vwap == D("83736.4") and bar.source is CandleSource.EXCHANGE
    )
    assert bar.ts_ns == 1790358540000000000  # the row's timestamp: the interval end
    (bad,) = refused.errors
    assert bad.reason == "subscription_error" and "XBT/USD" in bad.detail
    assert feed.counters.decode_errors == 1


def test_docs_trade_snapshot_ticker_and_ohlc_closing(instruments: list[Instrument]) -> None:
    feed = KrakenFeed(instruments, 10)
    trades_out, ticker_out, ohlc_out, ack, heartbeat = replay(feed, "ws_v2_docs.jsonl")
    assert [(t.trade_id, t.price, t.size, t.side, t.ts_ns) for t in trades_out.events] == [
        ("4665846", D("0.5147"), D("6423.46326"), Side.BUY, 1695628116925533000),
        ("4665847", D("0.5147"), D("1136.19677815"), Side.BUY, 1695628176925603000),
    ]
    (ticker,) = ticker_out.events
    assert isinstance(ticker, Ticker) and ticker.symbol == "ALGO-USD"
    assert (ticker.bid_price, ticker.bid_size, ticker.ask_price, ticker.ask_size) == (
        D("0.10025"), D("740.0"), D("0.10036"), D("1361.44813783"),
    )  # fmt: skip
    # two 5m bars in one snapshot: the first is closed when the second (newer) arrives
    first, first_closed, second = ohlc_out.events
    assert isinstance(first, Candle) and isinstance(second, Candle)
    assert first.open_ns == 1696433100000000000 and first.closed is False
    assert first_closed == first.__class__(**{**_fields(first), "closed": True})
    assert second.open_ns == 1696433400000000000 and second.closed is False
    assert (second.high, second.volume, second.trade_count) == (D("0.0988"), D("16255.46368"), 13)
    assert ack.errors == heartbeat.errors == heartbeat.events == []


def _fields(candle: Candle) -> dict[str, object]:
    return {f: getattr(candle, f) for f in candle.__struct_fields__}
