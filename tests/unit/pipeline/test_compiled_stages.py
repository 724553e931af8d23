"""The compiled stage loops give exactly what the pure-Python ones give (differential tests).

``pipeline/_validate.pyx`` (the validation loop), ``_quality.pyx`` (quality's per-event loop),
``_levels.pyx`` (a book side's checks) and ``storage/postgres/_copytext.pyx`` (the trades' COPY
lines) are optional accelerators. Here both variants get the same seeded streams
of trades — random walks over several markets and venues, with a share spoiled in every way
validation knows (bad, NaN and infinite numbers, duplicates, regressing and non-numeric ids,
outliers, future and stale times, wrong types) — mixed with books, tickers and candles, and
must return the same accepted events, the same rejection records and counters, and keep the
same state; the COPY text must be byte-identical, also for times before 1970, beyond 64 bits,
not ``int`` at all, and text that needs escaping.
"""

from __future__ import annotations

import os
import random
from decimal import Decimal
from typing import Any

import msgspec
import pytest
from pipeline_helpers import NOW_NS, candle, delta, snapshot, ticker

from tickvault.model import NS_PER_S, Side, Trade
from tickvault.pipeline import _checks as checks_module
from tickvault.pipeline import quality as quality_module
from tickvault.pipeline import validate as validate_module
from tickvault.pipeline.quality import QualityTracker
from tickvault.pipeline.validate import ValidationConfig, Validator
from tickvault.storage.postgres import copytext

_json = msgspec.json.Encoder(decimal_format="string").encode
MARKETS = [(e, s) for e in ("binance", "coinbase", "kraken") for s in ("BTC-USDT", "ETH-USDT")]


def require(module: object) -> None:
    """Fail where the build is missing, unless it was skipped on purpose."""
    if module is None:
        assert os.environ.get("TICKVAULT_PURE_PYTHON") == "1", "compiled module not built"
        pytest.skip("not built (TICKVAULT_PURE_PYTHON=1)")


def spoiled(event: Trade, rng: random.Random) -> list[Any]:
    replace = msgspec.structs.replace
    how = rng.randrange(16)
    if how == 0:
        return [replace(event, price=-event.price)]
    if how == 1:
        return [replace(event, size=Decimal(0))]
    if how == 2:
        return [replace(event, price=Decimal("NaN"))]
    if how == 3:
        return [replace(event, size=Decimal("sNaN"))]
    if how == 4:
        return [replace(event, price=Decimal("Infinity"))]
    if how == 5:
        return [event, event]  # duplicate
    if how == 6:
        return [replace(event, trade_id=str(max(int(event.trade_id) - 3, 0)))]
    if how == 7:
        return [replace(event, price=event.price * Decimal("1.2"))]  # stream outlier
    if how == 8:
        return [replace(event, price=event.price * Decimal("1.07"))]  # cross outlier
    if how == 9:
        return [replace(event, ts_ns=event.ts_ns + 3600 * NS_PER_S)]
    if how == 10:
        return [replace(event, ts_ns=10**15)]
    if how == 11:
        return [replace(event, trade_id="")]
    if how == 12:
        return [replace(event, price=float(event.price))]
    if how == 13:
        return [replace(event, trade_id=f"x{event.trade_id}")]
    if how == 14:
        return [replace(event, recv_ns=None)]
    return ["not an event"]


def stream(seed: int, count: int = 4_000, share: float = 0.05) -> list[list[Any]]:
    """Batches of trades (runs per market, as feeds give them), spoiled and mixed with others."""
    rng = random.Random(seed)
    prices = {m: Decimal(100 + 50 * i) for i, m in enumerate(MARKETS)}
    ids = dict.fromkeys(MARKETS, 1_000)
    ts_ns = NOW_NS - 600 * NS_PER_S
    events: list[Any] = []
    while len(events) < count:
        market = rng.choice(MARKETS)
        for _ in range(rng.randrange(1, 30)):
            if rng.random() < 0.5:  # keep the price: trades of one level
                prices[market] = (prices[market] * Decimal(1 + rng.gauss(0, 0.001))).quantize(
                    Decimal("0.01")
                )
            ids[market] += rng.choice((1, 1, 1, 2))
            ts_ns += rng.randrange(1, 5_000_000)
            size = Decimal(f"{rng.uniform(0.0001, 3):.8f}")
            side = rng.choice((Side.BUY, Side.SELL, Side.UNKNOWN))
            event = Trade(*market, str(ids[market]), prices[market], size, side, ts_ns, ts_ns + 7)
            events.extend(spoiled(event, rng) if rng.random() < share else [event])
        if rng.random() < 0.1:
            events.append(rng.choice((candle(), snapshot(), delta(), ticker())))
    batches, at = [], 0
    while at < len(events):
        step = rng.randrange(1, 600)
        batches.append(events[at : at + step])
        at += step
    return batches


