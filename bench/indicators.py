"""Cost of keeping indicators revisable: closed bars through ``IndicatorEngine`` with the
lagging twin (``late_window_ns`` = the runner's 60 s: 1 s bars keep a twin 62 bars behind)
against the same engine without it (the baseline, measured in the same run), and the cost of
one revision (copy of the twin and replay of the bars it has not seen).

    python -m bench.indicators [--bars 20000] [--streams 4]
"""

from __future__ import annotations

import argparse
import random
import time
from decimal import Decimal

from tickvault.model import NS_PER_S, Candle, CandleSource
from tickvault.pipeline.indicators import IndicatorEngine

WINDOW_NS = 60 * NS_PER_S


def bars(count: int, streams: int, seed: int = 5) -> list[Candle]:
    """Closed 1 s bars of ``streams`` markets, interleaved as the stages emit them."""
    rng = random.Random(seed)
    closes = [100.0 + 10 * s for s in range(streams)]
    out = []
    for i in range(count):
        s = i % streams
        o = closes[s]
        c = o * (1 + rng.gauss(0, 0.001))
        closes[s] = c
        t = 1_733_140_800 * NS_PER_S + (i // streams) * NS_PER_S
        out.append(
            Candle("binance", f"S{s}-USDT", "1s", t, Decimal(f"{o:.4f}"),
                   Decimal(f"{max(o, c) * 1.0005:.4f}"), Decimal(f"{min(o, c) * 0.9995:.4f}"),
                   Decimal(f"{c:.4f}"), Decimal(f"{rng.uniform(1, 5):.6f}"), True, t, t,
                   source=CandleSource.DERIVED)
        )  # fmt: skip
    return out


def feed(engine: IndicatorEngine, series: list[Candle], batch: int = 50) -> float:
    start = time.process_time()
    for i in range(0, len(series), batch):
        engine.update(series[i : i + batch])
    return time.process_time() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bars", type=int, default=20_000)
    parser.add_argument("--streams", type=int, default=4)
    args = parser.parse_args()
    series = bars(args.bars, args.streams)
    best: dict[str, float] = {}
    for _ in range(3):
        for label, window in (("without twin (baseline)", 0), ("with twin", WINDOW_NS)):
            spent = feed(IndicatorEngine(late_window_ns=window), series)
            best[label] = min(best.get(label, spent), spent)
    base = best["without twin (baseline)"]
    for label, spent in best.items():
        print(f"{label:<26} {args.bars / spent:>10,.0f} bars/s   {spent / args.bars * 1e6:6.1f} µs"
              f" a bar   {spent / base:5.2f}x baseline")  # fmt: skip
    engine = IndicatorEngine(late_window_ns=WINDOW_NS)
    feed(engine, series)
    newest = series[-1]  # the same bar again: a revision is replayed all the same
    runs = 200
    start = time.process_time()
    for _ in range(runs):
        engine.revise([newest])
    per = (time.process_time() - start) / runs
    print(f"one revision (copy the twin, replay 62 bars): {per * 1e3:.2f} ms"
          f" = {per / (base / args.bars):.0f} bars fed")  # fmt: skip


if __name__ == "__main__":
    main()
