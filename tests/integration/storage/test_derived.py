"""Derived candles (plain PostgreSQL refresh function) against a Python reference."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

import psycopg

from tickvault.model import Side, Trade, bucket_start_ns, decimal_str
from tickvault.storage.postgres import PostgresStore

from .helpers import JAN_2024_NS, NS, make_trades


def reference(trades: list[Trade], timeframe: str) -> dict[tuple[str, int], dict[str, object]]:
    """OHLCV per (symbol, bucket) straight from the trades, ties broken by trade id."""
    groups: dict[tuple[str, int], list[Trade]] = defaultdict(list)
    for t in trades:
        groups[(t.symbol, bucket_start_ns(t.ts_ns, timeframe) // 1000)].append(t)
    out: dict[tuple[str, int], dict[str, object]] = {}
    for key, ts in groups.items():
        ts.sort(key=lambda t: (t.ts_ns // 1000, t.trade_id))
        volume = sum((t.size for t in ts), Decimal(0))
        quote = sum((t.price * t.size for t in ts), Decimal(0))
        out[key] = {
            "open": decimal_str(ts[0].price),
            "high": decimal_str(max(t.price for t in ts)),
            "low": decimal_str(min(t.price for t in ts)),
            "close": decimal_str(ts[-1].price),
            "volume": volume,
            "trade_count": len(ts),
            "quote_volume": quote,
            "buy_volume": sum((t.size for t in ts if t.side is Side.BUY), Decimal(0)),
            "sell_volume": sum((t.size for t in ts if t.side is Side.SELL), Decimal(0)),
            "vwap": quote / volume,
        }
    return out


def stored(url: str, timeframe: str) -> dict[tuple[str, int], dict[str, object]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT symbol, (extract(epoch FROM ts) * 1000000)::bigint, open, high, low, close,"
            " volume, trade_count, quote_volume, buy_volume, sell_volume, vwap, closed"
            " FROM candles WHERE source = 'derived' AND timeframe = %s",
            (timeframe,),
        ).fetchall()
    out: dict[tuple[str, int], dict[str, object]] = {}
    for r in rows:
        assert r[12] is True  # 2024 bars are long closed
        out[(r[0], r[1])] = {
            "open": decimal_str(r[2]), "high": decimal_str(r[3]), "low": decimal_str(r[4]),
            "close": decimal_str(r[5]), "volume": r[6], "trade_count": r[7],
            "quote_volume": r[8], "buy_volume": r[9], "sell_volume": r[10], "vwap": r[11],
        }  # fmt: skip
    return out


async def test_refresh_matches_python_reference(store: PostgresStore, db_url: str) -> None:
    # 7 s apart over ~1.5 h, two symbols, and bursts sharing one timestamp (id tie-break)
    trades = make_trades(800, step_ns=7 * NS)
    trades += make_trades(300, step_ns=13 * NS, symbol="ETH-USDT", first_id=5000)
    trades += make_trades(5, start_ns=JAN_2024_NS + 61 * NS, step_ns=0, first_id=9)
    await store.write(trades)
    await store.flush()
    end_ns = JAN_2024_NS + 2 * 3600 * NS
    for timeframe in ("1m", "5m", "1h"):
        changed = await store.refresh_derived_candles(timeframe, JAN_2024_NS, end_ns)
        want, got = reference(trades, timeframe), stored(db_url, timeframe)
        assert changed == len(want)
        assert got.keys() == want.keys()
        for key, bar in want.items():
            vwap_want = bar.pop("vwap")
            vwap_got = got[key].pop("vwap")
            assert got[key] == bar, key
            assert abs(vwap_got - vwap_want) < Decimal("1e-11")  # type: ignore[operator]
        # refreshing again changes nothing: same source rows, same bars
        assert await store.refresh_derived_candles(timeframe, JAN_2024_NS, end_ns) == 0


async def test_refresh_picks_up_late_trades_for_one_market(
    store: PostgresStore, db_url: str
) -> None:
    await store.write(make_trades(60))  # 1 per second: one 1m bar
    await store.flush()
    assert await store.refresh_derived_candles("1m", JAN_2024_NS, JAN_2024_NS + 60 * NS) == 1
    late = make_trades(1, start_ns=JAN_2024_NS + 30 * NS + 500, first_id=10_000)
    await store.write(late)
    await store.flush()
    n = await store.refresh_derived_candles(
        "1m", JAN_2024_NS, JAN_2024_NS + 60 * NS, exchange="binance", symbol="BTC-USDT"
    )
    assert n == 1
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT trade_count FROM candles").fetchone() == (61,)
