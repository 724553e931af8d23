"""The feed state machine replaying the real 2021-10-12 recording (4 symbols, 4 streams each)."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

from tickvault.exchanges.base import FeedOutput
from tickvault.exchanges.binance.adapter import ADAPTER
from tickvault.exchanges.binance.feed import BinanceFeed
from tickvault.exchanges.capture import CaptureRecord
from tickvault.model import BookSnapshot, Instrument, Ticker

from .helpers import RECORDING, find, records

D = Decimal
SYMBOLS = ["NKN-USDT", "BLZ-ETH", "LRC-BTC", "RUNE-EUR"]


def _snapshot_symbol(record: CaptureRecord) -> str:
    return record.url.split("symbol=")[1].split("&")[0]  # Binance id: NKNUSDT


def replay(feed: BinanceFeed, recs: list[CaptureRecord]) -> list[FeedOutput]:
    outputs = []
    for record in recs:
        if "exchangeInfo" in record.url:
            continue
        if record.kind == "ws":
            outputs.append(feed.on_message(record.raw, record.ts_ns))
        else:
            outputs.append(
                feed.on_rest_snapshot(_snapshot_symbol(record), record.raw, record.ts_ns)
            )
    return outputs


def test_full_replay_applies_every_event_without_gaps(instruments: list[Instrument]) -> None:
    feed = ADAPTER.new_feed(instruments, 10)
    outputs = replay(feed, records(RECORDING))
    snapshots = Counter(
        e.symbol for out in outputs for e in out.events if isinstance(e, BookSnapshot)
    )
    # One book snapshot per applied diff event: the counts the reference records for this
    # recording (1-2 events dropped per symbol before the REST snapshot, no gaps).
    assert snapshots == {"NKN-USDT": 149, "BLZ-ETH": 9, "LRC-BTC": 13, "RUNE-EUR": 1}
    assert not [g for out in outputs for g in out.gaps]
    assert not [e for out in outputs for e in out.errors]
    assert [s for out in outputs for s in out.resync] == SYMBOLS  # one request each
    assert feed.counters.messages == 265 and feed.counters.sequence_gaps == 0
    assert feed.counters.resyncs == 0 and feed.counters.crossed_books == 0
    books = feed.books()
    assert books["NKN-USDT"][0][0] == ("0.35270000", "9602.00000000")
    assert books["NKN-USDT"][1][0] == ("0.35310000", "152.00000000")
    top = [e for out in outputs for e in out.events if isinstance(e, BookSnapshot)][-1]
    assert len(top.bids) == 10 and len(top.asks) == 10


def test_book_agrees_with_the_recorded_book_ticker(instruments: list[Instrument]) -> None:
    """Independent check on real data: whenever a bookTicker and the rebuilt book carry the
    same update id, the book's best bid/ask equal the exchange's own BBO."""
    feed = ADAPTER.new_feed(instruments, 1)
    recs = records(RECORDING)
    bbo_by_id: dict[tuple[str, int], tuple[Decimal | None, ...]] = {}
    for record in recs:
        if '"u":' in record.raw and "bookTicker" in record.raw:
            update_id = int(record.raw.split('"u":')[1].split(",")[0])
            (ticker,) = feed.decoder.decode(record.raw, record.ts_ns).events
            assert isinstance(ticker, Ticker)
            bbo_by_id[(ticker.symbol, update_id)] = (
                ticker.bid_price, ticker.bid_size, ticker.ask_price, ticker.ask_size,
            )  # fmt: skip
    compared = 0
    for out in replay(feed, recs):
        for event in out.events:
            if isinstance(event, BookSnapshot) and event.sequence is not None:
                expected = bbo_by_id.get((event.symbol, event.sequence))
                if expected is not None:
                    (bid,), (ask,) = event.bids, event.asks
                    assert (*bid, *ask) == expected
                    compared += 1
    assert compared == 26  # every shared update id of the recording, all equal


def test_disconnect_gives_a_gap_per_stream_and_resyncs_every_book(
    instruments: list[Instrument],
) -> None:
    feed = ADAPTER.new_feed(instruments, 5)
    recs = records(RECORDING)
    replay(feed, recs)
    out = feed.on_disconnect(1633998600 * 10**9)
    streams = {(g.symbol, g.channel) for g in out.gaps}
    assert {("NKN-USDT", c) for c in ("book", "ticker", "trades", "candles")} <= streams
    assert all(g.reason == "disconnect" and g.from_ns < g.to_ns for g in out.gaps)
    assert sorted(out.resync) == sorted(SYMBOLS) and feed.counters.resyncs == 4
    assert feed.books() == {symbol: ([], []) for symbol in SYMBOLS}
    # After reconnecting, buffered events plus a fresh snapshot bring a book back (here the
    # recorded NKNUSDT snapshot and the events after it).
    snapshot = find(RECORDING, '"lastUpdateId":499869752')
    feed.on_rest_snapshot("NKN-USDT", snapshot.raw, snapshot.ts_ns)
    resumed = replay(feed, [r for r in recs if r.kind == "ws" and "NKNUSDT" in r.raw])
    assert sum(isinstance(e, BookSnapshot) for o in resumed for e in o.events) == 149


def test_a_missing_message_is_a_sequence_gap_and_a_resync(instruments: list[Instrument]) -> None:
    feed = ADAPTER.new_feed(instruments, 5)
    recs = [r for r in records(RECORDING) if '"U":499869758,' not in r.raw]
    outputs = replay(feed, recs)
    gaps = [g for out in outputs for g in out.gaps]
    assert [(g.symbol, g.channel, g.reason) for g in gaps] == [("NKN-USDT", "book", "sequence_gap")]
    assert gaps[0].from_ns == 1633998512668 * 10**6  # last applied event (U=499869755)
    assert gaps[0].to_ns == 1633998513068 * 10**6  # the event that revealed the gap
    assert feed.counters.sequence_gaps == 1 and feed.counters.resyncs == 1
    assert [s for out in outputs for s in out.resync].count("NKN-USDT") == 2
    assert feed.books()["NKN-USDT"] == ([], [])  # waiting for a new snapshot
    # The old snapshot cannot bridge the new buffer: asked for again, not applied.
    old = find(RECORDING, '"lastUpdateId":499869752')
    again = feed.on_rest_snapshot("NKN-USDT", old.raw, old.ts_ns)
    assert again.resync == ["NKN-USDT"] and not again.events


def test_bad_and_unexpected_snapshots_are_reported(instruments: list[Instrument]) -> None:
    feed = ADAPTER.new_feed(instruments, 5)
    bad = feed.on_rest_snapshot("NKNUSDT", '{"code":-1121,"msg":"Invalid symbol."}', 1)
    assert [e.reason for e in bad.errors] == ["schema"] and bad.resync == ["NKN-USDT"]
    unknown = feed.on_rest_snapshot("FOO-BAR", "{}", 1)
    assert [e.reason for e in unknown.errors] == ["unknown_symbol"]
    replay(feed, records(RECORDING))
    snapshot = find(RECORDING, '"lastUpdateId":499869752')
    late = feed.on_rest_snapshot("NKN-USDT", snapshot.raw, snapshot.ts_ns)
    assert [e.reason for e in late.errors] == ["unexpected_snapshot"]
    assert feed.error_counts == {"schema": 1, "unknown_symbol": 1, "unexpected_snapshot": 1}


def test_server_shutdown_is_remembered(instruments: list[Instrument]) -> None:
    feed = ADAPTER.new_feed(instruments, 5)
    record = find("documented_examples.jsonl", "serverShutdown")
    out = feed.on_message(record.raw, 5)
    assert not out.errors and feed.server_shutdown_ns == 1770123456789 * 10**6
