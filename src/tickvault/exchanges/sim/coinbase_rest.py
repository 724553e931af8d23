"""Coinbase REST over the simulated markets: Exchange (``/products/...``, ``/time``) and
Advanced Trade public market data (``/api/v3/brokerage/market/...``, ``/api/v3/brokerage/time``)
on the same base URL, since their paths do not collide.

Exchange trades paginate by ``trade_id`` cursors (``after`` = older, ``before`` = newer, headers
``CB-BEFORE``/``CB-AFTER``); Exchange candles are ``[time, low, high, open, close, volume]``
rows, newest first, at most 300 (larger ranges are rejected); Advanced candles at most 350.
"""

from __future__ import annotations

from bisect import bisect_left
from datetime import datetime
from typing import TYPE_CHECKING, Any

from aiohttp import web

from tickvault.exchanges.sim.candles import bars
from tickvault.exchanges.sim.market import Market, SimTrade
from tickvault.exchanges.sim.venue import json_response, query_int
from tickvault.exchanges.sim.wire import fixed, rfc3339_s, rfc3339_us

if TYPE_CHECKING:
    from tickvault.exchanges.sim.coinbase import CoinbaseVenue

GRANULARITIES_S = (60, 300, 900, 3600, 21600, 86400)
ADVANCED_GRANULARITIES: dict[str, int] = {
    "ONE_MINUTE": 60, "FIVE_MINUTE": 300, "FIFTEEN_MINUTE": 900, "THIRTY_MINUTE": 1800,
    "ONE_HOUR": 3600, "TWO_HOUR": 7200, "SIX_HOUR": 21600, "ONE_DAY": 86400,
}  # fmt: skip
EXCHANGE_MAX_CANDLES = 300
ADVANCED_MAX_CANDLES = 350
ADVANCED = "/api/v3/brokerage"


def px(market: Market, price: int) -> str:
    return fixed(price, market.spec.price_decimals)


def sz(market: Market, lots: int) -> str:
    return fixed(lots, market.spec.qty_decimals)


def maker_side(trade: SimTrade) -> str:
    """Coinbase Exchange reports the maker's side: a taker buy lifts a resting sell."""
    return "sell" if trade.side == "buy" else "buy"


def parse_time_s(text: str) -> float:
    """Unix seconds or ISO-8601 (both accepted by the Exchange API)."""
    try:
        return float(text)
    except ValueError:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def error(message: str, status: int = 400) -> web.Response:
    return json_response({"message": message}, status)


