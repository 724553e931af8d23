"""Instruments from ``GET /api/v3/exchangeInfo``, the id <-> canonical symbol map, and the
rate-limit facts the I/O layer needs (the weight limit and the used-weight header).

Binance ids are base and quote glued together (``BTCUSDT``) and quotes vary in length (USDT,
FDUSD, BTC, EUR, TRY...), so the canonical ``BASE-QUOTE`` comes from ``baseAsset`` /
``quoteAsset`` and never from splitting the string. Stream names use the lowercase id.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import msgspec

from tickvault.errors import ExchangeError
from tickvault.exchanges.binance import schemas
from tickvault.model import Instrument, canonical_symbol, parse_decimal

EXCHANGE = "binance"


def parse_instruments(raw: bytes | str) -> list[Instrument]:
    """Every symbol of an exchangeInfo response; raises :class:`ExchangeError` when malformed."""
    info = _decode_info(raw)
    instruments: list[Instrument] = []
    for entry in info.symbols:
        tick_size = lot_size = None
        for item in entry.filters:
            try:
                if item.filter_type == "PRICE_FILTER" and item.tick_size is not None:
                    tick_size = parse_decimal(item.tick_size)
                elif item.filter_type == "LOT_SIZE" and item.step_size is not None:
                    lot_size = parse_decimal(item.step_size)
            except ValueError as exc:
                raise ExchangeError(
                    f"binance exchangeInfo: symbol {entry.symbol}: {item.filter_type}: {exc}"
                ) from None
        instruments.append(
            Instrument(
                exchange=EXCHANGE,
                exchange_symbol=entry.symbol,
                symbol=canonical_symbol(entry.base_asset, entry.quote_asset),
                base=entry.base_asset.upper(),
                quote=entry.quote_asset.upper(),
                tick_size=tick_size,
                lot_size=lot_size,
                status=entry.status.lower(),
                ws_symbol=entry.symbol.lower(),
            )
        )
    return instruments


def _decode_info(raw: bytes | str) -> schemas.ExchangeInfo:
    try:
        return schemas.EXCHANGE_INFO.decode(raw)
    except msgspec.DecodeError as exc:
        raise ExchangeError(f"binance exchangeInfo is malformed: {exc}") from None


def rate_limits(raw: bytes | str) -> list[schemas.RateLimit]:
    """The ``rateLimits`` of an exchangeInfo response (read them; never hard-code)."""
    return _decode_info(raw).rate_limits


_INTERVAL_S = {"SECOND": 1, "MINUTE": 60, "HOUR": 3600, "DAY": 86400}


def request_weight_limit(limits: Iterable[schemas.RateLimit]) -> tuple[int, int] | None:
    """``(limit, window_s)`` of the REQUEST_WEIGHT limit (e.g. ``(6000, 60)``), or None."""
    for item in limits:
        if item.rate_limit_type == "REQUEST_WEIGHT" and item.interval in _INTERVAL_S:
            return item.limit, item.interval_num * _INTERVAL_S[item.interval]
    return None


def used_weight(headers: Mapping[str, str], window: str = "1M") -> int | None:
    """Weight used in ``window`` as reported by ``X-MBX-USED-WEIGHT-<window>``, or None.

    Header names are matched case-insensitively (HTTP/2 lowercases them).
    """
    wanted = f"x-mbx-used-weight-{window.lower()}"
    for name, value in headers.items():
        if name.lower() == wanted:
            try:
                return int(value)
            except ValueError:
                return None
    return None


class SymbolMap:
    """Lookups from the ids Binance uses on the wire to instruments."""

    def __init__(self, instruments: Sequence[Instrument]) -> None:
        self.by_id: dict[str, Instrument] = {}
        self.by_stream: dict[str, Instrument] = {}
        self.by_symbol: dict[str, Instrument] = {}
        for item in instruments:
            self.by_id[item.exchange_symbol] = item
            self.by_stream[item.ws_symbol or item.exchange_symbol.lower()] = item
            self.by_symbol[item.symbol] = item


def stream_symbol(symbol: str) -> str:
    """Lowercase stream id from a canonical (``BTC-USDT``) or exchange (``BTCUSDT``) symbol.

    Binance spot ids are base + quote, so joining the canonical parts gives the id.
    """
    return symbol.replace("-", "").lower()
