"""``WS /v1/stream``: the Redis ``tv:signals`` channel, and latest values, relayed to clients.

One Redis subscription per process, whatever the number of clients: :class:`StreamHub` reads
the channel and offers each message to every client whose filter matches. A client has a
bounded queue; when it reads too slowly the oldest frames are dropped and it is told how many
(``{"type": "dropped", "count": n}``) — a slow client never grows the server's memory or
delays the others.

Latest trade/book/ticker values are not published by the writers (they are plain keys), so a
client that asks for them gets a small poller: one ``MGET`` per ``latest_interval_s``, a frame
only when a value changed. That costs one round trip per interval per such client.

Protocol (JSON text frames). Filters come from the query string at connect time
(``/v1/stream?exchange=binance&symbol=BTC-USDT&timeframe=1m&latest=trade,ticker``; all optional)
or later from ``{"op": "subscribe", "exchange": ..., "symbol": ..., "timeframe": ...,
"latest": ["trade"]}``, which replaces the filter. The server sends ``subscribed`` (with the
filter and whether the Redis relay is connected), ``signal`` (``data`` = the payload as
published), ``latest`` (``kind``, ``exchange``, ``symbol``, ``data``), ``dropped`` and
``error`` frames. A signal matches when every filter field that is set equals the payload's
field of that name; a payload without the field does not match.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import Any

import msgspec
import redis.asyncio as aioredis
from aiohttp import WSMsgType, web
from redis.exceptions import RedisError

from tickvault.api import shapes
from tickvault.api.backend import LATEST_KINDS, LATEST_TYPES, json_or_text
from tickvault.api.params import ParamError, Params
from tickvault.storage.redis_keys import Keys, decode

log = logging.getLogger("tickvault.api.stream")
STREAM_PARAMS = ("exchange", "symbol", "timeframe", "latest")
_POLL_S = 0.25  # how often the relay checks whether it should stop


class StreamFilter(msgspec.Struct, frozen=True):
    exchange: str | None = None
    symbol: str | None = None
    timeframe: str | None = None
    latest: tuple[str, ...] = ()

    def matches(self, payload: Any) -> bool:
        wanted = [(k, v) for k, v in (("exchange", self.exchange), ("symbol", self.symbol),
                                      ("timeframe", self.timeframe)) if v is not None]  # fmt: skip
        if not wanted:
            return True
        return isinstance(payload, dict) and all(payload.get(k) == v for k, v in wanted)


def parse_filter(query: Mapping[str, str]) -> StreamFilter:
    """A filter from query-string-like text values; ParamError names a bad one."""
    params = Params(query, STREAM_PARAMS)
    exchange = params.exchange() if params.optional("exchange") else None
    symbol = params.symbol() if params.optional("symbol") else None
    timeframe = params.timeframe() if params.optional("timeframe") else None
    latest = tuple(k.strip() for k in (params.optional("latest") or "").split(",") if k.strip())
    for kind in latest:
        if kind not in LATEST_KINDS:
            raise ParamError("latest", f"{kind!r} is not one of {', '.join(LATEST_KINDS)}")
    if latest and (exchange is None or symbol is None):
        raise ParamError("latest", "needs exchange and symbol")
    return StreamFilter(exchange, symbol, timeframe, latest)


class Subscriber:
    """One WebSocket client: its filter and its bounded outgoing queue."""

    def __init__(self, stream_filter: StreamFilter, queue_size: int) -> None:
        self.filter = stream_filter
        self.queue: asyncio.Queue[bytes] = asyncio.Queue(queue_size)
        self.dropped = 0
        self.closed = False

    def offer(self, frame: bytes) -> None:
        if self.queue.full():
            self.queue.get_nowait()  # drop the oldest: the newest values matter most
            self.dropped += 1
        self.queue.put_nowait(frame)


class StreamHub:
    """The one Redis subscription of the process and the set of connected clients."""

    def __init__(
        self,
        redis_url: str,
        keys: Keys,
        *,
        queue_size: int = 1000,
        latest_interval_s: float = 0.25,
    ) -> None:
        self.keys = keys
        self.queue_size = queue_size
        self.latest_interval_s = latest_interval_s
        self.client = aioredis.Redis.from_url(redis_url, socket_connect_timeout=5)
        self.subscribers: set[Subscriber] = set()
        self.connected = asyncio.Event()
        self.relayed = 0
        self._stopping = False
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._relay(), name="tickvault-api-relay")

    async def stop(self) -> None:
        """Stop the relay. It polls a flag rather than relying on cancellation alone: redis-py
        (8.1) can swallow a cancellation that lands while it waits on a pub/sub read."""
        self._stopping = True
        if self._task is not None:
            await _finish(self._task, _POLL_S * 4, cancel=False)
        await self.client.aclose()

    async def _relay(self) -> None:
        """Subscribe, fan out, and resubscribe after a lost connection (backoff up to 5 s)."""
        delay_s = 0.2
        while not self._stopping:
            pubsub = self.client.pubsub()
            try:
                await pubsub.subscribe(self.keys.signals_channel)
                while not self._stopping:
                    message = await pubsub.get_message(timeout=_POLL_S)
                    if message is None:
                        continue
                    if message["type"] == "subscribe":
                        self.connected.set()
                        delay_s = 0.2
                    elif message["type"] == "message":
                        self._fan_out(message["data"])
            except (RedisError, OSError) as exc:
                log.warning("signal relay lost Redis (%s); retrying in %.1f s", exc, delay_s)
            finally:
                self.connected.clear()
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
            if not self._stopping:
                await asyncio.sleep(delay_s)
                delay_s = min(delay_s * 2, 5.0)

    def _fan_out(self, raw: bytes | str) -> None:
        payload = json_or_text(raw)
        frame: bytes | None = None
        for sub in self.subscribers:
            if sub.filter.matches(payload):
                frame = frame or shapes.dumps({"type": "signal", "data": payload})
                sub.offer(frame)
        self.relayed += 1

    async def poll_latest(self, sub: Subscriber, stream_filter: StreamFilter) -> None:
        """Offer a ``latest`` frame whenever one of the filter's latest values changes."""
        assert stream_filter.exchange is not None and stream_filter.symbol is not None
        market = (stream_filter.exchange, stream_filter.symbol)
        builders = {"trade": self.keys.trade, "book": self.keys.book, "ticker": self.keys.ticker}
        keys = [builders[kind](*market) for kind in stream_filter.latest]
        seen: dict[str, bytes | str | None] = {}
        while not sub.closed:
            try:
                values: list[bytes | str | None] = await self.client.mget(keys)
            except (RedisError, OSError) as exc:
                sub.offer(shapes.dumps({"type": "error", "error": f"Redis unreachable: {exc}"}))
                await asyncio.sleep(max(self.latest_interval_s, 1.0))
                continue
            for kind, value in zip(stream_filter.latest, values, strict=True):
                if value is None or seen.get(kind) == value:
                    continue
                seen[kind] = value
                event = decode(value, LATEST_TYPES[kind])
                sub.offer(shapes.dumps({
                    "type": "latest", "kind": kind, "exchange": market[0], "symbol": market[1],
                    "data": shapes.latest_from_event(event),
                }))  # fmt: skip
            await asyncio.sleep(self.latest_interval_s)

    # -- the WebSocket handler -----------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        stream_filter = parse_filter(request.query)  # before the upgrade: a bad one is a 400
        ws = web.WebSocketResponse(heartbeat=30.0)
        await ws.prepare(request)
        sub = Subscriber(stream_filter, self.queue_size)
        sender = asyncio.create_task(self._send(ws, sub))
        poller: asyncio.Task[None] | None = None
        try:
            poller = await self._subscribe(sub, stream_filter, None)
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                try:
                    new_filter = _filter_from_message(msg.data)
                except ParamError as exc:
                    sub.offer(shapes.dumps({"type": "error", "error": str(exc)}))
                    continue
                poller = await self._subscribe(sub, new_filter, poller)
        finally:
            self.subscribers.discard(sub)
            sub.closed = True
            for task in (sender, poller):
                if task is not None:
                    await _finish(task, self.latest_interval_s + _POLL_S)
        return ws

    async def _subscribe(
        self, sub: Subscriber, stream_filter: StreamFilter, poller: asyncio.Task[None] | None
    ) -> asyncio.Task[None] | None:
        if poller is not None:
            poller.cancel()  # its replacement starts now; a late frame of the old one is harmless
        with contextlib.suppress(TimeoutError):  # a fresh process: let the relay subscribe
            await asyncio.wait_for(self.connected.wait(), 1.0)
        sub.filter = stream_filter
        sub.offer(shapes.dumps({
            "type": "subscribed", "filter": msgspec.to_builtins(stream_filter),
            "relay": "connected" if self.connected.is_set() else "disconnected",
        }))  # fmt: skip
        self.subscribers.add(sub)  # after the ack: no signal frame overtakes it
        if stream_filter.latest:
            return asyncio.create_task(self.poll_latest(sub, stream_filter))
        return None

    async def _send(self, ws: web.WebSocketResponse, sub: Subscriber) -> None:
        while True:
            frame = await sub.queue.get()
            if sub.dropped:
                dropped, sub.dropped = sub.dropped, 0
                await ws.send_str(shapes.dumps({"type": "dropped", "count": dropped}).decode())
            await ws.send_str(frame.decode())


def _filter_from_message(text: str) -> StreamFilter:
    try:
        message = msgspec.json.decode(text)
    except msgspec.DecodeError:
        raise ParamError("message", "not JSON") from None
    if not isinstance(message, dict) or message.get("op") != "subscribe":
        raise ParamError("op", 'send {"op": "subscribe", ...filter fields}')
    fields: dict[str, str] = {}
    for name, value in message.items():
        if name == "op":
            continue
        if name == "latest" and isinstance(value, list):
            value = ",".join(str(v) for v in value)
        fields[name] = "" if value is None else str(value)
    return parse_filter(fields)


async def _finish(task: asyncio.Task[None], grace_s: float, *, cancel: bool = True) -> None:
    """Cancel a task (or wait ``grace_s`` for one told to stop, then cancel) without ever
    hanging on it."""
    if cancel:
        task.cancel()
    done, _ = await asyncio.wait({task}, timeout=grace_s)
    if not done and not cancel:
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=grace_s)
    if not done:
        log.warning("task %s did not stop; left behind", task.get_name())
    elif not task.cancelled() and task.exception() is not None:
        # e.g. the sender failing on a socket the client closed: nothing left to report to
        log.debug("task %s ended with %r", task.get_name(), task.exception())
