"""The Coinbase compiled fast path's own pieces: in-place Decimals, price comparisons, routing.

(Its output against the general decoder is in tests/unit/test_fast_paths.py.)
"""

from __future__ import annotations

import gc
import operator
import os
import random
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tickvault.exchanges.base import get_adapter
from tickvault.exchanges.capture import read_capture
from tickvault.exchanges.coinbase.feed import CoinbaseFeed
from tickvault.model import BookDelta, Instrument

FIXTURES = Path(__file__).parents[2] / "fixtures" / "coinbase"


def _compiled() -> Any:
    try:
        from tickvault.exchanges.coinbase import _fast
    except ImportError:
        assert os.environ.get("TICKVAULT_PURE_PYTHON") == "1", "coinbase._fast is not built"
        pytest.skip("coinbase._fast not built (TICKVAULT_PURE_PYTHON=1)")
    return _fast


def _plain_texts(seed: int, count: int) -> list[str]:
    rng = random.Random(seed)
    texts = ["0", "0.0", "00", "0.000000000000000000", "1", "10", "5.", ".5", "0012.50",
             "9999999999999999999", "99999999999999999999", "1" * 19 + ".5", "70886.09"]  # fmt: skip
    for _ in range(count):
        whole = "".join(rng.choice("0123456789") for _ in range(rng.randrange(0, 12)))
        part = "".join(rng.choice("0123456789") for _ in range(rng.randrange(0, 12)))
        if not whole and not part:
            whole = "0"
        texts.append(f"{whole}.{part}" if rng.random() < 0.8 or not whole else whole)
    return texts


def test_in_place_decimals_equal_decimal_of_the_text() -> None:
    fast = _compiled()
    assert fast.direct_decimals()  # CPython 3.11's C decimal: the layout check passes
    for text in _plain_texts(1, 3000):
        ours, theirs = fast.decimal_of(text.encode()), Decimal(text)
        assert type(ours) is Decimal
        assert ours.as_tuple() == theirs.as_tuple(), text
        assert (str(ours), hash(ours), ours + 1, ours * 7) == (
            str(theirs), hash(theirs), theirs + 1, theirs * 7)  # fmt: skip
    with pytest.raises(ValueError):
        fast.decimal_of(b"1e5")


def test_price_comparisons_equal_decimal_comparisons() -> None:
    fast = _compiled()
    texts = [*_plain_texts(2, 150), "70886.09", "70886.10", "70886.1", "70886.0900"]
    values = [Decimal(t) for t in texts] + [fast.decimal_of(t.encode()) for t in texts]
    values += [Decimal("-1.5"), Decimal("NaN"), Decimal("Infinity"), Decimal(2) ** 80]
    ops = {0: operator.lt, 2: operator.eq, 4: operator.gt, 5: operator.ge}
    rng = random.Random(3)
    for _ in range(20_000):
        a, b = rng.choice(values), rng.choice(values)
        if a.is_nan() or b.is_nan():
            continue  # ordering a NaN raises, as with Decimal itself
        for op, reference in ops.items():
            assert fast.compare(a, b, op) == reference(a, b), (a, b, op)


def _advanced_feed() -> tuple[CoinbaseFeed, list[Any]]:
    records = list(read_capture(FIXTURES / "advanced_ws_sol_session.jsonl"))
    instruments = [Instrument("coinbase", "SOL-USD", "SOL-USD", "SOL", "USD")]
    feed = get_adapter("coinbase").new_feed(instruments, 10)
    assert isinstance(feed, CoinbaseFeed)
    return feed, [r for r in records if r.kind == "ws"]


def test_on_message_is_the_compiled_entry_only_with_both_switches_on() -> None:
    fast = _compiled()
    feed, records = _advanced_feed()
    assert "on_message" in vars(feed)  # the per-feed compiled entry
    feed.fast_path = False
    assert "on_message" not in vars(feed)
    feed.fast_path = True
    feed.compiled = False
    assert "on_message" not in vars(feed)
    feed.compiled = True
    entry = feed.on_message
    answered = 0
    for number, record in enumerate(records, 1):
        if fast.fast_message(feed, record.raw, record.ts_ns) is None:
            entry(record.raw, record.ts_ns)  # the general decoder, through the entry
        else:
            answered += 1
            feed.counters.messages += 1  # (fast_message itself does not count)
        assert feed.counters.messages == number
    assert answered > len(records) // 2


def test_compiled_book_deltas_hold_untracked_level_tuples() -> None:
    """Level tuples of plain numbers are not GC-tracked (nothing in them can form a cycle)."""
    _compiled()
    feed, records = _advanced_feed()
    deltas = [
        event
        for record in records
        for event in feed.on_message(record.raw, record.ts_ns).events
        if isinstance(event, BookDelta)
    ]
    assert deltas
    for delta in deltas:
        for levels in (delta.bids, delta.asks):
            if levels:
                assert not gc.is_tracked(levels)
                assert not any(gc.is_tracked(level) for level in levels)
