"""Types of the compiled renderers ``_render.pyx`` (twins of ``render.py``)."""

from collections.abc import Iterable, Sequence
from typing import Any

from tickvault.exchanges.sim.market import SimTrade

def binance_trades(
    trades: Sequence[SimTrade], head: str, aggregate: bool, prices: Any, qty_decimals: int
) -> list[str]: ...
def coinbase_l2(
    changes: Sequence[tuple[bool, int, int]], ts: str, prices: Any, qty_decimals: int
) -> str: ...
def coinbase_trades(
    trades: Iterable[SimTrade], pid: str, prices: Any, qty_decimals: int
) -> str: ...
def kraken_trades(
    trades: Iterable[SimTrade], symbol: str, prices: Any, qty_decimals: int
) -> str: ...
def kraken_levels(levels: Iterable[tuple[int, int]], prices: Any, qty_decimals: int) -> str: ...
