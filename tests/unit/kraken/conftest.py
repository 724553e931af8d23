from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from tickvault.exchanges.capture import CaptureRecord, read_capture
from tickvault.exchanges.kraken.adapter import ADAPTER
from tickvault.exchanges.kraken.feed import KrakenFeed
from tickvault.model import Instrument

FIXTURES = Path(__file__).parents[2] / "fixtures" / "kraken"


def records(name: str) -> list[CaptureRecord]:
    return list(read_capture(FIXTURES / name))


def _extra(base: str, quote: str, price_decimals: int, key: str | None = None) -> Instrument:
    """Markets of the WebSocket fixtures that the AssetPairs fixture does not list; the
    precisions are the ones their recorded messages carry."""
    return Instrument(
        exchange="kraken",
        exchange_symbol=key or f"{base}{quote}",
        symbol=f"{base}-{quote}",
        base=base,
        quote=quote,
        tick_size=Decimal(1).scaleb(-price_decimals),
        lot_size=Decimal("0.00000001"),
        ws_symbol=f"{base}/{quote}",
        aliases=(f"{base}{quote}",),
    )


@pytest.fixture(scope="session")
def instruments() -> list[Instrument]:
    listed: list[Instrument] = []
    for record in records("rest_asset_pairs.jsonl"):
        listed.extend(ADAPTER.parse_instruments(record.raw))
    extra = [
        _extra("ALGO", "USD", 5),
        _extra("MATIC", "USD", 4),
        _extra("XMR", "USD", 8, "XXMRZUSD"),
        _extra("WAVES", "EUR", 6),
        _extra("SC", "EUR", 6),
        _extra("ETH", "USD", 5, "XETHZUSD"),
    ]
    return listed + extra


def replay(feed: KrakenFeed, name: str) -> list:  # type: ignore[type-arg]
    return [feed.on_message(r.raw, r.ts_ns) for r in records(name)]
