"""Scoped credentials (durable.common.credentials): every RPC outside a credential's scope is
PERMISSION_DENIED, a worker credential acts only for its own worker ids, certificates carry
scopes under mutual TLS, tokens rotate without a restart, and KEDA scales with auth on."""

from __future__ import annotations

import uuid

import os
import re
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import grpc
import pytest
import trustme
import yaml

from durable.common.credentials import Scope
from durable.common.security import ClientSecurity, ServerSecurity, granted_scope, open_channel
from durable.controlplane.app import ControlPlane
from durable.controlplane.grpc.auth import ADMIN_METHODS, READ_METHODS
from durable.controlplane.settings import DatabaseSettings, GrpcSettings
from durable.proto.keda import externalscaler_pb2 as kpb
from durable.proto.keda import externalscaler_pb2_grpc as kpb_grpc
from durable.proto.v1 import durable_pb2 as pb
from durable.proto.v1 import durable_pb2_grpc as pb_grpc
from tests.support.controlplane import running_control_plane

ROOT = Path(__file__).resolve().parents[2]
TOKENS = {
    "admin": "admin-token-0123456789abcdef",
    "client": "client-token-0123456789abcdef",
    "read": "read-token-0123456789abcdef",
    "worker": "worker-token-pool-a-0123456789",
}
CREDENTIALS = f"""\
# scope[:worker-id-prefix]  credential
admin            {TOKENS['admin']}
client           {TOKENS['client']}
read             {TOKENS['read']}   # dashboards
worker:pool-a-   {TOKENS['worker']}
"""
SERVICES = {
    "durable.v1.WorkerService": (pb, pb_grpc.WorkerServiceStub, pb.DESCRIPTOR.services_by_name["WorkerService"]),
    "durable.v1.ClientService": (pb, pb_grpc.ClientServiceStub, pb.DESCRIPTOR.services_by_name["ClientService"]),
    "externalscaler.ExternalScaler": (
        kpb, kpb_grpc.ExternalScalerStub, kpb.DESCRIPTOR.services_by_name["ExternalScaler"]),
}
ALL_METHODS = sorted(f"/{name}/{m.name}" for name, (_, _, d) in SERVICES.items() for m in d.methods)


def expected(scope: str, method: str) -> bool:
    """The scope table of the docs, restated independently of the implementation."""
    service = method.split("/")[1]
    return {
        "admin": True,
        "client": service in ("durable.v1.ClientService", "externalscaler.ExternalScaler")
        and method.rsplit("/", 1)[1] not in {"BulkDeleteWorkflows", "BulkDeleteDeadLetters"},
        "read": service == "externalscaler.ExternalScaler" or method.rsplit("/", 1)[1] in {
            "DescribeWorkflow", "ListWorkflows", "GetHistory", "WaitWorkflow", "ListDeadLetters",
            "GetQueueStats", "ListWorkers", "CountWorkflows", "ListWorkflowTasks", "ListCircuitBreakers",
            "QueryWorkflow", "ListSchedules", "DescribeSchedule", "GetThroughput", "ListRateLimits"},
        "worker": service == "durable.v1.WorkerService",
    }[scope]


async def call(channel: grpc.aio.Channel, method: str, worker_id: str = "pool-a-1") -> grpc.StatusCode:
    """Call `method` with a near-empty request; the status it answers."""
    _, service, name = method.split("/")
    module, stub_class, descriptor = SERVICES[service]
    request_class = getattr(module, descriptor.methods_by_name[name].input_type.name)
    request = request_class()
    if "worker_id" in request_class.DESCRIPTOR.fields_by_name:
        request.worker_id = worker_id
    if name == "ClaimTasks":
        request.activity_types.append("nothing-here")
    rpc = getattr(stub_class(channel), name)
    try:
        if descriptor.methods_by_name[name].server_streaming:
            async for _ in rpc(request, timeout=10):
                break
        else:
            await rpc(request, timeout=10)
    except grpc.aio.AioRpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


def write_atomically(path: Path, text: str) -> None:
    """As the kubelet updates a Secret volume: a new file swapped in."""
    tmp = path.with_suffix(".new")
    tmp.write_text(text)
    os.replace(tmp, path)


