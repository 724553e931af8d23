"""Types of the compiled generator ``_market.pyx`` (see there)."""

from tickvault.exchanges.sim.market import Market, Tick

def advance(
    market: Market, start_us: int, end_us: int, events: int, trade_fraction: float
) -> Tick: ...
def history(market: Market, start_us: int, end_us: int, mean_interval_us: int) -> None: ...
