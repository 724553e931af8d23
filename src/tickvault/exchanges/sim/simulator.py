"""The simulator: seeded markets, one HTTP+WebSocket server per exchange, the generator loop,
fault injection and the ground truth.

    async with Simulator(SimConfig(symbols=["BTC-USDT"], rate=5000)) as sim:
        sim.endpoints["binance"].rest_url   # http://127.0.0.1:<port>
        sim.inject(Fault("kraken", "bad_checksum", count=1))
        sim.truth_trades("binance", "BTC-USDT")
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from bisect import bisect_left
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from tickvault.config import ExchangeEndpoints
from tickvault.errors import UsageError
from tickvault.exchanges.sim.binance import BinanceVenue
from tickvault.exchanges.sim.candles import bars
from tickvault.exchanges.sim.coinbase import CoinbaseVenue
from tickvault.exchanges.sim.faults import FAULT_KINDS, Fault, FaultBox
from tickvault.exchanges.sim.kraken import KrakenVenue
from tickvault.exchanges.sim.market import Market, Tick
from tickvault.exchanges.sim.spec import TRADE_STAMPS, SimConfig, market_seed, market_spec
from tickvault.exchanges.sim.venue import Venue, json_response
from tickvault.exchanges.sim.wire import fixed
from tickvault.model import TIMEFRAMES

VENUES: dict[str, type[Venue]] = {
    "binance": BinanceVenue,
    "coinbase": CoinbaseVenue,
    "kraken": KrakenVenue,
}
_INCLUDE_EMPTY = {"binance": True, "coinbase": False, "kraken": True}
# How often what the generator holds is moved out of the garbage collector's sight.
FREEZE_INTERVAL_US = 2_000_000
# Allocations between young-generation collections in a simulator process of its own (Python's
# default is 700): each step allocates thousands of short-lived change tuples and trades, and
# collecting every 700 of them was about a tenth of the simulator's CPU at 40 000 events/s.
GC_YOUNG_THRESHOLD = 20_000


class Simulator:
    def __init__(self, config: SimConfig | None = None) -> None:
        self.config = config or SimConfig()
        if self.config.trade_stamps not in TRADE_STAMPS:
            raise UsageError(f"trade_stamps must be one of {TRADE_STAMPS}")
        unknown = [e for e in self.config.exchanges if e not in VENUES]
        if unknown:
            raise UsageError(f"unknown exchange(s) {unknown}; known: {', '.join(VENUES)}")
        self.faults = FaultBox()
        now_ns = time.time_ns()
        anchor = self.config.anchor_ns
        self.anchor_us = now_ns // 60_000_000_000 * 60_000_000 if anchor is None else anchor // 1000
        self.markets: dict[str, dict[str, Market]] = {}
        self.venues: dict[str, Venue] = {}
        self.endpoints: dict[str, ExchangeEndpoints] = {}
        self.events = 0
        self.ticks = 0
        self._runners: list[web.AppRunner] = []
        self._task: asyncio.Task[None] | None = None
        self._carry: dict[tuple[str, str], float] = {}
        # per market: what the steps since the last batch produced, merged (``Venue.on_batch``)
        self._pending: dict[tuple[str, str], tuple[Market, Tick]] = {}
        self._next_batch_us = 0
        self.rate = self.config.rate

    # -- life cycle ------------------------------------------------------------------------
    def _build_markets(self) -> None:
        cfg = self.config
        start_us = self.anchor_us - cfg.history_s * 1_000_000
        for exchange in cfg.exchanges:
            self.markets[exchange] = {}
            for symbol in cfg.symbols_for(exchange):
                try:
                    spec = market_spec(exchange, symbol)
                except ValueError as exc:
                    raise UsageError(str(exc)) from None
                market = Market(spec, market_seed(cfg.seed, exchange, symbol), cfg.book_levels)
                market.history(start_us, self.anchor_us, cfg.history_trade_interval_ms * 1000)
                if not market.trades:  # REST "last trade" fields need one
                    market.history(self.anchor_us - 1_000_000, self.anchor_us, 100_000)
                self.markets[exchange][symbol] = market

    async def start(self) -> None:
        self._build_markets()
        cfg = self.config
        for index, exchange in enumerate(cfg.exchanges):
            venue = VENUES[exchange](self)
            venue.app.add_routes(self._control_routes(exchange))
            runner = web.AppRunner(venue.app, access_log=None, handle_signals=False)
            await runner.setup()
            port = cfg.port_base + index if cfg.port_base else 0
            site = web.TCPSite(runner, cfg.host, port)
            await site.start()
            bound = runner.addresses[0][1]
            self._runners.append(runner)
            self.venues[exchange] = venue
            self.endpoints[exchange] = ExchangeEndpoints(
                rest_url=f"http://{cfg.host}:{bound}", ws_url=f"ws://{cfg.host}:{bound}"
            )
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for venue in self.venues.values():
            for client in list(venue.clients):
                await client.close()
        for runner in self._runners:
            await runner.cleanup()
        self._runners.clear()
        if self.config.truth_file:
            self.write_truth(Path(self.config.truth_file))

    async def __aenter__(self) -> Simulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- generator -------------------------------------------------------------------------
    async def _run(self) -> None:
        cfg = self.config
        last_us = max(time.time_ns() // 1000, self.anchor_us)
        frozen_us = last_us
        if cfg.freeze_gc:
            gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
        loop = asyncio.get_running_loop()
        due = loop.time()
        while True:
            # Steps on a fixed cadence (a sleep of tick_s after each step's work stretched the
            # period by that work, and every trade's wait with it). Behind schedule: yield to
            # the sockets and step at once, without a burst of catch-up steps.
            due += cfg.tick_s
            delay = due - loop.time()
            if delay < 0:
                due -= delay
            await asyncio.sleep(max(0.0, delay))
            now_us = max(time.time_ns() // 1000, last_us + 1)
            self.step(last_us, now_us)
            last_us = now_us
            if cfg.freeze_gc and now_us - frozen_us >= FREEZE_INTERVAL_US:
                # Every trade ever generated is kept (the ground truth): without this, each full
                # collection walks millions of them, a pause that grew past 0.5 s at 40 000 ev/s.
                gc.freeze()
                frozen_us = now_us

    def step(self, start_us: int, end_us: int) -> None:
        """One generator step: events for (start_us, end_us] on every market, then fan-out:
        ``Venue.on_step`` now, ``Venue.on_batch`` with the steps merged once per ``batch_s``."""
        markets = [(e, m) for e, per in self.markets.items() for m in per.values()]
        pending = self._pending
        share = self.rate * (end_us - start_us) / 1e6 / max(1, len(markets))
        # "send": every trade of the step at its end (µs venues: end, end + 1, ...)
        stamp_from = end_us if self.config.trade_stamps == "send" else start_us
        self.ticks += 1
        for exchange, market in markets:
            key = (exchange, market.spec.symbol)
            if self.faults.active(exchange, "stall", market.spec.symbol):
                continue
            wanted = self._carry.get(key, 0.0) + share
            events = int(wanted)
            self._carry[key] = wanted - events
            if events == 0 and not market.pending_bad:
                continue
            tick = market.advance(
                stamp_from, end_us, max(events, len(market.pending_bad)), self.config.trade_fraction
            )
            self.events += events
            self.venues[exchange].on_step(market, tick)
            merged = pending.get(key)
            if merged is None:
                pending[key] = (market, tick)
            else:
                merged_tick = merged[1]
                merged_tick.ts_us = tick.ts_us
                merged_tick.trades += tick.trades
                merged_tick.changes += tick.changes
                merged_tick.last_update_id = tick.last_update_id
        # a batch is due from half a step before its time on (steps jitter around the cadence)
        if 2 * end_us + (end_us - start_us) >= 2 * self._next_batch_us:
            batch_us = int(self.config.batch_s * 1_000_000)
            self._next_batch_us += batch_us
            if self._next_batch_us <= end_us:  # behind (or the first batch): from now on
                self._next_batch_us = end_us + batch_us
            for (exchange, _), (market, tick) in pending.items():
                self.venues[exchange].on_batch(market, tick)
            pending.clear()
        for venue in self.venues.values():
            venue.on_timer(end_us)

    # -- faults ----------------------------------------------------------------------------
    def inject(self, fault: Fault | dict[str, Any]) -> Fault:
        """Arm a fault (see ``faults.FAULT_KINDS``); immediate ones act now."""
        if isinstance(fault, dict):
            fault = Fault.from_json(fault)
        else:
            fault.validate()
        if fault.exchange not in self.venues:
            raise UsageError(f"exchange {fault.exchange!r} is not simulated in this run")
        if fault.symbol is not None and fault.symbol not in self.markets[fault.exchange]:
            raise UsageError(f"symbol {fault.symbol!r} is not simulated on {fault.exchange}")
        if fault.kind == "drop_connection":
            venue = self.venues[fault.exchange]
            asyncio.get_running_loop().create_task(
                venue.drop_connections(fault.symbol, fault.count)
            )
            self.faults.applied[(fault.exchange, fault.kind)] += 1
            return fault
        if fault.kind == "bad_values":
            for market in self.markets[fault.exchange].values():
                if fault.symbol in (None, market.spec.symbol):
                    market.pending_bad.extend([fault.mode] * (fault.count or 1))
            self.faults.applied[(fault.exchange, fault.kind)] += fault.count or 1
            return fault
        if fault.kind in ("stall", "ban_418"):
            self.faults.applied[(fault.exchange, fault.kind)] += 1
        self.faults.arm(fault)
        return fault

    def clear_faults(self) -> None:
        """Disarm every fault, including bad values queued for trades not yet generated."""
        self.faults.clear()
        for per_exchange in self.markets.values():
            for market in per_exchange.values():
                market.pending_bad.clear()

    # -- ground truth ----------------------------------------------------------------------
    def market(self, exchange: str, symbol: str) -> Market:
        try:
            return self.markets[exchange][symbol]
        except KeyError:
            raise UsageError(f"{exchange}/{symbol} is not simulated") from None

    def _truth_window(
        self, market: Market, since_ns: int | None, until_ns: int | None
    ) -> tuple[int, int]:
        """Index range of ``market.trades`` with ts in [since_ns, until_ns). trade_ts is sorted:
        bisect the window instead of scanning every trade (this runs on the generator's loop,
        and a long run holds millions of trades)."""
        ts = market.trade_ts
        lo = 0 if since_ns is None else bisect_left(ts, -(-since_ns // 1000))
        hi = len(ts) if until_ns is None else bisect_left(ts, -(-until_ns // 1000))
        return lo, max(lo, hi)

    def truth_trades(
        self, exchange: str, symbol: str, since_ns: int | None = None, until_ns: int | None = None
    ) -> list[dict[str, Any]]:
        """Every trade generated, as the venue published it (ts at the venue's resolution)."""
        market = self.market(exchange, symbol)
        pd, qd = market.spec.price_decimals, market.spec.qty_decimals
        lo, hi = self._truth_window(market, since_ns, until_ns)
        return [
            {"trade_id": str(t.trade_id), "ts_ns": t.ts_us * 1000, "price": fixed(t.price, pd),
             "size": fixed(t.qty, qd), "side": t.side, "injected": t.injected}
            for t in market.trades[lo:hi]
        ]  # fmt: skip

    def truth_count(
        self, exchange: str, symbol: str, since_ns: int | None = None, until_ns: int | None = None
    ) -> int:
        """How many trades ``truth_trades`` would return, without building them (benchmarks
        polling for a window to be stored)."""
        lo, hi = self._truth_window(self.market(exchange, symbol), since_ns, until_ns)
        return hi - lo

    def truth_candles(
        self, exchange: str, symbol: str, timeframe: str, since_ns: int, until_ns: int
    ) -> list[dict[str, Any]]:
        """Bars as the venue serves them (Coinbase omits empty intervals, the others do not)."""
        if timeframe not in TIMEFRAMES:
            raise UsageError(f"unknown timeframe {timeframe!r}")
        market = self.market(exchange, symbol)
        pd, qd = market.spec.price_decimals, market.spec.qty_decimals
        tf_us = TIMEFRAMES[timeframe] * 1_000_000
        now_us = time.time_ns() // 1000
        rows = bars(market, tf_us, since_ns // 1000, until_ns // 1000, _INCLUDE_EMPTY[exchange])
        return [
            {"open_ns": b.open_us * 1000, "open": fixed(b.open, pd), "high": fixed(b.high, pd),
             "low": fixed(b.low, pd), "close": fixed(b.close, pd), "volume": fixed(b.volume, qd),
             "trade_count": b.count, "closed": b.open_us + tf_us <= now_us}
            for b in rows
        ]  # fmt: skip

    def truth_book(self, exchange: str, symbol: str, depth: int = 100_000) -> dict[str, Any]:
        market = self.market(exchange, symbol)
        pd, qd = market.spec.price_decimals, market.spec.qty_decimals
        bids, asks = market.top(depth)
        return {
            "bids": [[fixed(p, pd), fixed(q, qd)] for p, q in bids],
            "asks": [[fixed(p, pd), fixed(q, qd)] for p, q in asks],
            "update_id": market.update_id,
            "sequence": market.sequence,
        }

    def write_truth(self, path: Path) -> None:
        """JSONL: one line per trade, then one per final book."""
        with path.open("wb") as out:
            for exchange, per in self.markets.items():
                for symbol in per:
                    for row in self.truth_trades(exchange, symbol):
                        out.write(
                            orjson.dumps(
                                {"kind": "trade", "exchange": exchange, "symbol": symbol, **row}
                            )
                            + b"\n"
                        )
                    book = self.truth_book(exchange, symbol)
                    out.write(
                        orjson.dumps(
                            {"kind": "book", "exchange": exchange, "symbol": symbol, **book}
                        )
                        + b"\n"
                    )

    def stats(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "ticks": self.ticks,
            "rate": self.rate,
            "venues": {name: venue.stats() for name, venue in self.venues.items()},
            "faults_applied": {f"{e}:{k}": n for (e, k), n in self.faults.applied.items()},
        }

    # -- control API -----------------------------------------------------------------------
    def _control_routes(self, exchange: str) -> list[web.RouteDef]:
        async def get_faults(request: web.Request) -> web.Response:
            return json_response({
                "armed": [f.to_json() for f in self.faults.faults],
                "applied": {f"{e}:{k}": n for (e, k), n in self.faults.applied.items()},
                "kinds": FAULT_KINDS,
            })  # fmt: skip

        async def post_fault(request: web.Request) -> web.Response:
            try:
                body = await request.json()
                faults = body if isinstance(body, list) else [body]
                armed = [self.inject(Fault.from_json(f, exchange)) for f in faults]
            except (UsageError, ValueError, TypeError) as exc:
                return json_response({"error": str(exc)}, 400)
            return json_response({"armed": [f.to_json() for f in armed]})

        async def clear_faults(request: web.Request) -> web.Response:
            self.clear_faults()
            return json_response({"cleared": True})

        async def truth(request: web.Request) -> web.Response:
            q = request.query
            try:
                ex, symbol, kind = q.get("exchange", exchange), q["symbol"], q.get("kind", "trades")
                since = int(q["since_ns"]) if "since_ns" in q else None
                until = int(q["until_ns"]) if "until_ns" in q else None
                if kind == "trades":
                    return json_response(self.truth_trades(ex, symbol, since, until))
                if kind == "candles":
                    return json_response(self.truth_candles(
                        ex, symbol, q.get("timeframe", "1m"), since or 0, until or time.time_ns()))  # fmt: skip
                if kind == "book":
                    return json_response(self.truth_book(ex, symbol))
                if kind == "count":
                    return json_response({"count": self.truth_count(ex, symbol, since, until)})
                raise UsageError(f"unknown kind {kind!r}: trades, count, candles, book")
            except (KeyError, ValueError, UsageError) as exc:
                return json_response({"error": str(exc)}, 400)

        async def info(request: web.Request) -> web.Response:
            return json_response({
                "endpoints": {k: v.model_dump() for k, v in self.endpoints.items()},
                "symbols": {e: list(per) for e, per in self.markets.items()},
                "anchor_ns": self.anchor_us * 1000, "seed": self.config.seed, **self.stats(),
                "cpu_s": time.process_time(),  # this process's CPU, read with the counters
            })  # fmt: skip

        async def set_rate(request: web.Request) -> web.Response:
            body = await request.json()
            self.rate = float(body["rate"])
            return json_response({"rate": self.rate})

        return [
            web.get("/_sim/faults", get_faults),
            web.post("/_sim/faults", post_fault),
            web.delete("/_sim/faults", clear_faults),
            web.get("/_sim/truth", truth),
            web.get("/_sim/info", info),
            web.post("/_sim/rate", set_rate),
        ]
