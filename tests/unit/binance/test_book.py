"""The diff-depth sync rules: on the real NKNUSDT sequence, and as properties (hypothesis)."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from tickvault.exchanges.binance.book import BookSync, DepthEvent, SyncStatus
from tickvault.exchanges.binance.decode import Decoder, parse_depth_snapshot
from tickvault.exchanges.binance.symbols import SymbolMap
from tickvault.model import Instrument, Level

from .helpers import RECORDING, find

D = Decimal


def _event(decoder: Decoder, needle: str) -> DepthEvent:
    record = find(RECORDING, needle)
    decoded = decoder.decode(record.raw, record.ts_ns)
    assert decoded.depth is not None
    return decoded.depth[1]


def test_real_nknusdt_sequence_follows_the_official_procedure(
    instruments: list[Instrument],
) -> None:
    """Snapshot lastUpdateId=499869752; events [750, 752] (dropped), [753, 754] (first
    applied: U == lastUpdateId + 1), [755, 757], [758, 759] (continuous)."""
    decoder = Decoder(SymbolMap(instruments))
    sync = BookSync()
    first = _event(decoder, '"U":499869750,"u":499869752')
    assert sync.on_event(first) is SyncStatus.BUFFERED
    snapshot = find(RECORDING, '"lastUpdateId":499869752').raw
    last_update_id, bids, asks = parse_depth_snapshot(snapshot)
    assert last_update_id == 499869752
    assert sync.on_snapshot(last_update_id, bids, asks) is SyncStatus.WAITING
    assert not sync.buffer  # u <= lastUpdateId: dropped; the snapshot waits for a bridge
    assert sync.on_event(_event(decoder, '"U":499869753,"u":499869754')) is SyncStatus.SYNCED
    assert sync.book.bids.highest(1) == ((D("0.35210000"), D("672.00000000")),)
    assert sync.update_id == 499869754
    assert sync.book.bids.sizes[D("0.35170000")] == D("4265.00000000")
    assert sync.book.asks.sizes[D("0.35290000")] == D("10968.00000000")
    assert sync.on_event(_event(decoder, '"U":499869755,"u":499869757')) is SyncStatus.APPLIED
    assert sync.book.bids.sizes[D("0.35200000")] == D("1290.00000000")
    assert sync.on_event(_event(decoder, '"U":499869758,"u":499869759')) is SyncStatus.APPLIED
    # Re-delivering an applied event is stale; skipping ids is a gap.
    assert sync.on_event(_event(decoder, '"U":499869755,"u":499869757')) is SyncStatus.STALE
    assert sync.on_event(_event(decoder, '"U":499869761,"u":499869764')) is SyncStatus.GAP
    assert not sync.synced and len(sync.buffer) == 1  # the revealing event starts the buffer


def _ev(
    first: int, last: int, bids: list[Level] | None = None, asks: list[Level] | None = None
) -> DepthEvent:
    return DepthEvent(first, last, first * 1000, first * 1000, bids or [], asks or [])


def test_snapshot_older_than_first_buffered_event_needs_a_new_one() -> None:
    sync = BookSync()
    sync.on_event(_ev(105, 110))
    assert sync.on_snapshot(103, [], []) is SyncStatus.STALE_SNAPSHOT  # 104 missing
    assert sync.pending is None and not sync.synced
    # lastUpdateId == U - 1 is continuous: accepted.
    assert sync.on_snapshot(104, [(D("1"), D("1"))], [(D("2"), D("1"))]) is SyncStatus.SYNCED
    assert sync.update_id == 110


def test_snapshot_newer_than_every_buffered_event_waits_for_a_bridging_one() -> None:
    sync = BookSync()
    sync.on_event(_ev(1, 5))
    assert sync.on_snapshot(9, [(D("1"), D("1"))], []) is SyncStatus.WAITING
    assert sync.on_event(_ev(6, 8)) is SyncStatus.WAITING  # u <= lastUpdateId: dropped
    assert sync.on_event(_ev(9, 12, bids=[(D("1"), D("0"))])) is SyncStatus.SYNCED
    assert sync.book.bids.sizes == {}  # quantity 0 deleted the level


def test_gap_inside_the_buffer_during_sync() -> None:
    sync = BookSync()
    for event in (_ev(10, 12), _ev(13, 14), _ev(16, 17)):
        sync.on_event(event)
    assert sync.on_snapshot(11, [], []) is SyncStatus.GAP
    assert not sync.synced and [e.first_id for e in sync.buffer] == [16]


def test_crossed_book_is_detected() -> None:
    sync = BookSync()
    sync.on_event(_ev(2, 2))
    assert sync.on_snapshot(1, [(D("10"), D("1"))], [(D("11"), D("1"))]) is SyncStatus.SYNCED
    assert sync.on_event(_ev(3, 3, bids=[(D("11.5"), D("2"))])) is SyncStatus.CROSSED
    assert not sync.synced and len(sync.book.bids) == 0


# ---- properties --------------------------------------------------------------------------

# Bids live in 0.01..1.00 and asks in 1.01..2.00 so that random updates never cross.
bid_price = st.integers(1, 100).map(lambda n: D(n).scaleb(-2))
ask_price = st.integers(101, 200).map(lambda n: D(n).scaleb(-2))
nonzero_size = st.integers(1, 10_000).map(lambda n: D(n).scaleb(-3))
size = st.one_of(st.just(D(0)), nonzero_size)
side_updates = st.lists(st.tuples(bid_price, size), max_size=6)
ask_updates = st.lists(st.tuples(ask_price, size), max_size=6)
step = st.tuples(side_updates, ask_updates, st.integers(1, 4))
updates = st.lists(step, max_size=40)
snapshot_side = st.dictionaries(bid_price, nonzero_size, max_size=20)
snapshot_asks = st.dictionaries(ask_price, nonzero_size, max_size=20)


def _events(start: int, steps: list[tuple[list[Level], list[Level], int]]) -> list[DepthEvent]:
    events, next_id = [], start
    for bids, asks, width in steps:
        events.append(_ev(next_id, next_id + width - 1, bids, asks))
        next_id += width
    return events


def _model_apply(model: dict[Decimal, Decimal], levels: list[Level]) -> None:
    for price, quantity in levels:
        if quantity:
            model[price] = quantity
        else:
            model.pop(price, None)


@settings(max_examples=150, deadline=None)
@given(snapshot_side, snapshot_asks, updates, st.integers(0, 40))
def test_any_valid_sequence_matches_a_plain_dict_model(
    bids: dict[Decimal, Decimal],
    asks: dict[Decimal, Decimal],
    steps: list[tuple[list[Level], list[Level], int]],
    buffered: int,
) -> None:
    events = _events(101, steps)
    sync = BookSync()
    model_bids, model_asks = dict(bids), dict(asks)
    # Some events arrive before the snapshot (buffered), then the snapshot, then the rest.
    split = min(buffered, len(events))
    for event in events[:split]:
        assert sync.on_event(event) is SyncStatus.BUFFERED
    status = sync.on_snapshot(100, list(bids.items()), list(asks.items()))
    assert status is (SyncStatus.SYNCED if split else SyncStatus.WAITING)
    if not events:
        return
    for index, event in enumerate(events[split:]):
        expected = SyncStatus.SYNCED if (split == 0 and index == 0) else SyncStatus.APPLIED
        assert sync.on_event(event) is expected
    for event in events:
        _model_apply(model_bids, event.bids)
        _model_apply(model_asks, event.asks)
    top_bids, top_asks = sync.book.top(1000)
    assert list(top_bids) == sorted(model_bids.items(), reverse=True)
    assert list(top_asks) == sorted(model_asks.items())
    assert sync.update_id == events[-1].last_id


@settings(max_examples=100, deadline=None)
@given(st.lists(step, min_size=2, max_size=40), st.data())
def test_any_skipped_update_id_triggers_a_gap(
    steps: list[tuple[list[Level], list[Level], int]], data: st.DataObject
) -> None:
    events = _events(101, steps)
    skip_at = data.draw(st.integers(1, len(events) - 1))
    sync = BookSync()
    sync.on_event(events[0])
    assert sync.on_snapshot(100, [], []) is SyncStatus.SYNCED
    for event in events[1:skip_at]:
        assert sync.on_event(event) is SyncStatus.APPLIED
    skipped = events[skip_at]
    shifted = _ev(skipped.first_id + 1, skipped.last_id + 1, skipped.bids, skipped.asks)
    assert sync.on_event(shifted) is SyncStatus.GAP
    assert not sync.synced


@settings(max_examples=100, deadline=None)
@given(st.lists(step, min_size=1, max_size=40), st.data())
def test_stale_events_are_ignored(
    steps: list[tuple[list[Level], list[Level], int]], data: st.DataObject
) -> None:
    events = _events(101, steps)
    sync = BookSync()
    sync.on_event(events[0])
    sync.on_snapshot(100, [], [])
    for event in events[1:]:
        sync.on_event(event)
    before = sync.book.top(1000)
    replayed = data.draw(st.sampled_from(events))
    assert sync.on_event(replayed) is SyncStatus.STALE
    assert sync.book.top(1000) == before and sync.synced
