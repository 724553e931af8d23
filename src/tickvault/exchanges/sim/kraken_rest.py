"""Kraken Spot public REST (``/0/public/<Method>``) over the simulated markets.

Envelope ``{"error": [...], "result": {...}}``; results keyed by the pair key (``XXBTZUSD``)
whichever name was asked for (key, altname, wsname or v2 symbol). OHLC returns at most the 720
most recent bars, the last one uncommitted; Trades pages forward by a nanosecond ``since``
(exclusive) and answers ``last`` for the next call. Refusals are in-band, as on Kraken:
HTTP 200 with ``{"error": ["EGeneral:Too many requests"]}``.
"""

from __future__ import annotations

import time
from bisect import bisect_right
from email.utils import formatdate
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from tickvault.exchanges.sim.candles import bars
from tickvault.exchanges.sim.market import Market
from tickvault.exchanges.sim.venue import json_response, query_int
from tickvault.exchanges.sim.wire import fixed

if TYPE_CHECKING:
    from tickvault.exchanges.sim.kraken import KrakenVenue

OHLC_INTERVALS_MIN = (1, 5, 15, 30, 60, 240, 1440, 10080, 21600)
OHLC_MAX_BARS = 720


def kerror(*errors: str) -> web.Response:
    return json_response({"error": list(errors)})


def ok(result: Any) -> web.Response:
    return json_response({"error": [], "result": result})


def px(market: Market, price: int) -> str:
    return fixed(price, market.spec.price_decimals)


def vol(market: Market, lots: int) -> str:
    return fixed(lots, market.spec.qty_decimals)


