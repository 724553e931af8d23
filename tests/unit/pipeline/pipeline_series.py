"""Bar series for the indicator and signal tests: a random walk and real ETHUSDT 1h klines."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import numpy as np

from tickvault.model import NS_PER_S, Candle, CandleSource

DATA = Path(__file__).parent / "data"
HOUR_NS = 3600 * NS_PER_S


def bars_from_rows(rows: list[list[object]]) -> list[Candle]:
    out = []
    for open_ms, o, h, low, c, v in rows:
        open_ns = int(open_ms) * 1_000_000  # type: ignore[call-overload]
        out.append(
            Candle(
                "binance",
                "ETH-USDT",
                "1h",
                open_ns,
                Decimal(str(o)),
                Decimal(str(h)),
                Decimal(str(low)),
                Decimal(str(c)),
                Decimal(str(v)),
                True,
                open_ns + HOUR_NS - 1,
                open_ns + HOUR_NS,
                source=CandleSource.DERIVED,
            )
        )
    return out


def real_klines() -> list[Candle]:
    data = json.loads((DATA / "ethusdt_1h_2024-12.json").read_text())
    return bars_from_rows(data["rows"])


def random_walk(count: int = 600, seed: int = 11) -> list[Candle]:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, count)))
    opens = np.concatenate([[100.0], close[:-1]])
    high = np.maximum(opens, close) * (1 + np.abs(rng.normal(0, 0.004, count)))
    low = np.minimum(opens, close) * (1 - np.abs(rng.normal(0, 0.004, count)))
    volume = rng.gamma(2.0, 50.0, count)
    start_ms = 1_733_140_800_000
    rows: list[list[object]] = [
        [
            start_ms + i * 3_600_000,
            f"{opens[i]:.8f}",
            f"{high[i]:.8f}",
            f"{low[i]:.8f}",
            f"{close[i]:.8f}",
            f"{volume[i]:.8f}",
        ]
        for i in range(count)
    ]
    # Flat stretch: RSI without gains or losses, zero Bollinger width.
    for i in range(300, 330):
        rows[i][1:5] = [rows[299][4]] * 4
    return bars_from_rows(rows)
