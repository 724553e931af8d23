"""Settings: one object, from a TOML file and ``TICKVAULT_*`` environment variables.

Precedence (highest first): explicit arguments, environment, the TOML file, defaults.
The file is ``--config PATH``, else ``$TICKVAULT_CONFIG``, else ``./tickvault.toml`` if present.
Nested keys use ``__`` in the environment: ``TICKVAULT_WRITER__BATCH_ROWS=20000``.

There are no default passwords: storage URLs come from the environment or the file (or a
``*_file`` setting naming a file that holds the URL, for Docker/Kubernetes secrets). With no URL
configured, tickvault runs its own embedded servers (see ``tickvault.storage.embedded``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from tickvault.errors import ConfigError
from tickvault.model import EXCHANGES, TIMEFRAMES


def default_data_dir() -> Path:
    """Where embedded servers and captures live when nothing else is configured.

    As root the folder is under /var/lib, because the embedded PostgreSQL runs as the
    ``postgres`` user, who cannot enter /root.
    """
    if os.geteuid() == 0:
        return Path("/var/lib/tickvault")
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "tickvault"


class WriterSettings(BaseModel):
    batch_rows: int = Field(50_000, ge=1, description="flush a table's buffer at this many rows")
    flush_interval_s: float = Field(1.0, gt=0, description="flush at least this often")
    max_buffered_rows: int = Field(500_000, ge=1, description="memory bound before spilling")
    retries: int = Field(5, ge=0)


class TimescaleSettings(BaseModel):
    mode: Literal["auto", "on", "off"] = "auto"  # auto: use TimescaleDB when the server has it
    trades_chunk: str = "1 day"
    candles_chunk: str = "7 days"
    books_chunk: str = "1 day"
    compress_after: str = "7 days"
    retention_trades: str | None = None  # e.g. "90 days"; None keeps everything
    retention_books: str | None = "30 days"


class CacheSettings(BaseModel):
    candles_kept: int = Field(
        1440, ge=1, description="latest N candles kept per stream (1440: a day of 1m bars)"
    )
    candle_ttl_s: int = Field(3 * 86400, ge=1)
    latest_ttl_s: int = Field(3600, ge=1, description="TTL of latest trade, book, ticker")
    features_ttl_s: int = Field(86400, ge=1)
    key_prefix: str = "tv"


class ExchangeEndpoints(BaseModel):
    """Base URLs; point them at ``tickvault sim`` to run offline."""

    rest_url: str
    ws_url: str


def _default_endpoints() -> dict[str, ExchangeEndpoints]:
    return {
        "binance": ExchangeEndpoints(
            rest_url="https://data-api.binance.vision",
            ws_url="wss://data-stream.binance.vision",
        ),
        "coinbase": ExchangeEndpoints(
            rest_url="https://api.exchange.coinbase.com",
            ws_url="wss://advanced-trade-ws.coinbase.com",  # the coinbase ADAPTER speaks Advanced
        ),
        "kraken": ExchangeEndpoints(
            rest_url="https://api.kraken.com",
            ws_url="wss://ws.kraken.com",
        ),
    }


class FeedSettings(BaseModel):
    """What ``tickvault run`` collects from one exchange."""

    exchange: str
    symbols: list[str]
    channels: list[Literal["trades", "book", "candles", "ticker"]] = ["trades", "book", "ticker"]
    book_depth: int = Field(10, ge=1)

    @field_validator("exchange")
    @classmethod
    def _known_exchange(cls, value: str) -> str:
        if value not in EXCHANGES:
            raise ValueError(f"unknown exchange {value!r}; known: {', '.join(EXCHANGES)}")
        return value


class IndicatorSettings(BaseModel):
    """Indicators of ``tickvault run``, on every closed bar of every timeframe (features table,
    Redis); EMA-cross and RSI-threshold signals fire when their indicators are on."""

    sma: list[int] = [20, 50]
    ema: list[int] = [12, 26]
    rsi: int | None = 14
    macd: tuple[int, int, int] | None = (12, 26, 9)
    bollinger: tuple[int, float] | None = (20, 2.0)
    atr: int | None = 14
    vwap: bool = True
    obv: bool = True
    source: Literal["derived", "exchange"] = "derived"  # bars the indicators are computed from


class QualitySettings(BaseModel):
    """Rolling window of ``tickvault run``'s quality scores (``tickvault_quality_score``)."""

    window_s: float = Field(300.0, gt=0, description="scores cover this much recent data")
    slot_s: float = Field(10.0, gt=0, description="the window rolls in steps this long")

    @model_validator(mode="after")
    def _slot_within_window(self) -> QualitySettings:
        if self.slot_s > self.window_s:
            raise ValueError("slot_s must not exceed window_s")
        return self


