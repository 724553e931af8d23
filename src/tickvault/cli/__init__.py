"""The ``tickvault`` command. Each command group lives in its own module under ``cli/``.

Any :class:`~tickvault.errors.TickvaultError` becomes a one-line message on stderr and a
non-zero exit code; a traceback means a bug, not a user mistake.
"""

from __future__ import annotations

import sys

import typer
from rich.console import Console
from rich.markup import escape

from tickvault.errors import TickvaultError

app = typer.Typer(
    name="tickvault",
    help="Collect, validate, transform, score and store crypto market data.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err_console = Console(stderr=True)


def _register() -> None:
    # One import per command module; each adds its commands to ``app``.
    import tickvault.cli.api_cmd
    import tickvault.cli.backfill_cmd
    import tickvault.cli.embedded_cmd
    import tickvault.cli.gaps_cmd
    import tickvault.cli.monitoring_cmd
    import tickvault.cli.replay_cmd
    import tickvault.cli.run_cmd
    import tickvault.cli.sim_cmd
    import tickvault.cli.storage_cmd
    import tickvault.cli.tune_cmd  # noqa: F401


def main() -> None:
    _register()
    try:
        app()
    except TickvaultError as exc:
        err_console.print(
            f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True
        )
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)
