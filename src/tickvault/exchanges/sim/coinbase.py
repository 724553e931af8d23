"""Simulated Coinbase: Exchange and Advanced Trade REST (``coinbase_rest``) and one WebSocket
endpoint at ``/`` that speaks both feeds, chosen per connection by the first subscribe message:
``"channels": [...]`` is the Exchange feed (``ws-feed.exchange.coinbase.com``), ``"channel": "x"``
the Advanced Trade feed (``advanced-trade-ws.coinbase.com``).

Exchange feed: ``ticker`` and ``matches`` (first a ``last_match``) carrying a per-product
``sequence`` that grows by exactly 1 per trade here (ticker and match of one trade share it),
``level2_batch`` (``snapshot`` then ``l2update`` every 50 ms) and ``heartbeat``. ``level2``,
``level3`` and ``full`` are refused as on the real feed without authentication.
Advanced Trade: ``level2`` (messages on ``l2_data``), ``market_trades``, ``ticker``, ``candles``
(5-minute buckets) and ``heartbeats``; every message carries this connection's ``sequence_num``.
A client that does not subscribe within ``subscribe_timeout_s`` is disconnected.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import WSMsgType, web

from tickvault.exchanges.sim.coinbase_advanced import AdvancedFeed
from tickvault.exchanges.sim.coinbase_rest import CoinbaseRest, maker_side, px, sz
from tickvault.exchanges.sim.hub import (
    WsClient,
    accept,
    subscribed_channels,
    track_subscription,
)
from tickvault.exchanges.sim.market import Market, SimTrade, Tick
from tickvault.exchanges.sim.ratelimit import TokenBucket
from tickvault.exchanges.sim.venue import Venue, json_response
from tickvault.exchanges.sim.wire import lots_formatter, price_table, rfc3339_us

if TYPE_CHECKING:
    from tickvault.exchanges.sim.simulator import Simulator

EXCHANGE_CHANNELS = ("ticker", "matches", "level2_batch", "heartbeat")
AUTH_ONLY = ("level2", "level3", "full")


@dataclass(slots=True)
class _Stats:
    open: int
    high: int
    low: int
    volume: int = 0


class CoinbaseVenue(Venue, AdvancedFeed):
    name = "coinbase"

    def __init__(self, sim: Simulator) -> None:
        super().__init__(sim)
        self.buckets = TokenBucket(sim.config.coinbase_rps, sim.config.coinbase_burst)
        # (feed, channel, product) -> clients; feed "ex" (Exchange) or "adv" (Advanced)
        self.subs: dict[tuple[str, str, str], set[WsClient]] = {}
        self.l2_batches: dict[str, list[str]] = {}
        self.day_stats: dict[str, _Stats] = {}
        self.next_batch_us = 0
        self.next_second_us = 0
        self.heartbeat_counter = 0

    def add_routes(self, app: web.Application) -> None:
        app.add_routes(CoinbaseRest(self).routes())
        app.add_routes([web.get("/", self.ws)])

    def stats_for(self, market: Market) -> _Stats:
        stats = self.day_stats.get(market.spec.symbol)
        if stats is None:
            prices = [t.price for t in market.trades if t.injected is None] or [market.best_bid()]
            stats = _Stats(prices[0], max(prices), min(prices))
            stats.volume = sum(t.qty for t in market.trades if t.injected is None)
            self.day_stats[market.spec.symbol] = stats
        return stats

    # -- REST limits -----------------------------------------------------------------------
    def limit(self, request: web.Request) -> web.Response | None:
        if not self.config.rate_limits:
            return None
        api = "adv" if request.path.startswith("/api/") else "ex"
        wait_s = self.buckets.take(f"{request.remote}:{api}", asyncio.get_running_loop().time())
        if wait_s:
            return self._too_many(api, max(1, int(wait_s + 0.999)))
        return None

    def _too_many(self, api: str, retry_after_s: int) -> web.Response:
        body: Any = {"message": "Public rate limit exceeded"}
        if api == "adv":
            body = {"errors": [{"id": "rate_limit_exceeded", "message": "Too many requests"}]}
        return json_response(body, 429, {"Retry-After": str(retry_after_s)})

    def too_many(self, retry_after_s: int) -> web.Response:
        return self._too_many("ex", retry_after_s)

    # -- WebSocket -------------------------------------------------------------------------
    async def ws(self, request: web.Request) -> web.WebSocketResponse:
        client = await accept(request, fanout=self.fanout)
        self.clients.add(client)
        timer = asyncio.get_running_loop().call_later(
            self.config.subscribe_timeout_s, self._unsubscribed_timeout, client
        )
        try:
            async for msg in client.ws:
                if msg.type == WSMsgType.TEXT:
                    self._on_text(client, msg.data)
        finally:
            timer.cancel()
            self.clients.discard(client)
            for clients in self.subs.values():
                clients.discard(client)
            await client.close()
        return client.ws

    def _unsubscribed_timeout(self, client: WsClient) -> None:
        if not client.subscriptions:
            asyncio.get_running_loop().create_task(client.close())

    def _error(self, client: WsClient, message: str, reason: str) -> None:
        client.push(orjson.dumps({"type": "error", "message": message, "reason": reason}).decode())

    def _on_text(self, client: WsClient, text: str) -> None:
        try:
            request = orjson.loads(text)
            kind = request["type"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            self._error(client, "Failed to parse message", "malformed JSON")
            return
        if kind not in ("subscribe", "unsubscribe"):
            self._error(client, "Failed to subscribe", f"{kind!r} is not a valid message type")
            return
        feed = "adv" if "channel" in request else "ex"
        if client.state.setdefault("feed", feed) != feed:
            self._error(
                client, "Failed to subscribe", "cannot mix Exchange and Advanced Trade messages"
            )
            return
        if feed == "adv":
            self._advanced_request(client, kind, request)
        else:
            self._exchange_request(client, kind, request)

    def _products(self, client: WsClient, ids: Any) -> list[Market] | None:
        if not isinstance(ids, list) or not ids:
            self._error(client, "Failed to subscribe", "product_ids must be a non-empty list")
            return None
        markets = []
        for product_id in ids:
            market = self.by_id.get(product_id) if isinstance(product_id, str) else None
            if market is None:
                self._error(client, "Failed to subscribe", f"{product_id} is not a valid product")
                return None
            markets.append(market)
        return markets

    def _exchange_request(self, client: WsClient, kind: str, request: dict[str, Any]) -> None:
        wanted: list[tuple[str, Any]] = []
        for channel in request.get("channels") or []:
            if isinstance(channel, dict):
                wanted.append(
                    (
                        channel.get("name", ""),
                        channel.get("product_ids") or request.get("product_ids"),
                    )
                )
            else:
                wanted.append((channel, request.get("product_ids")))
        for name, _ in wanted:
            if name in AUTH_ONLY:
                self._error(
                    client,
                    "Failed to subscribe",
                    "level2, level3, and full channels now require authentication.",
                )
                return
            if name not in EXCHANGE_CHANNELS:
                self._error(client, "Failed to subscribe", f"{name} is not a valid channel")
                return
        for name, ids in wanted:
            markets = self._products(client, ids)
            if markets is None:
                return
            for market in markets:
                key = ("ex", name, market.spec.exchange_id)
                track_subscription(self.subs, client, key, market.spec.symbol, kind == "subscribe")
        channels = subscribed_channels(client)
        client.push(orjson.dumps({"type": "subscriptions", "channels": [
            {"name": n, "product_ids": p} for n, p in channels.items()]}).decode())  # fmt: skip
        if kind == "subscribe":
            for name, ids in wanted:
                for market in self._products(client, ids) or []:
                    self._exchange_initial(client, name, market)

    def _exchange_initial(self, client: WsClient, channel: str, market: Market) -> None:
        last = market.trades[-1] if market.trades else None
        if channel == "level2_batch":
            bids, asks = market.top(100_000)
            client.push(orjson.dumps({
                "type": "snapshot", "product_id": market.spec.exchange_id,
                "asks": [[px(market, p), sz(market, q)] for p, q in asks],
                "bids": [[px(market, p), sz(market, q)] for p, q in bids],
            }).decode())  # fmt: skip
        elif channel == "matches" and last is not None:
            client.push(self._match(market, last, market.sequence, "last_match"))
        elif channel == "ticker" and last is not None:
            client.push(self._ticker(market, last, market.sequence))

    # -- Exchange messages -----------------------------------------------------------------
    def _match(self, market: Market, t: SimTrade, sequence: int, kind: str = "match") -> str:
        maker = f"{t.trade_id * 2654435761 % 16**12:012x}"
        taker = f"{(t.trade_id * 40503 + 7) % 16**12:012x}"
        prices = price_table(market.spec.price_decimals)
        lots = lots_formatter(market.spec.qty_decimals)
        return (
            f'{{"type":"{kind}","trade_id":{t.trade_id},"maker_order_id":"00000000-0000-4000-8000-{maker}",'
            f'"taker_order_id":"00000000-0000-4000-9000-{taker}","side":"{maker_side(t)}",'
            f'"size":"{lots(t.qty)}","price":"{prices[t.price]}",'
            f'"product_id":"{market.spec.exchange_id}","sequence":{sequence},"time":"{rfc3339_us(t.ts_us)}"}}'
        )

    def _ticker(self, market: Market, t: SimTrade, sequence: int) -> str:
        stats = self.stats_for(market)
        bids, asks = market.top(1)
        return (
            f'{{"type":"ticker","sequence":{sequence},"product_id":"{market.spec.exchange_id}",'
            f'"price":"{px(market, t.price)}","open_24h":"{px(market, stats.open)}",'
            f'"volume_24h":"{sz(market, stats.volume)}","low_24h":"{px(market, stats.low)}",'
            f'"high_24h":"{px(market, stats.high)}","volume_30d":"{sz(market, stats.volume)}",'
            f'"best_bid":"{px(market, bids[0][0])}","best_bid_size":"{sz(market, bids[0][1])}",'
            f'"best_ask":"{px(market, asks[0][0])}","best_ask_size":"{sz(market, asks[0][1])}",'
            f'"side":"{maker_side(t)}","time":"{rfc3339_us(t.ts_us)}","trade_id":{t.trade_id},'
            f'"last_size":"{sz(market, t.qty)}"}}'
        )

    def on_step(self, market: Market, tick: Tick) -> None:
        pid, symbol = market.spec.exchange_id, market.spec.symbol
        stats = self.stats_for(market)
        subs = self.subs
        matches, tickers = subs.get(("ex", "matches", pid)), subs.get(("ex", "ticker", pid))
        match_texts: list[str] = []
        ticker_texts: list[str] = []
        for t in tick.trades:
            market.sequence += 1
            if t.injected is None:
                stats.high, stats.low = max(stats.high, t.price), min(stats.low, t.price)
                stats.volume += t.qty
            if matches:
                match_texts.append(self._match(market, t, market.sequence))
            if tickers:
                ticker_texts.append(self._ticker(market, t, market.sequence))
        if matches:
            self.fanout.send_all(matches, symbol, "matches", match_texts)
        if tickers:
            self.fanout.send_all(tickers, symbol, "ticker", ticker_texts)
        if tick.changes and subs.get(("ex", "level2_batch", pid)):
            prices = price_table(market.spec.price_decimals)
            lots = lots_formatter(market.spec.qty_decimals)
            batch = self.l2_batches.setdefault(pid, [])
            batch += [
                f'["{"buy" if is_bid else "sell"}","{prices[p]}","{lots(q)}"]'
                for is_bid, p, q in tick.changes
            ]
        self._advanced_step(market, tick)

    def on_batch(self, market: Market, tick: Tick) -> None:
        self._advanced_batch(market, tick)

    def on_timer(self, now_us: int) -> None:
        if now_us >= self.next_batch_us:
            self.next_batch_us = now_us + 50_000
            for pid, changes in self.l2_batches.items():
                clients = self.subs.get(("ex", "level2_batch", pid))
                if changes and clients:
                    self.fanout.send(clients, self.by_id[pid].spec.symbol, "level2_batch", (
                        f'{{"type":"l2update","product_id":"{pid}","changes":[{",".join(changes)}],'
                        f'"time":"{rfc3339_us(now_us)}"}}'
                    ))  # fmt: skip
                changes.clear()
        if now_us >= self.next_second_us:
            self.next_second_us = now_us + int(self.config.heartbeat_s * 1_000_000)
            self._heartbeats(now_us)

    def _heartbeats(self, now_us: int) -> None:
        for market in self.markets.values():
            pid = market.spec.exchange_id
            clients = self.subs.get(("ex", "heartbeat", pid))
            if clients:
                last_id = market.trades[-1].trade_id if market.trades else 0
                self.fanout.send(clients, market.spec.symbol, "heartbeat", (
                    f'{{"type":"heartbeat","last_trade_id":{last_id},"product_id":"{pid}",'
                    f'"sequence":{market.sequence},"time":"{rfc3339_us(now_us)}"}}'
                ))  # fmt: skip
            candle_clients = self.subs.get(("adv", "candles", pid))
            if candle_clients:
                self._adv_send(
                    candle_clients, market, "candles", self._candles_event(market, now_us)
                )
        self.heartbeat_counter += 1
        clients_hb: set[WsClient] = set()
        for pid in self.by_id:
            clients_hb |= self.subs.get(("adv", "heartbeats", pid), set())
        if clients_hb:
            micros = now_us % 1_000_000
            current = f"{rfc3339_us(now_us)[:19].replace('T', ' ')}.{micros:06d}000 +0000 UTC"
            events = (
                f'[{{"current_time":"{current}","heartbeat_counter":"{self.heartbeat_counter}"}}]'
            )
            self._adv_send(clients_hb, None, "heartbeats", events)
