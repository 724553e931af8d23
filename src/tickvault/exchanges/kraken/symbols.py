"""Kraken symbols: asset-code normalisation, ``AssetPairs`` -> instruments, name lookup.

One BTC/USD market has four names: the ``AssetPairs`` key ``XXBTZUSD`` (REST), the
``altname`` ``XBTUSD``, the v1 ``wsname`` ``XBT/USD`` and the v2 symbol ``BTC/USD``. The
canonical tickvault symbol is ``BTC-USD``, built from the pair's ``base``/``quote`` asset
codes through an explicit table: legacy codes carry an ``X``/``Z`` class prefix, but a prefix
rule would mangle real codes such as ``XTZ``, ``XRP``, ``ZRX`` or ``ZEC``.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

import msgspec

from tickvault.errors import ExchangeError
from tickvault.exchanges.kraken.schemas import AssetPair
from tickvault.model import Instrument, canonical_symbol

EXCHANGE = "kraken"

# Legacy Kraken asset codes -> common codes. Codes not listed are already common (SOL, USDT,
# XTZ, ZRX, ...). XBT and XDG are Kraken's own names for BTC and DOGE.
ASSET_CODES: dict[str, str] = {
    "XXBT": "BTC",
    "XBT": "BTC",
    "XXDG": "DOGE",
    "XDG": "DOGE",
    "XETH": "ETH",
    "XLTC": "LTC",
    "XXRP": "XRP",
    "XXLM": "XLM",
    "XXMR": "XMR",
    "XETC": "ETC",
    "XZEC": "ZEC",
    "XMLN": "MLN",
    "XREP": "REP",
    "XXTZ": "XTZ",
    "ZUSD": "USD",
    "ZEUR": "EUR",
    "ZGBP": "GBP",
    "ZCAD": "CAD",
    "ZJPY": "JPY",
    "ZAUD": "AUD",
    "ZCHF": "CHF",
}

# WebSocket v2 renames only Kraken's private names; every other code is used as is.
_V2_NAMES = {"XBT": "BTC", "XDG": "DOGE"}


def normalize_asset(code: str) -> str:
    """Common asset code of a Kraken asset code (``XXBT`` -> ``BTC``, ``SOL`` -> ``SOL``)."""
    return ASSET_CODES.get(code, code)


def v2_symbol(wsname: str) -> str:
    """WebSocket v2 symbol of a v1 ``wsname``: ``XBT/USD`` -> ``BTC/USD``."""
    base, _, quote = wsname.partition("/")
    return f"{_V2_NAMES.get(base, base)}/{_V2_NAMES.get(quote, quote)}"


def _step(decimals: int) -> Decimal:
    return Decimal(1).scaleb(-decimals)


def instrument_from_pair(key: str, pair: AssetPair) -> Instrument:
    """The instrument of one ``AssetPairs`` entry.

    ``tick_size`` is Kraken's ``tick_size`` written at ``pair_decimals`` places, so its exponent
    also carries the price precision the checksum pads to; ``lot_size`` is ``10**-lot_decimals``.
    """
    base = normalize_asset(pair.base)
    quote = normalize_asset(pair.quote)
    price_step = _step(pair.pair_decimals)
    tick = Decimal(pair.tick_size) if pair.tick_size else price_step
    if tick.as_tuple().exponent != price_step.as_tuple().exponent:
        tick = tick.quantize(price_step) if tick >= price_step else tick
    ws_name = pair.wsname or f"{base}/{quote}"
    aliases = tuple(dict.fromkeys(a for a in (pair.altname, pair.wsname) if a and a != key))
    return Instrument(
        exchange=EXCHANGE,
        exchange_symbol=key,
        symbol=canonical_symbol(base, quote),
        base=base,
        quote=quote,
        tick_size=tick,
        lot_size=_step(pair.lot_decimals),
        status="trading" if pair.status == "online" else pair.status,
        ws_symbol=v2_symbol(ws_name),
        aliases=aliases,
    )


_pairs_decoder = msgspec.json.Decoder(dict[str, AssetPair])


def parse_asset_pairs(result: bytes) -> list[Instrument]:
    """Instruments of the ``result`` object of ``AssetPairs``; dark pools (``.d``) skipped.

    Raises :class:`ExchangeError` when the result is not a map of asset pairs.
    """
    try:
        pairs = _pairs_decoder.decode(result)
    except msgspec.DecodeError as exc:
        raise ExchangeError(f"kraken AssetPairs: unexpected response: {exc}") from None
    return [
        instrument_from_pair(key, pair) for key, pair in pairs.items() if not key.endswith(".d")
    ]


def price_decimals(instrument: Instrument) -> int | None:
    """Fractional digits of the pair's prices (from the exponent of ``tick_size``)."""
    return _decimals(instrument.tick_size)


def qty_decimals(instrument: Instrument) -> int | None:
    return _decimals(instrument.lot_size)


def _decimals(step: Decimal | None) -> int | None:
    if step is None:
        return None
    exponent = step.as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else None


class SymbolMap:
    """Every Kraken name of a market (pair key, altname, wsname, v2 symbol) -> instrument."""

    def __init__(self, instruments: Iterable[Instrument]) -> None:
        self.by_name: dict[str, Instrument] = {}
        for instrument in instruments:
            names = (instrument.exchange_symbol, instrument.ws_symbol, *instrument.aliases)
            for name in names:
                if name:
                    self.by_name.setdefault(name, instrument)

    def get(self, name: str) -> Instrument | None:
        return self.by_name.get(name)
