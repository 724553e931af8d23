"""The Redis hot cache: latest candles, trade, book, ticker, features, signals and quality.

Writes go in batches through one pipeline (MULTI/EXEC) per batch; within a batch only the last
value per key is sent. Reads go to Redis first; :class:`CachedReader` falls back to a slower
source (PostgreSQL) on a miss and refills the cache. Key layout: :mod:`tickvault.storage.redis_keys`.

Both a sync client (CLI, query API) and an asyncio client (pipeline) are provided; they queue the
very same commands (:func:`_queue_events`), only ``execute`` differs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import msgspec
import pyarrow as pa
import redis
import redis.asyncio as aioredis

from tickvault.config import CacheSettings
from tickvault.errors import StorageError
from tickvault.model import BookSnapshot, Candle, CandleSource, MarketEvent, Ticker, Trade
from tickvault.query import Format, convert
from tickvault.storage import arrow_pool
from tickvault.storage import redis_frames as frames
from tickvault.storage.postgres.columnar import no_gc, to_table, to_table_and_wire
from tickvault.storage.postgres.reader import CANDLE_COLUMNS
from tickvault.storage.redis_keys import NS_PER_MS, Keys, decode, encode

T = TypeVar("T")


# The command-queuing surface shared by ``redis.client.Pipeline`` and its asyncio twin: queuing
# is synchronous in both, so one function can fill either. redis-py's overloads differ in return
# type only, which no Protocol can express, hence Any.
_Pipe = Any
# _queue_events / _queue_history: queue a batch's writes on a pipeline, return keys touched
_Queue = Callable[[_Pipe, Keys, CacheSettings, Sequence[MarketEvent]], int]


class FeatureValue(msgspec.Struct, frozen=True):
    ts_ns: int
    value: float


# One bar per open time and stream, as the query API serves them: the exchange's own bar when
# there is one, else the bar derived from trades. A derived bar never replaces an exchange bar of
# the same open time (atomically, in the server); anything else replaces what was there.
PUT_CANDLE_LUA = """
if ARGV[3] == '1' then
  for _, member in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[1], ARGV[1])) do
    if string.find(member, '"source":"exchange"', 1, true) then return 0 end
  end
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], ARGV[1], ARGV[1])
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
return 1
"""

# Repaired history (closed bars refetched or rebuilt after a gap) fills holes *inside* what a
# candle key holds and replaces the bar cached for its open time (the repair is the final
# record), but never extends a key backwards: a bar older than the oldest cached one would open
# a hole between itself and the cached bars, and readers take a key's bars as a contiguous run
# of the newest ones. A missing key stays missing. Then the live put's rule applies.
PUT_HISTORY_CANDLE_LUA = (
    """
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if #oldest == 0 or tonumber(oldest[2]) > tonumber(ARGV[1]) then return 0 end"""
    + PUT_CANDLE_LUA
)

# A latest value from history replaces the cached one only if it is newer (exchange time): the
# latest trade never goes back in time, and a missing key stays missing (history is never the
# newest stored value: a gap ends where live data resumed). ns times exceed a Lua double's
# precision, so they are compared as digit strings (longer is larger, else lexicographic).
SET_IF_NEWER_LUA = """
local held = redis.call('GET', KEYS[1])
if not held then return 0 end
local ts = string.match(held, '"ts_ns":(%d+)')
if ts and (#ts > #ARGV[2] or (#ts == #ARGV[2] and ts >= ARGV[2])) then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[3])
return 1
"""


def _queue_history(
    pipe: _Pipe, keys: Keys, settings: CacheSettings, events: Sequence[MarketEvent]
) -> int:
    """Queue the writes of repaired history (closed candles, trades); returns keys touched.

    Bars still forming are left to the live feed; of trades only the newest per stream counts,
    and only if newer than the cached one."""
    history = [e for e in events if isinstance(e, Trade) or (isinstance(e, Candle) and e.closed)]
    candles, latest = _newest_per_key(keys, history)
    touched = _queue_candles(pipe, keys, settings, candles, PUT_HISTORY_CANDLE_LUA, expire=False)
    for key, (ts_ns, value) in latest.items():
        pipe.eval(SET_IF_NEWER_LUA, 1, key, value, str(ts_ns), settings.latest_ttl_s)
    return touched + len(latest)


