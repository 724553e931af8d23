"""REST history: identical pages for identical seeds, and pagination that covers everything."""

from __future__ import annotations

from decimal import Decimal

import aiohttp
from sim_helpers import quick_config

from tickvault.exchanges.sim import Simulator


async def _get(session: aiohttp.ClientSession, url: str) -> tuple[int, dict[str, str], str]:
    async with session.get(url) as response:
        return response.status, dict(response.headers), await response.text()


async def test_same_seed_same_pages_other_seed_other_pages(session: aiohttp.ClientSession) -> None:
    paths = {
        "binance": "/api/v3/aggTrades?symbol=BTCUSDT&startTime=1767224700000&limit=50",
        "coinbase": "/products/BTC-USDT/trades?limit=50",
        "kraken": "/0/public/Trades?pair=XBTUSDT&since=1767224700000000000&count=50",
    }
    pages: list[dict[str, str]] = []
    for seed in (7, 7, 8):
        async with Simulator(quick_config(seed=seed)) as sim:
            pages.append({
                ex: (await _get(session, sim.endpoints[ex].rest_url + path))[2]
                for ex, path in paths.items()
            })  # fmt: skip
    assert pages[0] == pages[1]
    for exchange in paths:
        assert pages[0][exchange] != pages[2][exchange]
        assert '"error"' not in pages[0][exchange][:30] or '"error":[]' in pages[0][exchange]


async def test_binance_pagination_matches_truth(session: aiohttp.ClientSession) -> None:
    async with Simulator(quick_config()) as sim:
        base = sim.endpoints["binance"].rest_url
        truth = sim.truth_trades("binance", "BTC-USDT")
        start_ms = truth[0]["ts_ns"] // 1_000_000
        rows: list[dict[str, object]] = []
        url = f"{base}/api/v3/aggTrades?symbol=BTCUSDT&startTime={start_ms}&endTime={start_ms + 3_000_000}&limit=1000"
        status, headers, _ = await _get(session, url)
        assert status == 200 and int(headers["X-MBX-USED-WEIGHT-1M"]) >= 4
        from_id = None
        while True:
            query = f"fromId={from_id}" if from_id is not None else f"startTime={start_ms}"
            async with session.get(
                f"{base}/api/v3/aggTrades?symbol=BTCUSDT&{query}&limit=500"
            ) as r:
                page = await r.json()
            if not page:
                break
            rows.extend(page)
            from_id = page[-1]["a"] + 1
        assert [str(r["f"]) for r in rows] == [t["trade_id"] for t in truth]
        assert all(Decimal(r["p"]) == Decimal(t["price"]) for r, t in zip(rows, truth, strict=True))
        assert [r["T"] * 1_000_000 for r in rows] == [t["ts_ns"] for t in truth]

        # klines paged forward with startTime = last open + 1 reproduce the truth candles
        end_ns = sim.anchor_us * 1000
        candles = sim.truth_candles("binance", "BTC-USDT", "1m", truth[0]["ts_ns"], end_ns)
        got: list[list[object]] = []
        start = candles[0]["open_ns"] // 1_000_000
        while True:
            async with session.get(
                f"{base}/api/v3/klines?symbol=BTCUSDT&interval=1m&startTime={start}&endTime={end_ns // 1_000_000 - 1}&limit=4"
            ) as r:
                page = await r.json()
            if not page:
                break
            got.extend(page)
            start = page[-1][0] + 1
        assert len(got) == len(candles) == 15
        for row, bar in zip(got, candles, strict=True):
            assert row[0] * 1_000_000 == bar["open_ns"] and row[6] == row[0] + 59_999
            assert [Decimal(x) for x in row[1:6]] == [
                Decimal(bar[k]) for k in ("open", "high", "low", "close", "volume")
            ]
            assert row[8] == bar["trade_count"]
        async with session.get(f"{base}/api/v3/klines?symbol=BTCUSDT&interval=7m") as r:
            assert r.status == 400 and (await r.json())["code"] == -1120


