"""Real control planes for tests: in-process (same event loop) or as a child process."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import grpc

from durable.common.security import ServerSecurity
from durable.controlplane.app import ControlPlane
from durable.controlplane.settings import DatabaseSettings, GrpcSettings, ReaperSettings


@asynccontextmanager
async def running_control_plane(database_url: str, **settings: Any) -> AsyncIterator[str]:
    """Start a control plane on 127.0.0.1 and an ephemeral port; yield "127.0.0.1:<port>".

    Keyword settings: any ReaperSettings field (stale_after=2, interval=0.5, ...), and
    poll_interval, health_interval, timer_interval, keda_interval, clock, max_payload_bytes,
    max_message_bytes, max_response_bytes, max_concurrent_rpcs, max_waiting_rpcs, address,
    breakers (a BreakerSettings), security (a durable.common.security.ServerSecurity) and
    retention (RetentionSettings).
    """
    async with running_plane(database_url, **settings) as plane:
        yield plane.address


@asynccontextmanager
async def running_plane(database_url: str, **settings: Any) -> AsyncIterator[ControlPlane]:
    """running_control_plane, yielding the ControlPlane itself (its store, signals, address)."""
    reaper_fields = set(ReaperSettings.model_fields)
    reaper = ReaperSettings(**{k: v for k, v in settings.items() if k in reaper_fields})
    extra = {k: v for k, v in settings.items()
             if k in ("poll_interval", "health_interval", "timer_interval", "keda_interval", "clock", "breakers")}
    grpc_kwargs: dict[str, Any] = {"address": "127.0.0.1:0"}
    for name in ("max_payload_bytes", "max_message_bytes", "max_response_bytes", "max_concurrent_rpcs",
                 "max_waiting_rpcs"):
        if name in settings:
            grpc_kwargs[name] = settings[name]
    if "address" in settings:
        grpc_kwargs["address"] = settings["address"]
    plane = ControlPlane(
        DatabaseSettings(database_url=database_url, pool_min_size=1, pool_max_size=10),
        GrpcSettings(**grpc_kwargs),
        reaper,
        security=settings.get("security") or ServerSecurity(),
        metrics=settings.get("metrics"),
        retention=settings.get("retention"),
        **extra,
    )
    await plane.start()
    try:
        yield plane
    finally:
        await plane.stop(grace=1.0)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def control_plane_process(database_url: str, port: int | None = None, **env: str) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """Run `durable controlplane` as a child process; yield (process, address)."""
    port = port or free_port()
    environment = {
        **os.environ,
        "DATABASE_URL": database_url,
        "GRPC_ADDRESS": f"127.0.0.1:{port}",
        "PYTHONUNBUFFERED": "1",
        "METRICS_PORT": "0",
        **env,
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "durable.cli", "controlplane"],
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        yield proc, f"127.0.0.1:{port}"
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdout:
            proc.stdout.close()


async def wait_serving(address: str, timeout: float = 20.0) -> None:
    """Wait until the gRPC health service at `address` answers SERVING."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    async with grpc.aio.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while True:
            try:
                reply = await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.aio.AioRpcError:
                pass
            if loop.time() > deadline:
                raise TimeoutError(f"control plane at {address} did not become SERVING within {timeout} s")
            await asyncio.sleep(0.05)
