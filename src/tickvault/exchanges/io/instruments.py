"""Instruments of an exchange, fetched over REST and picked by canonical symbol."""

from __future__ import annotations

from collections.abc import Sequence

from tickvault.errors import UsageError
from tickvault.exchanges.base import ExchangeAdapter
from tickvault.exchanges.io.rest import RestClient
from tickvault.model import Instrument


async def fetch_instruments(
    adapter: ExchangeAdapter, rest: RestClient, symbols: Sequence[str]
) -> list[Instrument]:
    """The instruments for ``symbols`` (canonical ``BASE-QUOTE`` or the exchange's own id), in
    the order given; raises ``UsageError`` naming the symbols the exchange does not list."""
    response = await rest.get(adapter.instruments_request())
    listed = adapter.parse_instruments(response.text)
    by_name: dict[str, Instrument] = {}
    for instrument in listed:
        for name in (instrument.exchange_symbol, *instrument.aliases, instrument.symbol):
            by_name[name.upper()] = instrument
    missing = [s for s in symbols if s.upper() not in by_name]
    if missing:
        raise UsageError(f"{adapter.name} does not list {', '.join(missing)}")
    return [by_name[s.upper()] for s in symbols]
