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

    def check(self, events: Iterable[MarketEvent], gaps: list[Gap]) -> int:
        """Append a gap per jump found among ``events``; returns how many jumps."""
        jumps = 0
        for event in events:
            if type(event) is not Trade or not event.trade_id.isdigit():
                continue
            trade_id = int(event.trade_id)
            previous = self._last.get(event.symbol)
            if previous is not None and trade_id <= previous[0]:
                continue
            self._last[event.symbol] = (trade_id, event.ts_ns)
            if previous is not None and trade_id > previous[0] + 1:
                jumps += 1
                gaps.append(
                    Gap(
                        self.exchange, event.symbol, self.channel,
                        previous[1], event.ts_ns, "sequence_gap",
                    )
                )  # fmt: skip
        return jumps

    def reset(self) -> None:
        """After a disconnect: its gap already covers the trades missed meanwhile."""
        self._last.clear()
