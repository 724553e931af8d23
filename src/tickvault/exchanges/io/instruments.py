"""Instruments: each exchange's symbol list and precision (tick/lot size) from its REST
endpoint, mapped to canonical ``BASE-QUOTE`` by the adapter, stored in the instruments table.

:func:`load_instruments` is the one place that asks for the list. Besides parsing it, it

* upserts every listed instrument into the store when one is given (the ``instruments`` table:
  an unchanged row is not rewritten, a changed tick size is);
* applies the rate limit the exchange announces in the same answer (Binance
  ``exchangeInfo.rateLimits``) to the REST client's budget.

:func:`pick` then resolves the symbols a command asked for, by canonical symbol or by any of the
exchange's own ids (``BTCUSDT``, ``XXBTZUSDT``, ``XBT/USDT``).
"""

from __future__ import annotations

from collections.abc import Sequence

from tickvault.errors import UsageError
from tickvault.exchanges.base import ExchangeAdapter
from tickvault.exchanges.io.limits import announced_limit
from tickvault.exchanges.io.rest import RestClient
from tickvault.exchanges.io.sinks import InstrumentStore
from tickvault.model import Instrument


async def load_instruments(
    adapter: ExchangeAdapter, rest: RestClient, store: InstrumentStore | None = None
) -> list[Instrument]:
    """Every instrument the exchange lists (stored when ``store`` is given)."""
    response = await rest.get(adapter.instruments_request())
    listed = adapter.parse_instruments(response.text)
    limit = announced_limit(adapter, response.text)
    if limit is not None:
        rest.apply_limit(*limit)
    if store is not None and listed:
        await store.upsert_instruments(listed)
    return listed


def pick(exchange: str, listed: Sequence[Instrument], symbols: Sequence[str]) -> list[Instrument]:
    """The instruments for ``symbols`` (canonical or the exchange's own id), in the order given;
    raises ``UsageError`` naming the symbols the exchange does not list."""
    by_name: dict[str, Instrument] = {}
    for instrument in listed:
        for name in (instrument.exchange_symbol, *instrument.aliases, instrument.ws_symbol or ""):
            if name:
                by_name.setdefault(name.upper(), instrument)
    for instrument in listed:  # a canonical name wins over an alias spelled the same
        by_name[instrument.symbol.upper()] = instrument
    missing = [s for s in symbols if s.upper() not in by_name]
    if missing:
        raise UsageError(f"{exchange} does not list {', '.join(missing)}")
    return [by_name[s.upper()] for s in symbols]


async def fetch_instruments(
    adapter: ExchangeAdapter,
    rest: RestClient,
    symbols: Sequence[str],
    store: InstrumentStore | None = None,
) -> list[Instrument]:
    """:func:`load_instruments`, then :func:`pick` ``symbols``."""
    return pick(adapter.name, await load_instruments(adapter, rest, store), symbols)
