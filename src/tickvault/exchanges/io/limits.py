"""Rate-limit facts that arrive inside exchange answers, read for the REST client.

* Binance announces its REQUEST_WEIGHT limit in ``exchangeInfo.rateLimits`` (it has changed
  before: 1200, then 6000 per minute). The adapter parses it (``weight_limit``); the instruments
  loader hands it to :meth:`RestClient.apply_limit`, so the budget follows the exchange, not a
  constant.
* Kraken answers throttling with HTTP 200 and ``{"error": ["EGeneral:Too many requests"]}``.
  Treated as a 429: the whole exchange pauses, for every process sharing the budget.

Looked up by exchange name (and an optional adapter method), so the adapters stay pure and the
contract in ``exchanges/base.py`` does not grow for one venue's habit.
"""

from __future__ import annotations

from collections.abc import Callable

from tickvault.errors import RateLimitError
from tickvault.exchanges.base import ExchangeAdapter

Throttle = Callable[[str], float | None]  # body -> seconds to pause when it is a throttle answer


def _kraken_throttle(body: str) -> float | None:
    from tickvault.exchanges.kraken import rest

    if not rest.is_rate_limited(body):
        return None
    try:
        rest.result_of(body)
    except RateLimitError as exc:
        return exc.retry_after_s
    return None  # pragma: no cover - is_rate_limited implies result_of raises


_THROTTLES: dict[str, Throttle] = {"kraken": _kraken_throttle}


def in_band_throttle(exchange: str) -> Throttle | None:
    """How to recognise a rate-limit answer delivered with HTTP 200, for venues that do that."""
    return _THROTTLES.get(exchange)


def announced_limit(adapter: ExchangeAdapter, instruments_body: str) -> tuple[int, float] | None:
    """``(weight limit, window_s)`` the exchange states in its instruments answer, if it does
    (adapters that can read one expose ``weight_limit(raw)``)."""
    reader: Callable[[str], tuple[int, int] | None] | None = getattr(adapter, "weight_limit", None)
    if reader is None:
        return None
    try:
        found = reader(instruments_body)
    except ValueError:  # msgspec.DecodeError included: a malformed body states nothing
        return None
    if found is None or found[0] < 1 or found[1] <= 0:
        return None
    return found[0], float(found[1])
