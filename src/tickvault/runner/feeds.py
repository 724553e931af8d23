"""Collectors for the configured feeds, and the ingest queue they all write into.

Each :class:`~tickvault.exchanges.io.Collector` drains its own bounded queue in batches into an
:class:`IngestSink`, which puts the batch on the runner's single bounded ingest queue (one
``await`` per batch, never per event). When the stages fall behind, that queue fills, the
collectors' queues fill behind it and the WebSocket sessions wait: backpressure reaches the
sockets instead of memory.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

from tickvault.config import FeedSettings, Settings
from tickvault.errors import UsageError
from tickvault.exchanges.base import ExchangeAdapter, get_adapter
from tickvault.exchanges.io import (
    Collector,
    IoCounters,
    RateBudget,
    RedisBudget,
    RestClient,
    Sinks,
    WsPolicy,
    rest_policy,
    ws_policy,
)
from tickvault.exchanges.io.instruments import fetch_instruments
from tickvault.model import DecodeError, Gap, Instrument, MarketEvent

# Feeds whose book deltas cover the whole book while their snapshot event is cut to
# ``book_depth``: a consumer rebuilding books from the events (the runner's BookKeeper) needs
# the whole snapshot, so they are asked for this depth; the keeper stores the top levels only.
FULL_BOOK_VENUES = {"coinbase"}
FULL_BOOK_DEPTH = 1_000_000


@dataclass(slots=True)
class IngestItem:
    events: Sequence[MarketEvent] = ()
    errors: Sequence[DecodeError] = ()
    gaps: Sequence[Gap] = ()
    backfill: bool = False  # history (repairs, backfill): validated with its own state


class IngestSink:
    """The collector-facing side of the ingest queue (EventSink, GapSink and ErrorSink)."""

    def __init__(self, queue: asyncio.Queue[IngestItem | None]) -> None:
        self.queue = queue
        self.waits = 0  # puts that found the queue full

    async def _put(self, item: IngestItem) -> None:
        if self.queue.full():
            self.waits += 1
        await self.queue.put(item)

    async def write(self, events: Sequence[MarketEvent]) -> None:
        await self._put(IngestItem(events=events))

    async def flush(self) -> None:
        """Durability is the runner's drain, after every collector has stopped."""

    async def record_gaps(self, gaps: Sequence[Gap]) -> None:
        await self._put(IngestItem(gaps=gaps))

    async def quarantine(self, records: Sequence[DecodeError]) -> None:
        await self._put(IngestItem(errors=records))


@dataclass
class Feed:
    """One exchange's collection: its adapter, REST client, instruments and collector."""

    exchange: str
    settings: FeedSettings
    adapter: ExchangeAdapter
    rest: RestClient
    budget: RateBudget
    instruments: list[Instrument]
    collector: Collector
    counters: IoCounters = field(default_factory=IoCounters)

    @property
    def streams(self) -> list[tuple[str, str]]:
        """(symbol, channel) of every subscribed stream."""
        return [(i.symbol, c) for i in self.instruments for c in self.settings.channels]


def merge_feeds(feeds: Sequence[FeedSettings]) -> list[FeedSettings]:
    """One collection per exchange: symbols and channels of repeated entries are united."""
    merged: dict[str, FeedSettings] = {}
    for feed in feeds:
        known = merged.get(feed.exchange)
        if known is None:
            merged[feed.exchange] = feed.model_copy(deep=True)
            continue
        known.symbols = list(dict.fromkeys([*known.symbols, *feed.symbols]))
        known.channels = list(dict.fromkeys([*known.channels, *feed.channels]))
        known.book_depth = max(known.book_depth, feed.book_depth)
    return list(merged.values())


def require_feeds(settings: Settings) -> None:
    if not settings.feeds:
        raise UsageError(
            "no feeds configured: add [[feeds]] to tickvault.toml (exchange, symbols, channels) "
            "or run `tickvault run --sim`"
        )


async def open_feeds(
    settings: Settings,
    redis_url: str,
    ingest: IngestSink,
    *,
    collector_queue: int = 1000,
    collector_batch: int = 500,
    ws_policies: dict[str, WsPolicy] | None = None,
) -> list[Feed]:
    """Resolve instruments over REST and build a collector per exchange (not started)."""
    require_feeds(settings)
    feeds: list[Feed] = []
    try:
        for feed_settings in merge_feeds(settings.feeds):
            feeds.append(
                await _open_feed(
                    settings,
                    feed_settings,
                    redis_url,
                    ingest,
                    collector_queue,
                    collector_batch,
                    (ws_policies or {}).get(feed_settings.exchange),
                )
            )
    except BaseException:
        await close_feeds(feeds)
        raise
    return feeds


async def _open_feed(
    settings: Settings,
    feed: FeedSettings,
    redis_url: str,
    ingest: IngestSink,
    collector_queue: int,
    collector_batch: int,
    policy: WsPolicy | None,
) -> Feed:
    exchange = feed.exchange
    endpoints = settings.endpoints.get(exchange)
    if endpoints is None:
        raise UsageError(f"no endpoints configured for {exchange}")
    adapter = get_adapter(exchange)
    counters = IoCounters()
    rest_rules = rest_policy(exchange)
    budget = RedisBudget(
        redis_url,
        exchange,
        rest_rules.limit,
        rest_rules.window_s,
        key_prefix=settings.cache.key_prefix,
    )
    rest = RestClient(exchange, endpoints.rest_url, budget, rest_rules, counters=counters)
    try:
        instruments = await fetch_instruments(adapter, rest, feed.symbols)
    except BaseException:
        await rest.aclose()
        await budget.close()
        raise
    collector = Collector(
        adapter,
        instruments,
        feed.channels,
        Sinks(ingest, ingest, ingest),
        base_url=endpoints.ws_url,
        policy=policy or ws_policy(exchange),
        book_depth=FULL_BOOK_DEPTH if exchange in FULL_BOOK_VENUES else feed.book_depth,
        rest=rest,
        queue_size=collector_queue,
        batch_max=collector_batch,
        counters=counters,
    )
    return Feed(exchange, feed, adapter, rest, budget, instruments, collector, counters)


async def close_feeds(feeds: Sequence[Feed]) -> None:
    for feed in feeds:
        await feed.rest.aclose()
        close = getattr(feed.budget, "close", None)
        if close is not None:
            await close()
