"""Serving the console with uvicorn until SIGTERM or SIGINT."""

from __future__ import annotations

import uvicorn

from durable.common.security import ClientSecurity
from durable.console.app import create_app
from durable.console.settings import ConsoleSettings


def build_server(settings: ConsoleSettings, security: ClientSecurity | None = None) -> uvicorn.Server:
    """An uvicorn server for the console (call `await server.serve()`, or `server.run()`)."""
    config = uvicorn.Config(
        create_app(settings, security),
        host=settings.host,
        port=settings.port,
        log_config=None,  # the durable logging set up by the CLI
        access_log=False,
        proxy_headers=True,
        server_header=False,
        lifespan="on",
    )
    return uvicorn.Server(config)