def _queue_events(
    pipe: _Pipe,
    keys: Keys,
    settings: CacheSettings,
    events: Sequence[MarketEvent],
) -> int:
    """Queue the writes for a batch; returns how many keys were touched."""
    candles, latest = _newest_per_key(keys, events)
    touched = _queue_candles(pipe, keys, settings, candles, PUT_CANDLE_LUA, expire=True)
    for key, (_, value) in latest.items():
        pipe.set(key, value, ex=settings.latest_ttl_s)
    return touched + len(latest)


def _newest_per_key(
    keys: Keys, events: Sequence[MarketEvent]
) -> tuple[dict[tuple[str, int], Candle], dict[str, tuple[int, bytes]]]:
    """What a batch leaves per key: one bar per (candle key, open time) — a later update wins,
    but a derived bar never displaces the exchange's — and the newest trade, book and ticker.

    Only the kept values are encoded (a batch holds many trades per key, one is kept), and a
    stream's key is built once per batch."""
    candles: dict[tuple[str, int], Candle] = {}
    newest: dict[tuple[type, str, str], MarketEvent] = {}
    for event in events:
        kind = type(event)
        if kind is Candle:
            candle: Candle = event  # type: ignore[assignment]
            key = keys.candles(candle.exchange, candle.symbol, candle.timeframe)
            held = candles.get((key, candle.open_ns))
            if held is None or not (
                candle.source == CandleSource.DERIVED and held.source == CandleSource.EXCHANGE
            ):
                candles[(key, candle.open_ns)] = candle
        elif kind is Trade or kind is BookSnapshot or kind is Ticker:
            stream = (kind, event.exchange, event.symbol)
            current = newest.get(stream)
            if current is None or event.ts_ns >= current.ts_ns:
                newest[stream] = event
    latest: dict[str, tuple[int, bytes]] = {}
    for (kind, exchange, symbol), event in newest.items():
        latest[_LATEST_KEYS[kind](keys, exchange, symbol)] = (event.ts_ns, encode(event))
    return candles, latest


_LATEST_KEYS: dict[type, Callable[[Keys, str, str], str]] = {
    Trade: Keys.trade,
    BookSnapshot: Keys.book,
    Ticker: Keys.ticker,
}


def _queue_candles(
    pipe: _Pipe,
    keys: Keys,
    settings: CacheSettings,
    candles: dict[tuple[str, int], Candle],
    script: str,
    *,
    expire: bool,
) -> int:
    """Queue ``script``'s put of every bar, then per key the cap, TTL (``expire``) and the bump
    of the stream's frame version; returns how many candle keys were touched."""
    streams: dict[str, tuple[tuple[str, str, str], int]] = {}  # key -> stream, lowest score
    for (key, open_ns), candle in candles.items():
        derived = "1" if candle.source == CandleSource.DERIVED else "0"
        score = open_ns // NS_PER_MS
        # EVAL, not EVALSHA: queues the same way in sync and asyncio pipelines, and the server
        # caches the compiled script anyway.
        pipe.eval(script, 1, key, score, encode(candle), derived)
        held = streams.get(key)
        if held is None or score < held[1]:
            streams[key] = ((candle.exchange, candle.symbol, candle.timeframe), score)
    for key, (stream, low_ms) in streams.items():
        pipe.zremrangebyrank(key, 0, -settings.candles_kept - 1)
        if expire:
            pipe.expire(key, settings.candle_ttl_s)
        # the stored frame is rebuilt on read; readers splice from the lowest score written
        frames.queue_bump(pipe, keys, settings, stream, low_ms)
    return len(streams)


def _queue_features(
    pipe: _Pipe,
    keys: Keys,
    settings: CacheSettings,
    exchange: str,
    symbol: str,
    timeframe: str,
    values: Mapping[str, FeatureValue],
) -> None:
    key = keys.features(exchange, symbol, timeframe)
    pipe.hset(key, mapping={name: encode(value) for name, value in values.items()})
    pipe.expire(key, settings.features_ttl_s)