@pytest.fixture
def credentials_file(tmp_path: Path) -> Path:
    path = tmp_path / "tokens"
    path.write_text(CREDENTIALS)
    return path


def as_(address: str, token: str | None) -> grpc.aio.Channel:
    return open_channel(address, ClientSecurity(DURABLE_AUTH_TOKEN=token) if token else ClientSecurity())


def test_the_read_table_is_the_documented_one() -> None:
    assert {m for m in ALL_METHODS if expected("read", m) and "ClientService" in m} == READ_METHODS


def test_the_admin_only_table_is_the_documented_one() -> None:
    assert {m for m in ALL_METHODS if not expected("client", m) and "ClientService" in m} == ADMIN_METHODS


@pytest.mark.parametrize("scope", ["admin", "client", "read", "worker"])
async def test_every_rpc_outside_the_scope_is_permission_denied(
    database_url: str, credentials_file: Path, scope: str
) -> None:
    security = ServerSecurity(DURABLE_AUTH_TOKENS_FILE=str(credentials_file))
    async with running_control_plane(database_url, security=security) as address:
        async with as_(address, TOKENS[scope]) as channel:
            answers = {method: await call(channel, method) for method in ALL_METHODS}
    denied = {m for m, code in answers.items() if code == grpc.StatusCode.PERMISSION_DENIED}
    assert denied == {m for m in ALL_METHODS if not expected(scope, m)}
    assert grpc.StatusCode.UNAUTHENTICATED not in answers.values()


async def test_a_worker_credential_cannot_act_for_another_worker_id(
    database_url: str, credentials_file: Path, db: asyncpg.Connection
) -> None:
    security = ServerSecurity(DURABLE_AUTH_TOKENS_FILE=str(credentials_file))
    async with running_control_plane(database_url, security=security) as address:
        async with as_(address, TOKENS["admin"]) as admin, as_(address, TOKENS["worker"]) as pool_a:
            # pool-b-1's task, claimed with the admin credential
            await pb_grpc.ClientServiceStub(admin).EnqueueActivity(
                pb.EnqueueActivityRequest(activity_type="charge", input_json="{}"))
            other = pb_grpc.WorkerServiceStub(admin)
            await other.RegisterWorker(pb.RegisterWorkerRequest(worker_id="pool-b-1", activity_types=["charge"]))
            claimed = await other.ClaimTasks(pb.ClaimTasksRequest(worker_id="pool-b-1", activity_types=["charge"]))
            (task,) = claimed.tasks

            stub = pb_grpc.WorkerServiceStub(pool_a)
            ref = pb.TaskRef(task_id=task.id, attempt=task.attempt)
            attempts = {
                "RegisterWorker": stub.RegisterWorker(pb.RegisterWorkerRequest(worker_id="pool-b-1")),
                "WorkerHeartbeat": stub.WorkerHeartbeat(pb.WorkerHeartbeatRequest(worker_id="pool-b-1")),
                "DrainWorker": stub.DrainWorker(pb.DrainWorkerRequest(worker_id="pool-b-1")),
                "DeregisterWorker": stub.DeregisterWorker(pb.DeregisterWorkerRequest(worker_id="pool-b-1")),
                "ClaimTasks": stub.ClaimTasks(pb.ClaimTasksRequest(worker_id="pool-b-1", activity_types=["charge"])),
                "HeartbeatTasks": stub.HeartbeatTasks(pb.HeartbeatTasksRequest(worker_id="pool-b-1", tasks=[ref])),
                "CompleteTask": stub.CompleteTask(pb.CompleteTaskRequest(
                    worker_id="pool-b-1", task_id=task.id, attempt=task.attempt, result_json="{}")),
                "CompleteTasks": stub.CompleteTasks(pb.CompleteTasksRequest(worker_id="pool-b-1", completions=[
                    pb.TaskCompletion(task_id=task.id, attempt=task.attempt, result_json="{}")])),
                "FailTask": stub.FailTask(pb.FailTaskRequest(
                    worker_id="pool-b-1", task_id=task.id, attempt=task.attempt,
                    failure=pb.Failure(message="x", non_retryable=True))),
                "CompleteWorkflowTask": stub.CompleteWorkflowTask(pb.CompleteWorkflowTaskRequest(
                    worker_id="pool-b-1", task_id=task.id, attempt=task.attempt)),
                "CompleteWorkflowTasks": stub.CompleteWorkflowTasks(pb.CompleteWorkflowTasksRequest(
                    worker_id="pool-b-1", decisions=[pb.CompleteWorkflowTaskRequest(
                        worker_id="pool-b-1", task_id=task.id, attempt=task.attempt)])),
                "ReleaseTasks": stub.ReleaseTasks(pb.ReleaseTasksRequest(worker_id="pool-b-1")),
                "GetTaskHistory": stub.GetTaskHistory(pb.GetTaskHistoryRequest(
                    worker_id="pool-b-1", task_id=task.id, attempt=task.attempt)),
                "AnswerQuery": stub.AnswerQuery(pb.AnswerQueryRequest(
                    worker_id="pool-b-1", query_id=str(uuid.uuid4()), result_json="{}")),
                # an id that merely contains the prefix is another worker too
                "not-a-prefix": stub.RegisterWorker(pb.RegisterWorkerRequest(worker_id="x-pool-a-1")),
            }
            for name, pending in attempts.items():
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await pending
                assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED, name
                assert "may not act for worker id" in err.value.details(), name
            assert {m.split("/")[2] for m in ALL_METHODS if "WorkerService" in m} <= set(attempts)

            # its own ids work; its own id cannot complete the other worker's task (the fence)
            await stub.RegisterWorker(pb.RegisterWorkerRequest(worker_id="pool-a-1", activity_types=["charge"]))
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.CompleteTask(pb.CompleteTaskRequest(
                    worker_id="pool-a-1", task_id=task.id, attempt=task.attempt, result_json="{}"))
            assert err.value.code() != grpc.StatusCode.OK
    row = await db.fetchrow("SELECT status, claimed_by FROM durable_task_queue")
    assert (row["status"], row["claimed_by"]) == ("claimed", "pool-b-1")


