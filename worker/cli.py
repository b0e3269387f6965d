"""`durable worker --app module:attr`: run a worker process for an App.

Attach with ``cli.add_command(worker_command)`` (the command is named ``worker``).
"""

from __future__ import annotations

import asyncio
import importlib
import os
import sys
from typing import Any

import click

from durable.common import InvalidArgument
from durable.worker.app import App


def load_app(reference: str) -> App:
    """Import `module:attr` (attr may be dotted, or a callable returning an App).

    The current directory is searched first, as `python -m` does, so `--app myapp:app` finds
    `./myapp.py` (the `durable` console script alone would not look there).
    """
    module_name, sep, attr = reference.partition(":")
    if not sep or not module_name or not attr:
        raise InvalidArgument(f"--app must be module:attr, e.g. durable.examples.agent_turn:app; "
                              f"got {reference!r}")
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise InvalidArgument(f"--app {reference}: cannot import {module_name}: {exc}") from None
    for part in attr.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise InvalidArgument(f"--app {reference}: {module_name} has no {attr}") from None
    if not isinstance(target, App) and callable(target):
        target = target()
    if not isinstance(target, App):
        raise InvalidArgument(
            f"--app {reference}: expected a durable.worker.App, got {type(target).__name__}"
        )
    return target


@click.command("worker")
@click.option("--app", "app_ref", required=True, envvar="DURABLE_APP",
              help="The App to serve, as module:attr (env DURABLE_APP).")
@click.option("--grpc-address", default=None,
              help="Control plane host:port (overrides GRPC_ADDRESS; default 127.0.0.1:9001).")
@click.option("--worker-id", default=None, help="Overrides WORKER_ID (default hostname-pid-random).")
@click.option("--worker-group", default=None, help="Overrides WORKER_GROUP (default 'default').")
@click.option("--max-concurrent-tasks", type=int, default=None,
              help="Overrides MAX_CONCURRENT_TASKS (default 10).")
@click.option("--health-port", type=int, default=None,
              help="grpc.health.v1 port (overrides WORKER_HEALTH_PORT; default 9002; 0: any).")
@click.option("--drain-grace-period", type=float, default=None,
              help="Seconds to let running tasks finish on SIGTERM (overrides "
                   "DURABLE_DRAIN_GRACE_PERIOD; default 30).")
def worker_command(
    app_ref: str,
    grpc_address: str | None,
    worker_id: str | None,
    worker_group: str | None,
    max_concurrent_tasks: int | None,
    health_port: int | None,
    drain_grace_period: float | None,
) -> None:
    """Run a worker: claim and run the App's tasks until SIGTERM/SIGINT, then drain."""
    from durable.worker.runtime import Worker
    from durable.worker.supervisor import CriticalTaskFailed

    overrides = {
        name: value
        for name, value in {
            "GRPC_ADDRESS": grpc_address,
            "WORKER_ID": worker_id,
            "WORKER_GROUP": worker_group,
            "MAX_CONCURRENT_TASKS": max_concurrent_tasks,
            "WORKER_HEALTH_PORT": health_port,
            "DURABLE_DRAIN_GRACE_PERIOD": drain_grace_period,
        }.items()
        if value is not None
    }
    try:
        worker = Worker.from_env(load_app(app_ref), **overrides)
    except InvalidArgument as exc:
        raise click.UsageError(str(exc)) from None
    from durable.common import tracing

    tracing.setup("durable-worker")  # only when OTEL_EXPORTER_OTLP_ENDPOINT is set
    try:
        asyncio.run(worker.run(handle_signals=True))
    except CriticalTaskFailed as exc:
        click.echo(f"worker stopped: {exc}", err=True)
        sys.exit(1)
    except OSError as exc:
        raise click.ClickException(str(exc)) from None
