"""`durable console`: the web console over the control plane's ClientService."""

from __future__ import annotations

from typing import Any

import click
from pydantic import ValidationError

from durable.cli.settings_errors import explain_settings_error


@click.command("console")
@click.option("--port", type=int, default=None, help="HTTP port (env DURABLE_CONSOLE_PORT, default 8080).")
@click.option("--host", default=None, help="Listen address (env DURABLE_CONSOLE_HOST, default 127.0.0.1).")
@click.option("--address", default=None, help="Control-plane gRPC address (env GRPC_ADDRESS, default 127.0.0.1:9001).")
def console_command(port: int | None, host: str | None, address: str | None) -> None:
    """Serve the web console: workflows, dead letters, workers and queues in the browser.

    Uses the CLI's token and TLS settings (DURABLE_AUTH_TOKEN(_FILE), DURABLE_TLS_*): with a
    token configured it asks users to sign in with theirs; with none it opens without sign-in.
    """
    from durable.common.errors import InvalidArgument
    from durable.common.security import load_client_security
    from durable.console.server import build_server
    from durable.console.settings import ConsoleSettings

    overrides: dict[str, Any] = {
        k: v for k, v in (("port", port), ("host", host), ("grpc_address", address)) if v is not None
    }
    try:
        settings = ConsoleSettings(**overrides)
        security = load_client_security()
    except ValidationError as exc:
        raise click.UsageError(explain_settings_error(exc)) from None
    except InvalidArgument as exc:
        raise click.UsageError(str(exc)) from None
    server = build_server(settings, security)
    click.echo(f"durable console on http://{settings.host}:{settings.port} (control plane {settings.grpc_address})")
    server.run()
