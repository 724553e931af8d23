from __future__ import annotations

import pytest

from tickvault.exchanges.binance.adapter import ADAPTER
from tickvault.model import Instrument

from .helpers import RECORDING, records


@pytest.fixture(scope="session")
def instruments() -> list[Instrument]:
    """Instruments of both recordings' exchangeInfo responses (2021-10-12 and 2021-08-14)."""
    info_2021_10 = records(RECORDING)[0]
    info_2021_08 = records("exchange_info_2021-08-14.jsonl")[0]
    assert "exchangeInfo" in info_2021_10.url and "exchangeInfo" in info_2021_08.url
    return ADAPTER.parse_instruments(info_2021_10.raw) + ADAPTER.parse_instruments(info_2021_08.raw)
