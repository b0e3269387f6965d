"""The worker against the real control plane (in-process, real PostgreSQL, gRPC on loopback)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from durable.examples.agent_turn import app as agent_app
from durable.proto.v1 import durable_pb2 as pb
from durable.proto.v1 import durable_pb2_grpc as pb_grpc
from durable.worker import (
    ActivityContext,
    App,
    Worker,
    WorkerSettings,
    Workflow,
    complete,
    schedule_activity,
)
from durable.worker.testing import RunningWorker, wait_until
from tests.support.controlplane import running_control_plane

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@pytest.fixture
async def control_plane(database_url: str) -> AsyncIterator[str]:
    async with running_control_plane(database_url, poll_interval=0.2) as address:
        yield address


@pytest.fixture
async def client(control_plane: str) -> AsyncIterator[pb_grpc.ClientServiceStub]:
    async with grpc.aio.insecure_channel(control_plane) as channel:
        yield pb_grpc.ClientServiceStub(channel)


def settings(address: str, **overrides: Any) -> WorkerSettings:
    values: dict[str, Any] = {
        "GRPC_ADDRESS": address,
        "WORKER_ID": f"it-worker-{uuid.uuid4().hex[:8]}",
        "WORKER_HEALTH_PORT": 0,
        "WORKER_HEALTH_HOST": "127.0.0.1",
        "DURABLE_TASK_HEARTBEAT_INTERVAL": 0.2,
        "DURABLE_WORKER_HEARTBEAT_INTERVAL": 0.2,
        "DURABLE_CLAIM_WAIT": 1,
        "DURABLE_DRAIN_GRACE_PERIOD": 5,
        "DURABLE_CANCEL_GRACE_PERIOD": 2,
        "DURABLE_RECONNECT_INITIAL_BACKOFF": 0.05,
        "DURABLE_RECONNECT_MAX_BACKOFF": 0.5,
    }
    values.update(overrides)
    return WorkerSettings(**values)


def make_app() -> tuple[App, dict[str, Any]]:
    app = App()
    seen: dict[str, Any] = {"cancelled": [], "started": []}

    @app.activity(name="add")
    def add(ctx: ActivityContext, input: dict[str, Any]) -> dict[str, Any]:
        ctx.heartbeat({"adding": True})
        return {"sum": input["a"] + input["b"], "attempt": ctx.attempt}

    @app.activity(name="wait_for_cancel")
    async def wait_for_cancel(ctx: ActivityContext, input: dict[str, Any]) -> dict[str, Any]:
        seen["started"].append(ctx.task_id)
        await ctx.cancelled.wait()
        seen["cancelled"].append(ctx.task_id)
        return {"saw": "cancel"}

    @app.activity(name="stubborn")
    async def stubborn(ctx: ActivityContext, input: dict[str, Any]) -> dict[str, Any]:
        seen["started"].append(ctx.task_id)
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            seen["cancelled"].append(ctx.task_id)
            raise
        return {}

    @app.workflow(name="waiter")
    class Waiter(Workflow):
        def on_start(self, input: dict[str, Any]) -> list[Any]:
            return [schedule_activity("wait_for_cancel", {})]

        def on_activity_completed(self, activity_id: str, result: dict[str, Any]) -> list[Any]:
            return [complete(result)]

    return app, seen


async def test_enqueued_activity_runs_and_completes(
    control_plane: str, client: pb_grpc.ClientServiceStub, db: asyncpg.Connection
) -> None:
    app, _ = make_app()
    async with RunningWorker(Worker(app, settings(control_plane))) as worker:
        reply = await client.EnqueueActivity(pb.EnqueueActivityRequest(
            activity_type="add", input_json=json.dumps({"a": 2, "b": 40})))

        async def done() -> asyncpg.Record | None:
            return await db.fetchrow(
                "SELECT status, result, attempt, claimed_by FROM durable_task_queue WHERE id = $1",
                uuid.UUID(reply.task_id))

        loop = asyncio.get_running_loop()
        deadline = loop.time() + 20
        row = await done()
        while row is None or row["status"] != "completed":
            assert loop.time() < deadline, f"task not completed: {row}"
            await asyncio.sleep(0.05)
            row = await done()
        assert json.loads(row["result"]) == {"sum": 42, "attempt": 1}
        workers = await client.ListWorkers(pb.ListWorkersRequest())
        assert [w.id for w in workers.workers] == [worker.worker_id]
        assert workers.workers[0].status == "active"
    stopped = await client.ListWorkers(pb.ListWorkersRequest(include_stopped=True))
    assert stopped.workers[0].status == "stopped"


async def _history(client: pb_grpc.ClientServiceStub, workflow_id: str) -> list[tuple[str, dict[str, Any]]]:
    history = await client.GetHistory(pb.GetHistoryRequest(workflow_id=workflow_id))
    return [(e.event_type, json.loads(e.event_data_json or "{}")) for e in history.events]


async def test_agent_turn_runs_to_completion(control_plane: str, client: pb_grpc.ClientServiceStub) -> None:
    async with RunningWorker(Worker(agent_app, settings(control_plane))):
        started = await client.StartWorkflow(pb.StartWorkflowRequest(
            workflow_type="agent_turn", input_json=json.dumps({"message": "what is 2+3*4?"})))
        info = (await client.WaitWorkflow(pb.WaitWorkflowRequest(
            workflow_id=started.workflow_id, wait_seconds=30))).workflow
        assert info.status == "completed", info
        assert json.loads(info.result_json) == {"answer": "2+3*4 = 14", "rounds": 2}

        events = await _history(client, started.workflow_id)
        steps = [(kind, data.get("activity_id")) for kind, data in events]
        assert steps == [
            ("WorkflowStarted", None),
            ("ActivityScheduled", "process_input"),
            ("ActivityCompleted", "process_input"),
            ("ActivityScheduled", "reason-1"),
            ("ActivityCompleted", "reason-1"),
            ("ActivityScheduled", "act-1-1"),
            ("ActivityCompleted", "act-1-1"),
            ("ActivityScheduled", "reason-2"),
            ("ActivityCompleted", "reason-2"),
            ("WorkflowCompleted", None),
        ]
        tool_call = events[4][1]["result"]["message"]["tool_calls"][0]
        assert tool_call["function"]["name"] == "calculator"
        assert events[6][1]["result"]["content"] == "14"

        # Two tool calls run as parallel activities: both scheduled before either completes.
        started = await client.StartWorkflow(pb.StartWorkflowRequest(
            workflow_type="agent_turn", input_json=json.dumps({"message": "2*3 and 10-4?"})))
        info = (await client.WaitWorkflow(pb.WaitWorkflowRequest(
            workflow_id=started.workflow_id, wait_seconds=30))).workflow
        assert json.loads(info.result_json)["answer"] == "2*3 = 6; 10-4 = 6"
        steps = [(kind, data.get("activity_id")) for kind, data in await _history(client, started.workflow_id)]
        assert steps[5:7] == [("ActivityScheduled", "act-1-1"), ("ActivityScheduled", "act-1-2")]
        assert sorted(steps[7:9]) == [("ActivityCompleted", "act-1-1"), ("ActivityCompleted", "act-1-2")]

        direct = await client.StartWorkflow(pb.StartWorkflowRequest(
            workflow_type="agent_turn", input_json=json.dumps({"message": "hello"})))
        info = (await client.WaitWorkflow(pb.WaitWorkflowRequest(
            workflow_id=direct.workflow_id, wait_seconds=30))).workflow
        assert json.loads(info.result_json) == {"answer": "You said: hello", "rounds": 1}


async def test_health_reports_serving_then_not_serving_on_drain(control_plane: str) -> None:
    app, _ = make_app()
    worker = Worker(app, settings(control_plane))
    running = RunningWorker(worker)
    await running.__aenter__()
    try:
        await wait_until(lambda: worker.link.connected, what="registered")
        async with grpc.aio.insecure_channel(f"127.0.0.1:{worker.health_port}") as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            for service in ("", "durable.v1.WorkerService"):
                reply = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
                assert reply.status == SERVING
            watch = stub.Watch(health_pb2.HealthCheckRequest(service="durable.v1.WorkerService"))
            assert (await watch.read()).status == SERVING
            stopping = asyncio.create_task(worker.stop())
            assert (await watch.read()).status == NOT_SERVING
            await stopping
            watch.cancel()
    finally:
        await running.__aexit__(None, None, None)


async def test_running_activity_sees_workflow_cancellation(
    control_plane: str, client: pb_grpc.ClientServiceStub, db: asyncpg.Connection
) -> None:
    app, seen = make_app()
    async with RunningWorker(Worker(app, settings(control_plane))) as worker:
        started = await client.StartWorkflow(pb.StartWorkflowRequest(workflow_type="waiter"))
        await wait_until(lambda: len(seen["started"]) == 1, timeout=20, what="activity running")
        await client.CancelWorkflow(pb.CancelWorkflowRequest(
            workflow_id=started.workflow_id, reason="test"))
        await wait_until(lambda: seen["cancelled"] == seen["started"], timeout=20,
                         what="activity saw the cancellation")
        await wait_until(lambda: len(worker.running) == 0, what="slot freed")
        info = (await client.DescribeWorkflow(pb.DescribeWorkflowRequest(
            workflow_id=started.workflow_id))).workflow
        assert info.status == "cancelled"
        status = await db.fetchval("SELECT status FROM durable_task_queue WHERE id = $1",
                                   uuid.UUID(seen["started"][0]))
        assert status == "cancelled"  # and no completion overwrote it


async def test_drain_hands_back_unfinished_tasks_and_deregisters(
    control_plane: str, client: pb_grpc.ClientServiceStub, db: asyncpg.Connection
) -> None:
    app, seen = make_app()
    worker = Worker(app, settings(control_plane, DURABLE_DRAIN_GRACE_PERIOD=0.5))
    running = RunningWorker(worker)
    await running.__aenter__()
    reply = await client.EnqueueActivity(pb.EnqueueActivityRequest(activity_type="stubborn"))
    await wait_until(lambda: len(seen["started"]) == 1, timeout=20, what="stubborn running")
    await worker.stop()
    await running.task
    assert seen["cancelled"] == [reply.task_id]
    assert worker.released_tasks == 1
    row = await db.fetchrow(
        "SELECT status, claimed_by, attempt, release_count FROM durable_task_queue WHERE id = $1",
        uuid.UUID(reply.task_id))
    assert row["status"] == "pending" and row["claimed_by"] is None
    assert row["release_count"] == 1
    workers = await client.ListWorkers(pb.ListWorkersRequest(include_stopped=True))
    assert [(w.id, w.status) for w in workers.workers] == [(worker.worker_id, "stopped")]

    # Another worker picks the handed-back task up.
    seen["started"].clear()
    async with RunningWorker(Worker(app, settings(control_plane, DURABLE_DRAIN_GRACE_PERIOD=0.1))):
        await wait_until(lambda: seen["started"] == [reply.task_id], timeout=20, what="re-claimed")
