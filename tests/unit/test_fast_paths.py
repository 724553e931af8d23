"""The feeds' fast paths give exactly what the general decoders give (differential tests).

Each exchange feed handles its common valid messages on a fast path and falls back to the
general decoder for anything else. Here two feeds, one with the fast path and one without,
get the same real recorded messages, plus variants made from them (truncated frames, bad or
negative numbers, unknown symbols, dropped and repeated messages), and must return the same
events, errors, gaps and resyncs, keep the same counters and hold the same books. Events are
compared as JSON, so a price spelled ``0.3521`` differs from ``0.35210000``.
"""

from __future__ import annotations

import os
import random
import re
import time
import zlib
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tickvault.exchanges.base import FeedOutput, FeedState, get_adapter
from tickvault.exchanges.capture import CaptureRecord, read_capture
from tickvault.exchanges.kraken.book import KrakenBook
from tickvault.exchanges.kraken.checksum import digits, level_token
from tickvault.exchanges.kraken.feed import COMPILED, KrakenFeed
from tickvault.exchanges.kraken.symbols import SymbolMap, price_decimals, qty_decimals
from tickvault.exchanges.kraken.wire import has_exponent
from tickvault.exchanges.numbers import plain_decimal
from tickvault.model import Instrument, Level, parse_decimal

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
    feeds: Sequence[FeedState] | None = None,
) -> int:
    """Feed every path (by default the fast one and the general one, which is the reference:
    the last of ``feeds``); returns how many WebSocket messages the first answered alone.
    ``compiled``: the default fast feed uses its compiled fast path (else the pure-Python one)."""
    if feeds is None:
        adapter = get_adapter(exchange)
        fast, reference = adapter.new_feed(instruments, 10), adapter.new_feed(instruments, 10)
        reference.fast_path = False  # type: ignore[attr-defined]
        if hasattr(fast, "compiled"):
            if compiled and not fast.compiled:
                require_built(f"{exchange}._fast")
            fast.compiled = compiled
        feeds = [fast, reference]
    *others, slow = feeds
    answered = 0
    for index, record in enumerate(records):
        if record.kind == "ws":
            b = slow.on_message(record.raw, record.ts_ns)
            outs = [feed.on_message(record.raw, record.ts_ns) for feed in others]
            answered += not outs[0].errors
        elif rest_symbol is not None:
            symbol = rest_symbol(record)
            b = slow.on_rest_snapshot(symbol, record.raw, record.ts_ns)
            outs = [feed.on_rest_snapshot(symbol, record.raw, record.ts_ns) for feed in others]
        else:
            continue
        for which, (feed, a) in enumerate(zip(others, outs, strict=True)):
            where = f"feed {which}, message {index}: {record.raw[:300]!r}"
            assert _dump(a) == _dump(b), where
            assert feed.counters == slow.counters, where
            assert feed.books() == slow.books(), where  # type: ignore[attr-defined]
    for feed in others:
        assert vars_of(feed) == vars_of(slow)
    return answered


def require_built(module: str) -> None:
    """Skip a compiled variant only where the build was skipped on purpose; else fail."""
    assert os.environ.get("TICKVAULT_PURE_PYTHON") == "1", (
        f"tickvault.exchanges.{module} is not built"
    )
    pytest.skip(f"{module} not built (TICKVAULT_PURE_PYTHON=1)")


def compiled_module(name: str) -> Any:
    """The compiled module, or a skip where the build was skipped on purpose (else a failure)."""
    try:
        return __import__(name, fromlist=["_"])
    except ImportError:
        require_built(name.removeprefix("tickvault.exchanges."))


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
    compiled = compiled_module("tickvault.exchanges.binance._fast")
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
    compiled_module("tickvault.exchanges.binance._fast")
    records = [
        r for r in _records("binance", _BINANCE_FILES[0]) if r.kind == "ws" or "/depth" in r.url
    ]
    assert_same(
        "binance", _binance_instruments(), _edited(records[:120]), _binance_rest_symbol, True
    )


@pytest.mark.parametrize("name", _COINBASE_FILES[:3])
def test_coinbase_compiled_edges_match_the_decoder(name: str) -> None:
    compiled_module("tickvault.exchanges.coinbase._fast")
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


