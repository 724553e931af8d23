from collections.abc import Iterable

from tickvault.model import Trade
from tickvault.pipeline.candles import CandleDeriver
from tickvault.trade_bars import CandleOutput

def add_trades(deriver: CandleDeriver, trades: Iterable[Trade]) -> CandleOutput: ...
