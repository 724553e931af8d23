"""The Binance Spot :class:`~tickvault.exchanges.base.ExchangeAdapter`: pure functions only.

Channels -> streams (stream names use the lowercase id):

* ``trades``  -> ``<s>@aggTrade`` (the same ids as the ``/api/v3/aggTrades`` backfill, so a
  repaired gap and the live feed share one trade-id space)
* ``book``    -> ``<s>@depth@100ms`` (diff depth, verified against REST snapshots)
* ``ticker``  -> ``<s>@bookTicker`` (real-time BBO) and ``<s>@ticker`` (24 h last/volume, 1 s)
* ``candles`` -> ``<s>@kline_1m``; ``candles:<tf>`` -> ``<s>@kline_<tf>``

Connection limits: at most 1024 streams per connection and 5 incoming messages per second
(pings, pongs and control messages count). :meth:`BinanceAdapter.subscribe_messages` therefore
puts every stream into ONE ``SUBSCRIBE`` message and refuses more than 1024 streams;
:func:`split_instruments` groups instruments into connections that fit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import msgspec

from tickvault.errors import UsageError
from tickvault.exchanges.base import BackfillPage, RestRequest
from tickvault.exchanges.binance import rest, symbols
from tickvault.exchanges.binance.feed import BinanceFeed
from tickvault.model import Instrument

MAX_STREAMS_PER_CONNECTION = 1024
MAX_INCOMING_MESSAGES_PER_S = 5

# REST snapshot depth: 1000 levels cost weight 50, 5000 cost 250. tickvault publishes the top
# N (N is small) and 1000 levels leave ample room for the book to move before unknown deep
# levels could reach the top, at a fifth of the weight of a resync storm with 5000.
SNAPSHOT_LIMIT = 1000


def channel_streams(ws_symbol: str, channel: str) -> list[str]:
    """Stream names of one channel for one lowercase symbol; UsageError for an unknown one."""
    if channel == "trades":
        return [f"{ws_symbol}@aggTrade"]
    if channel == "book":
        return [f"{ws_symbol}@depth@100ms"]
    if channel == "ticker":
        return [f"{ws_symbol}@bookTicker", f"{ws_symbol}@ticker"]
    if channel == "candles":
        return [f"{ws_symbol}@kline_1m"]
    prefix, _, timeframe = channel.partition(":")
    if prefix == "candles" and timeframe in rest.BINANCE_INTERVALS:
        return [f"{ws_symbol}@kline_{timeframe}"]
    raise UsageError(
        f"binance channel {channel!r} is unknown; use trades, book, ticker, candles[:<tf>]"
    )


def streams_for(symbol_ids: Sequence[str], channels: Sequence[str]) -> list[str]:
    return [
        stream
        for symbol in symbol_ids
        for channel in channels
        for stream in channel_streams(symbols.stream_symbol(symbol), channel)
    ]


def split_instruments(
    instruments: Sequence[Instrument],
    channels: Sequence[str],
    max_streams: int = MAX_STREAMS_PER_CONNECTION,
) -> list[list[Instrument]]:
    """Instruments grouped so that each group's streams fit on one connection."""
    per_instrument = len(streams_for(["x"], channels)) or 1
    if per_instrument > max_streams:
        raise UsageError(f"{per_instrument} streams per symbol exceed {max_streams}")
    size = max_streams // per_instrument
    return [list(instruments[i : i + size]) for i in range(0, len(instruments), size)]


class BinanceAdapter:
    name = "binance"

    def __init__(self, snapshot_limit: int = SNAPSHOT_LIMIT, page_limit: int = 1000) -> None:
        self.snapshot_limit = snapshot_limit
        self.page_limit = page_limit

    def instruments_request(self) -> RestRequest:
        return rest.instruments_request()

    def parse_instruments(self, raw: bytes | str) -> list[Instrument]:
        return symbols.parse_instruments(raw)

    def new_feed(self, instruments: Sequence[Instrument], book_depth: int) -> BinanceFeed:
        return BinanceFeed(instruments, book_depth)

    def ws_url(self, base_url: str, symbols: Sequence[str], channels: Sequence[str]) -> str:
        """Combined-stream URL ``<base>/stream?streams=a/b/c``. ``symbols`` may be canonical
        (``BTC-USDT``) or Binance ids; with no streams it is the bare ``<base>/stream``, to be
        filled by :meth:`subscribe_messages`. Streams in the URL are live on connect, so
        sending the SUBSCRIBE as well is harmless (Binance answers ``result: null``)."""
        base = base_url.rstrip("/")
        streams = streams_for(symbols, channels)
        if len(streams) > MAX_STREAMS_PER_CONNECTION:
            raise UsageError(
                f"{len(streams)} streams exceed {MAX_STREAMS_PER_CONNECTION} per connection; "
                "split the symbols (split_instruments)"
            )
        return f"{base}/stream?streams={'/'.join(streams)}" if streams else f"{base}/stream"

    def subscribe_messages(
        self, instruments: Sequence[Instrument], channels: Sequence[str], book_depth: int
    ) -> list[str]:
        ids = [item.ws_symbol or item.exchange_symbol for item in instruments]
        streams = streams_for(ids, channels)
        if not streams:
            return []
        if len(streams) > MAX_STREAMS_PER_CONNECTION:
            raise UsageError(
                f"{len(streams)} streams exceed {MAX_STREAMS_PER_CONNECTION} per connection; "
                "split the instruments (split_instruments)"
            )
        message = {"method": "SUBSCRIBE", "params": streams, "id": 1}
        return [msgspec.json.encode(message).decode()]

    def book_snapshot_request(self, instrument: Instrument) -> RestRequest:
        return rest.depth_request(instrument, self.snapshot_limit)

    def resync_messages(self, instrument: Instrument, book_depth: int) -> list[str]:
        return []  # Binance books resync over REST (book_snapshot_request)

    def backfill_request(
        self, instrument: Instrument, kind: str, cursor: str | None, since_ns: int, until_ns: int
    ) -> RestRequest:
        return rest.backfill_request(
            instrument, kind, cursor, since_ns, until_ns, limit=self.page_limit
        )

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
        return rest.parse_backfill_page(
            instrument, kind, raw, cursor, since_ns, until_ns, recv_ns, limit=self.page_limit
        )

    # -- rate-limit facts for the I/O layer ----------------------------------------------

    @staticmethod
    def used_weight(headers: Mapping[str, str]) -> int | None:
        """Weight used this minute, from ``X-MBX-USED-WEIGHT-1M``."""
        return symbols.used_weight(headers, "1M")

    @staticmethod
    def weight_limit(exchange_info_raw: bytes | str) -> tuple[int, int] | None:
        """``(limit, window_s)`` of REQUEST_WEIGHT from an exchangeInfo body."""
        return symbols.request_weight_limit(symbols.rate_limits(exchange_info_raw))


ADAPTER = BinanceAdapter()
