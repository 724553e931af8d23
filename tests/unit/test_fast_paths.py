"""The feeds' fast paths give exactly what the general decoders give (differential tests).

Each exchange feed handles its common valid messages on a fast path and falls back to the
general decoder for anything else. Here two feeds, one with the fast path and one without,
get the same real recorded messages, plus variants made from them (truncated frames, bad or
negative numbers, unknown symbols, dropped and repeated messages), and must return the same
events, errors, gaps and resyncs, keep the same counters and hold the same books. Events are
compared as JSON, so a price spelled ``0.3521`` differs from ``0.35210000``.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tickvault.exchanges.base import FeedOutput, get_adapter
from tickvault.exchanges.capture import CaptureRecord, read_capture
from tickvault.exchanges.kraken.checksum import digits, level_token
from tickvault.exchanges.numbers import plain_decimal
from tickvault.model import Instrument, parse_decimal

FIXTURES = Path(__file__).parents[1] / "fixtures"
_NUMBER = re.compile(r"\d+\.\d+")
_BAD_NUMBERS = ("-1.5", "1e-05", "NaN", '"x"', "0.0", "-0.00000001", "12345678901234567890.5")


def _records(exchange: str, name: str) -> list[CaptureRecord]:
    return list(read_capture(FIXTURES / exchange / name))


def _mutate(raw: str, rng: random.Random) -> list[str]:
    """Zero or more messages standing in for ``raw``: usually itself, sometimes broken."""
    roll = rng.random()
    if roll < 0.03:
        return []  # dropped: the next book message reveals a gap
    if roll < 0.05:
        return [raw, raw]  # repeated
    if roll < 0.07:
        return [raw[: rng.randrange(1, max(2, len(raw)))]]  # truncated frame
    if roll < 0.13:
        numbers = list(_NUMBER.finditer(raw))
        if numbers:
            hit = rng.choice(numbers)
            bad = rng.choice(_BAD_NUMBERS)
            return [raw[: hit.start()] + bad + raw[hit.end() :]]
    if roll < 0.15:
        return [raw.replace('"s":"', '"s":"ZZ', 1).replace("-USD", "-ZZZ", 1)]
    return [raw]


def _stream(records: Iterable[CaptureRecord], seed: int | None) -> list[CaptureRecord]:
    if seed is None:
        return list(records)
    rng = random.Random(seed)
    out = []
    for record in records:
        if record.kind != "ws":
            out.append(record)
            continue
        for raw in _mutate(record.raw, rng):
            out.append(msgspec.structs.replace(record, raw=raw))
    return out


def _dump(out: FeedOutput) -> bytes:
    return msgspec.json.encode([out.events, out.errors, out.gaps, out.resync])


def assert_same(
    exchange: str,
    instruments: Sequence[Instrument],
    records: Sequence[CaptureRecord],
    rest_symbol: Callable[[CaptureRecord], str] | None = None,
    compiled: bool = False,
) -> int:
    """Feed both paths; returns how many WebSocket messages the fast path answered alone.
    ``compiled``: the fast feed uses its compiled fast path (else the pure-Python one)."""
    adapter = get_adapter(exchange)
    fast, slow = adapter.new_feed(instruments, 10), adapter.new_feed(instruments, 10)
    slow.fast_path = False  # type: ignore[attr-defined]
    if hasattr(fast, "compiled"):
        if compiled and not fast.compiled:
            pytest.skip("compiled fast path not built (cythonize or pip install -e .)")
        fast.compiled = compiled
    answered = 0
    for index, record in enumerate(records):
        if record.kind == "ws":
            a, b = (
                fast.on_message(record.raw, record.ts_ns),
                slow.on_message(record.raw, record.ts_ns),
            )
            answered += not a.errors
        elif rest_symbol is not None:
            symbol = rest_symbol(record)
            a = fast.on_rest_snapshot(symbol, record.raw, record.ts_ns)
            b = slow.on_rest_snapshot(symbol, record.raw, record.ts_ns)
        else:
            continue
        assert _dump(a) == _dump(b), f"message {index}: {record.raw[:300]}"
        assert fast.counters == slow.counters, f"message {index}"
        assert fast.books() == slow.books(), f"message {index}"
    assert vars_of(fast) == vars_of(slow)
    return answered


def vars_of(feed: Any) -> dict[str, Any]:
    """The feed's public counters besides ``counters`` (stale, skipped, ignored ...)."""
    names = ("stale_events", "stale_messages", "skipped_updates", "ignored_updates", "error_counts")
    return {name: getattr(feed, name) for name in names if hasattr(feed, name)}


# --- Binance ---------------------------------------------------------------------------------

_BINANCE_FILES = (
    "recording_2021-10-12.jsonl.gz",
    "streams_2021-08-14.jsonl",
    "documented_examples.jsonl",
)