async def test_coinbase_cursor_pagination_and_candle_cap(session: aiohttp.ClientSession) -> None:
    async with Simulator(quick_config()) as sim:
        base = sim.endpoints["coinbase"].rest_url
        truth = sim.truth_trades("coinbase", "BTC-USDT")
        rows: list[dict[str, object]] = []
        url = f"{base}/products/BTC-USDT/trades?limit=300"
        while True:
            async with session.get(url) as r:
                page = await r.json()
                after = r.headers.get("CB-AFTER")
            if not page:
                break
            rows.extend(page)
            url = f"{base}/products/BTC-USDT/trades?limit=300&after={after}"
        rows.reverse()
        assert [str(r["trade_id"]) for r in rows] == [t["trade_id"] for t in truth]
        # Exchange side is the maker's: a taker buy shows as "sell"
        assert all(
            (r["side"] == "sell") == (t["side"] == "buy") for r, t in zip(rows, truth, strict=True)
        )
        async with session.get(
            f"{base}/products/BTC-USDT/trades?limit=5&before={rows[10]['trade_id']}"
        ) as r:
            newer = await r.json()
        assert [x["trade_id"] for x in newer] == [x["trade_id"] for x in rows[11:16]][::-1]

        start, end = "2025-12-31T23:45:00Z", "2026-01-01T00:00:00Z"
        async with session.get(
            f"{base}/products/BTC-USDT/candles?granularity=60&start={start}&end={end}"
        ) as r:
            candles = await r.json(loads=lambda s: __import__("json").loads(s, parse_float=Decimal))
        truth_bars = sim.truth_candles("coinbase", "BTC-USDT", "1m", 0, sim.anchor_us * 1000)
        assert [c[0] * 10**9 for c in candles] == [b["open_ns"] for b in reversed(truth_bars)]
        assert [c[1:] for c in candles] == [
            [Decimal(b[k]) for k in ("low", "high", "open", "close", "volume")]
            for b in reversed(truth_bars)
        ]
        async with session.get(
            f"{base}/products/BTC-USDT/candles?granularity=60&start=2025-12-31T00:00:00Z&end={end}"
        ) as r:
            assert r.status == 400 and "exceeds 300" in (await r.json())["message"]
        async with session.get(
            f"{base}/api/v3/brokerage/market/products/BTC-USDT/candles?granularity=ONE_MINUTE&start=1767224700&end=1767225540"
        ) as r:
            advanced = (await r.json())["candles"]
        assert [int(c["start"]) * 10**9 for c in advanced] == [
            b["open_ns"] for b in reversed(truth_bars)
        ]


async def test_kraken_trades_since_and_ohlc(session: aiohttp.ClientSession) -> None:
    async with Simulator(quick_config(symbols=["BTC-USD"])) as sim:
        base = sim.endpoints["kraken"].rest_url
        async with session.get(f"{base}/0/public/AssetPairs?pair=XBTUSD") as r:
            pairs = (await r.json())["result"]
        assert list(pairs) == ["XXBTZUSD"] and pairs["XXBTZUSD"]["wsname"] == "XBT/USD"
        truth = sim.truth_trades("kraken", "BTC-USD")
        rows: list[list[object]] = []
        since = "0"
        while True:
            async with session.get(
                f"{base}/0/public/Trades?pair=XBTUSD&since={since}&count=400"
            ) as r:
                result = (
                    await r.json(loads=lambda s: __import__("json").loads(s, parse_float=Decimal))
                )["result"]
            if not result["XXBTZUSD"]:
                break
            rows.extend(result["XXBTZUSD"])
            since = result["last"]
        assert [str(r[6]) for r in rows] == [t["trade_id"] for t in truth]
        assert [int(r[2] * 10**9) for r in rows] == [t["ts_ns"] for t in truth]
        assert [(r[0], r[1]) for r in rows] == [(t["price"], t["size"]) for t in truth]
        async with session.get(f"{base}/0/public/OHLC?pair=XXBTZUSD&interval=1") as r:
            ohlc = (await r.json())["result"]
        assert len(ohlc["XXBTZUSD"]) == 720  # capped at the 720 most recent bars
        async with session.get(f"{base}/0/public/Depth?pair=BTC/USD&count=3") as r:
            depth = (await r.json())["result"]["XXBTZUSD"]
        assert len(depth["bids"]) == 3 and Decimal(depth["bids"][0][0]) < Decimal(
            depth["asks"][0][0]
        )
        async with session.get(f"{base}/0/public/Depth?pair=NOPE") as r:
            assert (await r.json())["error"] == ["EQuery:Unknown asset pair"]