def _queue_signal(
    pipe: _Pipe,
    keys: Keys,
    settings: CacheSettings,
    exchange: str,
    symbol: str,
    timeframe: str,
    signal: object,
    kept: int = 100,
) -> None:
    key = keys.signals(exchange, symbol, timeframe)
    payload = encode(signal)
    pipe.lpush(key, payload)
    pipe.ltrim(key, 0, kept - 1)
    pipe.expire(key, settings.features_ttl_s)
    pipe.publish(keys.signals_channel, payload)


def _candles_from(raw: Sequence[bytes]) -> list[Candle]:
    with no_gc():  # see columnar.no_gc: no cycles here, and no full collection mid-read
        return [decode(item, Candle) for item in raw]


class _CandleColumns(msgspec.Struct, tag="candle", gc=False):
    """A cached Candle read as the frame's columns: decimals stay their exact JSON text.

    Fields in ``reader.CANDLE_COLUMNS`` order (``open_ns`` for ``ts``); the event's other
    fields (exchange, symbol, ts_ns, ...) are skipped by the decoder.
    """

    open_ns: int
    open: str
    high: str
    low: str
    close: str
    volume: str
    closed: bool
    source: str = "exchange"
    trade_count: int | None = None
    quote_volume: str | None = None
    vwap: str | None = None
    buy_volume: str | None = None
    sell_volume: str | None = None


_columns_decoder = msgspec.json.Decoder(list[_CandleColumns])
_TABLE_COLUMNS = (("ts", "ts_ns"), *CANDLE_COLUMNS[1:])


def candles_table(raw: Sequence[bytes]) -> pa.Table:
    """Cached candle members → the Arrow table ``Vault.candles`` returns (same columns/types).

    One msgspec call decodes all members (no Decimal objects), ``astuple`` + ``zip`` transpose
    in C and Arrow parses the decimal text: about 4x less work than building Candles.
    """
    with no_gc():
        return to_table(_TABLE_COLUMNS, _candle_rows(raw))


def _candle_rows(raw: Sequence[bytes]) -> list[tuple[Any, ...]]:
    """Cached candle members → rows of ``_TABLE_COLUMNS`` (decimals as their JSON text)."""
    bars = _columns_decoder.decode(b"[" + b",".join(raw) + b"]")
    return [msgspec.structs.astuple(b) for b in bars]


def _table_and_meta(raw: Sequence[bytes]) -> tuple[pa.Table, frames.Meta | None]:
    """:func:`candles_table` of the members, and what splicing it later needs."""
    with no_gc():
        table, wire = to_table_and_wire(_TABLE_COLUMNS, _candle_rows(raw))
        return table, frames.table_meta(_TABLE_COLUMNS, wire, table)


def _storage_error(exc: Exception, url: str) -> StorageError:
    where = url.rsplit("@", 1)[-1]
    return StorageError(f"Redis at {where} failed: {exc}")


