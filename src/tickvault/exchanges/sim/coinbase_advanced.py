"""Coinbase Advanced Trade WebSocket feed (``advanced-trade-ws.coinbase.com``) of the simulated
Coinbase venue: ``level2`` (published on ``l2_data``), ``market_trades``, ``ticker``, ``candles``
(5-minute buckets, pushed each second) and ``heartbeats``. Every message carries the
connection's own ``sequence_num``, which also advances for messages a fault dropped, so a gap
is visible exactly as on a lossy real connection.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from tickvault.exchanges.sim.candles import current_bar
from tickvault.exchanges.sim.coinbase_rest import px, sz
from tickvault.exchanges.sim.hub import (
    Fanout,
    WsClient,
    subscribed_channels,
    track_subscription,
)
from tickvault.exchanges.sim.market import Market, SimTrade, Tick
from tickvault.exchanges.sim.render import coinbase_l2, coinbase_trades
from tickvault.exchanges.sim.wire import price_table, rfc3339_ns, rfc3339_us

ADVANCED_CHANNELS = {"level2": "l2_data", "market_trades": "market_trades", "ticker": "ticker",
                     "candles": "candles", "heartbeats": "heartbeats"}  # fmt: skip
CANDLE_US = 300 * 1_000_000


class AdvancedFeed:
    """Mixin of :class:`~tickvault.exchanges.sim.coinbase.CoinbaseVenue` for the Advanced feed."""

    if TYPE_CHECKING:  # provided by CoinbaseVenue / Venue
        subs: dict[tuple[str, str, str], set[WsClient]]
        markets: dict[str, Market]
        fanout: Fanout

        def now_us(self) -> int: ...

        def stats_for(self, market: Market) -> Any: ...

        def _products(self, client: WsClient, ids: Any) -> list[Market] | None: ...

    def _adv_send(
        self, clients: set[WsClient], market: Market | None, channel: str, events: str
    ) -> None:
        head = f'{{"channel":"{channel}","client_id":"","timestamp":"{rfc3339_ns(self.now_us())}","sequence_num":'
        tail = f',"events":{events}}}'

        def build(client: WsClient) -> str:
            text = f"{head}{client.seq}{tail}"
            client.seq += 1
            return text

        def skip(client: WsClient) -> None:
            client.seq += 1

        self.fanout.send(
            clients, market.spec.symbol if market else None, channel, build, on_drop=skip
        )

    def _adv_trades(self, market: Market, trades: list[SimTrade]) -> str:
        return coinbase_trades(
            reversed(trades),  # newest first, as the real feed
            market.spec.exchange_id,
            price_table(market.spec.price_decimals),
            market.spec.qty_decimals,
        )

    def _adv_ticker(self, market: Market, kind: str) -> str:
        stats, last = self.stats_for(market), market.trades[-1]
        bids, asks = market.top(1)
        change = (last.price - stats.open) * 100 / stats.open if stats.open else 0.0
        return orjson.dumps([{"type": kind, "tickers": [{
            "type": "ticker", "product_id": market.spec.exchange_id, "price": px(market, last.price),
            "volume_24_h": sz(market, stats.volume), "low_24_h": px(market, stats.low),
            "high_24_h": px(market, stats.high), "low_52_w": px(market, stats.low),
            "high_52_w": px(market, stats.high), "price_percent_chg_24_h": f"{change:.8f}",
            "best_bid": px(market, bids[0][0]), "best_bid_quantity": sz(market, bids[0][1]),
            "best_ask": px(market, asks[0][0]), "best_ask_quantity": sz(market, asks[0][1]),
        }]}]).decode()  # fmt: skip

    def _candles_event(self, market: Market, now_us: int, kind: str = "update") -> str:
        rows = current_bar(market, CANDLE_US, now_us)
        return orjson.dumps([{"type": kind, "candles": [{
            "start": str(b.open_us // 1_000_000), "high": px(market, b.high), "low": px(market, b.low),
            "open": px(market, b.open), "close": px(market, b.close), "volume": sz(market, b.volume),
            "product_id": market.spec.exchange_id} for b in rows]}]).decode()  # fmt: skip

    def _advanced_request(self, client: WsClient, kind: str, request: dict[str, Any]) -> None:
        channel = request.get("channel")
        if channel not in ADVANCED_CHANNELS:
            client.push(
                orjson.dumps(
                    {
                        "type": "error",
                        "message": f"Failed to subscribe: unknown channel {channel!r}",
                    }
                ).decode()
            )
            return
        ids = request.get("product_ids") or ([] if channel == "heartbeats" else None)
        markets = (
            list(self.markets.values())
            if channel == "heartbeats" and not ids
            else self._products(client, ids)
        )
        if markets is None:
            return
        for market in markets:
            key = ("adv", channel, market.spec.exchange_id)
            track_subscription(self.subs, client, key, market.spec.symbol, kind == "subscribe")
        summary = subscribed_channels(client)
        self._adv_send(
            {client},
            None,
            "subscriptions",
            orjson.dumps([{"subscriptions": summary}]).decode(),
        )
        if kind != "subscribe":
            return
        for market in markets:
            out = ADVANCED_CHANNELS[channel]
            if channel == "level2":
                bids, asks = market.top(100_000)
                updates = [
                    {
                        "side": "bid",
                        "event_time": "1970-01-01T00:00:00Z",
                        "price_level": px(market, p),
                        "new_quantity": sz(market, q),
                    }
                    for p, q in bids
                ]
                updates += [
                    {
                        "side": "offer",
                        "event_time": "1970-01-01T00:00:00Z",
                        "price_level": px(market, p),
                        "new_quantity": sz(market, q),
                    }
                    for p, q in asks
                ]
                events = orjson.dumps(
                    [
                        {
                            "type": "snapshot",
                            "product_id": market.spec.exchange_id,
                            "updates": updates,
                        }
                    ]
                ).decode()
            elif channel == "market_trades":
                events = f'[{{"type":"snapshot","trades":[{self._adv_trades(market, market.trades[-50:])}]}}]'
            elif channel == "ticker" and market.trades:
                events = self._adv_ticker(market, "snapshot")
            elif channel == "candles":
                events = self._candles_event(market, self.now_us(), "snapshot")
            else:
                continue
            self._adv_send({client}, market, out, events)

    def _advanced_step(self, market: Market, tick: Tick) -> None:
        """``market_trades``: every generator step."""
        if tick.trades:
            trades = self.subs.get(("adv", "market_trades", market.spec.exchange_id))
            if trades:
                self._adv_send(
                    trades,
                    market,
                    "market_trades",
                    f'[{{"type":"update","trades":[{self._adv_trades(market, tick.trades)}]}}]',
                )

    def _advanced_batch(self, market: Market, tick: Tick) -> None:
        """``level2`` (every change since the last batch) and ``ticker``: every batch."""
        pid = market.spec.exchange_id
        l2 = self.subs.get(("adv", "level2", pid))
        if l2 and tick.changes:
            prices = price_table(market.spec.price_decimals)
            ts = rfc3339_us(tick.ts_us)
            updates = coinbase_l2(tick.changes, ts, prices, market.spec.qty_decimals)
            self._adv_send(
                l2,
                market,
                "l2_data",
                f'[{{"type":"update","product_id":"{pid}","updates":[{updates}]}}]',
            )
        if tick.trades:
            tickers = self.subs.get(("adv", "ticker", pid))
            if tickers:
                self._adv_send(tickers, market, "ticker", self._adv_ticker(market, "update"))
