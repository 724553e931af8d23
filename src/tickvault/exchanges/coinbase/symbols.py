"""Coinbase instruments from the REST product lists, and product id -> canonical symbol.

Canonical ``BASE-QUOTE`` always comes from the product's currency fields, never from splitting
the id: Exchange lists ids such as ``BTCAUCTION-USD`` and Advanced lists derivatives such as
``BIP-20DEC30-CDE``.

USD vs USDC (Advanced Trade): Coinbase runs one book for ``BTC-USD`` and ``BTC-USDC``; the
Advanced market-data channels only publish the ``-USD`` id (``BTC-USDC`` carries
``alias: "BTC-USD"``). tickvault keeps them as two canonical markets, named by their own quote
currency, and subscribes a ``-USDC`` market through its alias: its ``ws_symbol`` is the USD id,
so data arriving as ``BTC-USD`` is labelled ``BTC-USDC`` when only the USDC market is configured.
When both are configured the shared data is stored once, under ``BTC-USD``.
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from tickvault.errors import ExchangeError
from tickvault.exchanges.coinbase.schemas import AdvProduct, AdvProducts, ExProduct
from tickvault.model import Instrument, canonical_symbol, parse_decimal

EXCHANGE = "coinbase"

_ex_products = msgspec.json.Decoder(list[ExProduct])
_adv_products = msgspec.json.Decoder(AdvProducts)


def _status(status: str, disabled: bool, cancel_only: bool) -> str:
    if status.lower() != "online":
        return status.lower() or "unknown"
    if disabled:
        return "disabled"
    if cancel_only:
        return "cancel_only"
    return "trading"


def exchange_instrument(product: ExProduct) -> Instrument:
    """An Exchange ``/products`` entry: tick = ``quote_increment``, lot = ``base_increment``."""
    return Instrument(
        exchange=EXCHANGE,
        exchange_symbol=product.id,
        symbol=canonical_symbol(product.base_currency, product.quote_currency),
        base=product.base_currency.upper(),
        quote=product.quote_currency.upper(),
        tick_size=parse_decimal(product.quote_increment),
        lot_size=parse_decimal(product.base_increment),
        status=_status(product.status, product.trading_disabled, product.cancel_only),
    )


def advanced_instrument(product: AdvProduct) -> Instrument:
    """An Advanced ``/market/products`` entry: tick = ``price_increment``, lot =
    ``base_increment``; ``alias`` (USDC -> USD) becomes the WebSocket id."""
    alias = product.alias or None
    aliases = tuple(a for a in ((alias,) if alias else ()) + tuple(product.alias_to) if a)
    return Instrument(
        exchange=EXCHANGE,
        exchange_symbol=product.product_id,
        symbol=canonical_symbol(product.base_currency_id, product.quote_currency_id),
        base=product.base_currency_id.upper(),
        quote=product.quote_currency_id.upper(),
        tick_size=parse_decimal(product.price_increment),
        lot_size=parse_decimal(product.base_increment),
        status=_status(
            product.status, product.trading_disabled or product.is_disabled, product.cancel_only
        ),
        ws_symbol=alias,
        aliases=aliases,
    )


def parse_products(raw: bytes | str) -> list[Instrument]:
    """Instruments from either product list: a JSON array is Exchange ``GET /products``, an
    object with ``products`` is Advanced ``GET /market/products`` (spot products only: futures
    ids have no BASE-QUOTE currency pair). Raises ``ExchangeError`` naming the bad field."""
    text = raw.strip() if isinstance(raw, bytes) else raw.strip().encode()
    try:
        if text.startswith(b"["):
            return [exchange_instrument(p) for p in _ex_products.decode(text)]
        products = _adv_products.decode(text).products
        return [advanced_instrument(p) for p in products if p.product_type.upper() == "SPOT"]
    except (msgspec.DecodeError, ValueError) as exc:
        raise ExchangeError(f"coinbase product list is malformed: {exc}") from None


class SymbolMap:
    """WebSocket product id -> canonical symbol for one feed's instruments.

    Priority: an instrument's own id, then its WebSocket id, then its aliases, so a configured
    ``BTC-USD`` wins over ``BTC-USDC`` (whose data arrives as ``BTC-USD``).
    """

    def __init__(self, instruments: Iterable[Instrument]) -> None:
        items = list(instruments)
        by_id: dict[str, str] = {}
        for inst in items:
            for alias in inst.aliases:
                by_id[alias] = inst.symbol
        for inst in items:
            if inst.ws_symbol:
                by_id[inst.ws_symbol] = inst.symbol
        for inst in items:
            by_id[inst.exchange_symbol] = inst.symbol
        self._by_id = by_id
        self.symbols = tuple(dict.fromkeys(inst.symbol for inst in items))

    def symbol(self, product_id: str) -> str | None:
        return self._by_id.get(product_id)


def ws_product_id(instrument: Instrument) -> str:
    """The id to subscribe on the WebSocket (the USD alias for an aliased USDC market)."""
    return instrument.ws_symbol or instrument.exchange_symbol