class RedisCache:
    """Synchronous cache client (CLI, query API, benchmarks)."""

    def __init__(self, url: str, settings: CacheSettings | None = None) -> None:
        arrow_pool.use_jemalloc()  # frame read tails: see arrow_pool
        self.url = url
        self.settings = settings or CacheSettings()
        self.keys = Keys(self.settings.key_prefix)
        self.client = redis.Redis.from_url(url, socket_timeout=5)
        self._held = frames.held_frames()
        self._catch_up = self.client.register_script(frames.CATCH_UP_LUA)
        # how frame reads were served (tests, benchmarks): the held table (version unchanged),
        # the held table spliced with the bars written since, the stored blob, a full rebuild
        # from the sorted set. Plain counters: approximate when threads read at once.
        self.held_reads = self.spliced_reads = self.blob_reads = self.full_reads = 0

    def ping(self) -> bool:
        try:
            return bool(self.client.ping())
        except redis.RedisError as exc:
            raise _storage_error(exc, self.url) from None

    def write_events(self, events: Sequence[MarketEvent]) -> int:
        pipe = self.client.pipeline(transaction=True)
        touched = _queue_events(pipe, self.keys, self.settings, events)
        try:
            pipe.execute()
        except redis.RedisError as exc:
            raise _storage_error(exc, self.url) from None
        return touched

    def set_features(
        self, exchange: str, symbol: str, timeframe: str, values: Mapping[str, FeatureValue]
    ) -> None:
        pipe = self.client.pipeline(transaction=True)
        _queue_features(pipe, self.keys, self.settings, exchange, symbol, timeframe, values)
        pipe.execute()

    def features(self, exchange: str, symbol: str, timeframe: str) -> dict[str, FeatureValue]:
        raw: dict[bytes, bytes] = self.client.hgetall(
            self.keys.features(exchange, symbol, timeframe)
        )  # type: ignore[assignment]
        return {name.decode(): decode(value, FeatureValue) for name, value in raw.items()}

    def latest_candles(self, exchange: str, symbol: str, timeframe: str, n: int) -> list[Candle]:
        """Up to ``n`` newest candles, oldest first."""
        key = self.keys.candles(exchange, symbol, timeframe)
        try:
            raw: list[bytes] = self.client.zrange(key, -n, -1)  # type: ignore[assignment]
        except redis.RedisError as exc:
            raise _storage_error(exc, self.url) from None
        return _candles_from(raw)

    def latest_candles_frame(
        self, exchange: str, symbol: str, timeframe: str, n: int, *, format: Format = "polars"
    ) -> Any:
        """Up to ``n`` newest candles, oldest first, as a frame like ``Vault.latest_candles``.

        The fast read for callers that want columns rather than Candle events (one Arrow blob,
        :mod:`tickvault.storage.redis_frames`).
        """
        held = self._frame_of(exchange, symbol, timeframe)
        if format == "polars":  # a slice of the held frame (zero-copy; polars copies on write)
            frame = held.polars()
            return frame.slice(max(frame.height - n, 0))
        held.arrow_read = True
        table = held.table
        return convert(table.slice(max(table.num_rows - n, 0)), format)

    def candles_frame(
        self,
        exchange: str,
        symbol: str,
        timeframe: str,
        lo_ns: int,
        hi_ns: int,
        *,
        format: Format = "polars",
    ) -> Any:
        """The cached bars opening in ``[lo_ns, hi_ns)``, oldest first, as a frame.

        Only what the cache holds (``candles_kept`` newest bars): check the first bar's time
        against ``lo_ns`` to know whether the range is complete.
        """
        held = self._frame_of(exchange, symbol, timeframe)
        first, count = frames.rows_between(held, -(-lo_ns // 1000), -(-hi_ns // 1000))
        if format == "polars":
            return held.polars().slice(first, count)
        held.arrow_read = True
        return convert(held.table.slice(first, count), format)

    def forget_held(self) -> None:
        """Drop the decoded frames and results this reader holds (benchmarks)."""
        self._held = frames.held_frames()

    def candles_table(self, exchange: str, symbol: str, timeframe: str) -> pa.Table:
        """Every cached bar of a stream as an Arrow table: the stored frame, or rebuilt.

        The table of the version read last is kept (``frames.held_frames``): while the stream's
        version is unchanged a read fetches the version alone, not the blob; after writes it
        fetches only the bars written since and splices them in (``frames.splice``) when the
        stream's change log covers every write since, else it takes the blob or rebuilds."""
        held = self._frame_of(exchange, symbol, timeframe)
        held.arrow_read = True
        return held.table

    def _frame_of(self, exchange: str, symbol: str, timeframe: str) -> frames.HeldFrame:
        """:meth:`candles_table`'s table as a :class:`frames.HeldFrame` (its polars frame, once
        built, held with it; a table of no version is not held)."""
        stream = (exchange, symbol, timeframe)
        version_key = self.keys.frame_version(exchange, symbol, timeframe)
        frame_key = self.keys.frame(exchange, symbol, timeframe)
        candles_key = self.keys.candles(exchange, symbol, timeframe)
        try:
            held = self._held.get(stream, touch=False)
            if held is not None:
                got: list[Any] = self._catch_up(
                    keys=[version_key, self.keys.frame_log(exchange, symbol, timeframe),
                          candles_key],
                    args=[held.version, "1" if held.meta is not None else "0"],
                )  # fmt: skip
                if got[0] == held.version:
                    self._held.touch(stream)
                    self.held_reads += 1
                    return held
                if len(got) > 2:  # the bars written since: splice them in
                    spliced = self._spliced(stream, held, got)
                    if spliced is not None:
                        return spliced
            fetched: list[bytes | None] = self.client.mget(version_key, frame_key)  # type: ignore[assignment]
            version, blob = fetched
            decoded = frames.held_from_blob(version, blob)
            if decoded is not None:
                self._held.put(stream, decoded, decoded.estimated_bytes())
                self.blob_reads += 1
                return decoded
            pipe = self.client.pipeline(transaction=True)
            pipe.get(version_key)
            pipe.zrange(candles_key, 0, -1)
            version, raw = pipe.execute()
            table, meta = _table_and_meta(raw)
            self.full_reads += 1
            rebuilt = frames.HeldFrame(version or b"", meta, table=table)
            if version is not None:  # the bars of that version (read in one MULTI/EXEC)
                self._held.put(stream, rebuilt, rebuilt.estimated_bytes())
            if version is not None and raw:
                blob = frames.encode_frame(version, table)
                self.client.eval(
                    frames.STORE_FRAME_LUA, 2, version_key, frame_key, version, blob,
                    self.settings.candle_ttl_s,
                )  # fmt: skip
        except redis.RedisError as exc:
            raise _storage_error(exc, self.url) from None
        return rebuilt

    def _spliced(
        self, stream: frames.Stream, held: frames.HeldFrame, got: list[Any]
    ) -> frames.HeldFrame | None:
        """The held table caught up with ``CATCH_UP_LUA``'s answer (version, 'S', lowest
        score written since, set size, members), held at that version; None: rebuild. Its
        polars frame, if the held one had it, is spliced too (``frames.splice_frame``)."""
        if got[1] != b"S" or held.meta is None:
            return None
        version, low_ms, count, members = got[0], int(got[2]), int(got[3]), got[4:]
        with no_gc():
            done = frames.plan(
                held.meta, held.schema, _TABLE_COLUMNS, _candle_rows(members), low_ms, count
            )
            if done is None:
                return None
            # splice the forms this reader reads (a polars reader: its frame alone)
            frame = held.frame
            if frame is not None:
                frame = frames.splice_frame(frame, held.schema, done)
            table = held.built_table if held.arrow_read else None
            if table is not None or frame is None:
                table = frames.splice_table(held.table, done)
                if table is None:
                    return None
        spliced = frames.HeldFrame(version, done.meta, table=table, frame=frame, schema=done.schema)
        spliced.arrow_read = held.arrow_read
        self._held.put(stream, spliced, spliced.estimated_bytes())
        self.spliced_reads += 1
        return spliced

    def latest(self, kind: type[T], key: str) -> T | None:
        raw: bytes | None = self.client.get(key)  # type: ignore[assignment]
        return None if raw is None else decode(raw, kind)

    def latest_trade(self, exchange: str, symbol: str) -> Trade | None:
        return self.latest(Trade, self.keys.trade(exchange, symbol))

    def latest_book(self, exchange: str, symbol: str) -> BookSnapshot | None:
        return self.latest(BookSnapshot, self.keys.book(exchange, symbol))

    def latest_ticker(self, exchange: str, symbol: str) -> Ticker | None:
        return self.latest(Ticker, self.keys.ticker(exchange, symbol))

    def close(self) -> None:
        self.client.close()


class AsyncRedisCache:
    """asyncio cache client used by the pipeline's writers."""

    def __init__(self, url: str, settings: CacheSettings | None = None) -> None:
        self.url = url
        self.settings = settings or CacheSettings()
        self.keys = Keys(self.settings.key_prefix)
        self.client = aioredis.Redis.from_url(url, socket_timeout=5)

    async def write_events(self, events: Sequence[MarketEvent]) -> int:
        return await self._write(_queue_events, events)

    async def write_batch(
        self,
        events: Sequence[MarketEvent] = (),
        *,
        history: Sequence[MarketEvent] = (),
        features: Mapping[tuple[str, str, str], Mapping[str, FeatureValue]] | None = None,
        signals: Sequence[tuple[str, str, str, object]] = (),
        scores: Sequence[tuple[str, str, str, object]] = (),
    ) -> None:
        """One writer batch of every kind in one MULTI/EXEC, so one round trip: live events,
        repaired history, features per (exchange, symbol, timeframe), signals, and quality
        scores as (exchange, symbol, channel, score). Raises StorageError."""
        pipe = self.client.pipeline(transaction=True)
        keys, settings = self.keys, self.settings
        if events:
            _queue_events(pipe, keys, settings, events)
        if history:
            _queue_history(pipe, keys, settings, history)
        for (exchange, symbol, timeframe), values in (features or {}).items():
            _queue_features(pipe, keys, settings, exchange, symbol, timeframe, values)
        for exchange, symbol, timeframe, payload in signals:
            _queue_signal(pipe, keys, settings, exchange, symbol, timeframe, payload)
        for exchange, symbol, channel, score in scores:
            pipe.set(keys.quality(exchange, symbol, channel), encode(score),
                     ex=settings.features_ttl_s)  # fmt: skip
        try:
            await pipe.execute()
        except redis.RedisError as exc:
            raise _storage_error(exc, self.url) from None

    async def set_features(
        self, exchange: str, symbol: str, timeframe: str, values: Mapping[str, FeatureValue]
    ) -> None:
        pipe = self.client.pipeline(transaction=True)
        _queue_features(pipe, self.keys, self.settings, exchange, symbol, timeframe, values)
        await pipe.execute()

    async def write_history(self, events: Sequence[MarketEvent]) -> int:
        """Repaired history: closed bars fill holes inside cached keys, latest only forward."""
        return await self._write(_queue_history, events)

    async def _write(self, queue: _Queue, events: Sequence[MarketEvent]) -> int:
        """One transaction of the writes ``queue`` makes for ``events``; keys touched."""
        pipe = self.client.pipeline(transaction=True)
        touched = queue(pipe, self.keys, self.settings, events)
        try:
            await pipe.execute()
        except redis.RedisError as exc:
            raise _storage_error(exc, self.url) from None
        return touched

    async def push_signals(
        self, signals: Sequence[tuple[str, str, str, object]], kept: int = 100
    ) -> None:
        """Store and publish signals given as (exchange, symbol, timeframe, payload)."""
        pipe = self.client.pipeline(transaction=True)
        for exchange, symbol, timeframe, payload in signals:
            _queue_signal(
                pipe, self.keys, self.settings, exchange, symbol, timeframe, payload, kept
            )
        await pipe.execute()

    async def set_quality(self, exchange: str, symbol: str, channel: str, score: object) -> None:
        key = self.keys.quality(exchange, symbol, channel)
        await self.client.set(key, encode(score), ex=self.settings.features_ttl_s)

    async def latest_candles(
        self, exchange: str, symbol: str, timeframe: str, n: int
    ) -> list[Candle]:
        key = self.keys.candles(exchange, symbol, timeframe)
        raw: list[bytes] = await self.client.zrange(key, -n, -1)  # type: ignore[assignment]
        return _candles_from(raw)

    async def close(self) -> None:
        await self.client.aclose()


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0

    @property
    def hit_ratio(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0


CandleFallback = Callable[[str, str, str, int], list[Candle]]


class CachedReader:
    """Latest-candle reads: Redis first, the fallback (PostgreSQL) on a miss, then refill.

    A read is a hit when Redis holds all ``n`` candles asked for (or at least as many as the
    fallback could ever give, remembered per stream after the first miss).
    """

    def __init__(self, cache: RedisCache, fallback: CandleFallback) -> None:
        self.cache = cache
        self.fallback = fallback
        self.stats = CacheStats()
        self._known_short: dict[tuple[str, str, str], int] = {}

    def latest_candles(self, exchange: str, symbol: str, timeframe: str, n: int) -> list[Candle]:
        stream = (exchange, symbol, timeframe)
        n = min(n, self.cache.settings.candles_kept)
        cached = self.cache.latest_candles(exchange, symbol, timeframe, n)
        if len(cached) >= min(n, self._known_short.get(stream, n)) and cached:
            self.stats.hits += 1
            return cached
        self.stats.misses += 1
        rows = self.fallback(exchange, symbol, timeframe, n)
        if len(rows) < n:
            self._known_short[stream] = len(rows)
        if rows:
            self.cache.write_events(rows)
        return rows
