"""Builders of events for the pipeline tests (values shaped like the real Binance examples)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from tickvault.model import NS_PER_S, BookDelta, BookSnapshot, Candle, Side, Ticker, Trade

# 2024-03-09 16:00:00 UTC, after the reference klines (2024-01-30)
NOW_NS = 1_710_000_000 * NS_PER_S


def trade(
    trade_id: int | str = 1,
    price: str | Decimal = "43519.34000000",
    size: str | Decimal = "0.00109000",
    side: Side = Side.BUY,
    ts_ns: int = NOW_NS - NS_PER_S,
    exchange: str = "binance",
    symbol: str = "BTC-USDT",
    lag_ns: int = 5_000_000,
) -> Trade:
    return Trade(
        exchange,
        symbol,
        str(trade_id),
        Decimal(price),
        Decimal(size),
        side,
        ts_ns,
        ts_ns + lag_ns,
    )


def candle(**fields: Any) -> Candle:
    # Real Binance BTCUSDT 1h kline from the reference (open time 1706630400000).
    values: dict[str, Any] = dict(
        exchange="binance",
        symbol="BTC-USDT",
        timeframe="1h",
        open_ns=1_706_630_400_000 * 1_000_000,
        open=Decimal("43519.34000000"),
        high=Decimal("43936.00000000"),
        low=Decimal("43171.00000000"),
        close=Decimal("43488.71000000"),
        volume=Decimal("20.55495000"),
        closed=True,
        ts_ns=1_706_633_999_999 * 1_000_000,
        recv_ns=1_706_634_000_100 * 1_000_000,
        trade_count=3743,
        quote_volume=Decimal("891428.42858070"),
        buy_volume=Decimal("10.91428000"),
    )
    values.update(fields)
    return Candle(**values)


def snapshot(
    bids: tuple[tuple[str, str], ...] = (("0.35210000", "672.00000000"),),
    asks: tuple[tuple[str, str], ...] = (("0.35260000", "3199.00000000"),),
    sequence: int | None = 499869752,
    ts_ns: int = NOW_NS - NS_PER_S,
) -> BookSnapshot:
    return BookSnapshot(
        "binance",
        "NKN-USDT",
        tuple((Decimal(p), Decimal(s)) for p, s in bids),
        tuple((Decimal(p), Decimal(s)) for p, s in asks),
        ts_ns,
        ts_ns + 1_000_000,
        sequence=sequence,
    )


def delta(
    first: int | None = 499869753,
    last: int | None = 499869754,
    bids: tuple[tuple[str, str], ...] = (("0.35170000", "4265.00000000"),),
    asks: tuple[tuple[str, str], ...] = (("0.35290000", "10968.00000000"),),
    ts_ns: int = NOW_NS - NS_PER_S,
) -> BookDelta:
    return BookDelta(
        "binance",
        "NKN-USDT",
        tuple((Decimal(p), Decimal(s)) for p, s in bids),
        tuple((Decimal(p), Decimal(s)) for p, s in asks),
        ts_ns,
        ts_ns + 1_000_000,
        first_sequence=first,
        last_sequence=last,
    )


def ticker(
    bid: str | None = "0.35210000",
    ask: str | None = "0.35260000",
    ts_ns: int = NOW_NS - NS_PER_S,
    bid_size: str | None = "672.00000000",
) -> Ticker:
    return Ticker(
        "binance",
        "NKN-USDT",
        ts_ns,
        ts_ns + 1_000_000,
        bid_price=None if bid is None else Decimal(bid),
        bid_size=None if bid_size is None else Decimal(bid_size),
        ask_price=None if ask is None else Decimal(ask),
        ask_size=Decimal("3199.00000000"),
    )
