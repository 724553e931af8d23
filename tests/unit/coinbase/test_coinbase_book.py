"""Book properties: the L2 book and the feed agree with a plain dict model; gaps always resync."""

from __future__ import annotations

import json
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from tickvault.exchanges.coinbase.book import L2Book
from tickvault.exchanges.coinbase.feed import CoinbaseFeed
from tickvault.model import BookDelta, BookSnapshot, Instrument

BTC = Instrument("coinbase", "BTC-USD", "BTC-USD", "BTC", "USD")
ETH = Instrument("coinbase", "ETH-USD", "ETH-USD", "ETH", "USD")

prices = st.integers(min_value=1, max_value=60).map(lambda i: Decimal(i) / 4)
sizes = st.sampled_from(["0", "0.00000000", "1", "2.5", "0.001"]).map(Decimal)
levels = st.lists(st.tuples(prices, sizes), max_size=12)


def model_top(
    side: dict[Decimal, Decimal], depth: int, best_high: bool
) -> list[tuple[Decimal, Decimal]]:
    live = sorted(((p, s) for p, s in side.items() if s), reverse=best_high)
    return live[:depth]


@given(
    snapshot_bids=levels,
    snapshot_asks=levels,
    updates=st.lists(st.tuples(st.booleans(), prices, sizes), max_size=40),
    depth=st.integers(min_value=1, max_value=8),
)
def test_book_matches_dict_model(
    snapshot_bids: list[tuple[Decimal, Decimal]],
    snapshot_asks: list[tuple[Decimal, Decimal]],
    updates: list[tuple[bool, Decimal, Decimal]],
    depth: int,
) -> None:
    book = L2Book.from_snapshot(snapshot_bids, snapshot_asks)
    bids = {p: s for p, s in snapshot_bids}
    asks = {p: s for p, s in snapshot_asks}
    for is_bid, price, size in updates:
        side = bids if is_bid else asks
        side[price] = size  # absolute size; 0 removes
        if is_bid:
            book.set_bid(price, size)
        else:
            book.set_ask(price, size)
        top_bids, top_asks = book.top(depth)
        assert list(top_bids) == model_top(bids, depth, True)
        assert list(top_asks) == model_top(asks, depth, False)
        best_bid = max((p for p, s in bids.items() if s), default=None)
        best_ask = min((p for p, s in asks.items() if s), default=None)
        assert (book.best_bid(), book.best_ask()) == (best_bid, best_ask)
        crossed = best_bid is not None and best_ask is not None and best_bid >= best_ask
        assert book.crossed() is crossed


def adv(seq: int, kind: str, product: str, updates: list[tuple[str, str, str]]) -> str:
    return json.dumps(
        {
            "channel": "l2_data",
            "client_id": "",
            "timestamp": "2023-02-09T20:32:50.714964855Z",
            "sequence_num": seq,
            "events": [
                {
                    "type": kind,
                    "product_id": product,
                    "updates": [
                        {
                            "side": s,
                            "event_time": "1970-01-01T00:00:00Z",
                            "price_level": p,
                            "new_quantity": q,
                        }
                        for s, p, q in updates
                    ],
                }
            ],
        }
    )


@settings(max_examples=60)
@given(
    bids=st.lists(st.tuples(st.integers(1, 40), st.sampled_from(["0", "1", "3.5"])), max_size=10),
    asks=st.lists(st.tuples(st.integers(41, 80), st.sampled_from(["0", "2", "0.25"])), max_size=10),
    updates=st.lists(
        st.tuples(
            st.sampled_from(["bid", "offer"]), st.integers(1, 80), st.sampled_from(["0", "1", "7"])
        ),
        max_size=30,
    ),
)
def test_feed_book_matches_model_until_crossed(
    bids: list[tuple[int, str]], asks: list[tuple[int, str]], updates: list[tuple[str, int, str]]
) -> None:
    feed = CoinbaseFeed([BTC], book_depth=5)
    snapshot = [("bid", str(p), q) for p, q in bids] + [("offer", str(p), q) for p, q in asks]
    out = feed.on_message(adv(0, "snapshot", "BTC-USD", snapshot), 1)
    assert isinstance(out.events[0], BookSnapshot)
    model = {"bid": {}, "offer": {}} | {}
    for side, p, q in snapshot:
        model[side][Decimal(p)] = Decimal(q)
    for seq, (side, price, size) in enumerate(updates, start=1):
        model[side][Decimal(price)] = Decimal(size)
        out = feed.on_message(adv(seq, "update", "BTC-USD", [(side, str(price), size)]), seq)
        best_bid = max((p for p, s in model["bid"].items() if s), default=None)
        best_ask = min((p for p, s in model["offer"].items() if s), default=None)
        if best_bid is not None and best_ask is not None and best_bid >= best_ask:
            assert out.resync == ["BTC-USD"] and feed.counters.crossed_books == 1
            assert feed.books() == {} and [g.reason for g in out.gaps] == ["crossed_book"]
            return
        assert out.resync == [] and isinstance(out.events[0], BookDelta)
        book_bids, book_asks = feed.books()["BTC-USD"]
        assert book_bids == [(str(p), str(s)) for p, s in model_top(model["bid"], 5, True)]
        assert book_asks == [(str(p), str(s)) for p, s in model_top(model["offer"], 5, False)]


