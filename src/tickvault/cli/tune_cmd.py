"""``tickvault tune``: PostgreSQL/TimescaleDB and Redis settings, and compose limits, for a host."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tickvault.cli import app
from tickvault.errors import ConfigError, UsageError
from tickvault.monitoring.tune import (
    GB,
    Host,
    allocate,
    compose_env_block,
    detect_host,
    postgres_settings,
    redis_settings,
    replace_block,
)


@app.command("tune")
def tune(
    cores: Annotated[
        float | None, typer.Option(help="Host cores (default: this machine's).")
    ] = None,
    memory_gb: Annotated[
        float | None, typer.Option(help="Host memory in GB (default: this machine's).")
    ] = None,
    max_connections: Annotated[int, typer.Option(help="PostgreSQL max_connections.")] = 100,
    compose_env: Annotated[
        bool, typer.Option("--compose-env", help="Print the deploy/.env block instead.")
    ] = False,
    output: Annotated[
        Path | None,
        typer.Option(
            help="With --compose-env: write the block into this env file (replacing "
            "an earlier one)."
        ),
    ] = None,
) -> None:
    """Settings for the host's cores and memory, following the design's allocation."""
    detected = detect_host()
    host = Host.of(
        cores if cores is not None else detected.cores,
        memory_gb if memory_gb is not None else detected.memory_bytes / GB,
    )
    if output is not None and not compose_env:
        raise UsageError("--output writes the compose env block; add --compose-env")
    if compose_env:
        block = compose_env_block(host, max_connections)
        if output is None:
            typer.echo(block, nl=False)
            return
        try:
            old = output.read_text() if output.exists() else ""
            output.write_text(replace_block(old, block))
        except OSError as exc:
            raise ConfigError(f"cannot write {output}: {exc.strerror}") from None
        typer.echo(f"wrote the resource block to {output}")
        return
    typer.echo(f"# host: {host.cores:g} cores, {host.memory_bytes / GB:g} GB")
    typer.echo("# allocation (cpus, memory):")
    for part, budget in allocate(host).items():
        typer.echo(f"#   {part:<12} {budget.cpus:7.2f} cpus {budget.memory_bytes / GB:9.2f} GB")
    typer.echo("\n# postgresql.conf (TimescaleDB share)")
    for key, value in postgres_settings(host, max_connections).items():
        typer.echo(f"{key} = {value}")
    typer.echo("\n# redis.conf (Redis share)")
    for key, value in redis_settings(host).items():
        typer.echo(f"{key} {value}")
