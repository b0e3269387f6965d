"""`durable controlplane`: run the control plane until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import signal
import sys

import click
from pydantic import ValidationError

from durable.cli.settings_errors import explain_settings_error


@click.command("controlplane")
@click.option("--migrate", "run_migrations", is_flag=True, help="Apply database migrations before serving.")
def controlplane_command(run_migrations: bool) -> None:
    """Run the control plane: gRPC server (GRPC_ADDRESS, default 0.0.0.0:9001), reaper and timers."""
    from durable.controlplane.app import ControlPlane
    from durable.common.security import ServerSecurity
    from durable.controlplane.settings import (
        BreakerSettings,
        DatabaseSettings,
        GrpcSettings,
        MetricsSettings,
        ReaperSettings,
        RetentionSettings,
        ScheduleSettings,
    )

    try:
        settings = (DatabaseSettings(), GrpcSettings(), ReaperSettings())
        security = ServerSecurity()
        metrics = MetricsSettings()
        schedules = ScheduleSettings()
        retention = RetentionSettings()
        breakers = BreakerSettings()
    except ValidationError as exc:
        raise click.UsageError(explain_settings_error(exc)) from None
    from durable.common import tracing

    tracing.setup("durable-controlplane")  # only when OTEL_EXPORTER_OTLP_ENDPOINT is set
    plane = ControlPlane(
        *settings, security=security, metrics=metrics, retention=retention, schedules=schedules,
        breakers=breakers, run_migrations=run_migrations,
    )
    sys.exit(asyncio.run(_serve(plane)))


async def _serve(plane: object) -> int:
    from durable.controlplane.app import ControlPlane

    assert isinstance(plane, ControlPlane)
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    from durable.controlplane.connect_errors import DatabaseUnreachable
    from durable.controlplane.migrator import MigrationError

    try:
        await plane.start()
    except (OSError, ConnectionError, DatabaseUnreachable, MigrationError) as exc:
        click.echo(f"error: cannot start the control plane: {exc}", err=True)
        await plane.stop()
        return 2
    waiter = asyncio.ensure_future(stopping.wait())
    dying = asyncio.ensure_future(plane.wait())
    await asyncio.wait({waiter, dying}, return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    dying.cancel()
    await plane.stop()
    return 1 if plane.failed.is_set() else 0
