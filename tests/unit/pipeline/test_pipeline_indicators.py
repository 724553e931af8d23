"""Incremental indicators against TA-Lib on a random walk and on real ETHUSDT 1h klines."""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np
import pytest
import talib
from pipeline_series import random_walk, real_klines

from tickvault.model import NS_PER_S, Candle, CandleSource
from tickvault.pipeline.indicators import IndicatorConfig, IndicatorEngine


def reference(candles: list[Candle]) -> dict[str, np.ndarray]:
    high = np.array([float(c.high) for c in candles])
    low = np.array([float(c.low) for c in candles])
    close = np.array([float(c.close) for c in candles])
    volume = np.array([float(c.volume) for c in candles])
    macd, signal, hist = talib.MACD(close, 12, 26, 9)
    upper, middle, lower = talib.BBANDS(close, 20, 2.0, 2.0, 0)
    # Session VWAP (TA-Lib has none): cumulative typical price x volume within each UTC day.
    typical = (high + low + close) / 3
    day = np.array([c.open_ns // (86_400 * NS_PER_S) for c in candles])
    vwap = np.empty(len(candles))
    for d in np.unique(day):
        mask = day == d
        vwap[mask] = np.cumsum(typical[mask] * volume[mask]) / np.cumsum(volume[mask])
    return {
        "sma_20": talib.SMA(close, 20),
        "sma_50": talib.SMA(close, 50),
        "ema_12": talib.EMA(close, 12),
        "ema_26": talib.EMA(close, 26),
        "rsi_14": talib.RSI(close, 14),
        "macd": macd,
        "macd_signal": signal,
        "macd_hist": hist,
        "bb_upper": upper,
        "bb_middle": middle,
        "bb_lower": lower,
        "atr_14": talib.ATR(high, low, close, 14),
        "obv": talib.OBV(close, volume),
        "vwap": vwap,
    }


@pytest.mark.parametrize("series", [random_walk, real_klines], ids=["random_walk", "ethusdt_1h"])
def test_indicators_match_talib(series: object) -> None:
    candles = series()  # type: ignore[operator]
    engine = IndicatorEngine()
    features = []
    for start in range(0, len(candles), 7):  # in batches, as the runner feeds closed bars
        features += engine.update(candles[start : start + 7])
    ours: dict[str, dict[int, float]] = defaultdict(dict)
    for feature in features:
        assert (feature.exchange, feature.symbol, feature.timeframe) == (
            "binance",
            "ETH-USDT",
            "1h",
        )
        ours[feature.name][feature.ts_ns] = feature.value
    expected = reference(candles)
    assert set(ours) == set(expected) == IndicatorConfig().feature_names()
    index_of = {c.open_ns: i for i, c in enumerate(candles)}
    for name, values in expected.items():
        available = {i for i in range(len(candles)) if not math.isnan(values[i])}
        # Same warm-up: a value exactly where TA-Lib has one.
        assert {index_of[ts] for ts in ours[name]} == available, name
        scale = float(np.nanmax(np.abs(values)))
        for ts, value in ours[name].items():
            want = float(values[index_of[ts]])
            assert math.isclose(value, want, rel_tol=1e-9, abs_tol=1e-9 * scale), (name, ts)


def test_only_closed_bars_of_the_configured_source_count() -> None:
    candles = real_klines()[:30]
    forming = Candle(
        **{**{f: getattr(candles[0], f) for f in candles[0].__struct_fields__}, "closed": False}
    )
    exchange = Candle(
        **{
            **{f: getattr(candles[0], f) for f in candles[0].__struct_fields__},
            "source": CandleSource.EXCHANGE,
        }
    )
    engine = IndicatorEngine()
    assert engine.update([forming, exchange]) == []
    features = engine.update(candles)
    assert engine.update(candles[5:6]) == []  # a repeated bar cannot rewind the state
    assert engine.skipped == 1
    names = {f.name for f in features}
    assert "sma_20" in names and "sma_50" not in names and "macd" not in names
    assert len([f for f in features if f.name == "sma_20"]) == 11
