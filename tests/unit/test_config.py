from pathlib import Path

import pytest

from tickvault.config import load_settings
from tickvault.errors import ConfigError


def test_environment_overrides_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "tv.toml"
    cfg.write_text('redis_url = "redis://127.0.0.1:1/0"\n[writer]\nbatch_rows = 10\n')
    monkeypatch.setenv("TICKVAULT_WRITER__BATCH_ROWS", "20")
    settings = load_settings(cfg)
    assert settings.redis_url == "redis://127.0.0.1:1/0"
    assert settings.writer.batch_rows == 20


def test_bad_values_name_the_field(tmp_path: Path) -> None:
    cfg = tmp_path / "tv.toml"
    cfg.write_text('timeframes = ["1m", "7m"]\n[writer]\nbatch_rows = 0\n')
    with pytest.raises(ConfigError) as info:
        load_settings(cfg)
    message = str(info.value)
    assert "timeframes" in message and "7m" in message
    assert "writer.batch_rows" in message
    assert str(cfg) in message


def test_missing_file_and_bad_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml")
    cfg = tmp_path / "broken.toml"
    cfg.write_text("writer = [\n")
    with pytest.raises(ConfigError, match=str(cfg)):
        load_settings(cfg)


def test_url_scheme_checked_and_secret_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="database_url must start with"):
        load_settings(database_url="mysql://x")
    secret = tmp_path / "db_url"
    secret.write_text("postgresql://u@127.0.0.1:5/db\n")
    settings = load_settings(database_url_file=secret)
    assert settings.database_url == "postgresql://u@127.0.0.1:5/db"


def test_unknown_exchange_in_feeds() -> None:
    with pytest.raises(ConfigError, match="unknown exchange 'ftx'"):
        load_settings(feeds=[{"exchange": "ftx", "symbols": ["BTC-USD"]}])
