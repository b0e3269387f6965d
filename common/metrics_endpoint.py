"""Serves one Prometheus registry over HTTP (/metrics) in a background thread."""

from __future__ import annotations

import errno
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server

from durable.common.ports import port_in_use


class MetricsEndpoint:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self._server: Any = None
        self.port: int | None = None

    def serve(self, port: int, host: str = "0.0.0.0", *, setting: str = "METRICS_PORT") -> int:
        """Start serving; returns the bound port (an ephemeral one when `port` is 0).

        A port in use raises PortInUse naming `setting` (the variable that chose the port).
        """
        try:
            self._server, _ = start_http_server(port, addr=host, registry=self.registry)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise port_in_use(host, port, setting) from None
            raise
        self.port = int(self._server.server_port)
        return self.port

    def close(self) -> None:
        """Stop serving; idempotent."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
