"""`durable`: one command for every part of the engine.

Subcommands live in their own modules and are attached here; each imports its component
lazily, so `durable worker` never loads the control plane and vice versa.
"""

from __future__ import annotations

import asyncio
import os
import sys

import click
from pydantic import ValidationError

from durable.cli.settings_errors import explain_settings_error
from durable.common.logs import configure_logging


@click.group()
@click.option("--log-level", default="INFO", show_default=True, envvar="DURABLE_LOG_LEVEL",
              help="Python logging level (env DURABLE_LOG_LEVEL).")
@click.option("--log-format", type=click.Choice(["plain", "json"]), default="plain", show_default=True,
              envvar="DURABLE_LOG_FORMAT", help="Log lines as text or JSON objects (env DURABLE_LOG_FORMAT).")
def cli(log_level: str, log_format: str) -> None:
    """durable: a Kubernetes-native durable execution engine on PostgreSQL."""
    configure_logging(log_level, log_format)


@cli.command()
@click.option("--database-url", envvar="DATABASE_URL", help="PostgreSQL URL (env DATABASE_URL).")
def migrate(database_url: str | None) -> None:
    """Apply the database migrations (safe to run concurrently and repeatedly)."""
    from durable.controlplane.connect_errors import DatabaseUnreachable
    from durable.controlplane.migrator import MigrationError, migrate_url
    from durable.controlplane.settings import DatabaseSettings

    try:
        settings = DatabaseSettings(DATABASE_URL=database_url) if database_url else DatabaseSettings()
    except ValidationError as exc:
        raise click.UsageError(explain_settings_error(exc)) from None
    try:
        applied = asyncio.run(migrate_url(settings.database_url))
    except (MigrationError, DatabaseUnreachable) as exc:
        raise click.ClickException(str(exc)) from None
    if applied:
        click.echo(f"applied migrations: {', '.join(f'{v:04d}' for v in applied)}")
    else:
        click.echo("database is up to date")


def _subcommand(argv: list[str]) -> str | None:
    """The subcommand named in `argv`, skipping the group's own options."""
    args = iter(argv)
    for arg in args:
        if arg in ("--log-level", "--log-format"):
            next(args, None)
        elif not arg.startswith("-"):
            return arg
    return None


def main() -> None:
    """Entry point of the `durable` console script."""
    if _subcommand(sys.argv[1:]) == "dev":
        # `durable dev` stops its embedded PostgreSQL with a fork while gRPC's threads run; with
        # fork support on, gRPC logs "skipping fork() handlers". Read when grpc is imported,
        # so set before any subcommand module loads.
        os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
    from durable.cli import commands  # noqa: F401  (attaches the other subcommands)

    try:
        cli(standalone_mode=True)
    except KeyboardInterrupt:
        sys.exit(130)