async def test_granted_scope_tells_a_console_what_its_credential_may_do(
    database_url: str, credentials_file: Path
) -> None:
    security = ServerSecurity(DURABLE_AUTH_TOKENS_FILE=str(credentials_file), DURABLE_AUTH_TOKEN="legacy-admin-token-123")
    async with running_control_plane(database_url, security=security) as address:
        for scope, token in TOKENS.items():
            async with as_(address, token) as channel:
                assert await granted_scope(channel) == scope
        async with as_(address, "legacy-admin-token-123") as channel:  # DURABLE_AUTH_TOKEN means admin
            assert await granted_scope(channel) == "admin"
            assert await call(channel, "/durable.v1.ClientService/CancelWorkflow") != grpc.StatusCode.PERMISSION_DENIED
        async with as_(address, "not-a-token-at-all-000") as channel:
            assert await granted_scope(channel) is None
        async with as_(address, None) as channel:
            assert await granted_scope(channel) is None
    async with running_control_plane(database_url) as address:  # no authentication at all
        async with as_(address, None) as channel:
            assert await granted_scope(channel) == "admin"


async def test_tokens_rotate_without_a_restart(database_url: str, credentials_file: Path) -> None:
    security = ServerSecurity(DURABLE_AUTH_TOKENS_FILE=str(credentials_file))
    new = "client-token-NEW-0123456789abcdef"
    async with running_control_plane(database_url, security=security) as address:
        list_call = "/durable.v1.ClientService/ListWorkflows"
        # both valid during the rotation
        write_atomically(credentials_file, CREDENTIALS + f"client {new}\n")
        async with as_(address, TOKENS["client"]) as old_channel, as_(address, new) as new_channel:
            assert await call(old_channel, list_call) == grpc.StatusCode.OK
            assert await call(new_channel, list_call) == grpc.StatusCode.OK
            # the old one removed
            write_atomically(credentials_file, CREDENTIALS.replace(f"client           {TOKENS['client']}\n", "")
                             + f"client {new}\n")
            assert await call(old_channel, list_call) == grpc.StatusCode.UNAUTHENTICATED
            assert await call(new_channel, list_call) == grpc.StatusCode.OK
            # a broken file is refused; what was in force stays in force
            write_atomically(credentials_file, "clientele nonsense here\n")
            assert await call(new_channel, list_call) == grpc.StatusCode.OK


