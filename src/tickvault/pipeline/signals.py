"""Signals: configurable rules over each closed bar's features, fired exactly at crossings.

A rule sees the bar's features by name (``ema_12``, ``rsi_14``, ...) and its own state from
the previous bar of the same stream, and fires at most once per bar. Rules fire on the bar
where a condition *changes*, never again while it merely holds.

* :class:`EmaCross` — ``buy`` when the fast EMA moves above the slow one (it was at or below
  on the previous bar), ``sell`` when it moves below; value = fast - slow.
* :class:`RsiThreshold` — ``buy`` when RSI falls below ``lower`` (enters oversold), ``sell``
  when it rises above ``upper`` (enters overbought); value = RSI.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from tickvault.pipeline.indicators import IndicatorConfig
from tickvault.pipeline.records import Feature, Signal


class Rule(Protocol):
    name: str

    def needs(self) -> tuple[str, ...]: ...

    def evaluate(
        self, now: dict[str, float], before: dict[str, float] | None
    ) -> tuple[str, float, dict[str, float]] | None: ...


@dataclass(frozen=True, slots=True)
class EmaCross:
    fast: int = 12
    slow: int = 26

    @property
    def name(self) -> str:
        return f"ema_cross_{self.fast}_{self.slow}"

    def needs(self) -> tuple[str, ...]:
        return (f"ema_{self.fast}", f"ema_{self.slow}")

    def evaluate(
        self, now: dict[str, float], before: dict[str, float] | None
    ) -> tuple[str, float, dict[str, float]] | None:
        fast_name, slow_name = self.needs()
        if before is None or fast_name not in before or slow_name not in before:
            return None
        fast, slow = now[fast_name], now[slow_name]
        was = before[fast_name] - before[slow_name]
        diff = fast - slow
        details = {fast_name: fast, slow_name: slow}
        if was <= 0 < diff:
            return ("buy", diff, details)
        if was >= 0 > diff:
            return ("sell", diff, details)
        return None


@dataclass(frozen=True, slots=True)
class RsiThreshold:
    period: int = 14
    lower: float = 30.0
    upper: float = 70.0

    @property
    def name(self) -> str:
        return f"rsi_{self.period}_{self.lower:g}_{self.upper:g}"

    def needs(self) -> tuple[str, ...]:
        return (f"rsi_{self.period}",)

    def evaluate(
        self, now: dict[str, float], before: dict[str, float] | None
    ) -> tuple[str, float, dict[str, float]] | None:
        (rsi_name,) = self.needs()
        if before is None or rsi_name not in before:
            return None
        rsi, was = now[rsi_name], before[rsi_name]
        details = {"previous": was, "lower": self.lower, "upper": self.upper}
        if was >= self.lower > rsi:
            return ("buy", rsi, details)
        if was <= self.upper < rsi:
            return ("sell", rsi, details)
        return None


class SignalEngine:
    """Evaluates rules on the features of each closed bar, in the order they arrive."""

    def __init__(self, rules: Sequence[Rule], indicators: IndicatorConfig | None = None) -> None:
        available = (indicators or IndicatorConfig()).feature_names()
        for rule in rules:
            missing = [name for name in rule.needs() if name not in available]
            if missing:
                raise ValueError(f"rule {rule.name} needs features {missing} not configured")
        self.rules = list(rules)
        self._previous: dict[tuple[str, str, str], dict[str, float]] = {}

    def evaluate(self, features: Iterable[Feature]) -> list[Signal]:
        signals: list[Signal] = []
        bar_key: tuple[str, str, str, int] | None = None
        values: dict[str, float] = {}
        for feature in features:
            key = (feature.exchange, feature.symbol, feature.timeframe, feature.ts_ns)
            if key != bar_key:
                if bar_key is not None:
                    self._bar(bar_key, values, signals)
                bar_key, values = key, {}
            values[feature.name] = feature.value
        if bar_key is not None:
            self._bar(bar_key, values, signals)
        return signals

    def _bar(
        self, key: tuple[str, str, str, int], values: dict[str, float], out: list[Signal]
    ) -> None:
        stream = key[:3]
        before = self._previous.get(stream)
        for rule in self.rules:
            if not all(name in values for name in rule.needs()):
                continue
            fired = rule.evaluate(values, before)
            if fired is not None:
                direction, value, details = fired
                out.append(Signal(*key, rule.name, direction, value, details))
        if before is None:
            self._previous[stream] = values
        else:
            before.update(values)
