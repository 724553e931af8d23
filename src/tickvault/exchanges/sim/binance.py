"""Simulated Binance Spot: REST (``binance_rest``), WebSocket streams, request-weight limits.

Streams: ``/ws/<stream>`` (raw), ``/stream?streams=a/b`` (combined ``{"stream","data"}``) and
live ``SUBSCRIBE``/``UNSUBSCRIBE``/``LIST_SUBSCRIPTIONS``/``SET_PROPERTY`` on either. Served:
``<s>@trade``, ``@aggTrade``, ``@bookTicker``, ``@depth`` (1000 ms) and ``@depth@100ms`` diffs
with ``U``/``u`` continuous with the REST ``lastUpdateId``, ``@depth<5|10|20>[@100ms]`` partial
books and ``@kline_<interval>`` with the ``x`` (closed) flag. Ping frames every
``ping_interval_s``; more than 5 client messages in a second closes the connection.
"""

from __future__ import annotations

import time
from collections import defaultdict, deque
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import WSMsgType, web

from tickvault.exchanges.sim.binance_rest import (
    INTERVALS_S,
    WEIGHTS,
    BinanceRest,
    depth_weight,
    px,
    qty,
    quote,
)
from tickvault.exchanges.sim.candles import bars, current_bar
from tickvault.exchanges.sim.hub import WsClient, accept
from tickvault.exchanges.sim.market import Market, Tick
from tickvault.exchanges.sim.ratelimit import WeightLimiter
from tickvault.exchanges.sim.render import binance_trades
from tickvault.exchanges.sim.venue import Venue, json_response
from tickvault.exchanges.sim.wire import lots_formatter, price_table

if TYPE_CHECKING:
    from tickvault.exchanges.sim.simulator import Simulator

MAX_CLIENT_MESSAGES_PER_S = 5
WEIGHT_USED = web.RequestKey("weight_used", int)


class _DepthBuffer:
    """Changes collected between two diff-depth events of one cadence."""

    __slots__ = ("asks", "bids", "first_id")

    def __init__(self) -> None:
        self.first_id = 0
        self.bids: dict[int, int] = {}
        self.asks: dict[int, int] = {}