class KrakenRest:
    def __init__(self, venue: KrakenVenue) -> None:
        self.venue = venue
        self.names: dict[str, Market] = {}
        for market in venue.markets.values():
            spec = market.spec
            for name in (spec.exchange_id, spec.kraken_altname, spec.kraken_wsname, spec.ws_id):
                self.names[name] = market

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/0/public/Time", self.time),
            web.get("/0/public/SystemStatus", self.status),
            web.get("/0/public/AssetPairs", self.asset_pairs),
            web.get("/0/public/Depth", self.depth),
            web.get("/0/public/OHLC", self.ohlc),
            web.get("/0/public/Trades", self.trades),
            web.get("/0/public/Ticker", self.ticker),
        ]

    def _pairs(self, request: web.Request, required: bool = True) -> list[Market] | web.Response:
        text = request.query.get("pair", "")
        if not text:
            return (
                kerror("EGeneral:Invalid arguments")
                if required
                else list(self.venue.markets.values())
            )
        markets = []
        for name in text.split(","):
            market = self.names.get(name.strip())
            if market is None:
                return kerror("EQuery:Unknown asset pair")
            markets.append(market)
        return markets

    def _pair(self, request: web.Request) -> Market | web.Response:
        pairs = self._pairs(request)
        return pairs[0] if isinstance(pairs, list) else pairs

    async def time(self, request: web.Request) -> web.Response:
        now = int(time.time())
        return ok(
            {"unixtime": now, "rfc1123": formatdate(now, usegmt=False).replace("-0000", "+0000")}
        )

    async def status(self, request: web.Request) -> web.Response:
        return ok(
            {"status": "online", "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        )

    async def asset_pairs(self, request: web.Request) -> web.Response:
        pairs = self._pairs(request, required=False)
        if not isinstance(pairs, list):
            return pairs
        result = {}
        for market in pairs:
            spec = market.spec
            result[spec.exchange_id] = {
                "altname": spec.kraken_altname, "wsname": spec.kraken_wsname,
                "aclass_base": "currency", "base": spec.kraken_base,
                "aclass_quote": "currency", "quote": spec.kraken_quote, "lot": "unit",
                "cost_decimals": 5, "pair_decimals": spec.price_decimals,
                "lot_decimals": spec.qty_decimals, "lot_multiplier": 1,
                "leverage_buy": [], "leverage_sell": [],
                "fees": [[0, 0.4], [10000, 0.35]], "fees_maker": [[0, 0.25], [10000, 0.2]],
                "fee_volume_currency": "ZUSD", "margin_call": 80, "margin_stop": 40,
                "ordermin": "0.0001", "costmin": "0.5",
                "tick_size": fixed(1, spec.price_decimals), "status": "online",
            }  # fmt: skip
        return ok(result)

    async def depth(self, request: web.Request) -> web.Response:
        market = self._pair(request)
        if isinstance(market, web.Response):
            return market
        count = min(500, max(1, query_int(request, "count", 100) or 100))
        bids, asks = market.top(count)
        stamp = int(time.time())
        return ok({market.spec.exchange_id: {
            "asks": [[px(market, p), vol(market, q), stamp] for p, q in asks],
            "bids": [[px(market, p), vol(market, q), stamp] for p, q in bids],
        }})  # fmt: skip

    async def ohlc(self, request: web.Request) -> web.Response:
        market = self._pair(request)
        if isinstance(market, web.Response):
            return market
        interval = query_int(request, "interval", 1) or 1
        if interval not in OHLC_INTERVALS_MIN:
            return kerror("EGeneral:Invalid arguments")
        since = query_int(request, "since")
        tf_us = interval * 60_000_000
        now_us = self.venue.now_us()
        current_open = now_us - now_us % tf_us
        rows = bars(market, tf_us, current_open - (OHLC_MAX_BARS - 1) * tf_us, now_us + 1, True)
        if since is not None:
            rows = [b for b in rows if b.open_us // 1_000_000 > since]
        pd = market.spec.price_decimals
        parts = [
            f'[{b.open_us // 1_000_000},"{px(market, b.open)}","{px(market, b.high)}",'
            f'"{px(market, b.low)}","{px(market, b.close)}","{fixed(b.vwap(), pd)}",'
            f'"{vol(market, b.volume)}",{b.count}]'
            for b in rows
        ]
        # ``last``: the newest committed bar, so polling with since=last re-reads the open one
        last = (current_open - tf_us) // 1_000_000
        body = f'{{"error":[],"result":{{"{market.spec.exchange_id}":[{",".join(parts)}],"last":{last}}}}}'
        return web.Response(text=body, content_type="application/json")

    async def trades(self, request: web.Request) -> web.Response:
        market = self._pair(request)
        if isinstance(market, web.Response):
            return market
        count = min(1000, max(1, query_int(request, "count", 1000) or 1000))
        since = query_int(request, "since")
        if since is None:
            page = market.trades[-count:]
        else:
            since_ns = since * 1_000_000_000 if since < 10**12 else since  # seconds accepted too
            lo = bisect_right(market.trade_ts, since_ns // 1000)
            page = market.trades[lo : lo + count]
        parts = []
        for t in page:
            second, micros = divmod(t.ts_us, 1_000_000)
            side = "b" if t.side == "buy" else "s"
            order_type = "l" if t.trade_id % 3 else "m"
            parts.append(
                f'["{px(market, t.price)}","{vol(market, t.qty)}",{second}.{micros:06d},'
                f'"{side}","{order_type}","",{t.trade_id}]'
            )
        last = page[-1].ts_us * 1000 if page else (since or 0)
        key = market.spec.exchange_id
        body = f'{{"error":[],"result":{{"{key}":[{",".join(parts)}],"last":"{last}"}}}}'
        return web.Response(text=body, content_type="application/json")

    async def ticker(self, request: web.Request) -> web.Response:
        pairs = self._pairs(request)
        if not isinstance(pairs, list):
            return pairs
        result = {}
        for market in pairs:
            bids, asks = market.top(1)
            last = market.trades[-1]
            result[market.spec.exchange_id] = {
                "a": [px(market, asks[0][0]), "1", vol(market, asks[0][1])],
                "b": [px(market, bids[0][0]), "1", vol(market, bids[0][1])],
                "c": [px(market, last.price), vol(market, last.qty)],
                "o": px(market, market.trades[0].price),
            }
        return web.Response(
            body=orjson.dumps({"error": [], "result": result}), content_type="application/json"
        )
