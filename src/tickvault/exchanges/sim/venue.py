"""What every simulated venue shares: its markets, its aiohttp app, REST fault handling and the
WebSocket client set. A venue subclass adds routes, per-tick fan-out and rate limits."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from tickvault.exchanges.sim.hub import Fanout, WsClient
from tickvault.exchanges.sim.market import Market, Tick

if TYPE_CHECKING:
    from tickvault.exchanges.sim.simulator import Simulator


def json_response(
    data: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=orjson.dumps(data), status=status, headers=headers, content_type="application/json"
    )


def query_int(request: web.Request, name: str, default: int | None = None) -> int | None:
    """An integer query parameter; raises ``ValueError`` naming it when malformed."""
    text = request.query.get(name)
    if text is None or text == "":
        return default
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"parameter {name!r} is not an integer: {text!r}") from None


class Venue:
    name = ""
    fanout: Fanout
    markets: dict[str, Market]

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.config = sim.config
        self.faults = sim.faults
        self.markets: dict[str, Market] = sim.markets[self.name]  # canonical -> market
        self.by_id: dict[str, Market] = {m.spec.exchange_id: m for m in self.markets.values()}
        self.clients: set[WsClient] = set()
        self.fanout = Fanout(self.name, self.faults)
        self.requests = 0
        self.app = web.Application(middlewares=[self._middleware])
        self.add_routes(self.app)

    # -- hooks for subclasses --------------------------------------------------------------
    def add_routes(self, app: web.Application) -> None:
        raise NotImplementedError

    def on_step(self, market: Market, tick: Tick) -> None:
        """Every generator step (``tick_s``): what one step produced for one market, on the
        channels a real venue pushes as it happens (trades) and into what must follow every
        change (Binance diff-depth buffers, Coinbase ``level2_batch``)."""

    def on_batch(self, market: Market, tick: Tick) -> None:
        """Every ``batch_s``: one update per channel that sends the book or statistics as of
        now (Kraken book/ticker/ohlc, Coinbase Advanced level2/ticker, Binance bookTicker);
        ``tick`` merges every step since the last batch (all trades and changes, in order)."""

    def on_timer(self, now_us: int) -> None:
        """Periodic pushes (batched depth, klines, heartbeats), once per generator step."""

    def limit(self, request: web.Request) -> web.Response | None:
        """Rate limiting before a REST handler; a response means the request is refused."""
        return None

    def too_many(self, retry_after_s: int) -> web.Response:
        return json_response(
            {"message": "Too many requests"}, 429, {"Retry-After": str(retry_after_s)}
        )

    def decorate(self, request: web.Request, response: web.StreamResponse) -> None:
        """Add venue headers (Binance used weight) to a successful response."""

    # -- shared ----------------------------------------------------------------------------
    def now_us(self) -> int:
        return time.time_ns() // 1000

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if (
            request.path.startswith("/_sim/")
            or request.headers.get("Upgrade", "").lower() == "websocket"
        ):
            response: web.StreamResponse = await handler(request)
            return response
        self.requests += 1
        slow = self.faults.take(self.name, "slow_responses")
        if slow is not None:
            await asyncio.sleep(slow.delay_s)
        fault = self.faults.take(self.name, "rate_limit_429")
        if fault is not None:
            return self.too_many(fault.retry_after_s)
        refused = self.limit(request)
        if refused is not None:
            return refused
        response = await handler(request)
        if isinstance(response, web.Response):
            body = response.body
            if isinstance(body, bytes | bytearray) and self.faults.take(
                self.name, "malformed_json", scope="rest"
            ):
                response.body = bytes(body[: len(body) // 2])
        self.decorate(request, response)
        return response

    def market_for(self, exchange_id: str) -> Market | None:
        return self.by_id.get(exchange_id)

    async def drop_connections(self, symbol: str | None, count: int | None) -> int:
        """Close matching connections abruptly (no subscription cleanup on the client side)."""
        victims = [
            c for c in list(self.clients) if symbol is None or symbol in c.state.get("symbols", ())
        ]
        if count is not None:
            victims = victims[:count]
        for client in victims:
            self.clients.discard(client)
            await client.close()
        return len(victims)

    def stats(self) -> dict[str, Any]:
        return {
            "connections": len(self.clients),
            "ws_messages": self.fanout.messages,
            "ws_written": self.fanout.written,
            "rest_requests": self.requests,
        }
