"""Shared helpers of the storage tests (constants, event factories, SQL probes)."""

from __future__ import annotations

from decimal import Decimal

import psycopg

from tickvault.config import TimescaleSettings
from tickvault.model import Side, Trade

PLAIN = TimescaleSettings(mode="off")
NS = 1_000_000_000
JAN_2024_NS = 1_704_067_200 * NS  # 2024-01-01T00:00:00Z


def make_trades(
    n: int,
    start_ns: int = JAN_2024_NS,
    step_ns: int = NS,
    exchange: str = "binance",
    symbol: str = "BTC-USDT",
    first_id: int = 0,
) -> list[Trade]:
    """Trades with varied exact prices/sizes (as exchanges send them: fixed decimals)."""
    out = []
    for i in range(n):
        price = Decimal(f"{42000 + (i * 37) % 500}.{(i * 7919) % 100:02d}")
        size = Decimal(f"0.{(i * 104729) % 100000 + 1:08d}")
        side = Side.BUY if i % 3 else Side.SELL
        ts = start_ns + i * step_ns
        out.append(
            Trade(exchange, symbol, str(first_id + i), price, size, side, ts, ts + 7_000_000)
        )
    return out


def count(url: str, sql: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(sql).fetchone()  # type: ignore[call-overload]
        assert row is not None
        return int(row[0])