def _kraken_feeds(instruments: Sequence[Instrument]) -> list[KrakenFeed]:
    """Compiled fast path, pure-Python fast path, general decoder on compiled books, and the
    reference: the general decoder on pure-Python books."""
    variants = [(True, True), (True, False), (False, True), (False, False)]
    if not COMPILED:  # only where the build was skipped on purpose
        assert os.environ.get("TICKVAULT_PURE_PYTHON") == "1", "kraken._fast is not built"
        variants = [v for v in variants if not v[1]]
    feeds = []
    for fast_path, compiled in variants:
        feed = KrakenFeed(instruments, 10, compiled=compiled)
        feed.fast_path = fast_path
        feeds.append(feed)
    return feeds


@pytest.mark.parametrize("seed", [None, 1, 2, 3])
@pytest.mark.parametrize("name", _KRAKEN_FILES)
def test_kraken_fast_path_matches_the_decoder(name: str, seed: int | None) -> None:
    records = [r for r in _records("kraken", name) if r.kind == "ws"]
    instruments = _kraken_instruments()
    assert_same("kraken", instruments, _stream(records, seed), feeds=_kraken_feeds(instruments))


def _v1_book_stream(seed: int, count: int) -> list[CaptureRecord]:
    """A longer v1 XBT/USD ``book-10`` stream than the recordings: the recorded snapshot,
    then size changes, deletes with the next level republished (``"r"``), inserts that push
    the 10th level out, each with its CRC32; trades, tickers, now and then a wrong checksum
    (resync), a new snapshot, or a verified crossed book."""
    rng = random.Random(seed)
    first = _records("kraken", "ws_v1_book_xbtusd.jsonl")[0]
    channel, snapshot, name, pair = msgspec.json.decode(first.raw)
    book = {"a": {p: q for p, q, _ in snapshot["as"]}, "b": {p: q for p, q, _ in snapshot["bs"]}}
    hidden = {"a": Decimal("5730.0"), "b": Decimal("5690.0")}  # where republished levels come from

    def top(key: str) -> list[str]:
        return sorted(book[key], key=Decimal, reverse=key == "b")[:10]

    def checksum() -> int:
        tokens = [digits(p) + digits(book[k][p]) for k in "ab" for p in top(k)]
        return zlib.crc32("".join(tokens).encode())

    def volume() -> str:
        return f"{rng.randint(0, 900_000_000) / 1e8:.8f}" if rng.random() < 0.97 else "1.0"

    out = [first]
    ts_ns = first.ts_ns
    for _ in range(count):
        ts_ns += rng.randint(1, 40) * 1_000_000
        now = f"{ts_ns // 1000 / 1e6:.6f}" if rng.random() < 0.9 else str(ts_ns // 10**9)
        roll = rng.random()
        if roll < 0.7:
            key = rng.choice("ab")
            sign = 1 if key == "a" else -1
            levels: list[list[str]] = []
            kind = rng.random()
            if kind < 0.5:
                price = rng.choice(top(key))
                book[key][price] = volume()
                levels.append([price, book[key][price], now])
            elif kind < 0.8:
                price = rng.choice(top(key))
                del book[key][price]
                hidden[key] += sign * Decimal("0.1")
                extra = f"{hidden[key]:.5f}"
                book[key][extra] = volume()
                levels += [[price, "0.00000000", now], [extra, book[key][extra], now, "r"]]
            else:
                best = Decimal(top(key)[0]) - sign * Decimal("0.1") * rng.randint(-3, 2)
                other = "b" if key == "a" else "a"
                crossing = (best - Decimal(top(other)[0])) * sign <= 0
                if crossing and rng.random() < 0.9:
                    continue
                price = f"{best:.5f}" if rng.random() < 0.9 else f"{best:.3f}"
                if price in book[key] or any(Decimal(p) == best for p in book[key]):
                    continue
                book[key][price] = volume()
                levels.append([price, book[key][price], now])
            for dropped in sorted(book[key], key=Decimal, reverse=key == "b")[10:]:
                del book[key][dropped]
            c = checksum() if rng.random() > 0.007 else 12345
            payload: object = [channel, {key: levels, "c": str(c)}, name, pair]
        elif roll < 0.9:
            trades = [[top("a" if side == "b" else "b")[0], volume(), now, side, "l", ""]
                      for side in rng.choices("bs", k=rng.choice([1, 2, 3, 12]))]  # fmt: skip
            payload = [channel + 1, trades, "trade", pair]
        elif roll < 0.97:
            ask, bid = top("a")[0], top("b")[0]
            ticker = {"a": [ask, 1, book["a"][ask]], "b": [bid, 2, book["b"][bid]],
                      "c": [bid, "0.01000000"], "v": ["1234.5", "4321.12345678"],
                      "t": [4321, 9876], "h": ["5730.00000", 5730.5]}  # fmt: skip
            payload = [channel + 2, ticker, "ticker", pair]
        else:
            levels_of = {k: [[p, book[k][p], now] for p in top(k)] for k in "ab"}
            payload = [channel, {"as": levels_of["a"], "bs": levels_of["b"]}, name, pair]
        raw = msgspec.json.encode(payload).decode()
        out.append(msgspec.structs.replace(first, ts_ns=ts_ns, raw=raw))
    return out


_V1_EDITS: tuple[tuple[str, str], ...] = (
    (",", ", "),  # whitespace: still the plain shape
    ("[", "[ "),
    ('"XBT/USD"', '"XBT\\/USD"'),  # an escape: the same string, the general decoder's
    ('"XBT/USD"', '"XBT/USDé"'),  # non-ASCII
    ('"c":"', '"c":"x'),
    ('"c":"', '"c":"0'),
    ('"c":"', '"c":'),
    ('"c":"', '"c":"123456789012345678901'),
    ('"b":[[', '"x":1,"b":[['),
    ('"b":[[', '"b":[],"b":[['),
    ('"a":[[', '"c":"1"},{"a":[['),  # two payloads, the checksum in the last
    ('"a":[[', '"a":[["1e3","1",1],'),
    (',"l",""]', ',"l","",123456]'),  # a v1 trade with an id
    (',"l",""]', ',"l",{"x":[true,false,null,-1.5]}]'),
    (',"l",""]', ',"l",1e5]'),
    ('"s",', '"x",'),
    ('"b",', '"bb",'),
    (".", ".1234567890"),
    ('"15', '" 15'),
    ('"0.0', '"-0.0'),
    ('"t":[', '"t":[1.5e3,'),
    ('"v":[', '"v":["1",'),
    ('"v":[', '"v":'),
    ('"a":[', '"a":["1"],"z":['),
    ('"c":[', '"c":[1,'),
    ("]", "] x"),
    ("]", "]\n"),
)


def _v1_mutations(records: list[CaptureRecord], seed: int) -> list[CaptureRecord]:
    """Edits of the shapes the compiled scanner reads, and bytes instead of text."""
    rng = random.Random(seed)
    out = []
    for record in records:
        raw: str | bytes = record.raw
        if rng.random() < 0.15:
            old, new = rng.choice(_V1_EDITS)
            where = [m.start() for m in re.finditer(re.escape(old), record.raw)]
            if where:
                at = rng.choice(where) if old not in ("]",) else len(record.raw) - 1
                raw = record.raw[:at] + new + record.raw[at + len(old) :]
        if rng.random() < 0.2:
            raw = raw.encode() if isinstance(raw, str) else raw
        out.append(msgspec.structs.replace(record, raw=raw))  # type: ignore[arg-type]
    return out


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_kraken_v1_stream_and_edits_match_the_decoder(seed: int) -> None:
    """Every path gives the reference output on a long v1 stream and on edited messages."""
    instruments = _kraken_instruments()
    records = _v1_book_stream(seed, 1500)
    answered = assert_same("kraken", instruments, records, feeds=_kraken_feeds(instruments))
    assert answered == len(records)
    edited = _v1_mutations(_stream(records, seed), seed)
    assert_same("kraken", instruments, edited, feeds=_kraken_feeds(instruments))


def test_kraken_compiled_fast_path_is_used() -> None:
    """The compiled path answers the stream's updates, trades and tickers itself."""
    if not COMPILED:
        assert os.environ.get("TICKVAULT_PURE_PYTHON") == "1", "kraken._fast is not built"
        pytest.skip("kraken._fast not built (TICKVAULT_PURE_PYTHON=1)")
    feed = KrakenFeed(_kraken_instruments(), 10)
    records = _v1_book_stream(5, 1000)
    snapshots = sum('"as"' in r.raw for r in records)
    for record in records:
        feed.on_message(record.raw, record.ts_ns)
    # all but the snapshots and the updates waiting for one after a resync
    answered = feed._compiled.answered  # type: ignore[union-attr]
    assert answered == len(records) - snapshots - feed.skipped_updates > 700


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


def _v2_stream(seed: int, count: int) -> list[CaptureRecord]:
    """v2 ``trade`` and ``ticker`` messages as Kraken and the simulator send them (BTC/USD and
    ETH/USD, ids with now and then a jump, microsecond times across seconds, now and then a
    ns, ms or whole-second time or an envelope time), as text or bytes."""
    rng = random.Random(seed)
    first = _records("kraken", "ws_v2_recorded.jsonl")[0]
    ts_ns = first.ts_ns
    ids = {"BTC/USD": 109116693, "ETH/USD": 55000000}
    out = []

    def stamp(ns: int) -> str:
        whole = _ISO(ns // 10**9)
        roll = rng.random()
        if roll < 0.9:
            return f"{whole}.{ns // 1000 % 10**6:06d}Z"
        if roll < 0.94:
            return f"{whole}.{ns % 10**9:09d}Z"
        if roll < 0.97:
            return f"{whole}.{ns // 10**6 % 1000:03d}Z"
        return f"{whole}Z"

    for _ in range(count):
        ts_ns += rng.randint(1, 300) * 1_000_000
        pair = rng.choice(list(ids))
        base = 83744.3 if pair == "BTC/USD" else 2456.78
        price = f"{base * (1 + rng.gauss(0, 0.001)):.{rng.choice([1, 2, 5])}f}"
        roll = rng.random()
        if roll < 0.75:
            entries = []
            for _ in range(rng.choice([1, 1, 2, 3, 8])):
                ids[pair] += 1 if rng.random() < 0.98 else rng.randint(2, 5)
                qty = f"{rng.uniform(0.00001, 3):.8f}"
                entries.append(
                    f'{{"symbol":"{pair}","side":"{rng.choice(["buy", "sell"])}","price":{price},'
                    f'"qty":{qty},"ord_type":"limit","trade_id":{ids[pair]},'
                    f'"timestamp":"{stamp(ts_ns)}"}}'
                )
            kind = "update" if rng.random() < 0.95 else "snapshot"
            raw = f'{{"channel":"trade","type":"{kind}","data":[{",".join(entries)}]}}'
        else:
            time_field = f',"timestamp":"{stamp(ts_ns)}"' if rng.random() < 0.9 else ""
            envelope_time = f',"timestamp":"{stamp(ts_ns)}"' if rng.random() < 0.3 else ""
            raw = (
                f'{{"channel":"ticker","type":"update","data":[{{"symbol":"{pair}",'
                f'"bid":{price},"bid_qty":0.56251979,"ask":{price}1,"ask_qty":0.00044780,'
                f'"last":{price},"volume":3156.84782110,"vwap":84174.6,"low":83163.6,'
                f'"high":85247.4,"change":-429.3,"change_pct":-0.51{time_field}}}]{envelope_time}}}'
            )
        record = msgspec.structs.replace(first, ts_ns=ts_ns, raw=raw)
        out.append(record)
    return out


def _v2_book_stream(seed: int, count: int) -> list[CaptureRecord]:
    """v2 BTC/USD ``book`` messages (a snapshot, then updates: size changes, deletes, inserts
    that push a level out, each with the checksum of the book they leave, now and then a wrong
    one or a new snapshot) and ``ohlc`` updates, as the simulator sends them."""
    rng = random.Random(seed)
    instrument = SymbolMap(_kraken_instruments()).get("BTC/USD")
    assert instrument is not None
    book = KrakenBook(10, price_decimals(instrument), qty_decimals(instrument))
    first = _records("kraken", "ws_v2_book_guide.jsonl")[0]
    ts_ns = first.ts_ns
    mid = Decimal("45284.0")
    out = []

    def level(price: Decimal, qty: Decimal) -> str:
        return f'{{"price":{price:f},"qty":{qty:f}}}'

    def qty() -> Decimal:
        return Decimal(f"{rng.randint(1, 300_000_000) / 1e8:.8f}")

    def message(kind: str, bids: list[Level], asks: list[Level], checksum: int) -> str:
        stamp = f"{_ISO(ts_ns // 10**9)}.{ts_ns // 1000 % 10**6:06d}Z"
        return (
            f'{{"channel":"book","type":"{kind}","data":[{{"symbol":"BTC/USD",'
            f'"bids":[{",".join(level(*lv) for lv in bids)}],'
            f'"asks":[{",".join(level(*lv) for lv in asks)}],'
            f'"checksum":{checksum},"timestamp":"{stamp}"}}]}}'
        )

    for index in range(count):
        ts_ns += rng.randint(1, 50) * 1_000_000
        roll = rng.random()
        if index == 0 or roll < 0.02:
            bids = [(mid - Decimal("0.1") * (i + 1), qty()) for i in range(10)]
            asks = [(mid + Decimal("0.1") * (i + 1), qty()) for i in range(10)]
            book = KrakenBook(10, price_decimals(instrument), qty_decimals(instrument))
            book.load_snapshot(bids, asks)
            raw = message("snapshot", bids, asks, book.checksum())
        elif roll < 0.85:
            side = rng.choice(["bids", "asks"])
            levels = book.bids() if side == "bids" else book.asks()
            sign = -1 if side == "bids" else 1
            change: list[Level] = []
            kind = rng.random()
            if kind < 0.5 and levels:
                change.append((rng.choice(levels)[0], qty()))
            elif kind < 0.75 and levels:
                change.append((rng.choice(levels)[0], Decimal("0.00000000")))
            else:
                worst = levels[-1][0] if levels else mid
                price = worst - sign * Decimal("0.1") * rng.randint(1, 3)
                if any(p == price for p, _ in levels) or price <= 0:
                    continue
                change.append((price, qty()))
            bids, asks = (change, []) if side == "bids" else ([], change)
            book.apply(bids, asks)
            book.truncate()
            checksum = book.checksum() if rng.random() > 0.01 else 12345
            raw = message("update", bids, asks, checksum)
        else:
            price = f"{mid + Decimal(rng.randint(-20, 20)) / 10}"
            stamp = f"{_ISO(ts_ns // 10**9)}.{ts_ns // 1000 % 10**6:06d}Z"
            begin = _ISO(ts_ns // 10**9 // 60 * 60)
            raw = (
                f'{{"channel":"ohlc","type":"update","timestamp":"{stamp}","data":[{{'
                f'"symbol":"BTC/USD","open":{mid},"high":{max(mid, Decimal(price))},'
                f'"low":{min(mid, Decimal(price))},"close":{price},"trades":{rng.randint(1, 99)},'
                f'"volume":{qty()},"vwap":{mid},"interval_begin":"{begin}.000000000Z",'
                f'"interval":{rng.choice([1, 1, 5])},"timestamp":"{stamp}"}}]}}'
            )
        out.append(msgspec.structs.replace(first, ts_ns=ts_ns, raw=raw))
    return out


def _ISO(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))


_V2_EDITS: tuple[tuple[str, str], ...] = (
    ('"price":', '"price":-'),
    ('"price":', '"price":1e-5,"x":'),
    ('"qty":', '"qty":0,"x":'),
    ('"qty":', '"qty":"NaN","x":'),
    ('"qty":', '"qty":"Infinity","x":'),
    ('"bid":', '"bid":-1,"x":'),
    ('"ask":', '"ask":"NaN","x":'),
    ('"last":', '"last":null,"x":'),
    ('"volume":', '"volume":3.1E+2,"x":'),
    ('"side":"', '"side":"x'),
    ('"trade_id":', '"trade_id":null,"x":'),
    ('"trade_id":', '"x":'),
    ('"symbol":"', '"symbol":"ZZ'),
    ('"symbol":"BTC/USD"', '"symbol":"XBT/USD"'),
    ('"timestamp":"', '"timestamp":"x'),
    ('"timestamp":"', '"timestamp":""'),
    ("T", "T2"),
    ("Z", "+00:00"),
    ("Z", "٣Z"),
    (".", ".٣"),
    ('"type":"update"', '"type":"weird"'),
    ('"type":"update"', '"type":"update","method":"subscribe"'),
    ('"type":"update"', '"type":"update","success":"yes"'),
    ('"type":"update"', '"type":"update","channel":"book"'),
    ('"channel":"trade"', '"channel":"ticker"'),
    ('"channel":"ticker"', '"channel":"trade"'),
    ('"data":[', '"data":[],"x":['),
    ('"data":[', '"data":"x","y":['),
    ("}]", "},1]"),
    (",", " ,"),
    ("{", "{ "),
    ('"checksum":', '"checksum":1'),
    ('"interval":', '"interval":2'),
    ('"interval_begin":"', '"interval_begin":"x'),
    ('"bids":[', '"bids":[{"price":1e3,"qty":1},'),
    ('"asks":[', '"asks":[{"price":"NaN","qty":1},'),
    ('"open":', '"open":-'),
    ('"vwap":', '"vwap":-'),
    ('"symbol":"BTC/USD",', ""),
)


def _v2_edited(records: list[CaptureRecord], seed: int) -> list[CaptureRecord]:
    rng = random.Random(seed)
    edited = []
    for record in _stream(records, seed):
        raw: str | bytes = record.raw
        if rng.random() < 0.3:
            old, new = rng.choice(_V2_EDITS)
            where = [m.start() for m in re.finditer(re.escape(old), record.raw)]
            if where:
                at = rng.choice(where)
                raw = record.raw[:at] + new + record.raw[at + len(old) :]
        if rng.random() < 0.2:
            raw = raw.encode() if isinstance(raw, str) else raw
        edited.append(msgspec.structs.replace(record, raw=raw))  # type: ignore[arg-type]
    return edited


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_kraken_v2_trades_and_tickers_match_the_decoder(seed: int) -> None:
    """Every path gives the reference output on v2 trades and tickers and on edited ones."""
    instruments = _kraken_instruments()
    records = _v2_stream(seed, 1500)
    feeds = _kraken_feeds(instruments)
    answered = assert_same("kraken", instruments, records, feeds=feeds)
    assert answered == len(records)
    # the v2 fast path answered (nearly) all of them itself
    assert feeds[0]._v2.answered > 0.9 * len(records)
    edited = _v2_edited(records, seed)
    assert_same("kraken", instruments, edited, feeds=_kraken_feeds(instruments))


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_kraken_v2_books_and_candles_match_the_decoder(seed: int) -> None:
    """Every path gives the reference output on v2 book and ohlc streams (resyncs included)
    and on edited ones."""
    instruments = _kraken_instruments()
    records = _v2_book_stream(seed, 1500)
    feeds = _kraken_feeds(instruments)
    assert_same("kraken", instruments, records, feeds=feeds)
    assert feeds[0]._v2.answered > 0.9 * len(records)
    assert feeds[0].counters.checksum_failures > 0
    edited = _v2_edited(records, seed)
    assert_same("kraken", instruments, edited, feeds=_kraken_feeds(instruments))


@given(st.text(alphabet='0123456789eE+-.x"{}é ', max_size=16))
def test_exponent_scan_is_the_regex(text: str) -> None:
    """has_exponent (C-level scans) finds exactly what [0-9][eE][-+]?[0-9] finds."""
    expected = re.search(r"[0-9][eE][-+]?[0-9]", text) is not None
    assert has_exponent(text) is expected
    assert has_exponent(text.encode()) is expected
    assert has_exponent(msgspec.Raw(text.encode())) is expected
