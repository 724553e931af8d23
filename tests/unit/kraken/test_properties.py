"""Property tests: random valid message sequences against a straightforward reference model."""

from __future__ import annotations

import zlib

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from tickvault.exchanges.kraken.feed import KrakenFeed

from .conftest import _extra

BTC = msgspec.structs.replace(_extra("BTC", "USD", 1, "XXBTZUSD"), aliases=("XBTUSD", "XBT/USD"))
Side = dict[str, str]  # price text -> qty text


def price_text(ticks: int) -> str:  # 1 decimal, like BTC/USD
    return f"{ticks // 10}.{ticks % 10}"


def qty_text(units: int) -> str:  # 8 decimals
    return f"{units // 10**8}.{units % 10**8:08d}"


def reference_checksum(bids: Side, asks: Side) -> int:
    """Kraken's recipe written out plainly on the text of each level."""

    def strip(text: str) -> str:
        return text.replace(".", "").lstrip("0")

    best_asks = sorted(asks, key=lambda p: float(p))[:10]
    best_bids = sorted(bids, key=lambda p: float(p), reverse=True)[:10]
    text = "".join(strip(p) + strip(asks[p]) for p in best_asks)
    text += "".join(strip(p) + strip(bids[p]) for p in best_bids)
    return zlib.crc32(text.encode())


def reference_apply(side: Side, levels: list[tuple[str, str]], depth: int, best_high: bool) -> None:
    for price, qty in levels:
        if float(qty) == 0:
            side.pop(price, None)
        else:
            side[price] = qty
    keep = sorted(side, key=lambda p: float(p), reverse=best_high)[:depth]
    for price in list(side):
        if price not in keep:
            del side[price]


levels = st.lists(st.tuples(st.integers(0, 60), st.integers(0, 3 * 10**8)), min_size=0, max_size=8)
bid_levels = levels.map(lambda ls: [(price_text(10000 + p), qty_text(q)) for p, q in ls])
ask_levels = levels.map(lambda ls: [(price_text(10070 + p), qty_text(q)) for p, q in ls])
messages = st.lists(st.tuples(bid_levels, ask_levels), min_size=1, max_size=25)


def v1_levels(items: list[tuple[str, str]]) -> str:
    return ",".join(f'["{p}","{q}","1700000000.000001"]' for p, q in items)


def v2_levels(items: list[tuple[str, str]]) -> str:
    return ",".join(f'{{"price":{p},"qty":{q}}}' for p, q in items)


def message(version: int, snapshot: bool, bids: list, asks: list, checksum: int) -> str:  # type: ignore[type-arg]
    if version == 1:
        if snapshot:
            return f'[7,{{"as":[{v1_levels(asks)}],"bs":[{v1_levels(bids)}]}},"book-10","XBT/USD"]'
        return f'[7,{{"a":[{v1_levels(asks)}]}},{{"b":[{v1_levels(bids)}],"c":"{checksum}"}},"book-10","XBT/USD"]'
    kind = "snapshot" if snapshot else "update"
    return (
        f'{{"channel":"book","type":"{kind}","data":[{{"symbol":"BTC/USD","bids":[{v2_levels(bids)}],'
        f'"asks":[{v2_levels(asks)}],"checksum":{checksum},"timestamp":"2024-01-01T00:00:00.5Z"}}]}}'
    )


def run(
    version: int, sequence: list, corrupt_at: int | None = None
) -> tuple[KrakenFeed, Side, Side, list]:  # type: ignore[type-arg]
    feed = KrakenFeed([BTC], 10)
    bids: Side = {}
    asks: Side = {}
    outs = []
    for index, (bid_update, ask_update) in enumerate(sequence):
        snapshot = index == 0
        nonzero = (
            [(p, q) for p, q in bid_update if float(q)],
            [(p, q) for p, q in ask_update if float(q)],
        )
        b, a = nonzero if snapshot else (bid_update, ask_update)
        reference_apply(bids, b, 10, True)
        reference_apply(asks, a, 10, False)
        checksum = reference_checksum(bids, asks)
        if index == corrupt_at:
            checksum ^= 0x5A5A
        outs.append(feed.on_message(message(version, snapshot, b, a, checksum), index + 1))
    return feed, bids, asks, outs


@settings(max_examples=60, deadline=None)
@given(sequence=messages, version=st.sampled_from([1, 2]))
def test_feed_matches_reference_model(sequence: list, version: int) -> None:  # type: ignore[type-arg]
    feed, bids, asks, outs = run(version, sequence)
    assert feed.counters.checksum_failures == 0 and feed.counters.decode_errors == 0
    assert all(out.resync == [] for out in outs)
    book = feed.books().get("BTC-USD", ([], []))
    assert book[0] == sorted(bids.items(), key=lambda kv: -float(kv[0]))
    assert book[1] == sorted(asks.items(), key=lambda kv: float(kv[0]))
    built = feed.book("BTC-USD")
    assert built is not None and built.checksum() == reference_checksum(bids, asks)


@settings(max_examples=60, deadline=None)
@given(sequence=messages, version=st.sampled_from([1, 2]), data=st.data())
def test_corrupted_checksum_always_resyncs(
    sequence: list, version: int, data: st.DataObject
) -> None:  # type: ignore[type-arg]
    # v1 snapshots carry no checksum, so only updates can be corrupted there
    first = 1 if version == 1 else 0
    if len(sequence) <= first:
        return
    corrupt_at = data.draw(st.integers(first, len(sequence) - 1))
    feed, _, _, outs = run(version, sequence, corrupt_at)
    bad = outs[corrupt_at]
    assert bad.resync == ["BTC-USD"] and [g.reason for g in bad.gaps] == ["checksum"]
    assert feed.counters.checksum_failures == 1 and feed.counters.resyncs == 1
    # until a new snapshot, later updates are skipped (counted), not applied
    assert feed.skipped_updates == len(sequence) - corrupt_at - 1
    assert "BTC-USD" not in feed.books()
