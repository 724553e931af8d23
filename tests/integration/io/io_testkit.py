"""Test kit for the I/O layer: a toy exchange (adapter + feed) and loopback aiohttp servers.

The toy exchange speaks a deliberately tiny protocol so the tests exercise the generic
mechanisms (rate limits, retries, reconnects, resync, resume) and nothing exchange-specific.
Its messages are JSON: ``{"s": symbol, "id": n, "ts": ms, "p": price, "q": size}`` for a
trade, ``{"resync": symbol}`` to ask for a book resync.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from decimal import Decimal

from aiohttp import WSMsgType, web

from tickvault.exchanges.base import BackfillPage, FeedCounters, FeedOutput, RestRequest
from tickvault.model import (
    BookSnapshot,
    Candle,
    DecodeError,
    Gap,
    Instrument,
    Side,
    Trade,
    parse_decimal,
)

MS = 1_000_000
MINUTE_MS = 60_000


def instrument(symbol: str) -> Instrument:
    base, quote = symbol.split("-")
    return Instrument("toy", symbol.replace("-", ""), symbol, base, quote)


class ToyFeed:
    def __init__(self, instruments: Sequence[Instrument]) -> None:
        self.counters = FeedCounters()
        self.symbols = [i.symbol for i in instruments]
        self.last_ns: dict[str, int] = {}
        self.snapshots: list[str] = []

    def on_message(self, raw: bytes | str, recv_ns: int) -> FeedOutput:
        self.counters.messages += 1
        out = FeedOutput()
        try:
            msg = json.loads(raw)
            if "resync" in msg:
                out.resync.append(msg["resync"])
                return out
            ts_ns = int(msg["ts"]) * MS
            out.events.append(
                Trade(
                    "toy",
                    msg["s"],
                    str(msg["id"]),
                    parse_decimal(msg["p"]),
                    parse_decimal(msg["q"]),
                    Side.BUY,
                    ts_ns,
                    recv_ns,
                )
            )
            self.last_ns[msg["s"]] = ts_ns
        except (ValueError, KeyError, TypeError) as exc:
            self.counters.decode_errors += 1
            text = raw if isinstance(raw, str) else raw.decode()
            out.errors.append(DecodeError("toy", "bad_message", str(exc), text, recv_ns))
        return out

    def on_rest_snapshot(self, symbol: str, raw: bytes | str, recv_ns: int) -> FeedOutput:
        self.snapshots.append(symbol)
        body = json.loads(raw)
        bids = tuple((Decimal(p), Decimal(q)) for p, q in body["bids"])
        asks = tuple((Decimal(p), Decimal(q)) for p, q in body["asks"])
        return FeedOutput(events=[BookSnapshot("toy", symbol, bids, asks, recv_ns, recv_ns)])

    def on_disconnect(self, recv_ns: int) -> FeedOutput:
        gaps = [
            Gap("toy", s, "trades", self.last_ns.get(s, recv_ns), recv_ns, "disconnect")
            for s in self.symbols
        ]
        return FeedOutput(gaps=gaps)

    def books(self) -> dict[str, tuple[list[tuple[str, str]], list[tuple[str, str]]]]:
        return {}


class ToyAdapter:
    """A toy ExchangeAdapter; ``rest_resync`` picks REST snapshots or resync messages."""

    name = "toy"

    def __init__(self, *, rest_resync: bool = True, page_rows: int = 5) -> None:
        self.rest_resync = rest_resync
        self.page_rows = page_rows
        self.feeds: list[ToyFeed] = []

    def instruments_request(self) -> RestRequest:
        return RestRequest("/instruments", {})

    def parse_instruments(self, raw: bytes | str) -> list[Instrument]:
        return [instrument(s) for s in json.loads(raw)]

    def new_feed(self, instruments: Sequence[Instrument], book_depth: int) -> ToyFeed:
        feed = ToyFeed(instruments)
        self.feeds.append(feed)
        return feed

    def ws_url(self, base_url: str, symbols: Sequence[str], channels: Sequence[str]) -> str:
        return f"{base_url}/ws?symbols={','.join(symbols)}"

    def subscribe_messages(
        self, instruments: Sequence[Instrument], channels: Sequence[str], book_depth: int
    ) -> list[str]:
        return [json.dumps({"op": "subscribe", "symbols": [i.symbol for i in instruments]})]

    def book_snapshot_request(self, instrument: Instrument) -> RestRequest | None:
        if not self.rest_resync:
            return None
        return RestRequest("/depth", {"symbol": instrument.exchange_symbol}, weight=5)

    def resync_messages(self, instrument: Instrument, book_depth: int) -> list[str]:
        return [json.dumps({"op": "resync", "symbol": instrument.symbol})]

    # Backfill: candles every minute, trades every 20 s (ids = seconds / 20), both synthetic.
    def backfill_request(
        self, instrument: Instrument, kind: str, cursor: str | None, since_ns: int, until_ns: int
    ) -> RestRequest:
        start_ms = int(cursor) if cursor is not None else -(-since_ns // MS)
        path = "/candles" if kind.startswith("candles") else "/trades"
        params = {
            "symbol": instrument.exchange_symbol,
            "start": str(start_ms),
            "end": str(until_ns // MS),
            "limit": str(self.page_rows),
        }
        return RestRequest(path, params, weight=2)

    def parse_backfill_page(
        self,
        instrument: Instrument,
        kind: str,
        raw: bytes | str,
        cursor: str | None,
        since_ns: int,
        until_ns: int,
        recv_ns: int,
    ) -> BackfillPage:
        rows = json.loads(raw)
        events: list[Trade | Candle] = []
        for row in rows:
            ts_ns = row[0] * MS
            if not since_ns <= ts_ns < until_ns:
                continue
            if kind == "trades":
                events.append(
                    Trade(
                        "toy",
                        instrument.symbol,
                        str(row[1]),
                        Decimal(row[2]),
                        Decimal(row[3]),
                        Side.SELL,
                        ts_ns,
                        recv_ns,
                    )
                )
            else:
                o, h, low, c, v = (Decimal(x) for x in row[1:6])
                events.append(
                    Candle(
                        "toy", instrument.symbol, "1m", ts_ns, o, h, low, c, v, True, ts_ns, recv_ns
                    )
                )
        full = len(rows) == self.page_rows
        next_cursor = str(rows[-1][0] + 1) if full and rows[-1][0] * MS < until_ns else None
        return BackfillPage(events=events, next_cursor=next_cursor)


def toy_candles(start_ms: int, end_ms: int, limit: int) -> list[list[object]]:
    first = -(-start_ms // MINUTE_MS) * MINUTE_MS
    rows: list[list[object]] = []
    for open_ms in range(first, end_ms, MINUTE_MS):
        if len(rows) == limit:
            break
        n = open_ms // MINUTE_MS
        price = 100 + n % 17
        rows.append(
            [
                open_ms,
                f"{price}.0",
                f"{price + 1}.5",
                f"{price - 1}.25",
                f"{price}.5",
                f"{n % 7}.001",
            ]
        )
    return rows


def toy_trades(start_ms: int, end_ms: int, limit: int) -> list[list[object]]:
    step_ms = 20_000
    first = -(-start_ms // step_ms) * step_ms
    rows: list[list[object]] = []
    for ts_ms in range(first, end_ms, step_ms):
        if len(rows) == limit:
            break
        rows.append([ts_ms, ts_ms // step_ms, f"{ts_ms % 997}.1", "0.01"])
    return rows


async def serve(app: web.Application) -> tuple[str, Callable[[], Awaitable[None]]]:
    """Start ``app`` on a free loopback port: (base URL, stop)."""
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    return f"http://{host}:{port}", runner.cleanup


class ToyExchangeServer:
    """WebSocket + REST endpoints of the toy exchange, with scripted misbehaviour.

    A ticker makes one trade per symbol every ``interval_s`` (trade id = tick number, the same
    for every connection, like a real market); each open connection streams every trade of its
    symbols, so a consumer can tell exactly what it missed or received twice.
    ``drop_after``/``silent_after`` (ticks sent) apply to the first connection only;
    ``lifetime_s`` closes every connection after that long (Binance's 24 h, shortened).
    """

    def __init__(
        self,
        *,
        interval_s: float = 0.02,
        drop_after: int | None = None,
        silent_after: int | None = None,
        lifetime_s: float | None = None,
        resync_after: int | None = None,
        depth_errors: Sequence[tuple[int, dict[str, str]]] = (),
        server_ping: bytes | None = None,
        symbols: Sequence[str] = ("AAA-USD", "BBB-USD", "CCC-USD"),
    ) -> None:
        self.interval_s = interval_s
        self.drop_after = drop_after
        self.silent_after = silent_after
        self.lifetime_s = lifetime_s
        self.resync_after = resync_after
        self.depth_errors = list(depth_errors)  # (status, headers) answering the first /depth
        self.server_ping = server_ping
        self.symbols = list(symbols)
        self.opened: list[float] = []  # monotonic open time per connection
        self.closed: list[float | None] = []
        self.connection_symbols: list[list[str]] = []
        self.received: list[str] = []  # text messages from clients
        self.pongs: list[bytes] = []
        self.depth_requests: list[str] = []
        self.depth_times: list[float] = []  # monotonic
        self.tick_ts_ms: list[int] = []  # time of each tick; index = trade id
        self._tick = asyncio.Condition()

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/ws", self._ws)
        app.router.add_get("/depth", self._depth)
        app.router.add_get("/instruments", self._instruments)
        app.cleanup_ctx.append(self._ticker)
        return app

    async def _ticker(self, app: web.Application) -> AsyncIterator[None]:
        async def run() -> None:
            while True:
                await asyncio.sleep(self.interval_s)
                async with self._tick:
                    self.tick_ts_ms.append(time.time_ns() // MS)
                    self._tick.notify_all()

        task = asyncio.create_task(run())
        yield
        task.cancel()

    async def _instruments(self, request: web.Request) -> web.Response:
        return web.json_response(self.symbols)

    async def _depth(self, request: web.Request) -> web.Response:
        self.depth_requests.append(request.query["symbol"])
        self.depth_times.append(time.monotonic())
        if self.depth_errors:
            status, headers = self.depth_errors.pop(0)
            return web.json_response({"error": status}, status=status, headers=headers)
        return web.json_response({"bids": [["9.5", "1"]], "asks": [["10.5", "2"]]})

    async def _ws(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=self.server_ping is None)
        await ws.prepare(request)
        number = len(self.opened)
        self.opened.append(time.monotonic())
        self.closed.append(None)
        symbols = request.query["symbols"].split(",")
        self.connection_symbols.append(symbols)
        reader = asyncio.create_task(self._read(ws))
        first = number == 0
        sent = 0
        next_tick = len(self.tick_ts_ms)
        try:
            if self.server_ping is not None:
                await ws.ping(self.server_ping)
            while not ws.closed:
                async with self._tick:
                    await self._tick.wait_for(lambda n=next_tick: len(self.tick_ts_ms) > n)
                if (
                    self.lifetime_s is not None
                    and time.monotonic() - self.opened[number] >= self.lifetime_s
                ):
                    await ws.close()
                    break
                if first and self.drop_after is not None and sent >= self.drop_after:
                    assert request.transport is not None
                    request.transport.close()  # no close frame: a network drop
                    break
                if first and self.silent_after is not None and sent >= self.silent_after:
                    next_tick = len(self.tick_ts_ms)
                    continue  # connected, answering pings, saying nothing
                if first and self.resync_after is not None and sent == self.resync_after:
                    await ws.send_str(json.dumps({"resync": symbols[0]}))
                while next_tick < len(self.tick_ts_ms):
                    for symbol in symbols:
                        msg = {
                            "s": symbol,
                            "id": next_tick,
                            "ts": self.tick_ts_ms[next_tick],
                            "p": "1.5",
                            "q": "2",
                        }
                        await ws.send_str(json.dumps(msg))
                    next_tick += 1
                    sent += 1
        except (ConnectionResetError, RuntimeError):
            pass
        finally:
            self.closed[number] = time.monotonic()
            reader.cancel()
        return ws

    async def _read(self, ws: web.WebSocketResponse) -> None:
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                self.received.append(msg.data)
            elif msg.type == WSMsgType.PONG:
                self.pongs.append(msg.data)


class ToyHistoryServer:
    """REST history of the toy exchange (deterministic), failing with 500s once ``fail_after``
    pages have been served, until ``heal()``."""

    def __init__(self, symbols: Sequence[str] = ("AAA-USD", "BBB-USD")) -> None:
        self.symbols = list(symbols)
        self.log: list[tuple[str, str, int]] = []  # (path, symbol, start ms) of served pages
        self.fail_after: int | None = None
        self.fail_status = 500

    def heal(self) -> None:
        self.fail_after = None

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/instruments", self._instruments)
        app.router.add_get("/candles", self._page)
        app.router.add_get("/trades", self._page)
        return app

    async def _instruments(self, request: web.Request) -> web.Response:
        return web.json_response(self.symbols)

    async def _page(self, request: web.Request) -> web.Response:
        if self.fail_after is not None and len(self.log) >= self.fail_after:
            return web.Response(status=self.fail_status, text="maintenance")
        query = request.query
        start, end, limit = int(query["start"]), int(query["end"]), int(query["limit"])
        self.log.append((request.path, query["symbol"], start))
        make = toy_candles if request.path == "/candles" else toy_trades
        return web.json_response(make(start, end, limit))


ADAPTER = ToyAdapter(page_rows=10)  # what the registry entry "toy" points at in CLI tests
