"""The venues' per-trade and per-change message text, the part of fan-out that grows with the
event rate. Compiled by ``_render.pyx`` when the package is built (the same functions, same
text, tested equal); the ``*_python`` functions are the pure-Python originals and fallback.

``prices`` is a :class:`~tickvault.exchanges.sim.wire.FixedTable` (price text by tick count);
sizes are printed as they come (they rarely repeat). Trades are
:class:`~tickvault.exchanges.sim.market.SimTrade`, changes ``(is_bid, price, qty)``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from tickvault.exchanges.sim.market import SimTrade
from tickvault.exchanges.sim.wire import lots_formatter, rfc3339_us


def binance_trades_python(
    trades: Sequence[SimTrade], head: str, aggregate: bool, prices: Any, qty_decimals: int
) -> list[str]:
    """``@trade`` (``aggregate`` false) or ``@aggTrade`` payloads; ``head`` ends with ``"t":``
    or ``"a":`` (the event time and symbol are per tick)."""
    lots = lots_formatter(qty_decimals, 8)
    if aggregate:
        return [
            f'{head}{t.agg_id},"p":"{prices[t.price]}","q":"{lots(t.qty)}",'
            f'"f":{t.trade_id},"l":{t.trade_id},"T":{t.ts_us // 1000},'
            f'"m":{"true" if t.side == "sell" else "false"},"M":true}}'
            for t in trades
        ]
    return [
        f'{head}{t.trade_id},"p":"{prices[t.price]}","q":"{lots(t.qty)}",'
        f'"T":{t.ts_us // 1000},"m":{"true" if t.side == "sell" else "false"},"M":true}}'
        for t in trades
    ]


def coinbase_l2_python(
    changes: Sequence[tuple[bool, int, int]], ts: str, prices: Any, qty_decimals: int
) -> str:
    """The ``updates`` of an Advanced ``l2_data`` update, comma-joined."""
    lots = lots_formatter(qty_decimals)
    bid_head = f'{{"side":"bid","event_time":"{ts}","price_level":"'
    offer_head = f'{{"side":"offer","event_time":"{ts}","price_level":"'
    return ",".join([
        f'{bid_head if is_bid else offer_head}{prices[p]}","new_quantity":"{lots(q)}"}}'
        for is_bid, p, q in changes
    ])  # fmt: skip


def coinbase_trades_python(
    trades: Iterable[SimTrade], pid: str, prices: Any, qty_decimals: int
) -> str:
    """Advanced ``market_trades`` entries of ``trades`` in the order given, comma-joined."""
    lots = lots_formatter(qty_decimals)
    return ",".join([
        f'{{"trade_id":"{t.trade_id}","product_id":"{pid}","price":"{prices[t.price]}",'
        f'"size":"{lots(t.qty)}","side":"{"BUY" if t.side == "buy" else "SELL"}",'
        f'"time":"{rfc3339_us(t.ts_us)}"}}'
        for t in trades
    ])  # fmt: skip


def kraken_trades_python(
    trades: Iterable[SimTrade], symbol: str, prices: Any, qty_decimals: int
) -> str:
    """Kraken v2 ``trade`` entries, comma-joined."""
    lots = lots_formatter(qty_decimals)
    return ",".join([
        f'{{"symbol":"{symbol}","side":"{t.side}","price":{prices[t.price]},'
        f'"qty":{lots(t.qty)},"ord_type":"{"limit" if t.trade_id % 3 else "market"}",'
        f'"trade_id":{t.trade_id},"timestamp":"{rfc3339_us(t.ts_us)}"}}'
        for t in trades
    ])  # fmt: skip


def kraken_levels_python(levels: Iterable[tuple[int, int]], prices: Any, qty_decimals: int) -> str:
    """Kraken v2 book levels ``{"price":..,"qty":..}``, comma-joined."""
    lots = lots_formatter(qty_decimals)
    return ",".join([f'{{"price":{prices[p]},"qty":{lots(q)}}}' for p, q in levels])


try:  # the compiled twins (sim/_render.pyx), when the package was built with them
    from tickvault.exchanges.sim import _render as compiled_renderers
except ImportError:  # pragma: no cover - a source tree without the built extension
    compiled_renderers = None  # type: ignore[assignment]

if compiled_renderers is not None:
    binance_trades = compiled_renderers.binance_trades
    coinbase_l2 = compiled_renderers.coinbase_l2
    coinbase_trades = compiled_renderers.coinbase_trades
    kraken_trades = compiled_renderers.kraken_trades
    kraken_levels = compiled_renderers.kraken_levels
else:  # pragma: no cover - a source tree without the built extension
    binance_trades = binance_trades_python
    coinbase_l2 = coinbase_l2_python
    coinbase_trades = coinbase_trades_python
    kraken_trades = kraken_trades_python
    kraken_levels = kraken_levels_python
