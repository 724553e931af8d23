"""``[quality]`` settings reach the runner's quality tracker (the live alert test relies on a
short window; production keeps 5 minutes of 10-second slots)."""

from pathlib import Path

import pytest

from tickvault.config import load_settings
from tickvault.errors import ConfigError
from tickvault.model import NS_PER_S
from tickvault.runner.app import stage_config
from tickvault.runner.stages import Stages


def test_window_and_slot_from_the_file(tmp_path: Path) -> None:
    cfg = tmp_path / "tv.toml"
    cfg.write_text("[quality]\nwindow_s = 8\nslot_s = 0.5\n")
    config = stage_config(load_settings(cfg))
    assert config.quality.window_ns == 8 * NS_PER_S
    assert config.quality.slot_ns == NS_PER_S // 2
    assert Stages(config).quality.config.window_ns == 8 * NS_PER_S


def test_defaults_are_five_minutes_of_ten_second_slots(tmp_path: Path) -> None:
    (tmp_path / "empty.toml").write_text("")
    quality = stage_config(load_settings(tmp_path / "empty.toml")).quality
    assert (quality.window_ns, quality.slot_ns) == (300 * NS_PER_S, 10 * NS_PER_S)


def test_slot_longer_than_window_is_refused(tmp_path: Path) -> None:
    cfg = tmp_path / "tv.toml"
    cfg.write_text("[quality]\nwindow_s = 5\nslot_s = 10\n")
    with pytest.raises(ConfigError, match="slot_s must not exceed window_s"):
        load_settings(cfg)
    cfg.write_text("[quality]\nwindow_s = 0\n")
    with pytest.raises(ConfigError, match=r"quality\.window_s"):
        load_settings(cfg)
