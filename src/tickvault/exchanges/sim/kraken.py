"""Simulated Kraken Spot: REST (``kraken_rest``) and WebSocket v2 at ``/v2``.

v2 channels: ``book`` (depth 10/25/100/500/1000; snapshot, then updates that hold every level
change inside the subscribed depth, deletes as ``qty 0`` but no deletes for levels that merely
fall out of scope; CRC32 ``checksum`` of the top 10 on snapshots and updates), ``trade``
(snapshot of the last 50 only when asked), ``ticker``, ``ohlc``, ``instrument``, plus
``status`` on connect, ``heartbeat`` each second a connection is otherwise idle and ``ping``.
Prices and quantities are JSON numbers printed at the pair's precision (``45285.2``,
``0.00100000``), which is what the checksum recipe formats. The v1 feed is not simulated.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import WSMsgType, web

from tickvault.exchanges.sim.candles import bars, current_bar
from tickvault.exchanges.sim.hub import WsClient, accept
from tickvault.exchanges.sim.kraken_rest import OHLC_INTERVALS_MIN, KrakenRest, kerror
from tickvault.exchanges.sim.market import Market, SimTrade, Tick
from tickvault.exchanges.sim.ratelimit import TokenBucket
from tickvault.exchanges.sim.render import kraken_levels, kraken_trades
from tickvault.exchanges.sim.trade_window import TradeWindow
from tickvault.exchanges.sim.venue import Venue
from tickvault.exchanges.sim.wire import (
    fixed,
    kraken_checksum,
    price_table,
    rfc3339_us,
)

if TYPE_CHECKING:
    from tickvault.exchanges.sim.simulator import Simulator

BOOK_DEPTHS = (10, 25, 100, 500, 1000)
TICKER_TRADES = 5000  # the ticker's figures cover the last this many trades


class KrakenVenue(Venue):
    name = "kraken"

    def __init__(self, sim: Simulator) -> None:
        super().__init__(sim)
        self.buckets = TokenBucket(sim.config.kraken_rps, sim.config.kraken_burst)
        self.by_ws = {m.spec.ws_id: m for m in self.markets.values()}
        self.subs: dict[tuple[Any, ...], set[WsClient]] = {}
        # last published top-`depth` view per (symbol, depth): what subscribers hold
        self.views: dict[tuple[str, int], tuple[dict[int, int], dict[int, int]]] = {}
        self.connection_ids = 0
        self.windows: dict[str, TradeWindow] = {}  # ticker statistics per canonical symbol

    def add_routes(self, app: web.Application) -> None:
        app.add_routes(KrakenRest(self).routes())
        app.add_routes([web.get("/v2", self.ws)])

    def limit(self, request: web.Request) -> web.Response | None:
        if self.config.rate_limits and self.buckets.take(request.remote or "?", time.monotonic()):
            return kerror("EGeneral:Too many requests")
        return None

    def too_many(self, retry_after_s: int) -> web.Response:
        return kerror("EGeneral:Too many requests")

    # -- formatting ------------------------------------------------------------------------
    @staticmethod
    def _levels(market: Market, levels: Any) -> str:
        prices = price_table(market.spec.price_decimals)
        return kraken_levels(levels, prices, market.spec.qty_decimals)

    def _checksum(self, market: Market) -> int:
        bids, asks = market.top(10)
        checksum = kraken_checksum(asks, bids)
        if self.faults.take(self.name, "bad_checksum", market.spec.symbol, "book"):
            checksum ^= 0xFFFFFFFF
        return checksum

    def _trades(self, market: Market, trades: list[SimTrade]) -> str:
        prices = price_table(market.spec.price_decimals)
        return kraken_trades(trades, market.spec.ws_id, prices, market.spec.qty_decimals)

    def _ticker(self, market: Market, kind: str) -> str:
        """Bid/ask now; last, volume, vwap, low, high and change of the valid trades among the
        last 5000 (the simulator's stand-in for 24 h), kept by a :class:`TradeWindow`."""
        pd, qd = market.spec.price_decimals, market.spec.qty_decimals
        window = self.windows.get(market.spec.symbol)
        if window is None:
            window = self.windows[market.spec.symbol] = TradeWindow(TICKER_TRADES)
        window.update(market.trades)
        bid, ask = market.best_bid(), market.best_ask()
        last, first = window.last, window.first
        vwap = window.notional // max(1, window.volume)
        change = last - first
        return (
            f'{{"channel":"ticker","type":"{kind}","data":[{{"symbol":"{market.spec.ws_id}",'
            f'"bid":{fixed(bid, pd)},"bid_qty":{fixed(market.bids[bid], qd)},'
            f'"ask":{fixed(ask, pd)},"ask_qty":{fixed(market.asks[ask], qd)},'
            f'"last":{fixed(last, pd)},"volume":{fixed(window.volume, qd)},"vwap":{fixed(vwap, pd)},'
            f'"low":{fixed(window.low, pd)},"high":{fixed(window.high, pd)},'
            f'"change":{fixed(change, pd)},"change_pct":{change * 100 / first:.2f}}}]}}'
        )

    def _ohlc(self, market: Market, interval: int, kind: str, count: int) -> str:
        pd, qd = market.spec.price_decimals, market.spec.qty_decimals
        tf_us, now_us = interval * 60_000_000, self.now_us()
        open_us = now_us - now_us % tf_us
        rows = (
            current_bar(market, tf_us, now_us)
            if count == 1
            else bars(market, tf_us, open_us - (count - 1) * tf_us, now_us + 1, True)
        )
        data = ",".join(
            f'{{"symbol":"{market.spec.ws_id}","open":{fixed(b.open, pd)},"high":{fixed(b.high, pd)},'
            f'"low":{fixed(b.low, pd)},"close":{fixed(b.close, pd)},"trades":{b.count},'
            f'"volume":{fixed(b.volume, qd)},"vwap":{fixed(b.vwap(), pd)},'
            f'"interval_begin":"{rfc3339_us(b.open_us)[:-1]}000Z","interval":{interval},'
            f'"timestamp":"{rfc3339_us(min(now_us, b.open_us + tf_us))}"}}'
            for b in rows
        )
        return f'{{"channel":"ohlc","type":"{kind}","timestamp":"{rfc3339_us(now_us)}","data":[{data}]}}'

    def _instrument(self) -> str:
        pairs = []
        for market in self.markets.values():
            spec = market.spec
            pairs.append(
                f'{{"symbol":"{spec.ws_id}","base":"{spec.base}","quote":"{spec.quote}","status":"online",'
                f'"qty_precision":{spec.qty_decimals},"qty_increment":{fixed(1, spec.qty_decimals)},'
                f'"price_precision":{spec.price_decimals},"price_increment":{fixed(1, spec.price_decimals)},'
                f'"cost_precision":5,"cost_min":0.5,"qty_min":0.0001,"marginable":false,"has_index":true}}'
            )
        return f'{{"channel":"instrument","type":"snapshot","data":{{"assets":[],"pairs":[{",".join(pairs)}]}}}}'

    # -- WebSocket -------------------------------------------------------------------------
    async def ws(self, request: web.Request) -> web.WebSocketResponse:
        client = await accept(request, fanout=self.fanout)
        self.clients.add(client)
        self.connection_ids += 1
        client.push(orjson.dumps({"channel": "status", "type": "update", "data": [{
            "api_version": "v2", "connection_id": 7_000_000_000_000_000_000 + self.connection_ids,
            "system": "online", "version": "2.0.10"}]}).decode())  # fmt: skip
        try:
            async for msg in client.ws:
                if msg.type == WSMsgType.TEXT:
                    self._on_text(client, msg.data)
        finally:
            self.clients.discard(client)
            for clients in self.subs.values():
                clients.discard(client)
            await client.close()
        return client.ws

    def _reply(self, client: WsClient, body: dict[str, Any], req_id: Any, time_in: str) -> None:
        if req_id is not None:
            body["req_id"] = req_id
        body["time_in"], body["time_out"] = time_in, rfc3339_us(self.now_us())
        client.push(orjson.dumps(body).decode())

    def _on_text(self, client: WsClient, text: str) -> None:
        time_in = rfc3339_us(self.now_us())
        try:
            request = orjson.loads(text)
            method = request["method"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            client.push('{"error":"Malformed request","success":false}')
            return
        req_id = request.get("req_id")
        if method == "ping":
            self._reply(client, {"method": "pong"}, req_id, time_in)
            return
        params = request.get("params") or {}
        channel = params.get("channel")
        if method not in ("subscribe", "unsubscribe") or channel not in (
            "book",
            "trade",
            "ticker",
            "ohlc",
            "instrument",
        ):
            self._reply(client, {"error": f"Unsupported method or channel {method}/{channel}", "method": method, "success": False}, req_id, time_in)  # fmt: skip
            return
        if channel == "instrument":
            self._reply(client, {"method": method, "result": {"channel": "instrument", "snapshot": True}, "success": True}, req_id, time_in)  # fmt: skip
            if method == "subscribe":
                client.push(self._instrument())
            return
        depth = params.get("depth", 10)
        interval = params.get("interval", 1)
        if channel == "book" and depth not in BOOK_DEPTHS:
            self._reply(
                client,
                {"error": "Invalid depth", "method": method, "success": False},
                req_id,
                time_in,
            )
            return
        if channel == "ohlc" and interval not in OHLC_INTERVALS_MIN:
            self._reply(
                client,
                {"error": "Invalid interval", "method": method, "success": False},
                req_id,
                time_in,
            )
            return
        snapshot = params.get("snapshot", channel != "trade")
        for symbol in params.get("symbol") or []:
            market = self.by_ws.get(symbol)
            if market is None:
                self._reply(client, {"error": f"Currency pair not supported {symbol}", "method": method,
                                     "success": False, "symbol": symbol}, req_id, time_in)  # fmt: skip
                continue
            key: tuple[Any, ...] = (channel, symbol)
            result: dict[str, Any] = {"channel": channel, "symbol": symbol}
            if channel == "book":
                key, result["depth"] = (channel, symbol, depth), depth
            elif channel == "ohlc":
                key, result["interval"] = (channel, symbol, interval), interval
            if method == "unsubscribe":
                self.subs.get(key, set()).discard(client)
                client.subscriptions.discard(key)
                self._reply(
                    client, {"method": method, "result": result, "success": True}, req_id, time_in
                )
                continue
            result["snapshot"] = snapshot
            self.subs.setdefault(key, set()).add(client)
            client.subscriptions.add(key)
            client.state.setdefault("symbols", set()).add(market.spec.symbol)
            self._reply(
                client, {"method": method, "result": result, "success": True}, req_id, time_in
            )
            self._initial(client, market, key, snapshot)

    def _initial(
        self, client: WsClient, market: Market, key: tuple[Any, ...], snapshot: bool
    ) -> None:
        channel = key[0]
        if channel == "book":
            depth = key[2]
            bids, asks = market.top(depth)
            self.views.setdefault((market.spec.ws_id, depth), (dict(bids), dict(asks)))
            client.push(
                f'{{"channel":"book","type":"snapshot","data":[{{"symbol":"{market.spec.ws_id}",'
                f'"bids":[{self._levels(market, bids)}],"asks":[{self._levels(market, asks)}],'
                f'"checksum":{self._checksum(market)}}}]}}'
            )
        elif not snapshot or not market.trades:
            return
        elif channel == "trade":
            data = self._trades(market, market.trades[-50:])
            client.push(f'{{"channel":"trade","type":"snapshot","data":[{data}]}}')
        elif channel == "ticker":
            client.push(self._ticker(market, "snapshot"))
        elif channel == "ohlc":
            client.push(self._ohlc(market, key[2], "snapshot", 10))

    # -- market fan-out --------------------------------------------------------------------
    def on_step(self, market: Market, tick: Tick) -> None:
        if not tick.trades:
            return
        clients = self.subs.get(("trade", market.spec.ws_id))
        if clients:
            data = self._trades(market, tick.trades)
            self.fanout.send(
                clients,
                market.spec.symbol,
                "trade",
                f'{{"channel":"trade","type":"update","data":[{data}]}}',
            )

    def on_batch(self, market: Market, tick: Tick) -> None:
        ws_id, symbol = market.spec.ws_id, market.spec.symbol
        if tick.changes:
            for depth in BOOK_DEPTHS:
                clients = self.subs.get(("book", ws_id, depth))
                if clients:
                    self._book_update(market, depth, clients, tick.ts_us)
                else:
                    self.views.pop((ws_id, depth), None)
        if not tick.trades:
            return
        clients = self.subs.get(("ticker", ws_id))
        if clients:
            self.fanout.send(clients, symbol, "ticker", self._ticker(market, "update"))
        for interval in OHLC_INTERVALS_MIN:
            clients = self.subs.get(("ohlc", ws_id, interval))
            if clients:
                self.fanout.send(clients, symbol, "ohlc", self._ohlc(market, interval, "update", 1))

    def _book_update(self, market: Market, depth: int, clients: set[WsClient], ts_us: int) -> None:
        view = self.views.get((market.spec.ws_id, depth))
        bids, asks = market.top(depth)
        if view is None:
            self.views[(market.spec.ws_id, depth)] = (dict(bids), dict(asks))
            return
        sides = []
        for old, new_levels, full in ((view[0], bids, market.bids), (view[1], asks, market.asks)):
            new = dict(new_levels)
            changed = [(p, q) for p, q in new_levels if old.get(p) != q]
            # deleted levels get qty 0; levels still in the book but pushed past the depth
            # get nothing (the client truncates), as on Kraken
            changed += [(p, 0) for p in old if p not in new and p not in full]
            old.clear()
            old.update(new)
            sides.append(changed)
        if not sides[0] and not sides[1]:
            return
        self.fanout.send(clients, market.spec.symbol, "book", (
            f'{{"channel":"book","type":"update","data":[{{"symbol":"{market.spec.ws_id}",'
            f'"bids":[{self._levels(market, sides[0])}],"asks":[{self._levels(market, sides[1])}],'
            f'"checksum":{self._checksum(market)},"timestamp":"{rfc3339_us(ts_us)}"}}]}}'
        ))  # fmt: skip

    def on_timer(self, now_us: int) -> None:
        # {"channel":"heartbeat"} once a second on subscribed connections that are otherwise idle
        now_s = time.monotonic()
        for client in self.clients:
            if client.subscriptions and now_s - client.last_push_s >= self.config.heartbeat_s:
                client.push('{"channel":"heartbeat"}')
