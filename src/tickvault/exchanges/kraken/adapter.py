"""The Kraken Spot :class:`ExchangeAdapter`: WebSocket v2 live, REST backfill."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from tickvault.errors import UsageError
from tickvault.exchanges.base import BackfillPage, FeedState, RestRequest
from tickvault.exchanges.kraken import rest
from tickvault.exchanges.kraken.feed import KrakenFeed, subscription_depth
from tickvault.exchanges.kraken.symbols import EXCHANGE, parse_asset_pairs
from tickvault.exchanges.kraken.wire import TIMEFRAME_INTERVALS
from tickvault.model import Instrument

_encode = msgspec.json.Encoder()


def _message(method: str, params: dict[str, Any], req_id: int) -> str:
    return _encode.encode({"method": method, "params": params, "req_id": req_id}).decode()


def _ws_symbols(instruments: Sequence[Instrument]) -> list[str]:
    return [i.ws_symbol or i.exchange_symbol for i in instruments]


def _channel_params(channel: str, book_depth: int) -> dict[str, Any]:
    """v2 subscription parameters of one tickvault channel name.

    ``candles`` subscribes the 1-minute bars (longer timeframes derive from them);
    ``candles:<tf>`` picks another Kraken interval.
    """
    if channel == "book":
        return {"channel": "book", "depth": subscription_depth(book_depth), "snapshot": True}
    if channel == "trades":
        return {"channel": "trade", "snapshot": True}
    if channel == "ticker":
        return {"channel": "ticker", "snapshot": True}
    name, _, timeframe = channel.partition(":")
    if name == "candles":
        interval = TIMEFRAME_INTERVALS.get(timeframe or "1m")
        if interval is None:
            known = ", ".join(TIMEFRAME_INTERVALS)
            raise UsageError(f"kraken candles come in {known}, not {timeframe!r}")
        return {"channel": "ohlc", "interval": interval, "snapshot": True}
    raise UsageError(f"unknown channel {channel!r}; use trades, book, ticker or candles")


def ping_message(req_id: int) -> str:
    """Application-level ping; Kraken answers ``{"method": "pong", ...}``."""
    return _encode.encode({"method": "ping", "req_id": req_id}).decode()


class KrakenAdapter:
    name = EXCHANGE

    def instruments_request(self) -> RestRequest:
        return rest.instruments_request()

    def parse_instruments(self, raw: bytes | str) -> list[Instrument]:
        return parse_asset_pairs(rest.result_of(raw))

    def new_feed(self, instruments: Sequence[Instrument], book_depth: int) -> FeedState:
        return KrakenFeed(instruments, book_depth)

    def ws_url(self, base_url: str, symbols: Sequence[str], channels: Sequence[str]) -> str:
        """The v2 endpoint under the configured base (``wss://ws.kraken.com`` -> ``.../v2``);
        subscriptions go in messages, not in the URL."""
        base = base_url.rstrip("/")
        return base if base.endswith("/v2") else base + "/v2"

    def subscribe_messages(
        self, instruments: Sequence[Instrument], channels: Sequence[str], book_depth: int
    ) -> list[str]:
        # No heartbeat subscription: Kraken v2 sends heartbeats by itself once any channel is
        # subscribed, and refuses a request for them.
        symbols = _ws_symbols(instruments)
        return [
            _message("subscribe", {**_channel_params(channel, book_depth), "symbol": symbols}, n)
            for n, channel in enumerate(channels, start=1)
        ]

    def book_snapshot_request(self, instrument: Instrument) -> RestRequest | None:
        return None  # the socket sends the snapshot; resync by resubscribing

    def backfill_request(
        self, instrument: Instrument, kind: str, cursor: str | None, since_ns: int, until_ns: int
    ) -> RestRequest:
        return rest.backfill_request(instrument, kind, cursor, since_ns, until_ns)

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
        return rest.parse_backfill_page(instrument, kind, raw, cursor, since_ns, until_ns, recv_ns)

    def resync_messages(self, instrument: Instrument, book_depth: int) -> list[str]:
        """Unsubscribe + subscribe the book at the same depth (without ``depth`` Kraken would
        unsubscribe depth 10); the new subscription starts with a checksummed snapshot."""
        params = {
            "channel": "book",
            "symbol": _ws_symbols([instrument]),
            "depth": subscription_depth(book_depth),
        }
        return [
            _message("unsubscribe", params, 9001),
            _message("subscribe", {**params, "snapshot": True}, 9002),
        ]


ADAPTER = KrakenAdapter()