def run(batches: list[list[Any]], compiled: bool, config: ValidationConfig) -> Any:
    validator = Validator(config)
    validator.compiled = compiled
    results = [validator.validate(batch, NOW_NS) for batch in batches]
    state = {
        market: (s.last_id, list(s.window.order), list(s.ref.prices), s.ref.median, s.ref.cross)
        for market, s in validator._trades.items()
    }
    return (
        [(_json([e for e in r.accepted]), r.rejected, r.counts) for r in results],
        [[id(e) for e in r.accepted] for r in results],
        validator.totals,
        state,
    )


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("check_ids", [True, False])
def test_compiled_validation_matches_the_python_loop(seed: int, check_ids: bool) -> None:
    require(validate_module.compiled_validation)
    batches = stream(seed)
    config = ValidationConfig(check_trade_id_order=check_ids, duplicate_window=500)
    pure, compiled = run(batches, False, config), run(batches, True, config)
    assert compiled == pure
    rejected = [r for batch in pure[0] for r in batch[1]]
    assert {r.reason for r in rejected} >= {"bad_price", "bad_size", "duplicate",
                                             "outlier_stream", "future_ts", "stale_ts",
                                             "missing_field", "wrong_type"}  # fmt: skip


def test_a_new_validator_uses_the_compiled_loop_when_built() -> None:
    require(validate_module.compiled_validation)
    assert Validator().compiled


def trades_for_copy(seed: int) -> list[Trade]:
    rng = random.Random(seed)
    out = [e for batch in stream(seed, 1_500, share=0.0) for e in batch if type(e) is Trade]
    odd = [
        msgspec.structs.replace(out[0], ts_ns=-1_500_000_001),  # before 1970
        msgspec.structs.replace(out[1], recv_ns=-7),
        msgspec.structs.replace(out[2], ts_ns=0, recv_ns=999_999_999),
        msgspec.structs.replace(out[3], price=Decimal("1E-7"), size=Decimal("0.00000010")),
    ]
    rng.shuffle(odd)
    return odd + out


@pytest.mark.parametrize("seed", range(3))
def test_compiled_copy_lines_match_the_python_loop(seed: int) -> None:
    require(copytext.compiled_trade_lines)
    trades = trades_for_copy(seed)
    for size in (1, 7, 500, len(trades)):
        batch = trades[:size]
        assert copytext.encode_trades(batch) == copytext.encode_trades(batch, compiled=False)
        assert copytext.compiled_trade_lines(batch, copytext._SECONDS, copytext._second) == (
            copytext._trade_lines(batch)
        )


@pytest.mark.parametrize(
    "change",
    [
        {"ts_ns": 2**70},  # beyond 64 bits: the Python loop (and its OverflowError)
        {"recv_ns": 1.5e18},  # not an int: the Python loop
        {"symbol": "BTC\tUSDT"},  # needs escaping: field by field
        {"trade_id": "12\\3"},
        {"exchange": "bin\nance"},
    ],
)
def test_copy_lines_of_odd_trades(change: dict[str, Any]) -> None:
    trades = trades_for_copy(9)[:50]
    trades[17] = msgspec.structs.replace(trades[17], **change)

    def outcome(compiled: bool) -> bytes | str:
        try:
            return copytext.encode_trades(trades, compiled=compiled)
        except OverflowError as error:  # a year past 9999
            return repr(error)

    expected = outcome(False)
    assert outcome(True) == expected
    assert isinstance(expected, str) or expected.count(b"\n") == 50


def quality_state(tracker: QualityTracker) -> Any:
    slots = {
        key: (
            [
                (
                    s.start_ns,
                    s.events,
                    s.rejected,
                    s.duplicates,
                    s.missing,
                    s.missing_time_ns,
                    s.compared,
                    s.mismatched,
                    sorted(s.lags.items()),
                )
                for s in stream.slots
            ],
            stream.first_ns,
            stream.last_recv_ns,
            stream.last_id,
            stream.last_seq,
            stream.last_candle,
        )
        for key, stream in tracker._streams.items()
    }
    return slots, tracker._prices


@pytest.mark.parametrize("seed", range(4))
def test_compiled_quality_loop_matches_the_python_loop(seed: int) -> None:
    require(quality_module.compiled_quality)
    batches = stream(seed)
    validator = Validator(ValidationConfig(duplicate_window=500))
    validator.compiled = False
    results = [validator.validate(batch, NOW_NS) for batch in batches]
    trackers = []
    for compiled in (False, True):
        tracker = QualityTracker()
        tracker.compiled = compiled
        for step, result in enumerate(results):
            tracker.observe_validation(result, NOW_NS + step * 3 * NS_PER_S)
        trackers.append(tracker)
    pure, compiled_one = trackers
    assert quality_state(compiled_one) == quality_state(pure)
    assert compiled_one.scores(NOW_NS + 400 * NS_PER_S) == pure.scores(NOW_NS + 400 * NS_PER_S)
    assert any(s.missing for st in pure._streams.values() for s in st.slots)  # ids had holes


@pytest.mark.parametrize("seed", range(3))
def test_compiled_book_levels_match_the_python_check(seed: int) -> None:
    require(checks_module.compiled_levels)
    rng = random.Random(seed)
    values: list[Any] = [Decimal("0"), Decimal("-1"), Decimal("NaN"), Decimal("Infinity"),
                         Decimal("1E-8"), 1.5, "2", None]  # fmt: skip
    for _ in range(3_000):
        levels: list[Any] = []
        for _ in range(rng.randrange(0, 12)):
            price = Decimal(rng.randrange(1, 40)) / 4
            size = Decimal(rng.randrange(0, 3))
            roll = rng.random()
            if roll < 0.02:
                price = rng.choice(values)
            elif roll < 0.04:
                size = rng.choice(values)
            if roll > 0.995:
                levels.append((price,))
            else:
                levels.append((price, size))
        side: Any = tuple(levels) if rng.random() < 0.99 else levels
        assert checks_module.compiled_levels(side, "bid") == checks_module._levels(side, "bid")
