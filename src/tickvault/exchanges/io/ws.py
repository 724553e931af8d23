"""One WebSocket session: a set of streams of one exchange kept alive on one socket at a time.

The session owns the I/O; the exchange's pure :class:`FeedState` (one per connection) turns
messages into events. What the session adds:

* reconnects with jittered exponential backoff; the dropped connection's feed reports its gaps
  (``FeedState.on_disconnect``) once the new connection is up, so a gap spans the whole outage;
* a watchdog: no message for ``silence_timeout_s`` closes the socket and counts as a drop;
* planned rollover before ``max_lifetime_s`` (Binance closes sockets at 24 h): the new socket is
  opened and subscribed while the old one still delivers; the old one is closed only once the
  two have caught up (one message came on both), and a message both deliver is emitted once
  (``handover.py``), so nothing is lost, nothing doubled, no gap;
* book resyncs asked for in ``FeedOutput.resync``: a REST snapshot through the rate-limited
  client (``on_rest_snapshot``), or the adapter's resync messages on the socket;
* WebSocket ping frames (and automatic pongs), optional application-level pings;
* optional raw capture of every received message.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import websockets
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from tickvault.errors import ExchangeError, RateLimitError
from tickvault.exchanges.base import ExchangeAdapter, FeedOutput, FeedState, RestRequest
from tickvault.exchanges.capture import CaptureRecord, CaptureWriter
from tickvault.exchanges.io.backoff import Backoff
from tickvault.exchanges.io.counters import IoCounters, bump, counters_for
from tickvault.exchanges.io.handover import NEW, OLD, Handover
from tickvault.exchanges.io.policy import WsPolicy
from tickvault.exchanges.io.rest import RestClient
from tickvault.model import BookDelta, BookSnapshot, Candle, Instrument, MarketEvent, Ticker, Trade

log = logging.getLogger(__name__)

Emit = Callable[[FeedOutput], Awaitable[None]]

# ``recv`` returns without suspending while the socket has messages buffered, so after a stall
# a reader could decode a backlog for 0.1 s and more in one go, holding up the stages and the
# writers (and every message's way to storage). It hands the loop back after this long.
RECV_SLICE_S = 0.005

_CHANNELS: dict[type, str] = {
    Trade: "trades", BookSnapshot: "book", BookDelta: "book", Ticker: "ticker", Candle: "candles",
}  # fmt: skip


def event_channel(events: Sequence[MarketEvent]) -> str:
    """The tickvault channel a message belongs to, from its first event ("control" if none)."""
    return _CHANNELS.get(type(events[0]), "other") if events else "control"


class Outcome(enum.Enum):
    DROPPED = "dropped"  # the server or the network closed it
    SILENT = "silent"  # the watchdog closed it
    LIFETIME = "lifetime"  # time for a planned rollover (still open)
    CLOSED = "closed"  # we closed it on purpose


@dataclass(eq=False)
class _Connection:
    ws: ClientConnection
    feed: FeedState
    url: str
    opened_s: float  # monotonic
    first_message: asyncio.Event = field(default_factory=asyncio.Event)
    closing: bool = False
    counted_open: bool = True  # still counted in ws_open
    last_send_s: float = 0.0
    send_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    resyncing: set[str] = field(default_factory=set)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    handover: Handover | None = None  # during and just after a planned rollover
    side: int = NEW  # which socket of that rollover this is


class _RecvWatch:
    """The silence watchdog and lifetime deadline of one reader, without a timer per message.

    ``asyncio.timeout`` around every ``recv`` created and cancelled a timer handle per message
    (~10 % of the collector's time at a few thousand messages/s). Here the reader only notes
    when it starts waiting; one timer, re-armed about once per timeout period, cancels the
    reader if it has been waiting ``silence_s`` (or past the deadline) — only ever while it
    waits in ``recv``, which websockets documents as safe to cancel, never while it hands a
    message on.
    """

    def __init__(self, silence_s: float, deadline_s: float | None) -> None:
        self.silence_s = silence_s
        self.deadline_s = deadline_s  # monotonic
        self.waiting_since: float | None = None  # monotonic; None while handling a message
        self._task = asyncio.current_task()
        self._loop = asyncio.get_running_loop()
        self._fired: Outcome | None = None
        self._offset = self._loop.time() - time.monotonic()  # loop clock vs time.monotonic
        self._handle = self._loop.call_at(self._due(time.monotonic()), self._check)

    def _due(self, now: float) -> float:
        since = self.waiting_since
        if since is None:  # handling a message: the reader checks the deadline itself next
            return now + self.silence_s + self._offset
        due = since + self.silence_s
        if self.deadline_s is not None:
            due = min(due, self.deadline_s)
        return due + self._offset

    def _check(self) -> None:
        now = time.monotonic()
        since = self.waiting_since
        if since is not None and self._task is not None:
            if self.deadline_s is not None and now >= self.deadline_s:
                self._fired = Outcome.LIFETIME
            elif now - since >= self.silence_s:
                self._fired = Outcome.SILENT
            if self._fired is not None:
                self._task.cancel()
                return
        self._handle = self._loop.call_at(max(self._due(now), self._loop.time()), self._check)

    def take_fired(self) -> Outcome | None:
        """The watchdog's outcome if the cancellation was its own (and only its own)."""
        fired, self._fired = self._fired, None
        if fired is None or self._task is None:
            return None
        return fired if self._task.uncancel() == 0 else None

    def stop(self) -> None:
        self._handle.cancel()


class WsSession:
    def __init__(
        self,
        adapter: ExchangeAdapter,
        instruments: Sequence[Instrument],
        channels: Sequence[str],
        *,
        base_url: str,
        policy: WsPolicy,
        emit: Emit,
        book_depth: int = 10,
        rest: RestClient | None = None,
        counters: IoCounters | None = None,
        capture: CaptureWriter | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.adapter = adapter
        self.exchange = adapter.name
        self.instruments = list(instruments)
        self.channels = list(channels)
        self.base_url = base_url
        self.policy = policy
        self.book_depth = book_depth
        self.rest = rest
        self.counters = counters if counters is not None else counters_for(self.exchange)
        self.capture = capture
        self._emit_out = emit
        self._by_symbol = {i.symbol: i for i in self.instruments}
        self._backoff = Backoff(
            policy.reconnect_base_s, policy.reconnect_cap_s, floor_s=0.05, rng=rng
        )
        self._stop = asyncio.Event()
        self.connections_opened = 0
        self.stop_grace_s = 5.0
        self._current: _Connection | None = None

    @property
    def feed(self) -> FeedState | None:
        """The pure state of the connection delivering now (None before the first one)."""
        return self._current.feed if self._current is not None else None

    def stop(self) -> None:
        self._stop.set()

    # -- main loop -------------------------------------------------------------------------

    async def run(self) -> None:
        """Keep the streams flowing until :meth:`stop` (or cancellation)."""
        current = await self._open_with_retry()
        if current is None:
            return
        self._current = current
        task = self._serve_task(current, rollover=True)
        try:
            while True:
                stop_wait = asyncio.create_task(self._stop.wait())
                await asyncio.wait({task, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
                stop_wait.cancel()
                if self._stop.is_set():
                    return
                outcome = task.result()
                if outcome is Outcome.LIFETIME:
                    replaced = await self._rollover(current)
                    if replaced is None:
                        return
                    current, task = replaced
                    self._current = current
                    continue
                lost = current.feed
                await self._close(current)
                new = await self._open_with_retry()
                if new is None:
                    await self._emit(lost.on_disconnect(time.time_ns()))
                    return
                self.counters.ws_reconnects += 1
                reason = "timeout" if outcome is Outcome.SILENT else "closed"
                bump(self.counters.reconnect_reasons, reason)
                await self._emit(lost.on_disconnect(time.time_ns()))
                current, task = new, self._serve_task(new, rollover=True)
                self._current = current
        finally:
            # Close first: the reader hands over the message in hand (waiting for queue room if
            # need be), then ends on ConnectionClosed. Cancel only if it does not.
            await self._close(current)
            await asyncio.wait({task}, timeout=self.stop_grace_s)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def _serve_task(self, conn: _Connection, *, rollover: bool) -> asyncio.Task[Outcome]:
        return asyncio.create_task(self._serve(conn, rollover=rollover))

    async def _rollover(self, old: _Connection) -> tuple[_Connection, asyncio.Task[Outcome]] | None:
        """Open the replacement while the old socket keeps delivering, then close the old one."""
        old_task = self._serve_task(old, rollover=False)
        new = await self._open_with_retry()
        if new is None:
            old_task.cancel()
            await self._close(old)
            return None
        new_task = self._serve_task(new, rollover=True)
        first = asyncio.create_task(new.first_message.wait())
        await asyncio.wait(
            {first, new_task},
            timeout=self.policy.overlap_timeout_s,
            return_when=asyncio.FIRST_COMPLETED,
        )
        first.cancel()
        if new.first_message.is_set() and not old_task.done():
            # Both deliver now: keep the old one until it has caught up (handover.py).
            caught_up = asyncio.Event()
            handover = Handover(caught_up.set)
            old.handover, old.side, new.handover, new.side = handover, OLD, handover, NEW
            caught = asyncio.create_task(caught_up.wait())
            await asyncio.wait(
                {caught, old_task, new_task},
                timeout=self.policy.overlap_timeout_s,
                return_when=asyncio.FIRST_COMPLETED,
            )
            caught.cancel()
        old_died = old_task.done()  # dropped or went silent before the new one was live
        await self._close(old)
        # The old reader hands over the message in hand and what the socket had buffered (a
        # backlog when the stages push back), then ends on ConnectionClosed. Cancelling it at
        # once lost those messages: a trade the new socket had not carried yet was gone.
        await asyncio.wait({old_task}, timeout=self.stop_grace_s)
        old_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await old_task
        if old.handover is not None:
            old.handover.closed_at_s = time.monotonic()
        if old_died or not new.first_message.is_set():
            await self._emit(old.feed.on_disconnect(time.time_ns()))
        else:
            self.counters.ws_rollovers += 1
        return new, new_task

    # -- one connection --------------------------------------------------------------------

    async def _open_with_retry(self) -> _Connection | None:
        while not self._stop.is_set():
            try:
                return await self._open()
            except (OSError, TimeoutError, InvalidHandshake, ConnectionClosed) as exc:
                delay = self._backoff.next_delay()
                log.warning(
                    "%s: connect failed (%s); retrying in %.2f s", self.exchange, exc, delay
                )
            except InvalidURI as exc:
                raise ExchangeError(f"{self.exchange}: bad WebSocket URL: {exc}") from None
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._stop.wait()
        return None

    async def _open(self) -> _Connection:
        symbols = [i.symbol for i in self.instruments]
        url = self.adapter.ws_url(self.base_url, symbols, self.channels)
        ws = await websockets.connect(
            url,
            open_timeout=self.policy.connect_timeout_s,
            ping_interval=self.policy.ping_interval_s,
            ping_timeout=self.policy.ping_timeout_s,
            max_size=self.policy.max_message_bytes,
            close_timeout=2.0,
        )
        feed = self.adapter.new_feed(self.instruments, self.book_depth)
        conn = _Connection(ws=ws, feed=feed, url=url, opened_s=time.monotonic())
        self.connections_opened += 1
        self.counters.ws_connects += 1
        self.counters.ws_open += 1
        try:
            for message in self.adapter.subscribe_messages(
                self.instruments, self.channels, self.book_depth
            ):
                await self._send(conn, message)
        except ConnectionClosed:
            await self._close(conn)
            raise
        if self.policy.app_ping_message is not None:
            self._spawn(conn, self._app_pings(conn, self.policy.app_ping_message))
        return conn

    async def _serve(self, conn: _Connection, *, rollover: bool) -> Outcome:
        lifetime = self.policy.max_lifetime_s if rollover else None
        deadline_s = conn.opened_s + lifetime if lifetime is not None else None
        watch = _RecvWatch(self.policy.silence_timeout_s, deadline_s)
        slice_start_s = time.monotonic()
        try:
            while True:
                if deadline_s is not None and time.monotonic() >= deadline_s:
                    return Outcome.LIFETIME
                watch.waiting_since = time.monotonic()
                try:
                    raw = await conn.ws.recv()
                except asyncio.CancelledError:
                    outcome = watch.take_fired()
                    if outcome is None:
                        raise  # a cancellation from outside, not the watchdog
                    if outcome is Outcome.LIFETIME:
                        return outcome
                    self.counters.ws_silences += 1
                    log.warning(
                        "%s: no message for %.1f s; reconnecting",
                        self.exchange,
                        self.policy.silence_timeout_s,
                    )
                    await self._close(conn)
                    return Outcome.SILENT
                except ConnectionClosed:
                    return Outcome.CLOSED if conn.closing else Outcome.DROPPED
                watch.waiting_since = None
                await self._on_message(conn, raw)
                if time.monotonic() - slice_start_s >= RECV_SLICE_S:
                    await asyncio.sleep(0)  # let the stages and writers have the loop
                    slice_start_s = time.monotonic()
        finally:
            watch.stop()

    async def _on_message(self, conn: _Connection, raw: str | bytes) -> None:
        recv_ns = time.time_ns()
        self.counters.ws_messages += 1
        self.counters.ws_bytes += len(raw)
        if not conn.first_message.is_set():
            conn.first_message.set()
            self._backoff.reset()  # a connection that delivers counts as healthy
        if self.capture is not None:
            text = raw if isinstance(raw, str) else raw.decode("utf-8", "replace")
            self.capture.write(CaptureRecord(recv_ns, self.exchange, "ws", conn.url, text))
            self.counters.captured += 1
        out = conn.feed.on_message(raw, recv_ns)
        bump(self.counters.messages_by_channel, event_channel(out.events))
        if out.resync:
            await self._resync(conn, out.resync)
        handover = conn.handover
        if handover is not None:
            if handover.done(time.monotonic(), self.policy.overlap_timeout_s):
                conn.handover = None
            elif not handover.first_copy(conn.side, raw):
                self.counters.ws_overlap_duplicates += 1
                return  # the other socket's copy was emitted
        await self._emit(out)

    # -- book resync -----------------------------------------------------------------------

    async def _resync(self, conn: _Connection, symbols: Sequence[str]) -> None:
        for symbol in dict.fromkeys(symbols):
            instrument = self._by_symbol.get(symbol)
            if instrument is None or symbol in conn.resyncing:
                continue
            bump(self.counters.resyncs_by_symbol, symbol)
            request = self.adapter.book_snapshot_request(instrument)
            if request is not None:
                if self.rest is None:
                    log.error(
                        "%s: %s needs a REST snapshot but no REST client", self.exchange, symbol
                    )
                    continue
                conn.resyncing.add(symbol)
                self._spawn(conn, self._fetch_snapshot(conn, symbol, request))
            else:
                self.counters.resyncs_ws += 1
                for message in self.adapter.resync_messages(instrument, self.book_depth):
                    await self._send(conn, message)

    async def _fetch_snapshot(self, conn: _Connection, symbol: str, request: RestRequest) -> None:
        """Fetch until it succeeds (or the connection closes and cancels this): the feed has
        asked once and waits for the answer, so a snapshot given up on left the book empty for
        the connection's life. A failed request is asked again after a backoff, or once a ban
        the client would not wait out (``max_ban_wait_s``) has ended."""
        rest = self.rest
        assert rest is not None
        backoff = Backoff(rest.policy.backoff_base_s, rest.policy.backoff_cap_s, floor_s=0.05)
        try:
            while True:
                try:
                    response = await rest.get(request)
                    break
                except Exception as exc:  # whatever failed (REST, Redis), the book needs it
                    delay = backoff.next_delay()
                    if isinstance(exc, RateLimitError):
                        delay = max(delay, exc.retry_after_s)
                    log.warning(
                        "%s: book snapshot for %s failed (%s: %s); asking again in %.2f s",
                        self.exchange, symbol, type(exc).__name__, exc, delay,
                        exc_info=not isinstance(exc, ExchangeError),
                    )  # fmt: skip
                    self.counters.resync_failures += 1
                    await asyncio.sleep(delay)
        finally:
            conn.resyncing.discard(symbol)
        self.counters.resyncs_rest += 1
        await self._emit(conn.feed.on_rest_snapshot(symbol, response.text, response.recv_ns))

    # -- helpers ---------------------------------------------------------------------------

    async def _emit(self, out: FeedOutput) -> None:
        self.counters.gaps += len(out.gaps)
        for gap in out.gaps:
            bump(self.counters.gaps_by_stream, (gap.symbol, gap.channel, gap.reason))
        for error in out.errors:
            bump(self.counters.decode_errors, error.reason)
        if out.events or out.errors or out.gaps:
            await self._emit_out(out)

    async def _send(self, conn: _Connection, message: str) -> None:
        async with conn.send_lock:  # spaced: exchanges cap the messages a client may send
            wait_s = conn.last_send_s + self.policy.send_interval_s - time.monotonic()
            if wait_s > 0:
                await asyncio.sleep(wait_s)
            await conn.ws.send(message)
            conn.last_send_s = time.monotonic()
            self.counters.ws_sent += 1

    async def _app_pings(self, conn: _Connection, message: str) -> None:
        while True:
            await asyncio.sleep(self.policy.app_ping_interval_s)
            try:
                await self._send(conn, message)
            except ConnectionClosed:
                return

    def _spawn(self, conn: _Connection, coro: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        conn.tasks.add(task)
        task.add_done_callback(conn.tasks.discard)

    async def _close(self, conn: _Connection) -> None:
        conn.closing = True
        if conn.counted_open:
            conn.counted_open = False
            self.counters.ws_open -= 1
        for task in list(conn.tasks):
            task.cancel()
        with contextlib.suppress(Exception):
            await conn.ws.close()
