"""Hostile input at the gRPC boundary: random bytes, random well-formed messages, huge and deeply
nested payloads. The control plane never crashes, never writes partial state, and answers each
call with a status code (never a dropped connection)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from durable.proto.v1 import durable_pb2 as pb
from tests.support.controlplane import running_control_plane

SERVICES = {
    "durable.v1.WorkerService": pb.DESCRIPTOR.services_by_name["WorkerService"],
    "durable.v1.ClientService": pb.DESCRIPTOR.services_by_name["ClientService"],
}
METHODS = [
    (f"/{service}/{method.name}", method)
    for service, descriptor in SERVICES.items()
    for method in descriptor.methods
]
ALLOWED = {
    grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.INTERNAL,
    grpc.StatusCode.DEADLINE_EXCEEDED,
}


@pytest.fixture
async def target(database_url: str) -> AsyncIterator[tuple[grpc.aio.Channel, str]]:
    async with running_control_plane(database_url, poll_interval=0.05) as address:
        async with grpc.aio.insecure_channel(address) as channel:
            yield channel, address


async def _raw(channel: grpc.aio.Channel, path: str, payload: bytes) -> grpc.StatusCode:
    call = channel.unary_unary(path, request_serializer=lambda b: b, response_deserializer=lambda b: b)
    try:
        await call(payload, timeout=5)
    except grpc.aio.AioRpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


async def _still_serving(channel: grpc.aio.Channel) -> None:
    reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_random_bytes_to_every_method(target: tuple[grpc.aio.Channel, str], db: asyncpg.Connection) -> None:
    channel, _ = target
    codes: dict[grpc.StatusCode, int] = {}

    async def check(method: tuple[str, object], payload: bytes) -> None:
        code = await _raw(channel, method[0], payload)
        codes[code] = codes.get(code, 0) + 1
        # a random ClaimTasks wait may run into the 5 s deadline; anything else is an answer
        assert code in ALLOWED, (method[0], payload, code)

    await _drive(check, st.sampled_from(METHODS), st.binary(max_size=512), examples=120)
    await _still_serving(channel)
    assert codes.get(grpc.StatusCode.INTERNAL, 0) == 0, codes
    print("fuzz status codes:", {c.name: n for c, n in codes.items()})


async def _drive(check: Callable[..., Awaitable[None]], *strategies: st.SearchStrategy[Any], examples: int) -> None:
    """Run hypothesis (synchronous) in a thread; each example runs on this test's event loop."""
    loop = asyncio.get_running_loop()

    @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(st.tuples(*strategies))
    def on_loop(args: tuple[Any, ...]) -> None:
        asyncio.run_coroutine_threadsafe(check(*args), loop).result(timeout=30)

    await asyncio.to_thread(on_loop)


@pytest.mark.parametrize("size", [2 * 1024 * 1024, 8 * 1024 * 1024])
async def test_huge_payloads_are_refused_whole(target: tuple[grpc.aio.Channel, str], db: asyncpg.Connection, size: int) -> None:
    channel, _ = target
    request = pb.StartWorkflowRequest(workflow_type="wf", input_json=json.dumps({"x": "y" * size}))
    code = await _raw(channel, "/durable.v1.ClientService/StartWorkflow", request.SerializeToString())
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert await db.fetchval("SELECT count(*) FROM durable_workflow_instances") == 0
    await _still_serving(channel)


async def test_deep_json_is_refused(target: tuple[grpc.aio.Channel, str], db: asyncpg.Connection) -> None:
    channel, _ = target
    for depth in (100, 100_000):
        deep = '{"a":' * depth + "1" + "}" * depth
        request = pb.StartWorkflowRequest(workflow_type="wf", input_json=deep)
        code = await _raw(channel, "/durable.v1.ClientService/StartWorkflow", request.SerializeToString())
        assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert await db.fetchval("SELECT count(*) FROM durable_workflow_instances") == 0
    await _still_serving(channel)


async def test_random_well_formed_requests(target: tuple[grpc.aio.Channel, str], db: asyncpg.Connection) -> None:
    """Structurally valid messages with random field values: answered, and state stays sound."""
    channel, _ = target
    text = st.text(max_size=40)
    json_text = st.one_of(text, st.just("{}"), st.just('{"a": 1}'), st.just("[]"), st.just("null"))
    requests = st.one_of(
        st.builds(lambda t, i, j: ("/durable.v1.ClientService/StartWorkflow", pb.StartWorkflowRequest(workflow_type=t, workflow_id=i, input_json=j)), text, text, json_text),
        st.builds(lambda w, s, j: ("/durable.v1.ClientService/SignalWorkflow", pb.SignalWorkflowRequest(workflow_id=w, signal_type=s, payload_json=j)), text, text, json_text),
        st.builds(lambda w: ("/durable.v1.ClientService/CancelWorkflow", pb.CancelWorkflowRequest(workflow_id=w)), text),
        st.builds(lambda t, j, p, d: ("/durable.v1.ClientService/EnqueueActivity", pb.EnqueueActivityRequest(activity_type=t, input_json=j, options=pb.ActivityOptions(priority=p, start_delay=d))), text, json_text, st.integers(-5000, 5000), st.floats(-10, 10, allow_nan=False)),
        st.builds(lambda w, n: ("/durable.v1.WorkerService/RegisterWorker", pb.RegisterWorkerRequest(worker_id=w, max_concurrency=n, activity_types=["x"])), text, st.integers(-5, 200_000)),
        st.builds(lambda w, t, a, j: ("/durable.v1.WorkerService/CompleteTask", pb.CompleteTaskRequest(worker_id=w, task_id=t, attempt=a, result_json=j)), text, text, st.integers(-3, 3), json_text),
        st.builds(lambda w, n: ("/durable.v1.WorkerService/ClaimTasks", pb.ClaimTasksRequest(worker_id=w, activity_types=["x"], max_tasks=n)), text, st.integers(-5, 5000)),
    )

    async def check(call: tuple[str, object]) -> None:
        path, message = call
        code = await _raw(channel, path, message.SerializeToString())  # type: ignore[attr-defined]
        assert code in ALLOWED - {grpc.StatusCode.INTERNAL}, (path, message, code)

    await _drive(check, requests, examples=150)
    await _still_serving(channel)
    # whatever was accepted is whole: every workflow has its first event and a decision task
    broken = await db.fetchval(
        "SELECT count(*) FROM durable_workflow_instances w WHERE NOT EXISTS "
        "(SELECT 1 FROM durable_workflow_events e WHERE e.workflow_id = w.id AND e.sequence_num = 1)"
    )
    assert broken == 0
