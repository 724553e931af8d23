"""``tickvault api``: serve the HTTP/WebSocket API (see docs/api.md)."""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated

import typer

from tickvault.api.serve import serve
from tickvault.cli import app
from tickvault.cli.common import ConfigOption, settings_from
from tickvault.storage.urls import resolve_urls


@app.command("api")
def api(
    config: ConfigOption = None,
    host: Annotated[
        str, typer.Option("--host", help="Interface to listen on (0.0.0.0 in a container).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", "-p", min=0, max=65535)] = 8080,
) -> None:
    """Serve candles, trades, books, latest values, features, signals and quality over HTTP,
    signals over WebSocket, plus /metrics /health /ready."""
    settings = settings_from(config)
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    urls = resolve_urls(settings)  # embedded servers for what is not configured
    asyncio.run(serve(settings, urls, host, port))
