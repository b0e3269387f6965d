"""Delayed work is claimable when it becomes visible: a start delay, a retry's backoff and a
timer wake waiting claims at their due time. The fallback re-check is set out of reach (30 s)
and every long-poll waits at most 10 s, so only the due-time wake-up can deliver the task."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import grpc
import pytest

from durable.proto.v1 import durable_pb2 as pb
from durable.proto.v1 import durable_pb2_grpc as pb_grpc
from tests.support.controlplane import running_control_plane

OUT_OF_REACH = 30.0
WAIT = 60.0
DEADLINE = 10.0


@pytest.fixture
async def stubs(database_url: str) -> AsyncIterator[tuple[pb_grpc.ClientServiceStub, pb_grpc.WorkerServiceStub]]:
    async with running_control_plane(database_url, poll_interval=OUT_OF_REACH, timer_interval=OUT_OF_REACH) as address:
        async with grpc.aio.insecure_channel(address) as channel:
            workers = pb_grpc.WorkerServiceStub(channel)
            await workers.RegisterWorker(pb.RegisterWorkerRequest(worker_id="w1", activity_types=["a"], workflow_types=["wf"]))
            yield pb_grpc.ClientServiceStub(channel), workers


def claim(**types: list[str]) -> pb.ClaimTasksRequest:
    return pb.ClaimTasksRequest(worker_id="w1", max_tasks=1, wait_seconds=WAIT, **types)


async def lateness(db: asyncpg.Connection, task_id: str) -> float:
    row = await db.fetchrow("SELECT claimed_at, visible_at FROM durable_task_queue WHERE id = $1", uuid.UUID(task_id))
    return float((row["claimed_at"] - row["visible_at"]).total_seconds())


async def test_a_start_delay_is_claimed_when_due(stubs: tuple[..., ...], db: asyncpg.Connection) -> None:
    client, workers = stubs
    # the first claim waits (nothing visible); the task arrives delayed 0.4 s
    enqueued = await client.EnqueueActivity(pb.EnqueueActivityRequest(
        activity_type="a", input_json="{}", options=pb.ActivityOptions(start_delay=0.4)))
    reply = await workers.ClaimTasks(timeout=DEADLINE, request=claim(activity_types=["a"]))
    assert [t.id for t in reply.tasks] == [enqueued.task_id]
    assert await lateness(db, enqueued.task_id) >= 0


async def test_a_retry_backoff_is_claimed_when_due(stubs: tuple[..., ...], db: asyncpg.Connection) -> None:
    client, workers = stubs
    enqueued = await client.EnqueueActivity(pb.EnqueueActivityRequest(activity_type="a", input_json="{}"))
    [task] = (await workers.ClaimTasks(timeout=DEADLINE, request=claim(activity_types=["a"]))).tasks
    failed = await workers.FailTask(pb.FailTaskRequest(
        worker_id="w1", task_id=task.id, attempt=task.attempt,
        failure=pb.Failure(message="later", type="Busy", next_retry_delay=0.3)))
    assert failed.outcome == "retrying"
    reply = await workers.ClaimTasks(timeout=DEADLINE, request=claim(activity_types=["a"]))
    assert [(t.id, t.attempt) for t in reply.tasks] == [(enqueued.task_id, 2)]


async def test_a_timer_fires_and_its_decision_is_claimed_when_due(stubs: tuple[..., ...], db: asyncpg.Connection) -> None:
    client, workers = stubs
    started = await client.StartWorkflow(pb.StartWorkflowRequest(workflow_type="wf", input_json="{}"))
    [decision] = (await workers.ClaimTasks(timeout=DEADLINE, request=claim(workflow_types=["wf"]))).tasks
    await workers.CompleteWorkflowTask(pb.CompleteWorkflowTaskRequest(
        worker_id="w1", task_id=decision.id, attempt=decision.attempt, seen_through_seq=decision.history[-1].sequence_num,
        actions=[pb.WorkflowAction(start_timer=pb.StartTimer(timer_id="t1", fire_after=0.4))]))
    reply = await workers.ClaimTasks(timeout=DEADLINE, request=claim(workflow_types=["wf"]))
    assert len(reply.tasks) == 1
    assert [e.event_type for e in reply.tasks[0].history][-1] == "TimerFired"
    fired = await db.fetchrow("SELECT completed_at, visible_at FROM durable_task_queue WHERE kind = 'timer' AND workflow_id = $1",
                              started.workflow_id)
    assert fired["completed_at"] >= fired["visible_at"]
    assert json.loads(reply.tasks[0].history[0].event_data_json)["workflow_type"] == "wf"
    assert datetime.now(UTC) >= fired["visible_at"]
