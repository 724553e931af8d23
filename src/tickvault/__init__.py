"""tickvault: collect, validate, transform, score and store crypto market data."""

from tickvault.config import Settings, load_settings
from tickvault.errors import (
    ConfigError,
    ExchangeError,
    StorageError,
    TickvaultError,
    UsageError,
    ValidationError,
)
from tickvault.model import (
    BookDelta,
    BookSnapshot,
    Candle,
    CandleSource,
    Gap,
    Instrument,
    Side,
    Ticker,
    Trade,
)

__version__ = "0.1.0"

__all__ = [
    "BookDelta",
    "BookSnapshot",
    "Candle",
    "CandleSource",
    "ConfigError",
    "ExchangeError",
    "Gap",
    "Instrument",
    "Settings",
    "Side",
    "StorageError",
    "Ticker",
    "TickvaultError",
    "Trade",
    "UsageError",
    "ValidationError",
    "__version__",
    "load_settings",
]