def _binance_instruments() -> list[Instrument]:
    adapter = get_adapter("binance")
    return adapter.parse_instruments(
        _records("binance", _BINANCE_FILES[0])[0].raw
    ) + adapter.parse_instruments(_records("binance", "exchange_info_2021-08-14.jsonl")[0].raw)


def _binance_rest_symbol(record: CaptureRecord) -> str:
    return record.url.split("symbol=")[1].split("&")[0]


@pytest.mark.parametrize("compiled", [False, True], ids=["python", "compiled"])
@pytest.mark.parametrize("seed", [None, 1, 2, 3])
@pytest.mark.parametrize("name", _BINANCE_FILES)
def test_binance_fast_path_matches_the_decoder(name: str, seed: int | None, compiled: bool) -> None:
    records = [r for r in _records("binance", name) if r.kind == "ws" or "/depth" in r.url]
    answered = assert_same(
        "binance", _binance_instruments(), _stream(records, seed), _binance_rest_symbol, compiled
    )
    assert answered > 0


def test_binance_fast_path_is_used() -> None:
    """The fast path really answers the recording's depth and bookTicker messages."""
    adapter = get_adapter("binance")
    feed = adapter.new_feed(_binance_instruments(), 10)
    feed.compiled = False  # type: ignore[attr-defined]
    calls = 0
    original = feed._fast_message  # type: ignore[attr-defined]

    def counting(raw: str, recv_ns: int) -> FeedOutput | None:
        nonlocal calls
        result = original(raw, recv_ns)
        calls += result is not None
        return result

    feed._fast_message = counting  # type: ignore[attr-defined]
    ws = [r for r in _records("binance", _BINANCE_FILES[0]) if r.kind == "ws"]
    for record in ws:
        feed.on_message(record.raw, record.ts_ns)
    assert calls > len(ws) // 2


def test_binance_compiled_fast_path_is_used() -> None:
    """The compiled fast path answers them too (where it is built)."""
    compiled = pytest.importorskip("tickvault.exchanges.binance._fast")
    feed = get_adapter("binance").new_feed(_binance_instruments(), 10)
    feed.fast_path = False  # type: ignore[attr-defined]  # only for what it gives up on
    ws = [r for r in _records("binance", _BINANCE_FILES[0]) if r.kind == "ws"]
    calls = 0
    for record in ws:
        if compiled.fast_message(feed, record.raw, record.ts_ns) is None:
            feed.on_message(record.raw, record.ts_ns)
        else:
            calls += 1
    assert calls > len(ws) // 2


# --- Coinbase --------------------------------------------------------------------------------

_COINBASE_FILES = (
    "advanced_ws_sol_session.jsonl",
    "advanced_ws_docs.jsonl",
    "advanced_ws_misc.jsonl",
    "exchange_ws_2021.jsonl",
    "exchange_ws_docs.jsonl",
)


def _coinbase_instruments() -> list[Instrument]:
    """The markets of the WebSocket fixtures (as in test_coinbase_fixtures)."""
    pairs = [("BAND", "GBP"), ("SKL", "BTC"), ("BTC", "USD"), ("ETH", "USD"), ("SOL", "USD")]
    return [Instrument("coinbase", f"{b}-{q}", f"{b}-{q}", b, q) for b, q in pairs]


@pytest.mark.parametrize("compiled", [False, True], ids=["python", "compiled"])
@pytest.mark.parametrize("seed", [None, 1, 2, 3])
@pytest.mark.parametrize("name", _COINBASE_FILES)
def test_coinbase_fast_path_matches_the_decoder(
    name: str, seed: int | None, compiled: bool
) -> None:
    records = [r for r in _records("coinbase", name) if r.kind == "ws"]
    assert_same("coinbase", _coinbase_instruments(), _stream(records, seed), compiled=compiled)


# --- compiled fast paths: the scanner's edges ------------------------------------------------


def _reordered(raw: str) -> str:
    """The same message with every object's keys in reverse order, spaced out."""

    def flip(value: Any) -> Any:
        if isinstance(value, dict):
            return {key: flip(value[key]) for key in reversed(value)}
        if isinstance(value, list):
            return [flip(item) for item in value]
        return value

    return msgspec.json.format(
        msgspec.json.encode(flip(msgspec.json.decode(raw))), indent=1
    ).decode()


