"""Kraken's two worked checksum examples and the formatting rules behind them."""

from __future__ import annotations

import zlib
from decimal import Decimal

from tickvault.exchanges.kraken.checksum import book_checksum, decimal_text, digits, level_token
from tickvault.exchanges.kraken.feed import KrakenFeed
from tickvault.model import BookDelta, BookSnapshot, Instrument

from .conftest import records, replay

D = Decimal
# the v2 guide's string, quoted from the guide (wrapped there, no whitespace in it)
GUIDE_V2_STRING = (
    "45285210000045286415457195345286615457110945289615456091145290215890660452918154553491"
    "452947445474945296135380000452975994554245299518772827452835100000004528341545820154528"
    "211000000045281010000000452803154592586452790799000045277633101034527753000000045277315"
    "460273745276615445238"
)

V1_GUIDE_ASKS = ["0.05005", "0.05010", "0.05015", "0.05020", "0.05025",
                 "0.05030", "0.05035", "0.05040", "0.05045", "0.05050"]  # fmt: skip
V1_GUIDE_BIDS = ["0.05000", "0.04995", "0.04990", "0.04980", "0.04975",
                 "0.04970", "0.04965", "0.04960", "0.04955", "0.04950"]  # fmt: skip


def test_v2_guide_snapshot_gives_3310070434(instruments: list[Instrument]) -> None:
    feed = KrakenFeed(instruments, 10)
    (out,) = replay(feed, "ws_v2_book_guide.jsonl")
    (snapshot,) = out.events
    assert isinstance(snapshot, BookSnapshot) and snapshot.checksum == 3310070434
    assert out.gaps == [] and out.resync == [] and feed.counters.checksum_failures == 0
    book = feed.book("BTC-USD")
    assert book is not None and book.checksum() == 3310070434
    # the string behind it, reproduced from the decoded (Decimal) levels
    text = "".join(level_token(p, q) for p, q in [*snapshot.asks, *snapshot.bids])
    assert text == GUIDE_V2_STRING
    assert zlib.crc32(GUIDE_V2_STRING.encode()) == 3310070434


def test_v1_guide_book_gives_974947235() -> None:
    volume = D("0.00000500")
    asks = [(D(p), volume) for p in V1_GUIDE_ASKS]
    bids = [(D(p), volume) for p in V1_GUIDE_BIDS]
    assert book_checksum(asks, bids) == 974947235
    assert level_token(D("0.05005"), volume) == "5005500"
    assert level_token(D("0.05000"), D("0.00000304")) == "5000304"  # the guide's single level


def test_v1_guide_update_verifies_on_the_guide_book(instruments: list[Instrument]) -> None:
    """The guide's update message adds levels outside the top 10 to the guide's book: the
    checksum it carries is that book's."""
    feed = KrakenFeed(instruments, 1000)
    ts = '"1582905486.000000"'
    asks = ",".join(f'["{p}","0.00000500",{ts}]' for p in V1_GUIDE_ASKS)
    bids = ",".join(f'["{p}","0.00000500",{ts}]' for p in V1_GUIDE_BIDS)
    # the guide lists this book level by level but shows no snapshot message: build one
    feed.on_message(f'[0,{{"as":[{asks}],"bs":[{bids}]}},"book-1000","BTC/USD"]', 1)
    (record,) = records("ws_v1_book_guide.jsonl")
    out = feed.on_message(record.raw, record.ts_ns)
    (delta,) = out.events
    assert isinstance(delta, BookDelta) and delta.checksum == 974947235
    assert delta.asks == ((D("0.05120"), volume_), (D("0.05275"), volume_))
    assert delta.bids == ((D("0.04765"), volume_), (D("0.04940"), volume_))
    assert feed.counters.checksum_failures == 0 and out.resync == []


volume_ = D("0.00000500")


def test_trailing_zeros_are_kept_and_padding_never_cuts() -> None:
    assert digits(decimal_text(D("0.00100000"))) == "100000"
    assert digits(decimal_text(D("45281.0"))) == "452810"
    assert decimal_text(D("0.001"), 8) == "0.00100000"  # a float-shortened value re-padded
    assert decimal_text(D("0.123456789"), 8) == "0.123456789"  # finer wire digits kept
    assert decimal_text(D("1E-7")) == "0.0000001"


def test_float_formatting_breaks_the_checksum() -> None:
    """Why Decimal: the guide's book printed through float() no longer verifies."""
    volume = D("0.00000500")
    asks = [(D(repr(float(p))), D(repr(float(volume)))) for p in V1_GUIDE_ASKS]
    bids = [(D(repr(float(p))), D(repr(float(volume)))) for p in V1_GUIDE_BIDS]
    assert book_checksum(asks, bids) != 974947235
