"""The HTTP/WebSocket API (aiohttp): routes, error handling, and serving.

=====================================================  =========================================
``GET /v1/candles``                                    bars in ``[start, end)`` (PostgreSQL)
``GET /v1/candles/latest``                             newest ``n`` bars (Redis, then PostgreSQL)
``GET /v1/trades``                                     trades in ``[start, end)`` (PostgreSQL)
``GET /v1/book``                                       book snapshot at or before ``at``
``GET /v1/latest/{trade|book|ticker}``                 newest value (Redis, then PostgreSQL)
``GET /v1/features`` ``/v1/signals`` ``/v1/quality``   indicators, signals, quality scores
``GET /v1/status``                                     what storage holds
``WS  /v1/stream``                                     signals (and latest values) as they come
``GET /metrics`` ``/health`` ``/ready``                the monitoring server's own handlers
=====================================================  =========================================

Errors are JSON ``{"error": "<one line>"}``: 400 for a bad parameter (the message names it),
404 for nothing stored, 503 when PostgreSQL or Redis cannot be reached, 500 (logged, no
traceback sent) for a bug.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from tickvault.api.backend import LATEST_KINDS, QUALITY_CHANNELS, ApiBackend, NotFound
from tickvault.api.params import Params
from tickvault.api.shapes import dumps
from tickvault.api.stream import StreamHub
from tickvault.errors import StorageError, UsageError
from tickvault.monitoring.server import MonitoringServer

log = logging.getLogger("tickvault.api")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
MAX_ROWS = 100_000


def json_response(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=dumps(body), status=status, content_type="application/json")


def error_response(message: str, status: int) -> web.Response:
    return json_response({"error": message}, status)


@web.middleware
async def errors_as_json(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except UsageError as exc:
        return error_response(str(exc), 400)
    except NotFound as exc:
        return error_response(str(exc), 404)
    except StorageError as exc:
        return error_response(str(exc), 503)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        what = f"no endpoint {request.method} {request.path}" if exc.status in (404, 405) else ""
        return error_response(what or exc.reason, exc.status)
    except Exception:
        log.exception("error serving %s %s", request.method, request.path_qs)
        return error_response("internal error (logged by the server)", 500)


class Routes:
    """The handlers, bound to one backend."""

    def __init__(self, backend: ApiBackend) -> None:
        self.backend = backend

    async def candles(self, request: web.Request) -> web.Response:
        p = Params(request.query, ("exchange", "symbol", "timeframe", "start", "end", "source",
                                   "limit"))  # fmt: skip
        market = (p.exchange(), p.symbol(), p.timeframe())
        span = p.time_range()
        source = p.choice("source", ("auto", "exchange", "derived"), "auto")
        limit = p.integer("limit", 10_000, 1, MAX_ROWS)
        rows, truncated = await self.backend.candles(market, span, source, limit)
        return json_response({
            "exchange": market[0], "symbol": market[1], "timeframe": market[2],
            "source": "postgres", "count": len(rows), "truncated": truncated, "candles": rows,
        })  # fmt: skip

    async def latest_candles(self, request: web.Request) -> web.Response:
        p = Params(request.query, ("exchange", "symbol", "timeframe", "n"))
        market = (p.exchange(), p.symbol(), p.timeframe())
        n = p.integer("n", 500, 1, MAX_ROWS)
        rows, source = await self.backend.latest_candles(market, n)
        return json_response({
            "exchange": market[0], "symbol": market[1], "timeframe": market[2],
            "source": source, "count": len(rows), "candles": rows,
        })  # fmt: skip

    async def trades(self, request: web.Request) -> web.Response:
        p = Params(request.query, ("exchange", "symbol", "start", "end", "limit"))
        market = (p.exchange(), p.symbol())
        span = p.time_range()
        limit = p.integer("limit", 10_000, 1, MAX_ROWS)
        rows, truncated = await self.backend.trades(market, span, limit)
        return json_response({
            "exchange": market[0], "symbol": market[1], "source": "postgres",
            "count": len(rows), "truncated": truncated, "trades": rows,
        })  # fmt: skip

    async def book(self, request: web.Request) -> web.Response:
        p = Params(request.query, ("exchange", "symbol", "at"))
        market = (p.exchange(), p.symbol())
        at = p.time("at")
        found = await self.backend.book(market, at)
        return json_response(
            {"exchange": market[0], "symbol": market[1], "source": "postgres", "book": found}
        )

    async def latest(self, request: web.Request) -> web.Response:
        kind = request.match_info["kind"]
        if kind not in LATEST_KINDS:
            raise web.HTTPNotFound()
        p = Params(request.query, ("exchange", "symbol"))
        market = (p.exchange(), p.symbol())
        found, source = await self.backend.latest(kind, market)  # type: ignore[arg-type]
        return json_response(
            {"exchange": market[0], "symbol": market[1], "kind": kind, "source": source,
             "data": found}
        )  # fmt: skip

    async def features(self, request: web.Request) -> web.Response:
        p = Params(request.query, ("exchange", "symbol", "timeframe"))
        market = (p.exchange(), p.symbol(), p.timeframe())
        values, source = await self.backend.features(market)
        return json_response({
            "exchange": market[0], "symbol": market[1], "timeframe": market[2],
            "source": source, "features": values,
        })  # fmt: skip

    async def signals(self, request: web.Request) -> web.Response:
        p = Params(request.query, ("exchange", "symbol", "timeframe", "n"))
        market = (p.exchange(), p.symbol(), p.timeframe())
        n = p.integer("n", 100, 1, 1000)
        found, source = await self.backend.signals(market, n)
        return json_response({
            "exchange": market[0], "symbol": market[1], "timeframe": market[2],
            "source": source, "signals": found,
        })  # fmt: skip

    async def quality(self, request: web.Request) -> web.Response:
        p = Params(request.query, ("exchange", "symbol", "channel"))
        market = (p.exchange(), p.symbol())
        channel = p.optional("channel")
        if channel is not None:
            p.choice("channel", QUALITY_CHANNELS, channel)
        channels = (channel,) if channel else QUALITY_CHANNELS
        found = await self.backend.quality(market, channels)
        return json_response({"exchange": market[0], "symbol": market[1], **found})

    async def status(self, request: web.Request) -> web.Response:
        Params(request.query, ())
        return json_response(await self.backend.status())


def create_app(
    backend: ApiBackend, hub: StreamHub, monitoring: MonitoringServer
) -> web.Application:
    """The application; opening and closing the backend and the hub follow its lifecycle."""
    app = web.Application(middlewares=[errors_as_json])
    r = Routes(backend)
    app.router.add_get("/v1/candles", r.candles)
    app.router.add_get("/v1/candles/latest", r.latest_candles)
    app.router.add_get("/v1/trades", r.trades)
    app.router.add_get("/v1/book", r.book)
    app.router.add_get("/v1/latest/{kind}", r.latest)
    app.router.add_get("/v1/features", r.features)
    app.router.add_get("/v1/signals", r.signals)
    app.router.add_get("/v1/quality", r.quality)
    app.router.add_get("/v1/status", r.status)
    app.router.add_get("/v1/stream", hub.handle)
    # /metrics, /health, /ready (and the /alerts webhook): the monitoring server's handlers.
    for route in monitoring.app().router.routes():
        app.router.add_route(route.method, route.resource.canonical, route.handler)  # type: ignore[union-attr]

    async def start(app: web.Application) -> None:
        backend.open()
        await hub.start()

    async def stop(app: web.Application) -> None:
        await hub.stop()
        await asyncio.to_thread(backend.close)  # joins the pool's threads

    app.on_startup.append(start)
    app.on_cleanup.append(stop)
    return app
