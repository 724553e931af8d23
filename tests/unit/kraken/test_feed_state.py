"""Feed state: disconnects, resync recovery, crossed books, candle closing order."""

from __future__ import annotations

from tickvault.exchanges.kraken.feed import KrakenFeed, subscription_depth
from tickvault.model import BookSnapshot, Candle

from .conftest import Instrument, records, replay


def test_disconnect_gaps_every_stream_and_resyncs_books(instruments: list[Instrument]) -> None:
    feed = KrakenFeed(instruments, 10)
    replay(feed, "ws_v2_book_algo.jsonl")
    replay(feed, "ws_v2_recorded.jsonl")
    out = feed.on_disconnect(1790358600000000000)
    assert {(g.channel, g.symbol, g.reason) for g in out.gaps} == {
        ("book", "ALGO-USD", "disconnect"),
        ("trade", "BTC-USD", "disconnect"),
        ("ticker", "BTC-USD", "disconnect"),
        ("candle", "BTC-USD", "disconnect"),
    }
    book_gap = next(g for g in out.gaps if g.channel == "book")
    assert (book_gap.from_ns, book_gap.to_ns) == (1727923617050170000, 1790358600000000000)
    assert out.resync == ["ALGO-USD"] and feed.books() == {}
    # the resubscription's snapshot restores the book
    snapshot = records("ws_v2_book_algo.jsonl")[1]
    again = feed.on_message(snapshot.raw, snapshot.ts_ns)
    assert isinstance(again.events[0], BookSnapshot) and "ALGO-USD" in feed.books()


def test_checksum_mismatch_then_snapshot_recovers(instruments: list[Instrument]) -> None:
    feed = KrakenFeed(instruments, 10)
    _status, snapshot, update = records("ws_v2_book_algo.jsonl")
    feed.on_message(snapshot.raw, snapshot.ts_ns)
    out = feed.on_message(update.raw.replace("1100635717", "1100635718"), update.ts_ns)
    assert out.events == [] and out.resync == ["ALGO-USD"]
    (gap,) = out.gaps
    assert (gap.reason, gap.to_ns) == ("checksum", 1727923617050170000)
    assert feed.on_message(update.raw, update.ts_ns).events == []  # skipped, counted
    assert feed.skipped_updates == 1
    feed.on_message(snapshot.raw, snapshot.ts_ns)
    assert len(feed.on_message(update.raw, update.ts_ns).events) == 1


def test_crossed_book_without_checksum_resyncs(instruments: list[Instrument]) -> None:
    feed = KrakenFeed(instruments, 10)
    crossed = '[0,{"as":[["5700.00000","1.00000000","1557070784.848047"]],"bs":[["5711.70000","1.00000000","1557070784.848047"]]},"book-10","XBT/USD"]'
    out = feed.on_message(crossed, 1)
    assert feed.counters.crossed_books == 1 and out.resync == ["BTC-USD"]
    assert [g.reason for g in out.gaps] == ["crossed_book"]


def test_older_ohlc_bar_is_final_and_depths_round_up(instruments: list[Instrument]) -> None:
    feed = KrakenFeed(instruments, 10)
    ohlc = next(r for r in records("ws_v2_docs.jsonl") if '"ohlc"' in r.raw)
    feed.on_message(ohlc.raw, 1)
    out = feed.on_message(ohlc.raw, 2)  # the same snapshot after a reconnect
    first, second = out.events
    assert isinstance(first, Candle) and first.closed and first.open_ns == 1696433100000000000
    assert isinstance(second, Candle) and not second.closed
    assert [subscription_depth(d) for d in (1, 10, 11, 25, 26, 500, 5000)] == [
        10, 10, 25, 25, 100, 500, 1000,
    ]  # fmt: skip
