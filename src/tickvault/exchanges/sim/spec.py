"""Simulator settings and the names one canonical market has on each exchange.

A canonical symbol ``BASE-QUOTE`` becomes ``BTCUSDT`` (Binance), ``BTC-USDT`` (Coinbase) and
``XBTUSDT`` / ``XBT/USDT`` / ``BTC/USDT`` (Kraken pair key, v1 wsname, v2 symbol). Kraken keeps
its legacy ``X``/``Z`` prefixed keys (``XXBTZUSD``) for the pairs that have them, so connectors
meet the same naming mess as on the real exchange.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from tickvault.model import split_symbol

SIM_EXCHANGES: tuple[str, ...] = ("binance", "coinbase", "kraken")

# Starting prices and Kraken pair decimals of well-known bases; anything else starts at 100.
_START_PRICE: dict[str, int] = {"BTC": 60_000, "ETH": 3_000, "SOL": 150, "XRP": 1, "DOGE": 1}
_KRAKEN_PRICE_DECIMALS: dict[str, int] = {"BTC": 1, "ETH": 2}
# Kraken asset codes: legacy X (crypto) / Z (fiat) prefixed codes and altnames.
_KRAKEN_LEGACY: dict[str, str] = {
    "BTC": "XXBT",
    "ETH": "XETH",
    "LTC": "XLTC",
    "XRP": "XXRP",
    "XLM": "XXLM",
    "XMR": "XXMR",
    "ETC": "XETC",
    "ZEC": "XZEC",
    "DOGE": "XXDG",
    "USD": "ZUSD",
    "EUR": "ZEUR",
    "GBP": "ZGBP",
    "CAD": "ZCAD",
    "JPY": "ZJPY",
}
_KRAKEN_ALT: dict[str, str] = {"BTC": "XBT", "DOGE": "XDG"}


@dataclass(frozen=True, slots=True)
class MarketSpec:
    """One simulated market: canonical symbol on one exchange, with its ids and precisions."""

    exchange: str
    symbol: str
    base: str
    quote: str
    exchange_id: str  # REST id: BTCUSDT, BTC-USDT, XXBTZUSD
    ws_id: str  # WebSocket id: btcusdt, BTC-USDT, BTC/USD (v2)
    price_decimals: int  # tick = 10**-price_decimals
    qty_decimals: int
    start_price: int
    ts_resolution_us: int  # Binance publishes ms; the others µs
    kraken_altname: str = ""
    kraken_wsname: str = ""
    kraken_base: str = ""
    kraken_quote: str = ""


def market_spec(exchange: str, symbol: str) -> MarketSpec:
    base, quote = split_symbol(symbol)
    start = _START_PRICE.get(base, 100)
    price_decimals = 2 if start >= 10 else 4
    if exchange == "binance":
        return MarketSpec(
            exchange,
            symbol,
            base,
            quote,
            exchange_id=base + quote,
            ws_id=(base + quote).lower(),
            price_decimals=price_decimals,
            qty_decimals=8,
            start_price=start,
            ts_resolution_us=1000,
        )
    if exchange == "coinbase":
        return MarketSpec(
            exchange,
            symbol,
            base,
            quote,
            exchange_id=symbol,
            ws_id=symbol,
            price_decimals=price_decimals,
            qty_decimals=8,
            start_price=start,
            ts_resolution_us=1,
        )
    if exchange == "kraken":
        alt_base, alt_quote = _KRAKEN_ALT.get(base, base), _KRAKEN_ALT.get(quote, quote)
        code_base, code_quote = _KRAKEN_LEGACY.get(base, base), _KRAKEN_LEGACY.get(quote, quote)
        altname = alt_base + alt_quote
        # Old pairs keep their prefixed key (XXBTZUSD); newer ones are keyed by altname (XBTUSDT).
        legacy = base in _KRAKEN_LEGACY and quote in _KRAKEN_LEGACY
        return MarketSpec(
            exchange,
            symbol,
            base,
            quote,
            exchange_id=code_base + code_quote if legacy else altname,
            ws_id=f"{base}/{quote}",
            price_decimals=_KRAKEN_PRICE_DECIMALS.get(base, price_decimals),
            qty_decimals=8,
            start_price=start,
            ts_resolution_us=1,
            kraken_altname=altname,
            kraken_wsname=f"{alt_base}/{alt_quote}",
            kraken_base=code_base,
            kraken_quote=code_quote,
        )
    raise ValueError(f"unknown exchange {exchange!r}; known: {', '.join(SIM_EXCHANGES)}")


DEFAULT_TICK_S = 0.02
DEFAULT_BATCH_S = 0.02
TRADE_STAMPS = ("send", "spread")


@dataclass(slots=True)
class SimConfig:
    """Everything that shapes a simulator run. Same seed + same ``anchor_ns`` = same history."""

    symbols: list[str] = field(default_factory=lambda: ["BTC-USDT", "ETH-USDT"])
    # per-exchange override of ``symbols``
    exchange_symbols: dict[str, list[str]] = field(default_factory=dict)
    exchanges: tuple[str, ...] = SIM_EXCHANGES
    seed: int = 1
    host: str = "127.0.0.1"
    port_base: int = 0  # 0: ephemeral ports; else binance=base, coinbase=base+1, kraken=base+2
    rate: float = 1000.0  # live market events (trades + book level changes) per second, total
    trade_fraction: float = 0.3  # share of live events that are trades
    # Generator step: the events of one step are generated and published at its end.
    tick_s: float = DEFAULT_TICK_S
    # The trades' exchange times: "send" = the step's end, when they are generated and sent
    # (a real venue pushes a trade within milliseconds of matching; the socket then sees only
    # the step's own work); "spread" = evenly across the step, each then waiting up to tick_s
    # for its send (~tick_s/2 on average; before November 2026 the only way).
    trade_stamps: str = "send"
    # Channels that send the book or statistics as of now (Kraken book/ticker/ohlc, Coinbase
    # Advanced level2/ticker, Binance bookTicker) update once per batch_s, all steps merged:
    # their cost is per update, not per event, and does not grow with shorter steps.
    batch_s: float = DEFAULT_BATCH_S
    history_s: int = 7200  # REST history before the anchor
    history_trade_interval_ms: int = 500  # mean spacing of history trades
    anchor_ns: int | None = None  # end of history; None = start time floored to the minute
    book_levels: int = 60  # levels per side the simulated book holds
    ping_interval_s: float = 20.0  # Binance ping frames
    heartbeat_s: float = 1.0  # Kraken/Coinbase heartbeats
    kline_push_s: float = 2.0  # Binance kline stream cadence
    subscribe_timeout_s: float = 5.0  # Coinbase: subscribe within this or be disconnected
    rate_limits: bool = True
    binance_weight_limit: int = 6000  # REQUEST_WEIGHT per minute per IP
    binance_429s_before_ban: int = 3  # 429s answered in a window before the 418 ban
    binance_ban_s: float = 120.0  # first ban; doubles for repeat offenders
    coinbase_rps: float = 10.0
    coinbase_burst: float = 15.0
    kraken_rps: float = 1.0
    kraken_burst: float = 15.0
    truth_file: str | None = None  # JSONL ground truth written on stop
    # gc.freeze() what the generator holds every 2 s (long runs: no growing full-GC pauses) and
    # collect the young generation every 20 000 allocations instead of 700; for a process of its
    # own (``tickvault sim``), not a simulator inside another program
    freeze_gc: bool = False

    def symbols_for(self, exchange: str) -> list[str]:
        return list(self.exchange_symbols.get(exchange, self.symbols))


def market_seed(seed: int, exchange: str, symbol: str) -> int:
    """A stable per-market seed (``hash()`` is salted per process, so not that)."""
    digest = hashlib.sha256(f"{seed}:{exchange}:{symbol}".encode()).digest()
    return int.from_bytes(digest[:8], "big")
