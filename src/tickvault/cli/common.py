"""Options and helpers shared by the command modules."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tickvault.config import Settings, load_settings

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config", "-c", help="TOML settings file (default: $TICKVAULT_CONFIG, ./tickvault.toml)."
    ),
]


def settings_from(config: Path | None) -> Settings:
    return load_settings(config)
