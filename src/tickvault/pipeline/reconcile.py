"""Reconciliation: closed derived bars against the exchange's own bars of the same interval.

Bars are paired on (exchange, symbol, timeframe, open_ns). A difference beyond tolerance becomes
a :class:`ReconcileFinding`; nothing is overwritten, both bars stay as they are. Unpaired bars
wait in a bounded buffer (oldest evicted first and counted), since the exchange's closed bar
and ours arrive at different moments.

The first derived bar of each stream is skipped by default: tickvault usually starts mid-bar,
so that bar lacks the trades before the start and would always differ.

A derived bar revised after it closed (late trades folded in: :meth:`Reconciler.revise`)
takes its old version's place while it waits, or, already compared, is compared again with
the exchange's bar (kept for the last ``max_compared`` pairs): findings that still hold come
out again with the revised values, and a field that agrees now comes out in ``resolved``
(relative difference 0), so the stored finding of the bar is replaced rather than left
standing.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal

from tickvault.model import Candle, CandleSource, decimal_str
from tickvault.pipeline.records import ReconcileFinding

_PRICE_FIELDS = ("open", "high", "low", "close")
_VOLUME_FIELDS = ("volume", "quote_volume", "buy_volume")


@dataclass(frozen=True, slots=True)
class ReconcileConfig:
    price_tolerance: float = 1e-9
    """Relative difference allowed in open/high/low/close. Both bars come from the same trades,
    so prices should agree exactly; the tolerance only absorbs representation noise."""
    volume_tolerance: float = 1e-6
    """Relative difference allowed in volume, quote volume and taker-buy volume."""
    compare_trade_count: bool = True
    """Also compare trade counts (exact) when both bars carry one."""
    max_pending: int = 50_000
    """Unpaired bars kept waiting for their counterpart."""
    max_compared: int = 20_000
    """Compared pairs kept (the exchange's bar and what differed) for comparing a derived bar
    again when late trades revise it."""
    skip_first_derived: bool = True


@dataclass(slots=True)
class ReconcileResult:
    findings: list[ReconcileFinding] = field(default_factory=list)
    compared: list[tuple[str, str, str, int]] = field(default_factory=list)  # bars paired
    mismatched: int = 0  # paired bars with at least one finding
    # bars compared again after a revision (their findings are in ``findings`` too)
    recompared: list[tuple[str, str, str, int]] = field(default_factory=list)
    # fields that differed at close and agree after a revision (rel_diff 0): they replace the
    # stored finding; not findings themselves
    resolved: list[ReconcileFinding] = field(default_factory=list)


def _rel_diff(a: Decimal, b: Decimal) -> float:
    scale = max(abs(a), abs(b))
    return float(abs(a - b) / scale) if scale else 0.0


class Reconciler:
    def __init__(self, config: ReconcileConfig | None = None) -> None:
        self.config = config or ReconcileConfig()
        self.evicted = 0  # bars that never met their counterpart
        self._pending: OrderedDict[tuple[str, str, str, int, str], Candle] = OrderedDict()
        self._started: set[tuple[str, str, str]] = set()
        # (exchange, symbol, timeframe, open_ns) -> the exchange's bar, the fields that differed
        self._compared: OrderedDict[tuple[str, str, str, int], tuple[Candle, frozenset[str]]] = (
            OrderedDict()
        )

    def add(self, candles: Iterable[Candle]) -> ReconcileResult:
        """Feed closed bars of either source; compare every pair that completes."""
        result = ReconcileResult()
        pending = self._pending
        for candle in candles:
            if not candle.closed:
                continue
            stream = (candle.exchange, candle.symbol, candle.timeframe)
            if (
                candle.source is CandleSource.DERIVED
                and self.config.skip_first_derived
                and stream not in self._started
            ):
                self._started.add(stream)
                continue
            own = (*stream, candle.open_ns, str(candle.source))
            other_source = (
                CandleSource.EXCHANGE
                if candle.source is CandleSource.DERIVED
                else CandleSource.DERIVED
            )
            other = pending.pop((*stream, candle.open_ns, str(other_source)), None)
            if other is None:
                pending[own] = candle
                if len(pending) > self.config.max_pending:
                    pending.popitem(last=False)
                    self.evicted += 1
                continue
            derived, exchange = (
                (candle, other) if candle.source is CandleSource.DERIVED else (other, candle)
            )
            findings = self.compare(derived, exchange)
            result.compared.append((*stream, candle.open_ns))
            self._remember((*stream, candle.open_ns), exchange, findings)
            if findings:
                result.mismatched += 1
                result.findings.extend(findings)
        return result

    def revise(self, candles: Iterable[Candle]) -> ReconcileResult:
        """Derived bars revised after they closed: a bar still waiting for the exchange's is
        replaced by its revision; a bar already compared is compared again (``recompared``;
        ``findings`` as they stand now, ``resolved`` for fields that agree now)."""
        result = ReconcileResult()
        for bar in candles:
            if not bar.closed or bar.source is not CandleSource.DERIVED:
                continue
            key = _key(bar)
            waiting = (*key, str(CandleSource.DERIVED))
            if waiting in self._pending:
                self._pending[waiting] = bar
                continue
            seen = self._compared.get(key)
            if seen is None:
                continue  # skipped (a stream's first bar), or compared too long ago
            exchange, before = seen
            findings = self.compare(bar, exchange)
            now = {f.field for f in findings}
            result.resolved += [
                ReconcileFinding(*key, name, *_values(bar, exchange, name), 0.0)
                for name in sorted(before - now)
            ]
            result.recompared.append(key)
            self._remember(key, exchange, findings)
            if findings:
                result.mismatched += 1
                result.findings.extend(findings)
        return result

    def _remember(
        self, key: tuple[str, str, str, int], exchange: Candle, findings: list[ReconcileFinding]
    ) -> None:
        compared = self._compared
        compared[key] = (exchange, frozenset(f.field for f in findings))
        compared.move_to_end(key)
        while len(compared) > self.config.max_compared:
            compared.popitem(last=False)

    def compare(self, derived: Candle, exchange: Candle) -> list[ReconcileFinding]:
        cfg = self.config
        findings: list[ReconcileFinding] = []

        def finding(name: str, rel: float) -> None:
            findings.append(
                ReconcileFinding(*_key(derived), name, *_values(derived, exchange, name), rel)
            )

        for name in _PRICE_FIELDS + _VOLUME_FIELDS:
            ours, theirs = getattr(derived, name), getattr(exchange, name)
            if ours is None or theirs is None:
                continue  # the exchange does not publish it (Kraken has no taker-buy volume)
            rel = _rel_diff(ours, theirs)
            limit = cfg.price_tolerance if name in _PRICE_FIELDS else cfg.volume_tolerance
            if rel > limit:
                finding(name, rel)
        if cfg.compare_trade_count:
            ours_n, theirs_n = derived.trade_count, exchange.trade_count
            if ours_n is not None and theirs_n is not None and ours_n != theirs_n:
                rel = abs(ours_n - theirs_n) / max(ours_n, theirs_n)
                finding("trade_count", rel)
        return findings


def _key(bar: Candle) -> tuple[str, str, str, int]:
    return bar.exchange, bar.symbol, bar.timeframe, bar.open_ns


def _values(derived: Candle, exchange: Candle, name: str) -> tuple[str | None, str | None]:
    """The two bars' values of a compared field as a finding gives them (decimal text; the
    trade count as an integer's)."""
    return _text(getattr(derived, name)), _text(getattr(exchange, name))


def _text(value: object) -> str | None:
    if value is None:
        return None
    return decimal_str(value) if isinstance(value, Decimal) else str(value)
