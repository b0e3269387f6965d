"""The operator under test: kopf in the test's event loop, against a Kubernetes API emulator
(tests.support.kube.Emulator) and a real control plane on a real PostgreSQL database.

kopf reaches the emulator through a test-only login function (the operator's login is a
parameter of `OperatorContext`; production uses the service account or kubeconfig).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import kmock
import kopf
import pytest
from durable.operator.handlers import OperatorContext, build_registry, kopf_settings
from durable.operator.settings import OperatorSettings
from durable.proto.v1 import durable_pb2_grpc

from tests.support.controlplane import running_control_plane
from tests.support.kube import Emulator, declare_resources, wait_until

pytestmark = pytest.mark.k8s

TICK = 0.2  # seconds between the operator's per-pool passes in these tests


@pytest.fixture
async def kube() -> AsyncIterator[Emulator]:
    """An empty emulated Kubernetes API on a local port."""
    async with Emulator() as emulator, kmock.Server(emulator):
        declare_resources(emulator)
        yield emulator


@pytest.fixture
async def control_plane(database_url: str) -> AsyncIterator[str]:
    """A real control plane on a fresh database; its gRPC address."""
    async with running_control_plane(database_url) as address:
        yield address


@pytest.fixture
async def client_stub(control_plane: str) -> AsyncIterator[durable_pb2_grpc.ClientServiceStub]:
    async with grpc.aio.insecure_channel(control_plane) as channel:
        yield durable_pb2_grpc.ClientServiceStub(channel)


@pytest.fixture
async def worker_stub(control_plane: str) -> AsyncIterator[durable_pb2_grpc.WorkerServiceStub]:
    async with grpc.aio.insecure_channel(control_plane) as channel:
        yield durable_pb2_grpc.WorkerServiceStub(channel)


OperatorFactory = Callable[..., Awaitable[OperatorContext]]


@pytest.fixture
async def start_operator(kube: Emulator) -> AsyncIterator[OperatorFactory]:
    """Start the operator with the given default control plane address.

    kopf runs in a thread with its own event loop (as kopf.testing.KopfRunner does): when
    kopf.operator() exits it cancels every task of its loop that it did not start with,
    which in the test's loop would include pytest's own fixture teardown tasks.
    """
    running: list[tuple[threading.Thread, threading.Event, list[BaseException]]] = []
    server = str(kube.url).rstrip("/")

    def login(**_: Any) -> kopf.ConnectionInfo:
        return kopf.ConnectionInfo(server=server, insecure=True, default_namespace="default")

    async def start(address: str, **overrides: Any) -> OperatorContext:
        settings = OperatorSettings(
            control_plane_address=address, tick_seconds=TICK, metrics_port=0,
            grpc_timeout_seconds=1.0, backoff_max_seconds=2.0, **overrides)
        context = OperatorContext(settings, login=login)
        stop, ready = threading.Event(), threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            try:
                asyncio.run(kopf.operator(
                    registry=build_registry(context),
                    settings=kopf_settings(settings, scanning=False),
                    standalone=True,
                    clusterwide=not settings.namespaces,
                    namespaces=settings.namespaces,
                    stop_flag=stop,
                    ready_flag=ready,
                ))
            except BaseException as exc:  # noqa: BLE001  (re-raised by the fixture)
                errors.append(exc)

        thread = threading.Thread(target=run, name="durable operator under test", daemon=True)
        thread.start()
        running.append((thread, stop, errors))
        await wait_until(lambda: ready.is_set() or errors or not thread.is_alive(),
                         timeout=15, what="the operator to get ready")
        if errors:
            raise errors[0]
        return context

    yield start

    for _, stop, _ in running:
        stop.set()
    for thread, _, errors in running:
        await wait_until(lambda: not thread.is_alive(), timeout=15,  # noqa: B023
                         what="the operator to stop")
        if errors:
            raise errors[0]
