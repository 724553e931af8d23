"""The Coinbase :class:`ExchangeAdapter`: both WebSocket feeds, Exchange REST for history.

Which feed: decoding needs no choice (``CoinbaseFeed`` reads the dialect from each message), but
subscribing does. :data:`ADAPTER` (registered as ``coinbase``) speaks the public **Advanced
Trade** feed, whose ``level2`` needs no credentials; point ``endpoints.coinbase.ws_url`` at
``wss://advanced-trade-ws.coinbase.com`` (the default). :data:`EXCHANGE_FEED_ADAPTER` speaks the
**Exchange** feed (``wss://ws-feed.exchange.coinbase.com``): public by default (book channel
``level2_batch``); built with :class:`ExchangeCredentials` it signs its subscribe messages and
uses the authenticated ``level2``. REST (instruments, backfill) is the Exchange API either way.

Channel names (tickvault -> Advanced / Exchange): trades -> market_trades / matches, book ->
level2 / level2_batch|level2, ticker -> ticker / ticker, candles -> candles (5-minute) / none
(the Exchange feed has no candles; backfill them over REST). Heartbeats are always added: the
Advanced feed closes idle subscriptions after 60-90 s without them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import msgspec

from tickvault.errors import UsageError
from tickvault.exchanges.base import BackfillPage, RestRequest
from tickvault.exchanges.coinbase import rest
from tickvault.exchanges.coinbase.feed import CoinbaseFeed
from tickvault.exchanges.coinbase.symbols import parse_products, ws_product_id
from tickvault.model import Instrument

WsFeed = Literal["advanced", "exchange"]

ADVANCED_CHANNELS = {
    "trades": "market_trades",
    "book": "level2",
    "ticker": "ticker",
    "candles": "candles",
}
EXCHANGE_CHANNELS = {"trades": "matches", "book": "level2_batch", "ticker": "ticker"}
_KNOWN = frozenset(ADVANCED_CHANNELS)
SIGNATURE_PATH = "/users/self/verify"

_encoder = msgspec.json.Encoder()


@dataclass(frozen=True, slots=True)
class ExchangeCredentials:
    """Coinbase Exchange API key: ``secret`` is the base64 secret the exchange issued."""

    key: str
    secret: str
    passphrase: str = field(repr=False)


def sign_subscription(credentials: ExchangeCredentials, timestamp: str) -> dict[str, str]:
    """The fields an authenticated Exchange ``subscribe`` carries: the signature of
    ``timestamp + "GET" + "/users/self/verify"`` (HMAC-SHA256 keyed with the base64-decoded
    secret, base64-encoded), exactly as for a signed ``GET /users/self/verify`` request."""
    message = f"{timestamp}GET{SIGNATURE_PATH}".encode()
    digest = hmac.new(base64.b64decode(credentials.secret), message, hashlib.sha256).digest()
    return {
        "signature": base64.b64encode(digest).decode(),
        "key": credentials.key,
        "passphrase": credentials.passphrase,
        "timestamp": timestamp,
    }


def _check_channels(channels: Sequence[str]) -> None:
    unknown = [c for c in channels if c not in _KNOWN]
    if unknown:
        raise UsageError(f"unknown channel(s) {unknown}; known: {', '.join(sorted(_KNOWN))}")


@dataclass(frozen=True)
class CoinbaseAdapter:
    """Pure except for ``clock``, read only to timestamp signed Exchange subscriptions."""

    ws_feed: WsFeed = "advanced"
    credentials: ExchangeCredentials | None = None
    clock: Callable[[], float] = time.time
    name: str = "coinbase"

    # --- instruments ---------------------------------------------------------------------

    def instruments_request(self) -> RestRequest:
        return RestRequest("/products", {})

    def parse_instruments(self, raw: bytes | str) -> list[Instrument]:
        return parse_products(raw)

    # --- WebSocket -----------------------------------------------------------------------

    def new_feed(self, instruments: Sequence[Instrument], book_depth: int) -> CoinbaseFeed:
        return CoinbaseFeed(instruments, book_depth)

    def ws_url(self, base_url: str, symbols: Sequence[str], channels: Sequence[str]) -> str:
        return base_url  # both feeds subscribe by message, not by URL

    def book_channel(self) -> str:
        if self.ws_feed == "advanced":
            return ADVANCED_CHANNELS["book"]
        return "level2" if self.credentials is not None else EXCHANGE_CHANNELS["book"]

    def _advanced(self, kind: str, channel: str, product_ids: list[str]) -> str:
        return _encoder.encode(
            {"type": kind, "product_ids": product_ids, "channel": channel}
        ).decode()

    def _exchange(self, kind: str, channels: list[str], product_ids: list[str]) -> str:
        message: dict[str, object] = {
            "type": kind,
            "product_ids": product_ids,
            "channels": channels,
        }
        if self.credentials is not None:
            message.update(sign_subscription(self.credentials, str(int(self.clock()))))
        return _encoder.encode(message).decode()

    def subscribe_messages(
        self, instruments: Sequence[Instrument], channels: Sequence[str], book_depth: int
    ) -> list[str]:
        """Advanced: one message per channel (the feed takes one channel per subscribe), then
        ``heartbeats``. Exchange: one message for all channels, signed when credentials are set.
        ``book_depth`` does not apply: both feeds send the full book."""
        _check_channels(channels)
        product_ids = list(dict.fromkeys(ws_product_id(i) for i in instruments))
        if self.ws_feed == "advanced":
            messages = [
                self._advanced("subscribe", ADVANCED_CHANNELS[c], product_ids)
                for c in dict.fromkeys(channels)
            ]
            heartbeat = {"type": "subscribe", "channel": "heartbeats"}
            return [*messages, _encoder.encode(heartbeat).decode()]
        names = [
            self.book_channel() if c == "book" else EXCHANGE_CHANNELS[c]
            for c in dict.fromkeys(channels)
            if c in EXCHANGE_CHANNELS
        ]
        return [self._exchange("subscribe", [*names, "heartbeat"], product_ids)]

    def book_snapshot_request(self, instrument: Instrument) -> RestRequest | None:
        return None  # both feeds send the snapshot on the socket after (re)subscribing

    def resync_messages(self, instrument: Instrument, book_depth: int) -> list[str]:
        """Unsubscribe + subscribe this product's book channel: a fresh snapshot follows."""
        product_ids = [ws_product_id(instrument)]
        channel = self.book_channel()
        if self.ws_feed == "advanced":
            return [
                self._advanced("unsubscribe", channel, product_ids),
                self._advanced("subscribe", channel, product_ids),
            ]
        return [
            self._exchange("unsubscribe", [channel], product_ids),
            self._exchange("subscribe", [channel], product_ids),
        ]

    # --- REST backfill -------------------------------------------------------------------

    def backfill_request(
        self, instrument: Instrument, kind: str, cursor: str | None, since_ns: int, until_ns: int
    ) -> RestRequest:
        if kind == "trades":
            return rest.trades_request(instrument, cursor)
        return rest.candles_request(instrument, kind, cursor, since_ns, until_ns)

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
        if kind == "trades":
            return rest.parse_trades_page(instrument, raw, since_ns, until_ns, recv_ns)
        return rest.parse_candles_page(instrument, kind, raw, cursor, since_ns, until_ns, recv_ns)


ADAPTER = CoinbaseAdapter()
EXCHANGE_FEED_ADAPTER = CoinbaseAdapter(ws_feed="exchange")
