"""Redis key layout and value encoding of the hot cache (pure: no connection here).

Every key starts with the configured prefix (``tv`` by default). Values are JSON (msgspec), so
they are readable with ``redis-cli`` and decimals stay exact strings.

=====================================================  ============  ===============================
key                                                    type          content
=====================================================  ============  ===============================
``tv:candles:{exchange}:{symbol}:{timeframe}``         sorted set    latest N candles, score = open
                                                                     time in ms, member = JSON
``tv:cframe:{exchange}:{symbol}:{timeframe}``         string        the candles as an Arrow IPC
                                                                     frame, rebuilt on read
``tv:cver:{exchange}:{symbol}:{timeframe}``           string        version of the candles, bumped
                                                                     by every write
``tv:clog:{exchange}:{symbol}:{timeframe}``           sorted set    the last version bumps: score =
                                                                     version, member = ``version:
                                                                     previous:lowest score written``
``tv:cver``                                            string        counter the versions come from
                                                                     (the one key with no TTL)
``tv:trade:{exchange}:{symbol}``                       string        latest trade (JSON)
``tv:book:{exchange}:{symbol}``                        string        latest top-N book (JSON)
``tv:ticker:{exchange}:{symbol}``                      string        latest best bid/ask (JSON)
``tv:features:{exchange}:{symbol}:{timeframe}``        hash          indicator name -> JSON
                                                                     ``{"ts_ns":..,"value":..}``
``tv:signals:{exchange}:{symbol}:{timeframe}``         list          newest first, capped, JSON
``tv:quality:{exchange}:{symbol}:{channel}``           string        latest quality score (JSON)
``tv:api:*``                                           various       API state (rate-limit budgets)
channel ``tv:signals``                                 pub/sub       every new signal (JSON)
=====================================================  ============  ===============================

A candle key holds one bar per open time, as the query API serves them: the exchange's own bar
when there is one, else the bar derived from trades (a derived bar never replaces an exchange
bar; see ``PUT_CANDLE_LUA`` in :mod:`tickvault.storage.redis_cache`).

The frame keys make column reads fast: see :mod:`tickvault.storage.redis_frames`.

All keys but the version counter carry a TTL (settings.cache): a stream that stops updating ages out of the cache
instead of serving stale values forever.
"""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec

_encoder = msgspec.json.Encoder(decimal_format="string")
T = TypeVar("T")

NS_PER_MS = 1_000_000


class Keys:
    """Builds the keys for one prefix."""

    def __init__(self, prefix: str = "tv") -> None:
        self.prefix = prefix

    def candles(self, exchange: str, symbol: str, timeframe: str) -> str:
        return f"{self.prefix}:candles:{exchange}:{symbol}:{timeframe}"

    def frame(self, exchange: str, symbol: str, timeframe: str) -> str:
        return f"{self.prefix}:cframe:{exchange}:{symbol}:{timeframe}"

    def frame_version(self, exchange: str, symbol: str, timeframe: str) -> str:
        return f"{self.prefix}:cver:{exchange}:{symbol}:{timeframe}"

    def frame_log(self, exchange: str, symbol: str, timeframe: str) -> str:
        return f"{self.prefix}:clog:{exchange}:{symbol}:{timeframe}"

    @property
    def frame_counter(self) -> str:
        return f"{self.prefix}:cver"

    def trade(self, exchange: str, symbol: str) -> str:
        return f"{self.prefix}:trade:{exchange}:{symbol}"

    def book(self, exchange: str, symbol: str) -> str:
        return f"{self.prefix}:book:{exchange}:{symbol}"

    def ticker(self, exchange: str, symbol: str) -> str:
        return f"{self.prefix}:ticker:{exchange}:{symbol}"

    def features(self, exchange: str, symbol: str, timeframe: str) -> str:
        return f"{self.prefix}:features:{exchange}:{symbol}:{timeframe}"

    def signals(self, exchange: str, symbol: str, timeframe: str) -> str:
        return f"{self.prefix}:signals:{exchange}:{symbol}:{timeframe}"

    def quality(self, exchange: str, symbol: str, channel: str) -> str:
        return f"{self.prefix}:quality:{exchange}:{symbol}:{channel}"

    def api(self, name: str) -> str:
        return f"{self.prefix}:api:{name}"

    @property
    def signals_channel(self) -> str:
        return f"{self.prefix}:signals"


def encode(value: Any) -> bytes:
    return _encoder.encode(value)


def decode(raw: bytes | str, kind: type[T]) -> T:
    return msgspec.json.decode(raw, type=kind)
