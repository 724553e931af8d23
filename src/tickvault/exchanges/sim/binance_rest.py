"""Binance Spot REST market data (``/api/v3/...``) over the simulated markets.

Shapes follow the official docs: prices and sizes as 8-decimal strings, times in ms, errors as
``{"code": -1121, "msg": "Invalid symbol."}``, results oldest first for time ranges.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from tickvault.exchanges.sim.candles import bars
from tickvault.exchanges.sim.market import Market, SimTrade
from tickvault.exchanges.sim.venue import json_response, query_int
from tickvault.exchanges.sim.wire import fixed

if TYPE_CHECKING:
    from tickvault.exchanges.sim.binance import BinanceVenue

INTERVALS_S: dict[str, int] = {
    "1s": 1, "1m": 60, "3m": 180, "5m": 300, "15m": 900, "30m": 1800, "1h": 3600, "2h": 7200,
    "4h": 14400, "6h": 21600, "8h": 28800, "12h": 43200, "1d": 86400, "3d": 259200, "1w": 604800,
}  # fmt: skip
WEIGHTS: dict[str, int] = {
    "/api/v3/ping": 1, "/api/v3/time": 1, "/api/v3/exchangeInfo": 20, "/api/v3/trades": 25,
    "/api/v3/historicalTrades": 25, "/api/v3/aggTrades": 4, "/api/v3/klines": 2,
    "/api/v3/uiKlines": 2, "/api/v3/ticker/bookTicker": 2,
}  # fmt: skip


def depth_weight(limit: int) -> int:
    return 5 if limit <= 100 else 25 if limit <= 500 else 50 if limit <= 1000 else 250


def error(code: int, msg: str, status: int = 400) -> web.Response:
    return json_response({"code": code, "msg": msg}, status)


def px(market: Market, price: int) -> str:
    return fixed(price, market.spec.price_decimals, 8)


def qty(market: Market, lots: int) -> str:
    return fixed(lots, market.spec.qty_decimals, 8)


def quote(market: Market, scaled: int) -> str:
    """price*qty (decimals pd+qd) at Binance's 8 decimals, rounded half up."""
    shift = market.spec.price_decimals + market.spec.qty_decimals - 8
    if shift > 0:
        scaled = (scaled + 5 * 10 ** (shift - 1)) // 10**shift
        return fixed(scaled, 8)
    return fixed(scaled, 8 + shift, 8)


def trade_row(market: Market, t: SimTrade) -> dict[str, Any]:
    return {
        "id": t.trade_id,
        "price": px(market, t.price),
        "qty": qty(market, t.qty),
        "quoteQty": quote(market, t.price * t.qty),
        "time": t.ts_us // 1000,
        "isBuyerMaker": t.side == "sell",
        "isBestMatch": True,
    }


def agg_row(market: Market, t: SimTrade) -> dict[str, Any]:
    return {
        "a": t.agg_id, "p": px(market, t.price), "q": qty(market, t.qty), "f": t.trade_id,
        "l": t.trade_id, "T": t.ts_us // 1000, "m": t.side == "sell", "M": True,
    }  # fmt: skip


def symbol_info(market: Market) -> dict[str, Any]:
    spec = market.spec
    tick = fixed(1, spec.price_decimals, 8)
    step = fixed(1, spec.qty_decimals, 8)
    return {
        "symbol": spec.exchange_id, "status": "TRADING", "baseAsset": spec.base,
        "baseAssetPrecision": 8, "quoteAsset": spec.quote, "quotePrecision": 8,
        "quoteAssetPrecision": 8, "baseCommissionPrecision": 8, "quoteCommissionPrecision": 8,
        "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"],
        "icebergAllowed": True, "ocoAllowed": True, "otoAllowed": True,
        "quoteOrderQtyMarketAllowed": True, "allowTrailingStop": True,
        "cancelReplaceAllowed": True, "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": False,
        "filters": [
            {"filterType": "PRICE_FILTER", "minPrice": tick, "maxPrice": "1000000.00000000",
             "tickSize": tick},
            {"filterType": "LOT_SIZE", "minQty": step, "maxQty": "9000.00000000", "stepSize": step},
            {"filterType": "NOTIONAL", "minNotional": "5.00000000", "applyMinToMarket": True,
             "maxNotional": "9000000.00000000", "applyMaxToMarket": False,
             "avgPriceMins": 5},
        ],
        "permissions": [], "permissionSets": [["SPOT"]],
        "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
        "allowedSelfTradePreventionModes": ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"],
    }  # fmt: skip