class CoinbaseRest:
    def __init__(self, venue: CoinbaseVenue) -> None:
        self.venue = venue

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/time", self.time),
            web.get("/products", self.products),
            web.get("/products/{id}", self.product),
            web.get("/products/{id}/book", self.book),
            web.get("/products/{id}/trades", self.trades),
            web.get("/products/{id}/candles", self.candles),
            web.get("/products/{id}/ticker", self.ticker),
            web.get(f"{ADVANCED}/time", self.adv_time),
            web.get(f"{ADVANCED}/market/products", self.adv_products),
            web.get(f"{ADVANCED}/market/products/{{id}}", self.adv_product),
            web.get(f"{ADVANCED}/market/product_book", self.adv_book),
            web.get(f"{ADVANCED}/market/products/{{id}}/candles", self.adv_candles),
            web.get(f"{ADVANCED}/market/products/{{id}}/ticker", self.adv_trades),
        ]

    def _market(self, product_id: str | None) -> Market:
        market = self.venue.market_for(product_id or "")
        if market is None:
            raise web.HTTPNotFound(body=b'{"message":"NotFound"}', content_type="application/json")
        return market

    # -- Exchange --------------------------------------------------------------------------
    async def time(self, request: web.Request) -> web.Response:
        now_us = self.venue.now_us()
        return json_response({"iso": rfc3339_us(now_us)[:-4] + "Z", "epoch": now_us / 1e6})

    def _product(self, market: Market) -> dict[str, Any]:
        spec = market.spec
        return {
            "id": spec.exchange_id, "base_currency": spec.base, "quote_currency": spec.quote,
            "quote_increment": fixed(1, spec.price_decimals, 8),
            "base_increment": fixed(1, spec.qty_decimals, 8), "display_name": spec.symbol.replace("-", "/"),
            "min_market_funds": "1", "margin_enabled": False, "post_only": False,
            "limit_only": False, "cancel_only": False, "status": "online", "status_message": "",
            "trading_disabled": False, "fx_stablecoin": False,
            "max_slippage_percentage": "0.02000000", "auction_mode": False,
            "high_bid_limit_percentage": "",
        }  # fmt: skip

    async def products(self, request: web.Request) -> web.Response:
        return json_response([self._product(m) for m in self.venue.markets.values()])

    async def product(self, request: web.Request) -> web.Response:
        return json_response(self._product(self._market(request.match_info["id"])))

    async def book(self, request: web.Request) -> web.Response:
        market = self._market(request.match_info["id"])
        level = query_int(request, "level", 1)
        depth = 1 if level == 1 else 100_000
        bids, asks = market.top(depth)

        def rows(levels: list[tuple[int, int]]) -> list[list[Any]]:
            if level == 3:  # one synthetic order per level
                return [
                    [px(market, p), sz(market, q), f"00000000-0000-4000-8000-{p:012d}"[-36:]]
                    for p, q in levels
                ]
            return [[px(market, p), sz(market, q), 1] for p, q in levels]

        return json_response({
            "bids": rows(bids), "asks": rows(asks), "sequence": market.sequence,
            "auction_mode": False, "auction": None, "time": rfc3339_us(self.venue.now_us()),
        })  # fmt: skip

    async def trades(self, request: web.Request) -> web.Response:
        market = self._market(request.match_info["id"])
        limit = min(1000, max(1, query_int(request, "limit", 1000) or 1000))
        before, after = query_int(request, "before"), query_int(request, "after")
        trades = market.trades
        if not trades:
            return json_response([])
        first_id = trades[0].trade_id
        if after is not None:  # older than the cursor
            hi = max(0, min(len(trades), after - first_id))
            page = trades[max(0, hi - limit) : hi]
        elif before is not None:  # newer than the cursor, the ones right after it
            lo = max(0, before - first_id + 1)
            page = trades[lo : lo + limit]
        else:
            page = trades[-limit:]
        page = page[::-1]  # newest first
        headers = {}
        if page:
            headers = {"CB-BEFORE": str(page[0].trade_id), "CB-AFTER": str(page[-1].trade_id)}
        return json_response([
            {"time": rfc3339_us(t.ts_us), "trade_id": t.trade_id, "price": px(market, t.price),
             "size": sz(market, t.qty), "side": maker_side(t)}
            for t in page
        ], headers=headers)  # fmt: skip

    async def candles(self, request: web.Request) -> web.Response:
        market = self._market(request.match_info["id"])
        granularity = query_int(request, "granularity", 60) or 60
        if granularity not in GRANULARITIES_S:
            return error("Unsupported granularity")
        now_s = self.venue.now_us() / 1e6
        start_text, end_text = request.query.get("start"), request.query.get("end")
        try:
            if start_text and end_text:
                start_s, end_s = parse_time_s(start_text), parse_time_s(end_text)
            else:  # a range ending now
                end_s, start_s = now_s, now_s - granularity * (EXCHANGE_MAX_CANDLES - 1)
        except ValueError:
            return error("Invalid start or end time")
        if end_s < start_s:
            return error("start must be before end")
        if int(end_s - start_s) // granularity + 1 > EXCHANGE_MAX_CANDLES:
            return error(
                "granularity too small for the requested time range. Count of aggregations requested exceeds 300"
            )
        tf_us = granularity * 1_000_000
        rows = bars(market, tf_us, int(start_s * 1e6), int(end_s * 1e6) + 1, include_empty=False)
        parts = [
            f"[{b.open_us // 1_000_000},{px(market, b.low)},{px(market, b.high)},"
            f"{px(market, b.open)},{px(market, b.close)},{sz(market, b.volume)}]"
            for b in reversed(rows)
        ]
        return web.Response(text=f"[{','.join(parts)}]", content_type="application/json")

    async def ticker(self, request: web.Request) -> web.Response:
        market = self._market(request.match_info["id"])
        bids, asks = market.top(1)
        last = market.trades[-1]
        return json_response({
            "ask": px(market, asks[0][0]), "bid": px(market, bids[0][0]),
            "volume": sz(market, self.venue.stats_for(market).volume), "trade_id": last.trade_id,
            "price": px(market, last.price), "size": sz(market, last.qty),
            "time": rfc3339_us(last.ts_us), "rfq_volume": "0",
        })  # fmt: skip

    # -- Advanced Trade --------------------------------------------------------------------
    async def adv_time(self, request: web.Request) -> web.Response:
        now_us = self.venue.now_us()
        return json_response({
            "iso": rfc3339_s(now_us // 1_000_000), "epochSeconds": str(now_us // 1_000_000),
            "epochMillis": str(now_us // 1000),
        })  # fmt: skip

    def _adv_product(self, market: Market) -> dict[str, Any]:
        spec = market.spec
        last = market.trades[-1] if market.trades else None
        return {
            "product_id": spec.exchange_id, "price": px(market, last.price) if last else "",
            "base_increment": fixed(1, spec.qty_decimals), "quote_increment": fixed(1, spec.price_decimals),
            "price_increment": fixed(1, spec.price_decimals), "base_min_size": fixed(1, spec.qty_decimals),
            "base_max_size": "10000", "quote_min_size": "1", "quote_max_size": "10000000",
            "base_currency_id": spec.base, "quote_currency_id": spec.quote,
            "base_name": spec.base, "quote_name": spec.quote, "status": "online",
            "trading_disabled": False, "is_disabled": False, "cancel_only": False,
            "limit_only": False, "post_only": False, "auction_mode": False, "new": False,
            "product_type": "SPOT", "alias": "", "alias_to": [],
            "base_display_symbol": spec.base, "quote_display_symbol": spec.quote,
            "view_only": False, "display_name": spec.symbol, "product_venue": "CBE",
            "future_product_details": None,
        }  # fmt: skip

    async def adv_products(self, request: web.Request) -> web.Response:
        wanted = request.query.getall("product_ids", [])
        markets = [
            m for m in self.venue.markets.values() if not wanted or m.spec.exchange_id in wanted
        ]
        offset = query_int(request, "offset", 0) or 0
        limit = query_int(request, "limit") or len(markets)
        page = markets[offset : offset + limit]
        return json_response(
            {"products": [self._adv_product(m) for m in page], "num_products": len(page)}
        )

    async def adv_product(self, request: web.Request) -> web.Response:
        return json_response(self._adv_product(self._market(request.match_info["id"])))

    async def adv_book(self, request: web.Request) -> web.Response:
        market = self._market(request.query.get("product_id"))
        bids, asks = market.top(query_int(request, "limit", 100_000) or 100_000)
        spread = asks[0][0] - bids[0][0]
        mid2 = asks[0][0] + bids[0][0]  # twice the mid, in ticks
        return json_response({
            "pricebook": {
                "product_id": market.spec.exchange_id,
                "bids": [{"price": px(market, p), "size": sz(market, q)} for p, q in bids],
                "asks": [{"price": px(market, p), "size": sz(market, q)} for p, q in asks],
                "time": rfc3339_us(self.venue.now_us()),
            },
            "last": px(market, market.trades[-1].price) if market.trades else "",
            "mid_market": fixed(mid2 * 5, market.spec.price_decimals + 1),
            "spread_bps": f"{spread * 20000 / mid2:.4f}", "spread_absolute": px(market, spread),
        })  # fmt: skip

    async def adv_candles(self, request: web.Request) -> web.Response:
        market = self._market(request.match_info["id"])
        granularity = ADVANCED_GRANULARITIES.get(request.query.get("granularity", ""))
        start, end = query_int(request, "start"), query_int(request, "end")
        if granularity is None or start is None or end is None or end < start:
            return json_response(
                {"error": "INVALID_ARGUMENT", "error_details": "start, end and a valid granularity are required",
                 "message": "start, end and a valid granularity are required"}, 400)  # fmt: skip
        limit = query_int(request, "limit", ADVANCED_MAX_CANDLES) or ADVANCED_MAX_CANDLES
        if (end - start) // granularity + 1 > min(limit, ADVANCED_MAX_CANDLES):
            message = f"number of candles requested should be less than {ADVANCED_MAX_CANDLES}"
            return json_response(
                {"error": "INVALID_ARGUMENT", "error_details": message, "message": message}, 400
            )
        rows = bars(market, granularity * 1_000_000, start * 1_000_000, end * 1_000_000 + 1, False)
        return json_response({"candles": [
            {"start": str(b.open_us // 1_000_000), "low": px(market, b.low), "high": px(market, b.high),
             "open": px(market, b.open), "close": px(market, b.close), "volume": sz(market, b.volume)}
            for b in reversed(rows)
        ]})  # fmt: skip

    async def adv_trades(self, request: web.Request) -> web.Response:
        market = self._market(request.match_info["id"])
        limit = min(1000, max(1, query_int(request, "limit", 100) or 100))
        start, end = query_int(request, "start"), query_int(request, "end")
        hi = len(market.trades) if end is None else bisect_left(market.trade_ts, end * 1_000_000)
        lo = 0 if start is None else bisect_left(market.trade_ts, start * 1_000_000)
        page = market.trades[max(lo, hi - limit) : hi][::-1]
        bids, asks = market.top(1)
        return json_response({
            "trades": [
                {"trade_id": str(t.trade_id), "product_id": market.spec.exchange_id,
                 "price": px(market, t.price), "size": sz(market, t.qty), "time": rfc3339_us(t.ts_us),
                 "side": t.side.upper(), "bid": "", "ask": "", "exchange": "coinbase"}
                for t in page
            ],
            "best_bid": px(market, bids[0][0]), "best_ask": px(market, asks[0][0]),
        })  # fmt: skip