def test_a_bad_credentials_file_stops_the_start_naming_the_line(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    path.write_text(f"admin {TOKENS['admin']}\nworker {TOKENS['worker']}\n")
    with pytest.raises(ValueError, match=r"tokens line 2: a worker token must be bound to worker ids"):
        ServerSecurity(DURABLE_AUTH_TOKENS_FILE=str(path))
    with pytest.raises(ValueError, match=r"DURABLE_AUTH_TOKENS_FILE='/nonexistent' cannot be read"):
        ServerSecurity(DURABLE_AUTH_TOKENS_FILE="/nonexistent")


# --------------------------------------------------------------------------------------------
# Mutual TLS: the certificate is the credential
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    root = tmp_path_factory.mktemp("scopes-pki")
    ca = trustme.CA()
    paths: dict[str, str] = {"ca": str(root / "ca.pem")}
    ca.cert_pem.write_to_path(paths["ca"])
    for name, identities in {"server": ("localhost", "127.0.0.1"), "keda": ("keda",),
                             "pool-c": ("pool-c",), "stranger": ("stranger",)}.items():
        cert = ca.issue_cert(*identities)
        paths[f"{name}_cert"] = str(root / f"{name}.pem")
        paths[f"{name}_key"] = str(root / f"{name}.key")
        cert.cert_chain_pems[0].write_to_path(paths[f"{name}_cert"])
        cert.private_key_pem.write_to_path(paths[f"{name}_key"])
    yield paths


def mtls_server(pki: dict[str, str], credentials: Path) -> ServerSecurity:
    return ServerSecurity(DURABLE_TLS_CERT_FILE=pki["server_cert"], DURABLE_TLS_KEY_FILE=pki["server_key"],
                          DURABLE_TLS_CLIENT_CA_FILE=pki["ca"], DURABLE_AUTH_TOKENS_FILE=str(credentials))


def with_cert(pki: dict[str, str], name: str, token: str | None = None) -> ClientSecurity:
    return ClientSecurity(DURABLE_TLS_CA_FILE=pki["ca"], DURABLE_TLS_CERT_FILE=pki[f"{name}_cert"],
                          DURABLE_TLS_KEY_FILE=pki[f"{name}_key"], DURABLE_AUTH_TOKEN=token)


async def test_certificates_carry_scopes_under_mutual_tls(
    database_url: str, pki: dict[str, str], tmp_path: Path
) -> None:
    credentials = tmp_path / "tokens"
    credentials.write_text(CREDENTIALS + "read cert:keda\nworker cert:pool-c\n")
    async with running_control_plane(database_url, security=mtls_server(pki, credentials)) as address:
        target = f"localhost:{address.rsplit(':', 1)[1]}"
        async with open_channel(target, with_cert(pki, "keda")) as keda:
            assert await granted_scope(keda) == "read"
            answers = {m: await call(keda, m) for m in ALL_METHODS}
            assert {m for m, c in answers.items() if c == grpc.StatusCode.PERMISSION_DENIED} == {
                m for m in ALL_METHODS if not expected("read", m)}
        async with open_channel(target, with_cert(pki, "pool-c")) as pool_c:
            assert await granted_scope(pool_c) == "worker"
            assert await call(pool_c, "/durable.v1.WorkerService/RegisterWorker", "pool-c-7") == grpc.StatusCode.OK
            assert await call(pool_c, "/durable.v1.WorkerService/RegisterWorker", "pool-d-7") == \
                grpc.StatusCode.PERMISSION_DENIED
            assert await call(pool_c, "/durable.v1.ClientService/ListWorkflows") == grpc.StatusCode.PERMISSION_DENIED
        async with open_channel(target, with_cert(pki, "stranger")) as stranger:  # from the CA, not listed
            assert await call(stranger, "/durable.v1.ClientService/ListWorkflows") == grpc.StatusCode.UNAUTHENTICATED
            assert await granted_scope(stranger) is None
        # a token wins over the certificate it travels with
        async with open_channel(target, with_cert(pki, "stranger", TOKENS["client"])) as with_token:
            assert await call(with_token, "/durable.v1.ClientService/ListWorkflows") == grpc.StatusCode.OK


# --------------------------------------------------------------------------------------------
# KEDA with authentication on
# --------------------------------------------------------------------------------------------


def documented_scaled_objects() -> list[dict[str, Any]]:
    """The ScaledObjects (and TriggerAuthentications) in docs/kubernetes.md."""
    text = (ROOT / "docs" / "kubernetes.md").read_text()
    docs = [d for block in re.findall(r"```yaml\n(.*?)```", text, re.S) for d in yaml.safe_load_all(block) if d]
    return [d for d in docs if d.get("apiVersion", "").startswith("keda.sh/")]


@asynccontextmanager
async def plane_with_keda_port(database_url: str, security: ServerSecurity) -> AsyncIterator[ControlPlane]:
    plane = ControlPlane(
        DatabaseSettings(database_url=database_url, pool_min_size=1, pool_max_size=5),
        GrpcSettings(address="127.0.0.1:0", keda_address="127.0.0.1:0"),
        security=security,
    )
    await plane.start()
    try:
        yield plane
    finally:
        await plane.stop(grace=1.0)


def trigger(kind: str) -> dict[str, str]:
    """The documented trigger metadata of the ScaledObject named `kind`."""
    (scaled,) = [d for d in documented_scaled_objects()
                 if d["kind"] == "ScaledObject" and d["metadata"]["name"] == kind]
    (trig,) = scaled["spec"]["triggers"]
    assert trig["type"] == "external"
    return {k: str(v) for k, v in trig["metadata"].items()}


async def keda_asks(channel: grpc.aio.Channel, metadata: dict[str, str]) -> tuple[float, float, bool]:
    """What KEDA asks of an external scaler: the metric spec, the metric, activity."""
    stub = kpb_grpc.ExternalScalerStub(channel)
    ref = kpb.ScaledObjectRef(name="agent-workers", namespace="durable", scalerMetadata=metadata)
    (spec,) = (await stub.GetMetricSpec(ref, timeout=10)).metricSpecs
    (value,) = (await stub.GetMetrics(kpb.GetMetricsRequest(scaledObjectRef=ref, metricName=spec.metricName),
                                      timeout=10)).metricValues
    return spec.targetSizeFloat, value.metricValueFloat, (await stub.IsActive(ref, timeout=10)).result


async def enqueue_three(channel: grpc.aio.Channel) -> None:
    client = pb_grpc.ClientServiceStub(channel)
    for kind in ("reason", "act", "act"):
        await client.EnqueueActivity(pb.EnqueueActivityRequest(activity_type=kind, input_json="{}"))


async def test_keda_scales_through_the_read_only_port_with_auth_on(database_url: str, credentials_file: Path) -> None:
    metadata = trigger("agent-workers")
    assert metadata["scalerAddress"].endswith(":9003")  # the chart's KEDA Service port
    security = ServerSecurity(DURABLE_AUTH_TOKENS_FILE=str(credentials_file))
    async with plane_with_keda_port(database_url, security) as plane:
        async with as_(plane.address, TOKENS["client"]) as client:
            await enqueue_three(client)
        keda_address = f"127.0.0.1:{plane.keda_port}"
        async with grpc.aio.insecure_channel(keda_address) as keda:  # no token: KEDA cannot send one
            assert await keda_asks(keda, metadata) == (10.0, 3.0, True)
            # the read-only port serves nothing else
            assert await call(keda, "/durable.v1.ClientService/ListWorkflows") == grpc.StatusCode.UNIMPLEMENTED
            assert await call(keda, "/durable.v1.WorkerService/RegisterWorker") == grpc.StatusCode.UNIMPLEMENTED
        async with grpc.aio.insecure_channel(plane.address) as no_token:  # the main port wants a credential
            assert await call(no_token, "/externalscaler.ExternalScaler/GetMetrics") == \
                grpc.StatusCode.UNAUTHENTICATED


async def test_keda_scales_over_mutual_tls_with_the_read_scope(
    database_url: str, pki: dict[str, str], tmp_path: Path
) -> None:
    metadata = trigger("agent-workers-mtls")
    (auth,) = [d for d in documented_scaled_objects() if d["kind"] == "TriggerAuthentication"]
    assert {p["parameter"] for p in auth["spec"]["secretTargetRef"]} == {"caCert", "tlsClientCert", "tlsClientKey"}
    credentials = tmp_path / "tokens"
    credentials.write_text(CREDENTIALS + "read cert:keda\n")
    async with running_control_plane(database_url, security=mtls_server(pki, credentials)) as address:
        target = f"localhost:{address.rsplit(':', 1)[1]}"
        async with open_channel(target, with_cert(pki, "pool-c", TOKENS["client"])) as client:
            await enqueue_three(client)
        async with open_channel(target, with_cert(pki, "keda")) as keda:  # KEDA's certificate, no token
            assert await keda_asks(keda, metadata) == (10.0, 3.0, True)
            assert await call(keda, "/durable.v1.ClientService/StartWorkflow") == grpc.StatusCode.PERMISSION_DENIED


def test_scope_names_are_the_documented_ones() -> None:
    assert [s.value for s in Scope] == ["admin", "client", "read", "worker"]


async def test_a_real_worker_and_the_operator_work_with_their_narrow_scopes(
    database_url: str, credentials_file: Path, db: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker with a `worker:pool-a-` token (and its pod name as worker id) runs its tasks; the
    operator's backlog reads need only `read`."""
    from durable.operator.backlog import ControlPlane as OperatorClient
    from durable.worker import App, Worker, WorkerSettings
    from durable.worker.testing import RunningWorker
    from tests.support.processes import wait_for

    app = App()

    @app.activity(name="ping")
    async def ping(ctx: object, data: dict) -> dict:
        return {"pong": True}

    security = ServerSecurity(DURABLE_AUTH_TOKENS_FILE=str(credentials_file))
    async with running_control_plane(database_url, security=security) as address:
        async with as_(address, TOKENS["client"]) as client:
            await pb_grpc.ClientServiceStub(client).EnqueueActivity(
                pb.EnqueueActivityRequest(activity_type="ping", input_json="{}"))
        settings = WorkerSettings(GRPC_ADDRESS=address, WORKER_ID="pool-a-7f9c-x2k4q", WORKER_HEALTH_PORT=0)
        monkeypatch.setenv("DURABLE_AUTH_TOKEN", TOKENS["worker"])  # what the pod's token file gives
        worker = Worker(app, settings)
        async with RunningWorker(worker):
            async def completed() -> bool:
                return await db.fetchval("SELECT status FROM durable_task_queue") == "completed"

            await wait_for(completed, 20, "the worker-scoped worker to complete the task")
        operator = OperatorClient(address, timeout=5, security=ClientSecurity(DURABLE_AUTH_TOKEN=TOKENS["read"]))
        try:
            sample = await operator.backlog(["ping"], [])
            assert (sample.pending, sample.running) == (0, 0)
            assert await operator.worker_loads("default") is not None
        finally:
            await operator.close()


async def test_a_handler_learns_the_scope_of_its_call(credentials_file: Path) -> None:
    """current_scope() inside a handler; and a method added to ClientService later is `client`
    (not `read`) until it is listed in READ_METHODS."""
    from durable.common.credentials import CredentialsFile
    from durable.controlplane.grpc.auth import ScopedAuthInterceptor, current_scope

    async def whoami(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        return current_scope().value.encode()

    server = grpc.aio.server(interceptors=[ScopedAuthInterceptor([], CredentialsFile(str(credentials_file)))])
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
        "durable.v1.ClientService", {"WhoAmI": grpc.unary_unary_rpc_method_handler(whoami)}),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        answers = {}
        for scope in ("admin", "client", "read"):
            async with as_(f"127.0.0.1:{port}", TOKENS[scope]) as channel:
                try:
                    answers[scope] = (await channel.unary_unary("/durable.v1.ClientService/WhoAmI")(b"", timeout=10)).decode()
                except grpc.aio.AioRpcError as exc:
                    answers[scope] = exc.code().name
        assert answers == {"admin": "admin", "client": "client", "read": "PERMISSION_DENIED"}
        assert current_scope() is Scope.ADMIN  # outside any call: the default (no authentication)
    finally:
        await server.stop(None)