# Edits of a valid message the compiled scanner must either read exactly like msgspec or leave
# to the general decoder: escapes, repeated keys, numbers that are no plain integers, odd times,
# extra or missing fields, trailing bytes, bytes input, non-ASCII.
_EDITS: tuple[tuple[str, str], ...] = (
    ('"s":"', '"s":"\\u0042'),
    ('"product_id":"', '"product_id":"\\u0053'),
    ('"U":', '"U":0'),
    ('"u":', '"u":-'),
    ('"E":', '"E":1.5e3,"X":'),
    ('"E":', '"E":99999999999999999999,"Y":'),
    ('"sequence_num":', '"sequence_num":1.0,"z":'),
    ('"sequence_num":', '"sequence_num":01'),
    ('"channel":', '"channel":"l2_data","channel":'),
    ('"stream":"', '"stream":"x@bookTicker","stream":"'),
    ('"b":', '"b":[],"b":'),
    ('"timestamp":"2', '"timestamp":"9'),
    ('"timestamp":"20', '"timestamp":"00'),
    ('Z"', '+01:30"'),
    ("T0", "t0"),
    ('"side":"BUY"', '"side":"buy"'),
    ('"side":"bid"', '"side":"BID"'),
    ('"type":"update"', '"type":null'),
    ('"client_id":""', '"client_id":"\u00e9"'),
    ('"new_quantity":"', '"new_quantity":" '),
    ('"price_level":"', '"price_level":"0'),
    ('"price":"', '"price":".'),
    ('"events":[', '"extra":true,"events":['),
)


def _edited(records: Sequence[CaptureRecord]) -> list[CaptureRecord]:
    out = list(records)
    for record in records:
        if record.kind != "ws":
            continue
        variants = [_reordered(record.raw), record.raw + " ", record.raw + "x", " " + record.raw]
        variants += [record.raw.replace(old, new, 1) for old, new in _EDITS if old in record.raw]
        out += [msgspec.structs.replace(record, raw=raw) for raw in variants]
        out.append(msgspec.structs.replace(record, raw=record.raw.encode()))  # type: ignore[arg-type]
    return out


def test_binance_compiled_edges_match_the_decoder() -> None:
    pytest.importorskip("tickvault.exchanges.binance._fast")
    records = [
        r for r in _records("binance", _BINANCE_FILES[0]) if r.kind == "ws" or "/depth" in r.url
    ]
    assert_same(
        "binance", _binance_instruments(), _edited(records[:120]), _binance_rest_symbol, True
    )


@pytest.mark.parametrize("name", _COINBASE_FILES[:3])
def test_coinbase_compiled_edges_match_the_decoder(name: str) -> None:
    pytest.importorskip("tickvault.exchanges.coinbase._fast")
    records = [r for r in _records("coinbase", name) if r.kind == "ws"]
    assert_same("coinbase", _coinbase_instruments(), _edited(records), compiled=True)


# --- Kraken ----------------------------------------------------------------------------------

_KRAKEN_FILES = (
    "ws_v1_book_xbtusd.jsonl",
    "ws_v1_book_guide.jsonl",
    "ws_v1_misc.jsonl",
    "ws_v2_book_algo.jsonl",
    "ws_v2_book_guide.jsonl",
    "ws_v2_docs.jsonl",
    "ws_v2_recorded.jsonl",
)


def _kraken_instruments() -> list[Instrument]:
    """AssetPairs plus the fixtures' other markets, at the precision their messages carry
    (as in tests/unit/kraken/conftest.py)."""
    adapter = get_adapter("kraken")
    listed = []
    for record in _records("kraken", "rest_asset_pairs.jsonl"):
        listed.extend(adapter.parse_instruments(record.raw))
    extra = [("ALGO", "USD", 5, None), ("MATIC", "USD", 4, None), ("XMR", "USD", 8, "XXMRZUSD"),
             ("WAVES", "EUR", 6, None), ("SC", "EUR", 6, None), ("ETH", "USD", 5, "XETHZUSD")]  # fmt: skip
    for base, quote, places, key in extra:
        listed.append(
            Instrument(
                "kraken",
                key or f"{base}{quote}",
                f"{base}-{quote}",
                base,
                quote,
                tick_size=Decimal(1).scaleb(-places),
                lot_size=Decimal("0.00000001"),
                ws_symbol=f"{base}/{quote}",
                aliases=(f"{base}{quote}",),
            )
        )
    return listed


@pytest.mark.parametrize("seed", [None, 1, 2, 3])
@pytest.mark.parametrize("name", _KRAKEN_FILES)
def test_kraken_fast_path_matches_the_decoder(name: str, seed: int | None) -> None:
    records = [r for r in _records("kraken", name) if r.kind == "ws"]
    assert_same("kraken", _kraken_instruments(), _stream(records, seed))


@given(st.from_regex(r"\A[0-9]{0,7}\.?[0-9]{0,9}\Z"))
def test_plain_strings_give_the_reference_decimal_and_checksum_digits(text: str) -> None:
    """The fast paths build plain wire strings directly and take v1 checksum digits from the
    text: same value and spelling as parse_decimal, same digits as level_token."""
    value = plain_decimal(text)
    if value is None:
        assert text in ("", ".")
        return
    reference = parse_decimal(text)
    assert (value, str(value)) == (reference, str(reference))
    assert digits(text) + digits(text) == level_token(reference, reference)
