"""``tickvault run --sim``: the in-process simulator, and settings pointing every feed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from tickvault.config import FeedSettings, Settings
from tickvault.exchanges.sim import SimConfig, Simulator
from tickvault.model import EXCHANGES

DEFAULT_SYMBOLS = ("BTC-USDT", "ETH-USDT")
ALL_CHANNELS: list[str] = ["trades", "book", "candles", "ticker"]
# Second bars close many times in a minute-long run, so it ends with features and signals.
SIM_EXTRA_TIMEFRAMES = ("1s", "5s", "15s")


def sim_feeds(settings: Settings, symbols: Sequence[str] | None) -> list[FeedSettings]:
    """The configured feeds; without any (or with ``--symbols``): every exchange, every channel."""
    if symbols is None and settings.feeds:
        return [feed.model_copy(deep=True) for feed in settings.feeds]
    chosen = list(symbols or DEFAULT_SYMBOLS)
    return [
        FeedSettings(exchange=e, symbols=chosen, channels=ALL_CHANNELS)  # type: ignore[arg-type]
        for e in EXCHANGES
    ]


@asynccontextmanager
async def simulated(
    settings: Settings,
    *,
    rate: float,
    symbols: Sequence[str] | None = None,
    seed: int = 1,
    history_s: int = 600,
) -> AsyncIterator[tuple[Settings, Simulator]]:
    """Start the simulator; yield settings whose feeds and endpoints point at it."""
    feeds = sim_feeds(settings, symbols)
    per_exchange: dict[str, list[str]] = {}
    for feed in feeds:
        per_exchange.setdefault(feed.exchange, [])
        per_exchange[feed.exchange] += [
            s for s in feed.symbols if s not in per_exchange[feed.exchange]
        ]
    config = SimConfig(
        symbols=sorted({s for syms in per_exchange.values() for s in syms}),
        exchange_symbols=per_exchange,
        exchanges=tuple(per_exchange),
        rate=rate,
        seed=seed,
        history_s=history_s,
    )
    sim = Simulator(config)
    await sim.start()
    try:
        timeframes = list(dict.fromkeys([*SIM_EXTRA_TIMEFRAMES, *settings.timeframes]))
        update = {
            "feeds": feeds,
            "endpoints": {**settings.endpoints, **sim.endpoints},
            "timeframes": timeframes,
        }
        yield settings.model_copy(update=update), sim
    finally:
        await sim.stop()