@given(st.lists(st.integers(min_value=0, max_value=6), min_size=2, max_size=25))
def test_advanced_sequence_gap_always_resyncs(steps: list[int]) -> None:
    """Any sequence_num that is not previous + 1 gives a gap, a Gap event and a resync of every
    book; contiguous numbers never do."""
    feed = CoinbaseFeed([BTC, ETH], book_depth=5)
    seq = 0
    feed.on_message(adv(seq, "snapshot", "BTC-USD", [("bid", "1", "1"), ("offer", "2", "1")]), 0)
    gaps = 0
    for step in steps:
        seq += step
        out = feed.on_message(adv(seq, "update", "BTC-USD", [("bid", "1.5", "1")]), seq)
        if step != 1:
            gaps += 1
            assert out.resync == ["BTC-USD"]
            assert [g.reason for g in out.gaps] == ["sequence_gap"]
            assert "BTC-USD" not in feed.books()
        else:
            assert out.resync == [] and out.gaps == []
        # after a gap the book stays down until a snapshot arrives
        assert ("BTC-USD" in feed.books()) is (gaps == 0)
    assert feed.counters.sequence_gaps == gaps


def test_gap_resyncs_then_snapshot_restores() -> None:
    feed = CoinbaseFeed([BTC], book_depth=5)
    feed.on_message(adv(0, "snapshot", "BTC-USD", [("bid", "1", "1"), ("offer", "2", "1")]), 0)
    out = feed.on_message(adv(5, "update", "BTC-USD", [("bid", "1.5", "1")]), 5)
    assert out.resync == ["BTC-USD"] and feed.counters.sequence_gaps == 1
    assert [(g.symbol, g.channel, g.reason) for g in out.gaps] == [
        ("BTC-USD", "book", "sequence_gap")
    ]
    out = feed.on_message(adv(6, "update", "BTC-USD", [("bid", "1.6", "1")]), 6)
    assert out.events == [] and out.resync == [] and feed.ignored_updates == 2
    out = feed.on_message(
        adv(7, "snapshot", "BTC-USD", [("bid", "1.2", "3"), ("offer", "2", "1")]), 7
    )
    assert isinstance(out.events[0], BookSnapshot)
    assert feed.books() == {"BTC-USD": ([("1.2", "3")], [("2", "1")])}


def test_disconnect_gaps_every_stream_and_resyncs_books() -> None:
    feed = CoinbaseFeed([BTC], book_depth=5)
    feed.on_message(adv(0, "snapshot", "BTC-USD", [("bid", "1", "1")]), 10)
    out = feed.on_disconnect(99)
    assert out.resync == ["BTC-USD"] and feed.books() == {}
    assert [(g.channel, g.reason, g.to_ns) for g in out.gaps] == [("book", "disconnect", 99)]
    # a new connection starts its own sequence_num count: no gap for 0
    out = feed.on_message(adv(0, "snapshot", "BTC-USD", [("bid", "1", "2")]), 100)
    assert out.gaps == [] and feed.books() == {"BTC-USD": ([("1", "2")], [])}


def test_exchange_trade_id_gap_and_stale_sequence() -> None:
    def match(seq: int, trade_id: int) -> str:
        return json.dumps(
            {
                "type": "match",
                "trade_id": trade_id,
                "side": "buy",
                "size": "1",
                "price": "10",
                "product_id": "BTC-USD",
                "sequence": seq,
                "time": "2021-04-17T16:43:37.089723Z",
            }
        )

    feed = CoinbaseFeed([BTC], book_depth=5)
    assert len(feed.on_message(match(100, 7), 1).events) == 1
    # sequence jumps by more than one are normal on `matches` (other full-feed messages)
    out = feed.on_message(match(150, 8), 2)
    assert len(out.events) == 1 and out.gaps == []
    out = feed.on_message(match(149, 9), 3)  # lower sequence: out of order, ignored
    assert out.events == [] and feed.stale_messages == 1
    out = feed.on_message(match(200, 12), 4)  # trades 9..11 never arrived
    assert [g.reason for g in out.gaps] == ["sequence_gap"] and feed.counters.sequence_gaps == 1