class BinanceVenue(Venue):
    name = "binance"

    def __init__(self, sim: Simulator) -> None:
        super().__init__(sim)
        cfg = sim.config
        self.limiter = WeightLimiter(
            cfg.binance_weight_limit, cfg.binance_429s_before_ban, cfg.binance_ban_s
        )
        self.by_ws = {m.spec.ws_id: m for m in self.markets.values()}
        self.subs: dict[str, set[WsClient]] = defaultdict(set)
        self.depth_buffers: dict[tuple[str, int], _DepthBuffer] = {}
        self.top_sent: dict[str, tuple[int, int, int, int]] = {}
        self.kline_open: dict[str, int] = {}
        self.next_ms = {100: 0, 1000: 0, "kline": 0}

    def add_routes(self, app: web.Application) -> None:
        app.add_routes(BinanceRest(self).routes())
        app.add_routes(
            [web.get("/ws", self.ws), web.get("/ws/{stream}", self.ws), web.get("/stream", self.ws)]
        )

    # -- REST limits -----------------------------------------------------------------------
    def _weight(self, request: web.Request) -> int:
        if request.path == "/api/v3/depth":
            return depth_weight(int(request.query.get("limit", "100") or 100))
        return WEIGHTS.get(request.path, 1)

    def limit(self, request: web.Request) -> web.Response | None:
        ban = self.faults.active(self.name, "ban_418")
        now_s = time.time()
        if ban is not None and ban.until_monotonic is not None:
            left = max(1, int(ban.until_monotonic - time.monotonic() + 0.999))
            return self._refusal(418, left, int((now_s + left) * 1000), 0)
        try:
            weight = self._weight(request)
        except ValueError:
            weight = 1
        verdict = self.limiter.check(request.remote or "?", weight, now_s, self.config.rate_limits)
        request[WEIGHT_USED] = verdict.used
        if verdict.status == 200:
            return None
        return self._refusal(
            verdict.status, verdict.retry_after_s, verdict.ban_until_ms, verdict.used
        )

    def _refusal(
        self, status: int, retry_after_s: int, ban_until_ms: int, used: int
    ) -> web.Response:
        if status == 418:
            msg = (
                f"Way too much request weight used; IP banned until {ban_until_ms}. "
                "Please use WebSocket Streams for live updates to avoid bans."
            )
        else:
            msg = (
                f"Too much request weight used; current limit is {self.limiter.limit} request "
                "weight per 1 MINUTE. Please use WebSocket Streams for live updates to avoid polling the API."
            )
        headers = {"Retry-After": str(retry_after_s), "X-MBX-USED-WEIGHT-1M": str(used)}
        return json_response({"code": -1003, "msg": msg}, status, headers)

    def too_many(self, retry_after_s: int) -> web.Response:
        return self._refusal(429, retry_after_s, 0, 0)

    def decorate(self, request: web.Request, response: web.StreamResponse) -> None:
        used = str(request.get(WEIGHT_USED, 0))
        response.headers["X-MBX-USED-WEIGHT-1M"] = used
        response.headers["x-mbx-used-weight"] = used

    # -- WebSocket -------------------------------------------------------------------------
    def _stream(self, name: str) -> tuple[str, Market, str] | None:
        """(canonical stream name, market, kind) of a stream name, None if not served."""
        sym, _, rest = name.partition("@")
        market = self.by_ws.get(sym.lower())
        if market is None or not rest:
            return None
        low = rest.lower()
        kinds = {"trade": "trade", "aggtrade": "aggTrade", "bookticker": "bookTicker",
                 "depth": "depth", "depth@1000ms": "depth", "depth@100ms": "depth@100ms"}  # fmt: skip
        for n in (5, 10, 20):
            kinds[f"depth{n}"] = f"depth{n}"
            kinds[f"depth{n}@1000ms"] = f"depth{n}"
            kinds[f"depth{n}@100ms"] = f"depth{n}@100ms"
        if low in kinds:
            kind = kinds[low]
        elif rest.startswith("kline_") and rest[6:] in INTERVALS_S:
            kind = rest
        else:
            return None
        return f"{market.spec.ws_id}@{kind}", market, kind

    def _subscribe(self, client: WsClient, names: list[Any]) -> bool:
        parsed = []
        for name in names:
            if not isinstance(name, str):
                return False
            parsed.append(self._stream(name))
        for item in parsed:
            if item is None:
                continue  # like Binance: unknown streams are accepted and stay silent
            stream, market, _ = item
            self.subs[stream].add(client)
            client.subscriptions.add(stream)
            client.state.setdefault("symbols", set()).add(market.spec.symbol)
        return True

    def _unsubscribe(self, client: WsClient, names: list[Any]) -> None:
        for name in names:
            item = self._stream(name) if isinstance(name, str) else None
            if item is not None:
                self.subs[item[0]].discard(client)
                client.subscriptions.discard(item[0])

    async def ws(self, request: web.Request) -> web.WebSocketResponse:
        client = await accept(request, self.config.ping_interval_s, self.fanout)
        client.combined = request.path == "/stream"
        names: list[Any] = []
        if "stream" in request.match_info:
            names = request.match_info["stream"].split("/")
        elif client.combined:
            names = [n for n in request.query.get("streams", "").split("/") if n]
        self._subscribe(client, names)
        self.clients.add(client)
        recent: deque[float] = deque()
        try:
            async for msg in client.ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                now = time.monotonic()
                recent.append(now)
                while recent and now - recent[0] > 1.0:
                    recent.popleft()
                if len(recent) > MAX_CLIENT_MESSAGES_PER_S:
                    break  # Binance disconnects clients that send too many messages
                client.push(self._control(client, msg.data))
        finally:
            self._forget(client)
            await client.close()
        return client.ws

    def _forget(self, client: WsClient) -> None:
        self.clients.discard(client)
        for stream in client.subscriptions:
            self.subs[stream].discard(client)

    def _control(self, client: WsClient, text: str) -> str:
        try:
            request = orjson.loads(text)
            method, req_id = request["method"], request.get("id")
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return '{"error":{"code":3,"msg":"Invalid JSON: expected a request object"}}'
        params = request.get("params") or []
        result: Any = None
        if method == "SUBSCRIBE" and isinstance(params, list) and self._subscribe(client, params):
            pass
        elif method == "UNSUBSCRIBE" and isinstance(params, list):
            self._unsubscribe(client, params)
        elif method == "LIST_SUBSCRIPTIONS":
            result = sorted(client.subscriptions)
        elif method == "SET_PROPERTY" and params[:1] == ["combined"] and len(params) == 2:
            client.combined = bool(params[1])
        elif method == "GET_PROPERTY" and params == ["combined"]:
            result = client.combined
        else:
            return orjson.dumps(
                {
                    "error": {
                        "code": 2,
                        "msg": f"Invalid request: unknown method or params for {method!r}",
                    },
                    "id": req_id,
                }
            ).decode()
        return orjson.dumps({"result": result, "id": req_id}).decode()

    def _send(self, stream: str, market: Market, payload: str, channel: str) -> None:
        clients = self.subs.get(stream)
        if not clients:
            return
        wrapped = f'{{"stream":"{stream}","data":{payload}}}'
        self.fanout.send(
            clients, market.spec.symbol, channel, lambda c: wrapped if c.combined else payload
        )

    # -- market fan-out --------------------------------------------------------------------
    def _send_trades(self, stream: str, market: Market, payloads: list[str], channel: str) -> None:
        clients = self.subs.get(stream)
        if not clients:
            return
        wrapped = None
        if any(c.combined for c in clients):
            head = f'{{"stream":"{stream}","data":'
            wrapped = [f"{head}{p}}}" for p in payloads]
        self.fanout.send_all(clients, market.spec.symbol, channel, payloads, wrapped)

    def on_step(self, market: Market, tick: Tick) -> None:
        ws_id, sym = market.spec.ws_id, market.spec.exchange_id
        event_ms = tick.ts_us // 1000
        subs = self.subs
        if tick.trades:
            prices = price_table(market.spec.price_decimals, 8)
            qd = market.spec.qty_decimals
            if subs.get(f"{ws_id}@trade"):
                head = f'{{"e":"trade","E":{event_ms},"s":"{sym}","t":'
                payloads = binance_trades(tick.trades, head, False, prices, qd)
                self._send_trades(f"{ws_id}@trade", market, payloads, "trade")
            if subs.get(f"{ws_id}@aggTrade"):
                head = f'{{"e":"aggTrade","E":{event_ms},"s":"{sym}","a":'
                payloads = binance_trades(tick.trades, head, True, prices, qd)
                self._send_trades(f"{ws_id}@aggTrade", market, payloads, "aggTrade")
        if tick.changes:
            for cadence, suffix in ((1000, "depth"), (100, "depth@100ms")):
                if not subs.get(f"{ws_id}@{suffix}"):
                    self.depth_buffers.pop((ws_id, cadence), None)
                    continue
                buffer = self.depth_buffers.get((ws_id, cadence))
                if buffer is None:
                    buffer = self.depth_buffers[(ws_id, cadence)] = _DepthBuffer()
                if not buffer.first_id:
                    buffer.first_id = tick.first_update_id
                bids, asks = buffer.bids, buffer.asks
                for is_bid, price, size in tick.changes:
                    if is_bid:
                        bids[price] = size
                    else:
                        asks[price] = size

    def on_batch(self, market: Market, tick: Tick) -> None:
        ws_id, sym = market.spec.ws_id, market.spec.exchange_id
        if tick.changes and self.subs.get(f"{ws_id}@bookTicker"):
            bid, ask = market.best_bid(), market.best_ask()
            top = (bid, market.bids[bid], ask, market.asks[ask])
            if self.top_sent.get(ws_id) != top:
                self.top_sent[ws_id] = top
                self._send(f"{ws_id}@bookTicker", market, (
                    f'{{"u":{market.update_id},"s":"{sym}","b":"{px(market, top[0])}",'
                    f'"B":"{qty(market, top[1])}","a":"{px(market, top[2])}","A":"{qty(market, top[3])}"}}'
                ), "bookTicker")  # fmt: skip

    def on_timer(self, now_us: int) -> None:
        now_ms = now_us // 1000
        for cadence in (100, 1000):
            if now_ms >= self.next_ms[cadence]:
                self.next_ms[cadence] = now_ms + cadence
                self._flush_depth(cadence, now_ms)
                self._partial_depth(cadence)
        if now_ms >= self.next_ms["kline"]:
            self.next_ms["kline"] = now_ms + int(self.config.kline_push_s * 1000)
            self._push_klines(now_us)

    def _flush_depth(self, cadence: int, now_ms: int) -> None:
        suffix = "depth" if cadence == 1000 else "depth@100ms"
        for (ws_id, buffer_cadence), buffer in self.depth_buffers.items():
            if buffer_cadence != cadence or not buffer.first_id:
                continue
            market = self.by_ws[ws_id]
            prices = price_table(market.spec.price_decimals, 8)
            lots = lots_formatter(market.spec.qty_decimals, 8)
            bids = ",".join([f'["{prices[p]}","{lots(q)}"]' for p, q in buffer.bids.items()])
            asks = ",".join([f'["{prices[p]}","{lots(q)}"]' for p, q in buffer.asks.items()])
            self._send(f"{ws_id}@{suffix}", market, (
                f'{{"e":"depthUpdate","E":{now_ms},"s":"{market.spec.exchange_id}",'
                f'"U":{buffer.first_id},"u":{market.update_id},"b":[{bids}],"a":[{asks}]}}'
            ), "depth")  # fmt: skip
            buffer.first_id = 0
            buffer.bids.clear()
            buffer.asks.clear()

    def _partial_depth(self, cadence: int) -> None:
        for market in self.markets.values():
            ws_id = market.spec.ws_id
            for n in (5, 10, 20):
                stream = f"{ws_id}@depth{n}" + ("@100ms" if cadence == 100 else "")
                if self.subs.get(stream):
                    bids, asks = market.top(n)
                    payload = orjson.dumps({
                        "lastUpdateId": market.update_id,
                        "bids": [[px(market, p), qty(market, q)] for p, q in bids],
                        "asks": [[px(market, p), qty(market, q)] for p, q in asks],
                    }).decode()  # fmt: skip
                    self._send(stream, market, payload, "depth")

    def _push_klines(self, now_us: int) -> None:
        for stream, clients in list(self.subs.items()):
            if "@kline_" not in stream or not clients:
                continue
            ws_id, _, kind = stream.partition("@")
            market, interval = self.by_ws[ws_id], kind[6:]
            tf_us = INTERVALS_S[interval] * 1_000_000
            current_open = now_us - now_us % tf_us
            previous_open = self.kline_open.get(stream)
            self.kline_open[stream] = current_open
            if previous_open is not None and previous_open < current_open:
                self._kline(stream, market, interval, tf_us, previous_open, now_us, closed=True)
            self._kline(stream, market, interval, tf_us, current_open, now_us, closed=False)

    def _kline(
        self,
        stream: str,
        market: Market,
        interval: str,
        tf_us: int,
        open_us: int,
        now_us: int,
        closed: bool,
    ) -> None:
        rows = (
            bars(market, tf_us, open_us, open_us + tf_us, include_empty=True)
            if closed
            else current_bar(market, tf_us, now_us)
        )
        if not rows:
            return
        bar, sym = rows[0], market.spec.exchange_id
        open_ms = open_us // 1000
        self._send(stream, market, orjson.dumps({
            "e": "kline", "E": now_us // 1000, "s": sym,
            "k": {"t": open_ms, "T": open_ms + tf_us // 1000 - 1, "s": sym, "i": interval,
                  "f": bar.first_id, "L": bar.last_id, "o": px(market, bar.open),
                  "c": px(market, bar.close), "h": px(market, bar.high), "l": px(market, bar.low),
                  "v": qty(market, bar.volume), "n": bar.count, "x": closed,
                  "q": quote(market, bar.quote_volume), "V": qty(market, bar.buy_volume),
                  "Q": quote(market, bar.buy_quote), "B": "0"},
        }).decode(), "kline")  # fmt: skip
