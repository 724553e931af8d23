"""WebSocket plumbing shared by the simulated venues: a per-connection outbox drained by its
own task (the generator never awaits a slow client), and fault-aware fan-out.

A client whose outbox grows past ``MAX_OUTBOX`` is disconnected, as real venues do with slow
consumers (Coinbase ``ErrSlowConsume``); memory stays bounded.

Cost per message: the drain task writes everything queued since its last turn as one run of
text frames in a single ``transport.write`` (one system call per batch instead of one per
message, and no coroutine per message). The frames are the plain unmasked, uncompressed text
frames aiohttp would write (``compress=False``); aiohttp keeps its own pings, pongs and close
frames, which are written whole between batches. Past ``HIGH_WATER`` bytes buffered the drain
waits for the socket, so a slow reader fills its outbox, not the transport's buffer.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import time
from collections.abc import Callable, Iterable
from typing import Any

from aiohttp import WSCloseCode, web

from tickvault.exchanges.sim.faults import FaultBox

MAX_OUTBOX = 200_000
HIGH_WATER = 1 << 20  # bytes buffered in the transport before the drain waits
_LEN2 = struct.Struct("!BBH").pack
_LEN8 = struct.Struct("!BBQ").pack


def text_frames(messages: list[str]) -> bytes:
    """Server-to-client WebSocket text frames (RFC 6455: FIN, opcode 1, unmasked) of
    ``messages``, back to back."""
    parts = []
    for message in messages:
        data = message.encode()
        n = len(data)
        if n < 126:
            parts.append(bytes((0x81, n)))
        elif n < 65536:
            parts.append(_LEN2(0x81, 126, n))
        else:
            parts.append(_LEN8(0x81, 127, n))
        parts.append(data)
    return b"".join(parts)


class WsClient:
    """One server-side WebSocket connection and what it subscribed to."""

    def __init__(
        self,
        ws: web.WebSocketResponse,
        peer: str,
        transport: asyncio.BaseTransport | None = None,
        fanout: Fanout | None = None,
    ) -> None:
        self.ws = ws
        self.peer = peer
        self.transport = transport  # None: send through aiohttp, one frame at a time
        self.fanout = fanout  # its ``written`` counts the messages this client was sent
        self.outbox: list[str] = []
        self.wake = asyncio.Event()
        self.closed = False
        self.subscriptions: set[Any] = set()
        self.seq = 0  # Coinbase Advanced Trade sequence_num of this connection
        self.combined = False  # Binance: wrap events as {"stream","data"}
        self.sent = 0
        self.pushed = 0
        self.last_push_s = time.monotonic()
        self.state: dict[str, Any] = {}  # per-venue extras (Kraken depth per symbol, ...)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._drain())

    def push(self, message: str) -> None:
        if self.closed:
            return
        self.outbox.append(message)
        self.pushed += 1
        self.last_push_s = time.monotonic()
        if len(self.outbox) > MAX_OUTBOX:
            self.closed = True
            self.outbox.clear()
        self.wake.set()

    def push_many(self, messages: list[str]) -> None:
        """``push`` each of ``messages``, in order (one wake-up for all)."""
        if self.closed or not messages:
            return
        self.outbox += messages
        self.pushed += len(messages)
        self.last_push_s = time.monotonic()
        if len(self.outbox) > MAX_OUTBOX:
            self.closed = True
            self.outbox.clear()
        self.wake.set()

    async def _drain(self) -> None:
        ws, transport = self.ws, self.transport
        try:
            while not self.closed:
                await self.wake.wait()
                self.wake.clear()
                batch, self.outbox = self.outbox, []
                if not batch:
                    continue
                if not isinstance(transport, asyncio.Transport):
                    for message in batch:
                        await ws.send_str(message)
                else:
                    if ws.closed or transport.is_closing():
                        break
                    transport.write(text_frames(batch))
                    while transport.get_write_buffer_size() > HIGH_WATER:
                        if transport.is_closing():
                            return
                        await asyncio.sleep(0.002)
                self.sent += len(batch)
                if self.fanout is not None:
                    self.fanout.written += len(batch)
            await ws.close(code=WSCloseCode.TRY_AGAIN_LATER, message=b"slow consumer")
        except (ConnectionError, RuntimeError, asyncio.CancelledError):
            pass

    async def close(self, code: int = WSCloseCode.GOING_AWAY) -> None:
        self.closed = True
        self.wake.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        with contextlib.suppress(Exception):
            await self.ws.close(code=code)


def track_subscription(
    subs: dict[Any, set[WsClient]],
    client: WsClient,
    key: tuple[str, str, str],
    symbol: str,
    subscribe: bool,
) -> None:
    """(Un)subscribe ``client`` to ``key`` = (feed, channel, product) in both directions of the
    book-keeping: who gets a channel's messages, and what the client holds."""
    if subscribe:
        subs.setdefault(key, set()).add(client)
        client.subscriptions.add(key)
        client.state.setdefault("symbols", set()).add(symbol)
    else:
        subs.get(key, set()).discard(client)
        client.subscriptions.discard(key)


