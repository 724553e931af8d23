"""Missed trades found from trade ids that count up by one per symbol (pure).

Binance aggregate-trade ids, Kraken v2 trade ids and Coinbase trade ids are contiguous per
market, so a jump means trades were lost on the way even when the connection stayed up (a
dropped frame). The jump becomes a ``sequence_gap`` on the trades channel, which the gap repair
fills from REST. Ids that are not integers (Kraken v1 has none) are not tracked; a repeated or
older id is left to the validator's duplicate check.
"""

from __future__ import annotations

from collections.abc import Iterable

from tickvault.model import Gap, MarketEvent, Trade


class TradeIdTracker:
    def __init__(self, exchange: str, channel: str = "trades") -> None:
        self.exchange = exchange
        self.channel = channel
        self._last: dict[str, tuple[int, int]] = {}  # symbol -> (trade id, ts_ns)

    def observe(self, symbol: str, trade_id: int, ts_ns: int) -> Gap | None:
        """Note one trade; the gap it reveals, if its id jumps past the last one + 1."""
        previous = self._last.get(symbol)
        if previous is not None and trade_id <= previous[0]:
            return None
        self._last[symbol] = (trade_id, ts_ns)
        if previous is None or trade_id == previous[0] + 1:
            return None
        return Gap(self.exchange, symbol, self.channel, previous[1], ts_ns, "sequence_gap")

    def check(self, events: Iterable[MarketEvent], gaps: list[Gap]) -> int:
        """Append a gap per jump found among ``events``; returns how many jumps."""
        jumps = 0
        for event in events:
            if type(event) is not Trade or not event.trade_id.isdigit():
                continue
            gap = self.observe(event.symbol, int(event.trade_id), event.ts_ns)
            if gap is not None:
                jumps += 1
                gaps.append(gap)
        return jumps

    def reset(self) -> None:
        """After a disconnect: its gap already covers the trades missed meanwhile."""
        self._last.clear()
