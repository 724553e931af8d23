"""``tickvault monitoring``: validate the Prometheus, Alertmanager and Grafana configuration."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from tickvault.cli import app, err_console
from tickvault.monitoring.deploy_check import check_deploy

monitoring_app = typer.Typer(help="Check the monitoring configuration under deploy/.")
app.add_typer(monitoring_app, name="monitoring")


@monitoring_app.command("check")
def check(
    deploy_dir: Annotated[Path, typer.Argument(help="The deploy folder.")] = Path("deploy"),
) -> None:
    """Run promtool, amtool and a JSON parse over deploy/; print each problem as file:line."""
    problems = check_deploy(deploy_dir)
    for problem in problems:
        err_console.print(
            f"[bold red]error:[/] {escape(str(problem))}", highlight=False, soft_wrap=True
        )
    if problems:
        raise typer.Exit(2)
    typer.echo(f"{deploy_dir}: Prometheus, Alertmanager and Grafana configuration valid")
