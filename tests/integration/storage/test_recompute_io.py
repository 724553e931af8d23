"""The store's reads and writes behind feature recomputation after a gap repair."""

from __future__ import annotations

from decimal import Decimal

from tickvault.model import Candle, CandleSource
from tickvault.runner.sinks import PostgresSink
from tickvault.storage.postgres import FeatureValue, PostgresStore
from tickvault.storage.postgres.records import FeatureRevision

from .helpers import JAN_2024_NS, NS


def bar(i: int, source: CandleSource, closed: bool = True) -> Candle:
    open_ns = JAN_2024_NS + i * 60 * NS
    p = Decimal(f"{100 + i}.25")
    return Candle("kraken", "ETH-USD", "1m", open_ns, p, p + 1, p - 1, p, Decimal("2.5"), closed,
                  open_ns + 59 * NS, open_ns + 61 * NS, source, 7, p * 2, p, Decimal(1),
                  Decimal("1.5"))  # fmt: skip


async def test_closed_candles_of_one_source_in_range(store: PostgresStore) -> None:
    derived = [bar(i, CandleSource.DERIVED) for i in range(5)]
    await store.write([*derived, bar(5, CandleSource.DERIVED, closed=False),
                       *(bar(i, CandleSource.EXCHANGE) for i in range(6))])  # fmt: skip
    await store.flush()
    got = await store.closed_candles("kraken", "ETH-USD", "1m", "derived", derived[1].open_ns)
    assert got == derived[1:]  # exact decimals, times, source; the forming bar left out
    until = await store.closed_candles("kraken", "ETH-USD", "1m", "derived", 0, derived[3].open_ns)
    assert until == derived[:3]


async def test_replace_features_overwrites_what_the_live_writer_keeps(
    store: PostgresStore,
) -> None:
    ts = [JAN_2024_NS + i * 60 * NS for i in range(3)]
    await store.write([FeatureValue("kraken", "ETH-USD", "1m", "ema_12", t, 1.0) for t in ts])
    await store.flush()
    fixed = [FeatureValue("kraken", "ETH-USD", "1m", "ema_12", t, 2.0) for t in ts[1:]]
    new = FeatureValue("kraken", "ETH-USD", "1m", "obv", ts[2], float("nan"))
    assert await store.replace_features([*fixed, new]) == 3
    assert await store.replace_features([*fixed, new]) == 0  # unchanged values: no writes
    assert await store.features_at("kraken", "ETH-USD", "1m", ts[0]) == {"ema_12": 1.0}
    last = await store.features_at("kraken", "ETH-USD", "1m", ts[2])
    assert last["ema_12"] == 2.0 and last["obv"] != last["obv"]  # NaN kept as NaN
    # The live writer re-sending the stale value later does not undo the recomputation.
    await store.write([FeatureValue("kraken", "ETH-USD", "1m", "ema_12", ts[1], 1.0)])
    await store.flush()
    assert await store.features_at("kraken", "ETH-USD", "1m", ts[1]) == {"ema_12": 2.0}


async def test_vwap_sums_of_closed_bars_in_range(store: PostgresStore) -> None:
    bars = [bar(i, CandleSource.DERIVED) for i in range(4)]
    await store.write([*bars, bar(4, CandleSource.DERIVED, closed=False)])
    await store.flush()
    pv, volume = await store.vwap_sums(
        "kraken", "ETH-USD", "1m", "derived", bars[1].open_ns, bars[3].open_ns + 120 * NS
    )
    # typical price (h + l + c) / 3 is the close here; bars 1..3, the forming bar left out
    assert (pv, volume) == (float(sum(b.close * b.volume for b in bars[1:])), 7.5)


async def test_the_postgres_sink_stores_revised_features_over_the_live_ones(
    store: PostgresStore,
) -> None:
    """A bar revised by late trades: its recomputed features (``FeatureRevision``) replace
    what the live rows stored, in the same sink write as live rows of newer bars."""
    sink = PostgresSink(store)
    ts = [JAN_2024_NS + i * 60 * NS for i in range(3)]
    await sink.write([FeatureValue("binance", "BTC-USDT", "1m", "ema_12", t, 1.0) for t in ts[:2]])
    revised = [FeatureRevision("binance", "BTC-USDT", "1m", "ema_12", t, 1.5) for t in ts[:2]]
    await sink.write([*revised, FeatureValue("binance", "BTC-USDT", "1m", "ema_12", ts[2], 2.0)])
    got = [await store.features_at("binance", "BTC-USDT", "1m", t) for t in ts]
    assert got == [{"ema_12": 1.5}, {"ema_12": 1.5}, {"ema_12": 2.0}]