class BinanceRest:
    def __init__(self, venue: BinanceVenue) -> None:
        self.venue = venue

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/api/v3/ping", self.ping),
            web.get("/api/v3/time", self.time),
            web.get("/api/v3/exchangeInfo", self.exchange_info),
            web.get("/api/v3/depth", self.depth),
            web.get("/api/v3/trades", self.trades),
            web.get("/api/v3/historicalTrades", self.historical_trades),
            web.get("/api/v3/aggTrades", self.agg_trades),
            web.get("/api/v3/klines", self.klines),
            web.get("/api/v3/uiKlines", self.klines),
            web.get("/api/v3/ticker/bookTicker", self.book_ticker),
        ]

    def _market(self, request: web.Request) -> Market:
        symbol = request.query.get("symbol")
        if not symbol:
            raise web.HTTPBadRequest(
                body=b'{"code":-1102,"msg":"Mandatory parameter \'symbol\' was not sent, was empty/null, or malformed."}',
                content_type="application/json",
            )
        market = self.venue.market_for(symbol)
        if market is None:
            raise web.HTTPBadRequest(
                body=b'{"code":-1121,"msg":"Invalid symbol."}', content_type="application/json"
            )
        return market

    async def ping(self, request: web.Request) -> web.Response:
        return json_response({})

    async def time(self, request: web.Request) -> web.Response:
        return json_response({"serverTime": self.venue.now_us() // 1000})

    async def exchange_info(self, request: web.Request) -> web.Response:
        venue = self.venue
        markets = list(venue.markets.values())
        if "symbol" in request.query:
            markets = [self._market(request)]
        limit = venue.config.binance_weight_limit
        return json_response({
            "timezone": "UTC",
            "serverTime": venue.now_us() // 1000,
            "rateLimits": [
                {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": limit},
                {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
                {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": 61000},
            ],
            "exchangeFilters": [],
            "symbols": [symbol_info(m) for m in markets],
        })  # fmt: skip

    async def depth(self, request: web.Request) -> web.Response:
        market = self._market(request)
        limit = min(5000, max(1, query_int(request, "limit", 100) or 100))
        bids, asks = market.top(limit)
        return json_response({
            "lastUpdateId": market.update_id,
            "bids": [[px(market, p), qty(market, q)] for p, q in bids],
            "asks": [[px(market, p), qty(market, q)] for p, q in asks],
        })  # fmt: skip

    async def trades(self, request: web.Request) -> web.Response:
        market = self._market(request)
        limit = min(1000, max(1, query_int(request, "limit", 500) or 500))
        return json_response([trade_row(market, t) for t in market.trades[-limit:]])

    async def historical_trades(self, request: web.Request) -> web.Response:
        market = self._market(request)
        limit = min(1000, max(1, query_int(request, "limit", 500) or 500))
        from_id = query_int(request, "fromId")
        if from_id is None:
            rows = market.trades[-limit:]
        else:
            start = max(0, from_id - market.trades[0].trade_id) if market.trades else 0
            rows = market.trades[start : start + limit]
        return json_response([trade_row(market, t) for t in rows])

    async def agg_trades(self, request: web.Request) -> web.Response:
        market = self._market(request)
        limit = min(1000, max(1, query_int(request, "limit", 500) or 500))
        from_id = query_int(request, "fromId")
        start_ms, end_ms = query_int(request, "startTime"), query_int(request, "endTime")
        trades = market.trades
        if start_ms is not None and end_ms is not None and end_ms - start_ms > 3_600_000:
            return error(-1127, "More than 1 hours between startTime and endTime.")
        if from_id is not None:
            first = max(0, from_id - trades[0].agg_id) if trades else 0
            rows = trades[first : first + limit]
        elif start_ms is None and end_ms is None:
            rows = trades[-limit:]
        else:
            from bisect import bisect_left, bisect_right

            ts = market.trade_ts
            lo = 0 if start_ms is None else bisect_left(ts, start_ms * 1000)
            hi = len(ts) if end_ms is None else bisect_right(ts, end_ms * 1000 + 999)
            rows = trades[lo:hi][:limit] if start_ms is not None else trades[lo:hi][-limit:]
        return json_response([agg_row(market, t) for t in rows])

    async def klines(self, request: web.Request) -> web.Response:
        market = self._market(request)
        interval = request.query.get("interval", "")
        if interval not in INTERVALS_S:
            return error(-1120, "Invalid interval.")
        tf_us = INTERVALS_S[interval] * 1_000_000
        limit = min(1000, max(1, query_int(request, "limit", 500) or 500))
        start_ms, end_ms = query_int(request, "startTime"), query_int(request, "endTime")
        now_us = self.venue.now_us()
        end_us = now_us + 1 if end_ms is None else min(now_us + 1, end_ms * 1000 + 1)
        if start_ms is None:
            start_us = end_us - 1 - (end_us - 1) % tf_us - (limit - 1) * tf_us
            rows = bars(market, tf_us, start_us, end_us, include_empty=True)[-limit:]
        else:
            first = start_ms * 1000 + (-start_ms * 1000) % tf_us  # first open >= startTime
            rows = bars(market, tf_us, first, min(end_us, first + limit * tf_us), True)[:limit]
        out = []
        for bar in rows:
            open_ms = bar.open_us // 1000
            out.append([
                open_ms, px(market, bar.open), px(market, bar.high), px(market, bar.low),
                px(market, bar.close), qty(market, bar.volume), open_ms + tf_us // 1000 - 1,
                quote(market, bar.quote_volume), bar.count, qty(market, bar.buy_volume),
                quote(market, bar.buy_quote), "0",
            ])  # fmt: skip
        return json_response(out)

    async def book_ticker(self, request: web.Request) -> web.Response:
        market = self._market(request)
        bids, asks = market.top(1)
        return json_response({
            "symbol": market.spec.exchange_id,
            "bidPrice": px(market, bids[0][0]), "bidQty": qty(market, bids[0][1]),
            "askPrice": px(market, asks[0][0]), "askQty": qty(market, asks[0][1]),
        })  # fmt: skip
