"""The runner's pure parts: stages on a batch, the book keeper, the spill codec."""

from __future__ import annotations

from decimal import Decimal

import msgspec

from tickvault.model import (
    NS_PER_S,
    BookDelta,
    BookSnapshot,
    Candle,
    DecodeError,
    Gap,
    Side,
    Ticker,
    Trade,
)
from tickvault.pipeline.records import Feature, QualityScore, RepairedHistory
from tickvault.pipeline.records import Signal as PipelineSignal
from tickvault.runner.books import BookKeeper
from tickvault.runner.spill import _encoder, decode_batch, encode_batch
from tickvault.runner.stages import StageConfig, Stages
from tickvault.storage.postgres.records import (
    FeatureRevision,
    FeatureValue,
    QualityMetric,
    QuarantineRecord,
    Signal,
)

T0 = 1_759_999_980 * NS_PER_S  # a whole minute
D = Decimal


def trade(i: int, price: str = "100.5", ts_s: float = 0.0) -> Trade:
    ts_ns = T0 + int(ts_s * NS_PER_S)
    return Trade("kraken", "BTC-USDT", str(i), D(price), D("0.25"), Side.BUY, ts_ns, ts_ns + 5)


def book(
    kind: type,
    bids: list[tuple[str, str]],
    asks: list[tuple[str, str]],
    ts_s: float,
    symbol: str = "BTC-USDT",
) -> object:
    ts_ns = T0 + int(ts_s * NS_PER_S)
    levels = (tuple((D(p), D(s)) for p, s in bids), tuple((D(p), D(s)) for p, s in asks))
    return kind("coinbase", symbol, *levels, ts_ns, ts_ns)


def test_stages_route_a_batch() -> None:
    stages = Stages(StageConfig(timeframes=("1s", "1m")))
    events = [
        trade(1, ts_s=0.1),
        trade(2, "101", ts_s=0.5),
        trade(2, "101", ts_s=0.5),
        trade(3, ts_s=1.2),
    ]
    error = DecodeError("kraken", "bad_number", "price is negative", '{"x":1}', T0)
    gap = Gap("kraken", "BTC-USDT", "trade", T0, T0 + NS_PER_S, "disconnect")
    out, counts = stages.process(events, [error], [gap], T0 + 2 * NS_PER_S)
    assert [(q.reason, q.channel) for q in out.quarantine] == [
        ("duplicate", "trades"),
        ("bad_number", None),
    ]
    assert msgspec.json.decode(out.quarantine[0].raw)["trade_id"] == "2"  # kept whole
    assert out.gaps[0].channel == "trades"  # the feed settings' name
    assert counts.rejects == {
        ("kraken", "validate", "duplicate"): 1,
        ("kraken", "decode", "bad_number"): 1,
    }
    assert counts.collected[("kraken", "BTC-USDT", "trades")] == [4, T0 + int(1.2 * NS_PER_S)]
    assert counts.validated == {("kraken", "trades"): 3}
    stored = [e for e in out.market if type(e) is Trade]
    assert [t.trade_id for t in stored] == ["1", "2", "3"]
    bars = {(c.timeframe, c.open_ns, c.closed): c for c in out.market if type(c) is not Trade}
    first = bars[("1s", T0, True)]  # closed by trade 3, in the next second
    assert (first.open, first.high, first.close, first.volume) == (
        D("100.5"),
        D("101"),
        D("101"),
        D("0.50"),
    )
    assert ("1s", T0 + NS_PER_S, False) in bars and ("1m", T0, False) in bars  # forming


def test_book_keeper_rebuilds_from_snapshot_and_deltas() -> None:
    keeper = BookKeeper(depth=2, interval_ns=NS_PER_S // 10)
    snap = book(
        BookSnapshot, [("100", "1"), ("99", "2"), ("98", "3")], [("101", "1"), ("102", "2")], 0
    )
    (stored,) = keeper.update([snap])  # type: ignore[list-item]
    assert len(stored.bids) == 2  # stored cut to depth, kept whole inside
    # One delta sets 100.5 and removes it again (Coinbase l2_data order), and removes 100.
    delta = book(BookDelta, [("100.5", "4"), ("100", "0"), ("100.5", "0")], [], 0.05)
    assert keeper.update([delta]) == []  # within the 100 ms interval: not emitted yet
    later = book(BookDelta, [], [("101", "0")], 0.2)
    (sampled,) = keeper.update([later])  # type: ignore[list-item]
    assert sampled.bids == ((D("99"), D("2")), (D("98"), D("3")))  # 98 slid into the top 2
    assert sampled.asks == ((D("102"), D("2")),)
    assert keeper.flush() == []  # nothing changed since
    assert keeper.update([book(BookDelta, [("1", "1")], [], 0.3, "ETH-USDT")]) == []
    assert keeper.deltas_without_snapshot == 1  # no snapshot of ETH-USDT yet


def test_spill_codec_keeps_every_record_type() -> None:
    batch = [
        trade(1),
        Ticker("binance", "BTC-USDT", T0, T0, bid_price=D("1.10"), ask_price=D("1.20")),
        book(BookSnapshot, [("100", "1")], [("101", "1")], 0),
        Gap("kraken", "BTC-USDT", "book", T0, T0 + 1, "checksum"),
        FeatureValue("binance", "BTC-USDT", "1m", "rsi_14", T0, 55.5),
        FeatureRevision("binance", "BTC-USDT", "1m", "rsi_14", T0, 56.5),
        QualityMetric("binance", "BTC-USDT", "quality:trades", T0, 0.9, {"worst": "timeliness"}),
        QuarantineRecord("binance", "duplicate", "seen", "{}", T0, "BTC-USDT", "trades"),
        Signal("binance", "BTC-USDT", "1m", "ema_cross_12_26", T0, 1.5, "buy", {"ema_12": 2.0}),
        Feature("binance", "BTC-USDT", "1m", T0, "ema_12", 2.0),
        PipelineSignal("binance", "BTC-USDT", "1m", T0, "rsi", "sell", 71.0, {"previous": 69.0}),
        QualityScore("binance", "BTC-USDT", "trades", T0, 0.9, 1, 1, 0.5, 1, 1, "timeliness",
                     10, 0, 0, 0, None, None, None),
        RepairedHistory([trade(2), Candle("binance", "BTC-USDT", "1m", T0, D("1.5"), D("2"),
                                          D("1"), D("1.75"), D("3.25"), True, T0, T0)]),
    ]  # fmt: skip
    assert decode_batch(encode_batch(batch)) == batch
    assert [type(r) for r in decode_batch(encode_batch(batch))] == [type(r) for r in batch]
    # Spill files written before other records went through the sinks still replay.
    assert decode_batch(_encoder.encode([trade(7)])) == [trade(7)]
