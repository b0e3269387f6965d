"""The worker's standard grpc.health.v1 server, on its own port (default 9002).

SERVING while the worker is connected to the control plane and accepting work; NOT_SERVING
while it is draining or cut off. Check and Watch come from grpc_health's HealthServicer.
"""

from __future__ import annotations

import logging

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from durable.common.ports import GRPC_SERVER_OPTIONS, ensure_free

log = logging.getLogger(__name__)

SERVICE_NAMES = ("", "durable.v1.WorkerService")


class HealthServer:
    """A small gRPC server that only answers health checks."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.requested_port = port
        self.port: int | None = None
        self._server: grpc.aio.Server | None = None
        self._servicer = health.aio.HealthServicer()
        self.serving = False

    async def start(self) -> int:
        """Bind and start; returns the bound port. Every service starts NOT_SERVING."""
        await self.set_serving(False, force=True)
        ensure_free(self.host, self.requested_port, "WORKER_HEALTH_PORT")
        server = grpc.aio.server(options=GRPC_SERVER_OPTIONS)
        health_pb2_grpc.add_HealthServicer_to_server(self._servicer, server)
        address = f"{self.host}:{self.requested_port}"
        try:
            self.port = server.add_insecure_port(address)
        except RuntimeError as exc:
            raise OSError(f"cannot bind the health server to {address}: {exc}") from None
        if not self.port:
            raise OSError(f"cannot bind the health server to {address}")
        await server.start()
        self._server = server
        log.info("health server listening on %s:%s", self.host, self.port)
        return self.port

    async def set_serving(self, serving: bool, *, force: bool = False) -> None:
        if serving == self.serving and not force:
            return
        self.serving = serving
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in SERVICE_NAMES:
            await self._servicer.set(name, status)
        if not force:
            log.info("health: %s", "SERVING" if serving else "NOT_SERVING")

    async def stop(self, grace: float = 1.0) -> None:
        """NOT_SERVING for good (watchers see it), then stop the server."""
        await self._servicer.enter_graceful_shutdown()
        self.serving = False
        if self._server is not None:
            await self._server.stop(grace)
            self._server = None
