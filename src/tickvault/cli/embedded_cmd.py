"""``tickvault embedded``: manage the private PostgreSQL and Redis servers."""

from __future__ import annotations

import typer
from rich.console import Console

from tickvault.cli import app
from tickvault.cli.common import ConfigOption, settings_from
from tickvault.storage.embedded import ensure_embedded, stop_embedded

embedded_app = typer.Typer(help="Start or stop the embedded PostgreSQL and Redis servers.")
app.add_typer(embedded_app, name="embedded")
console = Console()


@embedded_app.command("start")
def start(config: ConfigOption = None) -> None:
    """Start the embedded servers (or find them running) and print their URLs."""
    settings = settings_from(config)
    for name, url in ensure_embedded(settings.data_dir).items():
        console.print(f"{name}: {url}")


@embedded_app.command("stop")
def stop(config: ConfigOption = None) -> None:
    """Stop the embedded servers; their data stays under the data folder."""
    settings = settings_from(config)
    stopped = stop_embedded(settings.data_dir)
    console.print(f"stopped: {', '.join(stopped) or 'nothing was running'}")