class RepairSettings(BaseModel):
    """Gap repair inside ``tickvault run`` (see docs/running.md)."""

    enabled: bool = True
    interval_s: float = Field(30.0, gt=0, description="seconds between repair rounds")
    widen_s: float = Field(1.0, ge=0, description="each gap is refetched this much wider")
    settle_s: float = Field(5.0, ge=0, description="wait this long after a gap's end")
    max_attempts: int = Field(5, ge=1, description="automatic retries of a failed repair")
    retry_base_s: float = Field(60.0, ge=0, description="first retry delay; doubles after")
    restart_lookback_s: float = Field(6 * 3600, gt=0, description="longest hole after restart")
    candle_scan_timeframe: str | None = "1m"  # bars scanned for holes; None: no scan
    candle_scan_window_s: float = Field(3600, gt=0)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="TICKVAULT_",
        env_nested_delimiter="__",
        extra="forbid",
    )

    database_url: str | None = None
    database_url_file: Path | None = None
    redis_url: str | None = None
    redis_url_file: Path | None = None
    data_dir: Path = Field(default_factory=default_data_dir)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    metrics_port: int | None = Field(None, ge=0, le=65535)
    # ``tickvault run`` in this many processes, the symbols shared out (runner/workers.py);
    # worker i serves metrics on metrics_port + i.
    workers: int = Field(1, ge=1, le=512)

    writer: WriterSettings = WriterSettings()
    timescale: TimescaleSettings = TimescaleSettings()
    cache: CacheSettings = CacheSettings()
    endpoints: dict[str, ExchangeEndpoints] = Field(default_factory=_default_endpoints)
    feeds: list[FeedSettings] = []
    timeframes: list[str] = ["1m", "5m", "15m", "1h", "4h", "1d"]
    indicators: IndicatorSettings = IndicatorSettings()
    quality: QualitySettings = QualitySettings()
    repair: RepairSettings = RepairSettings()

    @field_validator("timeframes")
    @classmethod
    def _known_timeframes(cls, value: list[str]) -> list[str]:
        unknown = [t for t in value if t not in TIMEFRAMES]
        if unknown:
            raise ValueError(f"unknown timeframe(s) {unknown}; known: {', '.join(TIMEFRAMES)}")
        return value

    @model_validator(mode="after")
    def _read_secret_files(self) -> Settings:
        if self.database_url is None and self.database_url_file is not None:
            self.database_url = _read_secret(self.database_url_file, "database_url_file")
        if self.redis_url is None and self.redis_url_file is not None:
            self.redis_url = _read_secret(self.redis_url_file, "redis_url_file")
        for name, url in (("database_url", self.database_url), ("redis_url", self.redis_url)):
            if url is not None and not url.startswith(_URL_SCHEMES[name]):
                schemes = " or ".join(_URL_SCHEMES[name])
                raise ValueError(f"{name} must start with {schemes}, got {url.split(':')[0]!r}")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_path = _CONFIG_PATH_OVERRIDE or _config_file_from_env()
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if toml_path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_path))
        return tuple(sources)


_URL_SCHEMES: dict[str, tuple[str, ...]] = {
    "database_url": ("postgresql://", "postgres://"),
    "redis_url": ("redis://", "rediss://", "unix://"),
}
_CONFIG_PATH_OVERRIDE: Path | None = None


def _read_secret(path: Path, name: str) -> str:
    try:
        return path.read_text().strip()
    except OSError as exc:
        raise ValueError(f"{name}: cannot read {path}: {exc.strerror}") from None


def _config_file_from_env() -> Path | None:
    env = os.environ.get("TICKVAULT_CONFIG")
    if env:
        return Path(env)
    local = Path("tickvault.toml")
    return local if local.is_file() else None


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build and validate the settings; any problem becomes one readable ``ConfigError``."""
    global _CONFIG_PATH_OVERRIDE
    path = config_file or _config_file_from_env()
    if path is not None and not path.is_file():
        raise ConfigError(f"config file {path} does not exist (from --config or TICKVAULT_CONFIG)")
    _CONFIG_PATH_OVERRIDE = path
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        where = f" in {path}" if path else ""
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'settings'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigError(f"invalid settings{where}: {problems}") from None
    except (ValueError, OSError) as exc:  # TOML syntax errors arrive as ValueError
        raise ConfigError(f"cannot read settings from {path}: {exc}") from None
    finally:
        _CONFIG_PATH_OVERRIDE = None
