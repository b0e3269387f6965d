"""Who may call the control plane: bearer tokens, TLS and mutual TLS; health stays open."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import asyncpg
import grpc
import pytest
import trustme
from grpc_health.v1 import health_pb2, health_pb2_grpc

from durable.client import Client
from durable.common.errors import DurableError
from durable.common.security import ClientSecurity, ServerSecurity, open_channel
from durable.proto.v1 import durable_pb2 as pb
from durable.proto.v1 import durable_pb2_grpc as pb_grpc
from tests.support.controlplane import running_control_plane
from tests.support.processes import wait_for

TOKEN = "s3cret-token-for-tests"


async def _list(channel: grpc.aio.Channel) -> grpc.StatusCode:
    try:
        await pb_grpc.ClientServiceStub(channel).ListWorkflows(pb.ListWorkflowsRequest(), timeout=10)
    except grpc.aio.AioRpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


async def test_token_required_and_health_open(database_url: str) -> None:
    async with running_control_plane(database_url, security=ServerSecurity(DURABLE_AUTH_TOKEN=TOKEN)) as address:
        async with open_channel(address, ClientSecurity()) as none:
            assert await _list(none) == grpc.StatusCode.UNAUTHENTICATED
            reply = await health_pb2_grpc.HealthStub(none).Check(health_pb2.HealthCheckRequest(service=""))
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        async with open_channel(address, ClientSecurity(DURABLE_AUTH_TOKEN="wrong-token")) as wrong:
            assert await _list(wrong) == grpc.StatusCode.UNAUTHENTICATED
        async with open_channel(address, ClientSecurity(DURABLE_AUTH_TOKEN=TOKEN)) as right:
            assert await _list(right) == grpc.StatusCode.OK
        # the worker service too, and a clear message
        async with open_channel(address, ClientSecurity()) as none:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await pb_grpc.WorkerServiceStub(none).RegisterWorker(pb.RegisterWorkerRequest(worker_id="w"))
            assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
            assert "bearer token" in err.value.details()


async def test_token_from_a_file_like_a_mounted_secret(database_url: str, tmp_path: Path) -> None:
    secret = tmp_path / "token"
    secret.write_text(TOKEN + "\n")
    server = ServerSecurity(DURABLE_AUTH_TOKEN_FILE=str(secret))
    async with running_control_plane(database_url, security=server) as address:
        async with Client(address, security=ClientSecurity(DURABLE_AUTH_TOKEN_FILE=str(secret))) as client:
            assert await client.list_workflows() == []
        async with Client(address, security=ClientSecurity()) as anonymous:
            with pytest.raises(DurableError, match="bearer token"):
                await anonymous.list_workflows()


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    root = tmp_path_factory.mktemp("pki")
    ca = trustme.CA()
    server = ca.issue_cert("localhost", "127.0.0.1")
    client = ca.issue_cert("durable-worker")
    paths = {
        "ca": root / "ca.pem", "server_cert": root / "server.pem", "server_key": root / "server.key",
        "client_cert": root / "client.pem", "client_key": root / "client.key",
    }
    ca.cert_pem.write_to_path(str(paths["ca"]))
    server.cert_chain_pems[0].write_to_path(str(paths["server_cert"]))
    server.private_key_pem.write_to_path(str(paths["server_key"]))
    client.cert_chain_pems[0].write_to_path(str(paths["client_cert"]))
    client.private_key_pem.write_to_path(str(paths["client_key"]))
    yield {k: str(v) for k, v in paths.items()}


async def test_tls_with_token(database_url: str, pki: dict[str, str]) -> None:
    server = ServerSecurity(DURABLE_AUTH_TOKEN=TOKEN, DURABLE_TLS_CERT_FILE=pki["server_cert"],
                            DURABLE_TLS_KEY_FILE=pki["server_key"])
    async with running_control_plane(database_url, security=server, address="127.0.0.1:0") as address:
        port = address.rsplit(":", 1)[1]
        trusted = ClientSecurity(DURABLE_AUTH_TOKEN=TOKEN, DURABLE_TLS_CA_FILE=pki["ca"])
        async with open_channel(f"localhost:{port}", trusted) as ok:
            assert await _list(ok) == grpc.StatusCode.OK
        async with grpc.aio.insecure_channel(address) as plaintext:  # plaintext to a TLS port fails
            assert await _list(plaintext) == grpc.StatusCode.UNAVAILABLE


async def test_mutual_tls_requires_a_client_certificate(database_url: str, pki: dict[str, str]) -> None:
    server = ServerSecurity(DURABLE_TLS_CERT_FILE=pki["server_cert"], DURABLE_TLS_KEY_FILE=pki["server_key"],
                            DURABLE_TLS_CLIENT_CA_FILE=pki["ca"])
    async with running_control_plane(database_url, security=server) as address:
        port = address.rsplit(":", 1)[1]
        with_cert = ClientSecurity(DURABLE_TLS_CA_FILE=pki["ca"], DURABLE_TLS_CERT_FILE=pki["client_cert"],
                                   DURABLE_TLS_KEY_FILE=pki["client_key"])
        async with open_channel(f"localhost:{port}", with_cert) as ok:
            assert await _list(ok) == grpc.StatusCode.OK
        async with open_channel(f"localhost:{port}", ClientSecurity(DURABLE_TLS_CA_FILE=pki["ca"])) as no_cert:
            assert await _list(no_cert) == grpc.StatusCode.UNAVAILABLE


def test_half_configured_tls_is_refused_at_start() -> None:
    with pytest.raises(ValueError, match="DURABLE_TLS_CERT_FILE and DURABLE_TLS_KEY_FILE must be set together"):
        ServerSecurity(DURABLE_TLS_CERT_FILE="/x.pem")
    with pytest.raises(ValueError, match="cannot be read"):
        ClientSecurity(DURABLE_AUTH_TOKEN_FILE="/nonexistent/token")


async def test_worker_authenticates_with_the_token_from_its_environment(
    database_url: str, monkeypatch: pytest.MonkeyPatch, db: asyncpg.Connection
) -> None:
    from durable.worker import App, Worker, WorkerSettings
    from durable.worker.testing import RunningWorker

    app = App()

    @app.activity(name="ping")
    async def ping(ctx: object, data: dict) -> dict:
        return {"pong": True}

    async with running_control_plane(database_url, security=ServerSecurity(DURABLE_AUTH_TOKEN=TOKEN)) as address:
        monkeypatch.setenv("DURABLE_AUTH_TOKEN", TOKEN)  # what a worker pod gets from the Secret
        worker = Worker(app, WorkerSettings(GRPC_ADDRESS=address, WORKER_ID="authed", WORKER_HEALTH_PORT=0))
        async with Client(address) as client, RunningWorker(worker):
            await client.enqueue_activity("ping", {})

            async def completed() -> bool:
                return await db.fetchval("SELECT status FROM durable_task_queue") == "completed"

            await wait_for(completed, 20, "the authenticated worker to complete the task")
    assert await db.fetchval("SELECT claimed_by FROM durable_task_queue") == "authed"
