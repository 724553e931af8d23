from __future__ import annotations

import math

import numpy as np
import pytest
import talib
from pipeline_series import random_walk, real_klines

from tickvault.model import Candle
from tickvault.pipeline.indicators import IndicatorConfig, IndicatorEngine
from tickvault.pipeline.records import Feature
from tickvault.pipeline.signals import EmaCross, RsiThreshold, SignalEngine

CONFIG = IndicatorConfig(
    sma_periods=(), ema_periods=(5, 13), rsi_period=14, macd=None, bollinger=None
)


def run(candles: list[Candle], engine: SignalEngine) -> list[tuple[int, str, str]]:
    indicators = IndicatorEngine(CONFIG)
    fired = []
    for start in range(0, len(candles), 10):
        features = indicators.update(candles[start : start + 10])
        fired += [(s.ts_ns, s.rule, s.direction) for s in engine.evaluate(features)]
    return fired


@pytest.mark.parametrize("series", [random_walk, real_klines], ids=["random_walk", "ethusdt_1h"])
def test_ema_cross_fires_exactly_where_the_emas_cross(series: object) -> None:
    candles: list[Candle] = series()  # type: ignore[operator]
    close = np.array([float(c.close) for c in candles])
    diff = talib.EMA(close, 5) - talib.EMA(close, 13)
    expected = []
    for i in range(1, len(candles)):
        if math.isnan(diff[i - 1]):
            continue
        if diff[i - 1] <= 0 < diff[i]:
            expected.append((candles[i].open_ns, "ema_cross_5_13", "buy"))
        elif diff[i - 1] >= 0 > diff[i]:
            expected.append((candles[i].open_ns, "ema_cross_5_13", "sell"))
    assert len(expected) >= 4  # the series does cross, both ways
    assert {d for *_, d in expected} == {"buy", "sell"}
    assert run(candles, SignalEngine([EmaCross(5, 13)], CONFIG)) == expected


def test_rsi_thresholds_fire_on_entering_the_zone() -> None:
    candles = random_walk()
    close = np.array([float(c.close) for c in candles])
    rsi = talib.RSI(close, 14)
    rule = RsiThreshold(14, lower=35, upper=65)
    expected = []
    for i in range(1, len(candles)):
        if math.isnan(rsi[i - 1]):
            continue
        if rsi[i - 1] >= 35 > rsi[i]:
            expected.append((candles[i].open_ns, rule.name, "buy"))
        elif rsi[i - 1] <= 65 < rsi[i]:
            expected.append((candles[i].open_ns, rule.name, "sell"))
    assert {d for *_, d in expected} == {"buy", "sell"}
    assert run(candles, SignalEngine([rule], CONFIG)) == expected


def test_signal_record_carries_values() -> None:
    engine = SignalEngine([EmaCross(5, 13)], CONFIG)
    bar = ("binance", "BTC-USDT", "1m")
    before = [Feature(*bar, 0, "ema_5", 99.0), Feature(*bar, 0, "ema_13", 100.0)]
    after = [Feature(*bar, 60, "ema_5", 101.5), Feature(*bar, 60, "ema_13", 100.5)]
    assert engine.evaluate(before) == []
    (signal,) = engine.evaluate(after)
    assert (signal.ts_ns, signal.direction, signal.value) == (60, "buy", 1.0)
    assert signal.details == {"ema_5": 101.5, "ema_13": 100.5}
    # Staying above is no new signal; another stream has its own state.
    assert (
        engine.evaluate([Feature(*bar, 120, "ema_5", 102.0), Feature(*bar, 120, "ema_13", 100.6)])
        == []
    )
    other = ("kraken", "BTC-USDT", "1m")
    assert (
        engine.evaluate([Feature(*other, 60, "ema_5", 101.5), Feature(*other, 60, "ema_13", 100.5)])
        == []
    )


def test_rule_needing_an_unconfigured_feature_is_refused() -> None:
    with pytest.raises(ValueError, match="ema_50"):
        SignalEngine([EmaCross(12, 50)], CONFIG)
