"""The control plane's gRPC API against real PostgreSQL: happy paths and status codes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import asyncpg
import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from durable.proto.v1 import durable_pb2 as pb
from durable.proto.v1 import durable_pb2_grpc as pb_grpc
from tests.support.controlplane import running_control_plane


@pytest.fixture
async def channel(database_url: str) -> AsyncIterator[grpc.aio.Channel]:
    async with running_control_plane(database_url, poll_interval=0.2) as address:
        async with grpc.aio.insecure_channel(address) as ch:
            yield ch


@pytest.fixture
def workers(channel: grpc.aio.Channel) -> pb_grpc.WorkerServiceStub:
    return pb_grpc.WorkerServiceStub(channel)


@pytest.fixture
def client(channel: grpc.aio.Channel) -> pb_grpc.ClientServiceStub:
    return pb_grpc.ClientServiceStub(channel)


async def _register(workers: pb_grpc.WorkerServiceStub, wid: str = "w1") -> None:
    await workers.RegisterWorker(pb.RegisterWorkerRequest(worker_id=wid, activity_types=["echo"], workflow_types=["wf"], max_concurrency=4))


async def test_activity_round_trip(workers: pb_grpc.WorkerServiceStub, client: pb_grpc.ClientServiceStub) -> None:
    await _register(workers)
    enq = await client.EnqueueActivity(pb.EnqueueActivityRequest(activity_type="echo", input_json='{"x": 1}'))
    stats = await client.GetQueueStats(pb.GetQueueStatsRequest(activity_types=["echo"]))
    assert [(s.type, s.pending, s.claimed) for s in stats.types] == [("echo", 1, 0)]
    got = await workers.ClaimTasks(pb.ClaimTasksRequest(worker_id="w1", activity_types=["echo"], max_tasks=5))
    [task] = got.tasks
    assert task.id == enq.task_id and json.loads(task.input_json) == {"x": 1} and task.attempt == 1
    hb = await workers.HeartbeatTasks(pb.HeartbeatTasksRequest(worker_id="w1", tasks=[pb.TaskRef(task_id=task.id, attempt=1)]))
    assert hb.results[0].accepted and not hb.results[0].cancel_requested
    await workers.CompleteTask(pb.CompleteTaskRequest(worker_id="w1", task_id=task.id, attempt=1, result_json='{"y": 2}'))
    with pytest.raises(grpc.aio.AioRpcError) as late:
        await workers.CompleteTask(pb.CompleteTaskRequest(worker_id="w1", task_id=task.id, attempt=1, result_json="{}"))
    assert late.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "no longer held" in late.value.details()


async def test_long_poll_wakes_on_enqueue(database_url: str) -> None:
    """A waiting claim is woken by the enqueue's NOTIFY: with the fallback re-check 60 s away,
    only the wake-up can hand it the task within the 10 s the test allows."""
    async with running_control_plane(database_url, poll_interval=60) as address:
        async with grpc.aio.insecure_channel(address) as ch:
            workers, client = pb_grpc.WorkerServiceStub(ch), pb_grpc.ClientServiceStub(ch)
            await _register(workers)
            # an empty first claim proves the worker is registered and the queue empty
            assert not (await workers.ClaimTasks(pb.ClaimTasksRequest(worker_id="w1", activity_types=["echo"]))).tasks
            claim = asyncio.ensure_future(workers.ClaimTasks(
                pb.ClaimTasksRequest(worker_id="w1", activity_types=["echo"], max_tasks=1, wait_seconds=30)))
            await asyncio.sleep(0.2)  # let it start waiting; if it has not, it finds the task at once
            await client.EnqueueActivity(pb.EnqueueActivityRequest(activity_type="echo", input_json="{}"))
            got = await asyncio.wait_for(claim, timeout=10)
            assert len(got.tasks) == 1


async def test_health_serving(channel: grpc.aio.Channel) -> None:
    stub = health_pb2_grpc.HealthStub(channel)
    for service in ("", "durable.v1.WorkerService", "durable.v1.ClientService"):
        reply = await stub.Check(health_pb2.HealthCheckRequest(service=service))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING


BAD_CALLS = [
    ("RegisterWorker", "workers", pb.RegisterWorkerRequest(), grpc.StatusCode.INVALID_ARGUMENT, "worker_id is required"),
    ("WorkerHeartbeat", "workers", pb.WorkerHeartbeatRequest(worker_id="ghost"), grpc.StatusCode.NOT_FOUND, "not registered"),
    ("DrainWorker", "workers", pb.DrainWorkerRequest(worker_id="ghost"), grpc.StatusCode.NOT_FOUND, "not registered"),
    ("DeregisterWorker", "workers", pb.DeregisterWorkerRequest(worker_id=""), grpc.StatusCode.INVALID_ARGUMENT, "worker_id"),
    ("ClaimTasks", "workers", pb.ClaimTasksRequest(worker_id="ghost", activity_types=["echo"]), grpc.StatusCode.FAILED_PRECONDITION, "not registered"),
    ("ClaimTasks", "workers", pb.ClaimTasksRequest(worker_id="w1"), grpc.StatusCode.INVALID_ARGUMENT, "at least one"),
    ("ClaimTasks", "workers", pb.ClaimTasksRequest(worker_id="w1", activity_types=["echo"], wait_seconds=-1), grpc.StatusCode.INVALID_ARGUMENT, "wait_seconds"),
    ("HeartbeatTasks", "workers", pb.HeartbeatTasksRequest(worker_id="w1", tasks=[pb.TaskRef(task_id="nope", attempt=1)]), grpc.StatusCode.INVALID_ARGUMENT, "not a UUID"),
    ("CompleteTask", "workers", pb.CompleteTaskRequest(worker_id="w1", task_id="00000000-0000-0000-0000-000000000000", attempt=1), grpc.StatusCode.NOT_FOUND, "does not exist"),
    ("CompleteTask", "workers", pb.CompleteTaskRequest(worker_id="w1", task_id="x", attempt=1, result_json="[1"), grpc.StatusCode.INVALID_ARGUMENT, "not valid JSON"),
    ("CompleteTask", "workers", pb.CompleteTaskRequest(worker_id="w1", task_id="x", attempt=1, result_json="{"), grpc.StatusCode.INVALID_ARGUMENT, "not valid JSON"),
    ("FailTask", "workers", pb.FailTaskRequest(worker_id="w1", task_id="x", attempt=1), grpc.StatusCode.INVALID_ARGUMENT, "failure.message"),
    ("CompleteWorkflowTask", "workers", pb.CompleteWorkflowTaskRequest(worker_id="w1", task_id="x", actions=[pb.WorkflowAction()]), grpc.StatusCode.INVALID_ARGUMENT, "no action set"),
    ("ReleaseTasks", "workers", pb.ReleaseTasksRequest(), grpc.StatusCode.INVALID_ARGUMENT, "worker_id"),
    ("StartWorkflow", "client", pb.StartWorkflowRequest(), grpc.StatusCode.INVALID_ARGUMENT, "workflow_type is required"),
    ("StartWorkflow", "client", pb.StartWorkflowRequest(workflow_type="wf", input_json='"text'), grpc.StatusCode.INVALID_ARGUMENT, "not valid JSON"),
    ("StartWorkflow", "client", pb.StartWorkflowRequest(workflow_type="wf", workflow_id="x" * 300), grpc.StatusCode.INVALID_ARGUMENT, "longer than 255"),
    ("SignalWorkflow", "client", pb.SignalWorkflowRequest(workflow_id="nope", signal_type="s"), grpc.StatusCode.NOT_FOUND, "does not exist"),
    ("SignalWorkflow", "client", pb.SignalWorkflowRequest(workflow_id="nope"), grpc.StatusCode.INVALID_ARGUMENT, "signal_type"),
    ("CancelWorkflow", "client", pb.CancelWorkflowRequest(workflow_id="nope"), grpc.StatusCode.NOT_FOUND, "does not exist"),
    ("DescribeWorkflow", "client", pb.DescribeWorkflowRequest(workflow_id="nope"), grpc.StatusCode.NOT_FOUND, "does not exist"),
    ("DescribeWorkflow", "client", pb.DescribeWorkflowRequest(), grpc.StatusCode.INVALID_ARGUMENT, "workflow_id is required"),
    ("ListWorkflows", "client", pb.ListWorkflowsRequest(status="exploded"), grpc.StatusCode.INVALID_ARGUMENT, "not one of"),
    ("GetHistory", "client", pb.GetHistoryRequest(workflow_id="nope"), grpc.StatusCode.NOT_FOUND, "does not exist"),
    ("WaitWorkflow", "client", pb.WaitWorkflowRequest(workflow_id="nope"), grpc.StatusCode.NOT_FOUND, "does not exist"),
    ("EnqueueActivity", "client", pb.EnqueueActivityRequest(activity_type="echo", options=pb.ActivityOptions(retry_policy=pb.RetryPolicy(max_attempts=-1))), grpc.StatusCode.INVALID_ARGUMENT, "max_attempts"),
    ("EnqueueActivity", "client", pb.EnqueueActivityRequest(activity_type="echo", options=pb.ActivityOptions(start_delay=-5)), grpc.StatusCode.INVALID_ARGUMENT, "start_delay"),
    ("ListDeadLetters", "client", pb.ListDeadLettersRequest(limit=5000), grpc.StatusCode.INVALID_ARGUMENT, "limit"),
    ("RequeueDeadLetter", "client", pb.RequeueDeadLetterRequest(id="nope"), grpc.StatusCode.INVALID_ARGUMENT, "not a UUID"),
    ("RequeueDeadLetter", "client", pb.RequeueDeadLetterRequest(id="00000000-0000-0000-0000-000000000000"), grpc.StatusCode.NOT_FOUND, "does not exist"),
    ("GetQueueStats", "client", pb.GetQueueStatsRequest(activity_types=[""]), grpc.StatusCode.INVALID_ARGUMENT, "activity_types"),
    ("GetHistory", "client", pb.GetHistoryRequest(workflow_id="nope", page_size=20000), grpc.StatusCode.INVALID_ARGUMENT, "page_size"),
    ("PinWorkflow", "client", pb.PinWorkflowRequest(), grpc.StatusCode.INVALID_ARGUMENT, "workflow_id is required"),
    ("PinWorkflow", "client", pb.PinWorkflowRequest(workflow_id="nope", pinned=True), grpc.StatusCode.NOT_FOUND, "does not exist"),
    ("DeleteDeadLetter", "client", pb.DeleteDeadLetterRequest(id="nope"), grpc.StatusCode.INVALID_ARGUMENT, "not a UUID"),
    ("DeleteDeadLetter", "client", pb.DeleteDeadLetterRequest(id="00000000-0000-0000-0000-000000000000"), grpc.StatusCode.NOT_FOUND, "does not exist"),
    ("GetTaskHistory", "workers", pb.GetTaskHistoryRequest(worker_id="w1", task_id="nope"), grpc.StatusCode.INVALID_ARGUMENT, "not a UUID"),
    ("GetTaskHistory", "workers", pb.GetTaskHistoryRequest(worker_id="w1", task_id="00000000-0000-0000-0000-000000000000", attempt=1), grpc.StatusCode.NOT_FOUND, "does not exist"),
]


@pytest.mark.parametrize(("method", "service", "request_msg", "code", "text"), BAD_CALLS, ids=[f"{c[0]}-{i}" for i, c in enumerate(BAD_CALLS)])
async def test_bad_input_gets_the_right_status_and_writes_nothing(
    workers: pb_grpc.WorkerServiceStub,
    client: pb_grpc.ClientServiceStub,
    db: asyncpg.Connection,
    method: str,
    service: str,
    request_msg: object,
    code: grpc.StatusCode,
    text: str,
) -> None:
    await _register(workers)
    before = await _row_counts(db)
    stub = workers if service == "workers" else client
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await getattr(stub, method)(request_msg)
    assert err.value.code() == code, err.value.details()
    assert text in err.value.details()
    assert await _row_counts(db) == before


async def test_oversized_payload_is_resource_exhausted(client: pb_grpc.ClientServiceStub, db: asyncpg.Connection) -> None:
    big = json.dumps({"blob": "x" * (1024 * 1024 + 10)})
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await client.StartWorkflow(pb.StartWorkflowRequest(workflow_type="wf", input_json=big))
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "over the limit" in err.value.details()
    assert await db.fetchval("SELECT count(*) FROM durable_workflow_instances") == 0


async def _row_counts(db: asyncpg.Connection) -> dict[str, int]:
    tables = ["durable_workflow_instances", "durable_workflow_events", "durable_task_queue",
              "durable_dead_letter_queue", "durable_signals"]
    return {t: await db.fetchval(f"SELECT count(*) FROM {t}") for t in tables}


async def test_late_completion_from_a_reclaimed_attempt_is_rejected(database_url: str, db: asyncpg.Connection) -> None:
    async with running_control_plane(database_url, stale_after=0.5, interval=0.1, worker_lost_after=60) as address:
        async with grpc.aio.insecure_channel(address) as ch:
            workers, client = pb_grpc.WorkerServiceStub(ch), pb_grpc.ClientServiceStub(ch)
            await _register(workers, "slowpoke")
            await _register(workers, "rescuer")
            await client.EnqueueActivity(pb.EnqueueActivityRequest(activity_type="echo", input_json="{}"))
            [first] = (await workers.ClaimTasks(pb.ClaimTasksRequest(worker_id="slowpoke", activity_types=["echo"]))).tasks
            # slowpoke stops heartbeating; the reaper takes the task back and rescuer gets attempt 2
            got = await workers.ClaimTasks(pb.ClaimTasksRequest(worker_id="rescuer", activity_types=["echo"], wait_seconds=20))
            [second] = got.tasks
            assert second.id == first.id and second.attempt == 2
            with pytest.raises(grpc.aio.AioRpcError) as late:
                await workers.CompleteTask(pb.CompleteTaskRequest(worker_id="slowpoke", task_id=first.id, attempt=1, result_json='{"late": true}'))
            assert late.value.code() == grpc.StatusCode.FAILED_PRECONDITION
            hb = await workers.HeartbeatTasks(pb.HeartbeatTasksRequest(worker_id="slowpoke", tasks=[pb.TaskRef(task_id=first.id, attempt=1)]))
            assert not hb.results[0].accepted
            await workers.CompleteTask(pb.CompleteTaskRequest(worker_id="rescuer", task_id=second.id, attempt=2, result_json='{"ok": true}'))
    assert await db.fetchval("SELECT result FROM durable_task_queue") == '{"ok": true}'


async def test_liveness_service_is_serving(channel: grpc.aio.Channel) -> None:
    stub = health_pb2_grpc.HealthStub(channel)
    reply = await stub.Check(health_pb2.HealthCheckRequest(service="liveness"))
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_complete_tasks_in_one_call_with_per_task_outcomes(
    workers: pb_grpc.WorkerServiceStub, client: pb_grpc.ClientServiceStub, db: asyncpg.Connection
) -> None:
    await _register(workers)
    for i in range(5):
        await client.EnqueueActivity(pb.EnqueueActivityRequest(activity_type="echo", input_json=json.dumps({"i": i})))
    tasks = (await workers.ClaimTasks(pb.ClaimTasksRequest(worker_id="w1", activity_types=["echo"], max_tasks=10))).tasks
    assert len(tasks) == 5
    completions = [pb.TaskCompletion(task_id=t.id, attempt=t.attempt, result_json=json.dumps({"i": i})) for i, t in enumerate(tasks[:3])]
    completions.append(pb.TaskCompletion(task_id=tasks[3].id, attempt=7, result_json="{}"))  # a stale attempt
    completions.append(pb.TaskCompletion(task_id=tasks[4].id, attempt=tasks[4].attempt, result_json="[1"))  # not JSON
    reply = await workers.CompleteTasks(pb.CompleteTasksRequest(worker_id="w1", completions=completions))
    assert [o.accepted for o in reply.outcomes] == [True, True, True, False, False]
    assert [o.code for o in reply.outcomes[3:]] == ["FAILED_PRECONDITION", "INVALID_ARGUMENT"]
    assert "not valid JSON" in reply.outcomes[4].message
    assert await db.fetchval("SELECT count(*) FROM durable_task_queue WHERE status = 'completed'") == 3
    assert await db.fetchval("SELECT count(*) FROM durable_task_queue WHERE status = 'claimed'") == 2


async def test_a_completion_carries_the_decision_that_follows_and_a_bad_one_never_costs_the_completion(
    workers: pb_grpc.WorkerServiceStub, client: pb_grpc.ClientServiceStub, db: asyncpg.Connection
) -> None:
    import time

    await _register(workers)
    for _ in range(3):
        await client.StartWorkflow(pb.StartWorkflowRequest(workflow_type="wf", input_json="{}"))
    decisions = (await workers.ClaimTasks(pb.ClaimTasksRequest(worker_id="w1", workflow_types=["wf"], max_tasks=10))).tasks
    step = pb.WorkflowAction(schedule_activity=pb.ScheduleActivity(activity_id="s1", activity_type="echo", input_json="{}"))
    reply = await workers.CompleteWorkflowTasks(pb.CompleteWorkflowTasksRequest(worker_id="w1", decisions=[
        pb.CompleteWorkflowTaskRequest(task_id=d.id, attempt=d.attempt, seen_through_seq=1, actions=[step], keeps_instance=True)
        for d in decisions]))
    # the worker that keeps the instance is told the command events its decision appended
    assert [[(e.sequence_num, e.event_type) for e in o.events] for o in reply.outcomes] == [[(2, "ActivityScheduled")]] * 3
    acts = (await workers.ClaimTasks(pb.ClaimTasksRequest(worker_id="w1", activity_types=["echo"], max_tasks=10))).tasks
    done = pb.WorkflowAction(complete_workflow=pb.CompleteWorkflow(result_json='{"ok": true}'))
    now_us = time.time_ns() // 1000
    reply = await workers.CompleteTasks(pb.CompleteTasksRequest(worker_id="w1", completions=[
        pb.TaskCompletion(task_id=acts[0].id, attempt=acts[0].attempt, result_json="{}", of_workflow=True,
                          decision=pb.FollowingDecision(after_seq=2, event_time_us=now_us, actions=[done])),
        pb.TaskCompletion(task_id=acts[1].id, attempt=acts[1].attempt, result_json="{}", of_workflow=True,
                          decision=pb.FollowingDecision(after_seq=2, event_time_us=now_us, actions=[pb.WorkflowAction()])),
        pb.TaskCompletion(task_id=acts[2].id, attempt=acts[2].attempt, result_json="{}", of_workflow=True,
                          decision=pb.FollowingDecision(after_seq=2, event_time_us=2**62, actions=[done])),
    ]))
    assert [(o.accepted, o.applied) for o in reply.outcomes] == [(True, True), (True, False), (True, False)]
    statuses = {r["id"]: r["status"] for r in await db.fetch("SELECT id, status FROM durable_workflow_instances")}
    assert statuses[acts[0].workflow_id] == "completed"
    # an empty action and a stamp from no clock: dropped, and a decision task decides instead
    for act in acts[1:]:
        assert statuses[act.workflow_id] == "running"
        assert await db.fetchval("SELECT count(*) FROM durable_task_queue WHERE kind = 'workflow' AND status = 'pending' "
                                 "AND workflow_id = $1", act.workflow_id) == 1
    assert await db.fetchval("SELECT count(*) FROM durable_task_queue WHERE kind = 'activity' AND status = 'completed'") == 3


async def test_complete_workflow_tasks_in_one_call_with_per_decision_outcomes(
    workers: pb_grpc.WorkerServiceStub, client: pb_grpc.ClientServiceStub, db: asyncpg.Connection
) -> None:
    await _register(workers)
    ids = [(await client.StartWorkflow(pb.StartWorkflowRequest(workflow_type="wf", input_json="{}"))).workflow_id
           for _ in range(5)]
    tasks = (await workers.ClaimTasks(pb.ClaimTasksRequest(worker_id="w1", workflow_types=["wf"], max_tasks=10))).tasks
    assert sorted(t.workflow_id for t in tasks) == sorted(ids)
    step = pb.WorkflowAction(schedule_activity=pb.ScheduleActivity(activity_id="s1", activity_type="echo", input_json="{}"))
    done = pb.WorkflowAction(complete_workflow=pb.CompleteWorkflow(result_json='{"ok": true}'))
    decisions = [
        pb.CompleteWorkflowTaskRequest(task_id=tasks[0].id, attempt=tasks[0].attempt, seen_through_seq=1, actions=[step]),
        pb.CompleteWorkflowTaskRequest(task_id=tasks[1].id, attempt=tasks[1].attempt, seen_through_seq=1, actions=[done]),
        pb.CompleteWorkflowTaskRequest(task_id=tasks[2].id, attempt=9, seen_through_seq=1, actions=[step]),  # stale
        pb.CompleteWorkflowTaskRequest(  # not JSON: refused before the batch
            task_id=tasks[3].id, attempt=tasks[3].attempt, seen_through_seq=1,
            actions=[pb.WorkflowAction(complete_workflow=pb.CompleteWorkflow(result_json="[1"))]),
        pb.CompleteWorkflowTaskRequest(  # saw events the history does not hold: dropped
            task_id=tasks[4].id, attempt=tasks[4].attempt, seen_through_seq=5, actions=[step]),
    ]
    reply = await workers.CompleteWorkflowTasks(pb.CompleteWorkflowTasksRequest(worker_id="w1", decisions=decisions))
    assert [(o.task_id, o.accepted, o.applied) for o in reply.outcomes] == [
        (tasks[0].id, True, True), (tasks[1].id, True, True), (tasks[2].id, False, False),
        (tasks[3].id, False, False), (tasks[4].id, True, False)]
    assert [o.code for o in reply.outcomes[2:4]] == ["FAILED_PRECONDITION", "INVALID_ARGUMENT"]
    statuses = {r["id"]: r["status"] for r in await db.fetch("SELECT id, status FROM durable_workflow_instances")}
    assert statuses[tasks[1].workflow_id] == "completed"
    assert await db.fetchval(
        "SELECT count(*) FROM durable_task_queue WHERE kind = 'activity' AND workflow_id = $1", tasks[0].workflow_id) == 1
    # the stale and the refused decisions' tasks are still held; the dropped one's is done, and its
    # workflow has a new decision waiting
    held = {r["id"] for r in await db.fetch(
        "SELECT id::text FROM durable_task_queue WHERE kind = 'workflow' AND status = 'claimed'")}
    assert held == {tasks[2].id, tasks[3].id}
    assert await db.fetchval(
        "SELECT count(*) FROM durable_task_queue WHERE kind = 'workflow' AND status = 'pending' AND workflow_id = $1",
        tasks[4].workflow_id) == 1