def subscribed_channels(client: WsClient) -> dict[str, list[str]]:
    """{channel: [product, ...]} of a client's (feed, channel, product) subscriptions."""
    channels: dict[str, list[str]] = {}
    for _, name, product in sorted(client.subscriptions):
        channels.setdefault(name, []).append(product)
    return channels


class Fanout:
    """Sends one venue message to its subscribers, applying the armed message faults once per
    message (so ``count`` means messages, not messages x connections)."""

    def __init__(self, exchange: str, faults: FaultBox) -> None:
        self.exchange = exchange
        self.faults = faults
        self.messages = 0  # data messages handed to clients (x copies, x clients)
        self.written = 0  # messages of any kind written to the sockets

    def send_all(
        self,
        clients: Iterable[WsClient],
        symbol: str | None,
        channel: str,
        messages: list[str],
        wrapped: list[str] | None = None,
    ) -> None:
        """``send`` each of ``messages`` in order; Binance combined-stream clients (``combined``)
        get the same index of ``wrapped`` instead, when given. Without armed faults the whole
        list goes to each client at once."""
        if not messages:
            return
        if self.faults.faults:
            for i, text in enumerate(messages):
                if wrapped is None:
                    self.send(clients, symbol, channel, text)
                else:
                    pick = (lambda raw, env: lambda c: env if c.combined else raw)(text, wrapped[i])
                    self.send(clients, symbol, channel, pick)
            return
        for client in clients:
            client.push_many(wrapped if wrapped is not None and client.combined else messages)
            self.messages += len(messages)

    def send(
        self,
        clients: Iterable[WsClient],
        symbol: str | None,
        channel: str,
        message: str | Callable[[WsClient], str],
        on_drop: Callable[[WsClient], None] | None = None,
    ) -> None:
        """``message`` is text, or a function of the client for per-connection envelopes."""
        faults = self.faults
        copies = 1
        malformed = False
        if faults.faults:
            ex = self.exchange
            if faults.take(ex, "drop_messages", symbol, channel):
                if on_drop is not None:
                    for client in clients:
                        on_drop(client)
                return
            if faults.take(ex, "duplicate_messages", symbol, channel):
                copies = 2
            if faults.take(ex, "malformed_json", symbol, channel, scope="ws"):
                malformed = True
        for client in clients:
            text = message if isinstance(message, str) else message(client)
            if malformed:
                text = text[: len(text) // 2]
            for _ in range(copies):
                client.push(text)
                self.messages += 1


async def accept(
    request: web.Request, heartbeat_s: float | None = None, fanout: Fanout | None = None
) -> WsClient:
    """Upgrade to a WebSocket; aiohttp's heartbeat sends ping frames and drops silent peers."""
    # No permessage-deflate: over loopback it only costs CPU on both ends (the simulator's
    # deflate was a large share of its time per message at high rates).
    ws = web.WebSocketResponse(heartbeat=heartbeat_s, max_msg_size=1 << 20, compress=False)
    await ws.prepare(request)
    transport = request.transport
    client = WsClient(ws, request.remote or "?", transport if ws.compress == 0 else None, fanout)
    client.start()
    return client
