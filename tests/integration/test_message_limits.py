"""Nothing lost at the message-size limits: work that succeeded is never failed because its
messages were large (real control plane, real PostgreSQL, gRPC on loopback)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import grpc
import pytest

from durable.common.errors import MessageTooLarge, PayloadTooLarge
from durable.proto.v1 import durable_pb2 as pb
from durable.proto.v1 import durable_pb2_grpc as pb_grpc
from durable.worker import ActivityContext, App, Worker, WorkerSettings, Workflow, complete, schedule_activity
from durable.worker.batching import CompletionBatcher
from durable.worker.link import ControlPlaneLink
from durable.worker.testing import RunningWorker, wait_until
from tests.support.controlplane import running_control_plane

MiB = 1024 * 1024
# The seed's receive limit with the default 1 MiB payloads (2 x 1 MiB + 1 MiB).
SEED_RECEIVE_LIMIT = 3 * MiB


def settings(address: str, **overrides: Any) -> WorkerSettings:
    values: dict[str, Any] = {
        "GRPC_ADDRESS": address,
        "WORKER_ID": f"limits-{uuid.uuid4().hex[:8]}",
        "WORKER_HEALTH_PORT": 0,
        "WORKER_HEALTH_HOST": "127.0.0.1",
        "MAX_CONCURRENT_TASKS": 16,
        "DURABLE_TASK_HEARTBEAT_INTERVAL": 0.2,
        "DURABLE_WORKER_HEARTBEAT_INTERVAL": 0.2,
        "DURABLE_CLAIM_WAIT": 1,
        "DURABLE_DRAIN_GRACE_PERIOD": 5,
        "DURABLE_CANCEL_GRACE_PERIOD": 1,
    }
    values.update(overrides)
    return WorkerSettings(**values)


@pytest.fixture
async def control_plane(database_url: str) -> AsyncIterator[str]:
    async with running_control_plane(database_url, poll_interval=0.2, max_message_bytes=SEED_RECEIVE_LIMIT) as address:
        yield address


async def wait_for(check: Any, what: str, timeout: float = 15.0) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = await check()
        if value:
            return value
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


def fan_out_app(n: int, result_bytes: int) -> App:
    """A workflow of `n` activities that finish together, each returning `result_bytes`."""
    app = App()
    started: list[str] = []
    all_started = asyncio.Event()

    @app.activity(name="big_result")
    async def big_result(ctx: ActivityContext, input: dict[str, Any]) -> dict[str, Any]:
        started.append(ctx.task_id)
        if len(started) >= n:
            all_started.set()
        await all_started.wait()  # all return in the same loop turn: one batch on main
        return {"blob": "x" * result_bytes, "i": input["i"]}

    @app.workflow(name="fan_out")
    class FanOut(Workflow):
        def __init__(self) -> None:
            self.done = 0

        def on_start(self, input: dict[str, Any]) -> list[Any]:
            return [schedule_activity("big_result", {"i": i}, activity_id=f"a{i}") for i in range(n)]

        def on_activity_completed(self, activity_id: str, result: dict[str, Any]) -> list[Any]:
            self.done += 1
            return [complete({"done": self.done})] if self.done == n else []

    return app


async def test_eight_large_activity_results_of_one_workflow_all_complete(
    control_plane: str, db: asyncpg.Connection
) -> None:
    """Repro: 8 x 600 KB results coalesced into one 4.8 MB CompleteTasks over a 3 MiB limit
    were failed non-retryably, and the workflow with them."""
    worker = Worker(fan_out_app(8, 600_000), settings(control_plane))
    async with RunningWorker(worker), grpc.aio.insecure_channel(control_plane) as channel:
        client = pb_grpc.ClientServiceStub(channel)
        started = await client.StartWorkflow(pb.StartWorkflowRequest(workflow_type="fan_out", input_json="{}"))

        async def ended() -> str | None:
            status = await db.fetchval(
                "SELECT status FROM durable_workflow_instances WHERE id = $1", started.workflow_id)
            return status if status in ("completed", "failed", "cancelled") else None

        assert await wait_for(ended, "the workflow to end") == "completed"
        batcher = worker._runner.completions
        assert batcher.batches >= 2 and batcher.completions == 8
    assert await db.fetchval("SELECT count(*) FROM durable_dead_letter_queue") == 0
    assert await db.fetchval(
        "SELECT count(*) FROM durable_workflow_events WHERE workflow_id = $1 AND event_type = 'ActivityCompleted'",
        started.workflow_id) == 8


async def _claim_standalone(control_plane: str, worker_id: str, n: int) -> tuple[ControlPlaneLink, int, list[pb.Task]]:
    link = ControlPlaneLink(control_plane, rpc_timeout=10)
    registered = await link.call("RegisterWorker", pb.RegisterWorkerRequest(worker_id=worker_id, activity_types=["t"]))
    async with grpc.aio.insecure_channel(control_plane) as channel:
        client = pb_grpc.ClientServiceStub(channel)
        for _ in range(n):
            await client.EnqueueActivity(pb.EnqueueActivityRequest(activity_type="t", input_json="{}"))
    claimed = await link.call("ClaimTasks", pb.ClaimTasksRequest(worker_id=worker_id, activity_types=["t"], max_tasks=n))
    assert len(claimed.tasks) == n
    return link, getattr(registered, "max_request_bytes", 0), list(claimed.tasks)


async def test_a_completion_too_large_to_travel_fails_alone_naming_the_limit(
    control_plane: str, db: asyncpg.Connection
) -> None:
    link, limit, (small, huge) = await _claim_standalone(control_plane, "w-big", 2)
    try:
        batcher = CompletionBatcher(link, "w-big")
        if limit:
            batcher.max_request_bytes = limit
        big_result = json.dumps({"blob": "y" * (4 * MiB)})
        outcomes = await asyncio.gather(
            batcher.complete(pb.CompleteTaskRequest(task_id=small.id, attempt=small.attempt, result_json='{"ok":1}')),
            batcher.complete(pb.CompleteTaskRequest(task_id=huge.id, attempt=huge.attempt, result_json=big_result)),
            return_exceptions=True,
        )
        assert not isinstance(outcomes[0], BaseException), outcomes[0]
        assert isinstance(outcomes[1], PayloadTooLarge)
        assert "result_json" in str(outcomes[1]) and str(SEED_RECEIVE_LIMIT) in str(outcomes[1])
        rows = {r["id"]: r["status"] for r in await db.fetch("SELECT id, status FROM durable_task_queue")}
        assert rows[uuid.UUID(small.id)] == "completed"
        assert rows[uuid.UUID(huge.id)] == "claimed"  # untouched: the worker decides what to report
    finally:
        await link.close()


async def test_a_transport_size_refusal_is_not_a_payload_error(control_plane: str) -> None:
    """gRPC's own RESOURCE_EXHAUSTED (no durable-error metadata) is MessageTooLarge, which the
    worker never reports as the activity's failure; the control plane's own is PayloadTooLarge."""
    link = ControlPlaneLink(control_plane, rpc_timeout=10)
    try:
        await link.call("RegisterWorker", pb.RegisterWorkerRequest(worker_id="w-t", activity_types=["t"]))
        too_big = pb.CompleteTasksRequest(worker_id="w-t", completions=[
            pb.TaskCompletion(task_id=str(uuid.uuid4()), attempt=1, result_json=json.dumps({"b": "z" * 900_000}))
            for _ in range(4)
        ])
        with pytest.raises(MessageTooLarge):
            await link.call("CompleteTasks", too_big)
        over_payload = pb.CompleteTaskRequest(
            worker_id="w-t", task_id=str(uuid.uuid4()), attempt=1, result_json=json.dumps({"b": "z" * (MiB + 10)}))
        with pytest.raises(PayloadTooLarge, match="result_json is .* over the limit of 1048576"):
            await link.call("CompleteTask", over_payload)
    finally:
        await link.close()


async def test_heartbeats_with_large_details_are_split_and_recorded(
    control_plane: str, db: asyncpg.Connection
) -> None:
    """Repro: 8 running tasks reporting 600 KB of progress each made one 4.8 MB HeartbeatTasks,
    refused every round: no heartbeat was recorded, and the reaper would take the tasks back."""
    app = App()
    release = asyncio.Event()

    @app.activity(name="progress")
    async def progress(ctx: ActivityContext, input: dict[str, Any]) -> dict[str, Any]:
        ctx.heartbeat({"log": "p" * 600_000})
        await release.wait()
        return {}

    async with RunningWorker(Worker(app, settings(control_plane))), grpc.aio.insecure_channel(control_plane) as channel:
        client = pb_grpc.ClientServiceStub(channel)
        for _ in range(8):
            await client.EnqueueActivity(pb.EnqueueActivityRequest(activity_type="progress", input_json="{}"))

        async def recorded() -> bool:
            n = await db.fetchval(
                "SELECT count(*) FROM durable_task_queue WHERE status = 'claimed' AND heartbeat_details IS NOT NULL")
            return bool(n == 8)

        await wait_for(recorded, "8 heartbeats with details recorded")
        release.set()

        async def completed() -> bool:
            return bool(await db.fetchval("SELECT count(*) FROM durable_task_queue WHERE status = 'completed'") == 8)

        await wait_for(completed, "the 8 tasks to complete")


async def test_a_claim_fits_its_answer_and_hands_back_the_rest_at_once(database_url: str, db: asyncpg.Connection) -> None:
    """Repro: 40 workflow tasks with 1 MB inputs made an 80 MB claim answer (the input sent
    twice), over the 64 MiB send limit: never delivered, taken back by the reaper 3 times,
    then poison. Now the input travels once and the answer stays in its budget."""
    async with running_control_plane(database_url, poll_interval=0.2, max_response_bytes=8 * MiB) as address:
        async with grpc.aio.insecure_channel(address) as channel:
            client = pb_grpc.ClientServiceStub(channel)
            big = json.dumps({"blob": "i" * 1_000_000})
            for i in range(40):
                await client.StartWorkflow(pb.StartWorkflowRequest(workflow_type="wf", workflow_id=f"big-{i}", input_json=big))
        options = [("grpc.max_receive_message_length", 64 * MiB)]
        async with grpc.aio.insecure_channel(address, options=options) as channel:
            workers = pb_grpc.WorkerServiceStub(channel)
            await workers.RegisterWorker(pb.RegisterWorkerRequest(worker_id="w1", workflow_types=["wf"]))
            first = await workers.ClaimTasks(pb.ClaimTasksRequest(worker_id="w1", workflow_types=["wf"], max_tasks=40))
            assert 0 < len(first.tasks) < 40
            assert first.ByteSize() <= 8 * MiB
            for task in first.tasks:
                assert task.input_json == ""
                assert task.history[0].event_type == "WorkflowStarted"
                assert json.loads(task.history[0].event_data_json)["input"] == json.loads(big)
            # the rest is back on the queue now, not held until the reaper's threshold
            held = await db.fetchval("SELECT count(*) FROM durable_task_queue WHERE status = 'claimed'")
            assert held == len(first.tasks)
            handed_back = await db.fetch(
                "SELECT attempt, release_count FROM durable_task_queue WHERE status = 'pending' AND kind = 'workflow'")
            assert len(handed_back) == 40 - len(first.tasks)
            assert all(r["attempt"] == r["release_count"] == 1 for r in handed_back)  # no attempt burnt
            second = await workers.ClaimTasks(pb.ClaimTasksRequest(worker_id="w1", workflow_types=["wf"], max_tasks=40))
            assert len(second.tasks) > 0
            assert not {t.id for t in first.tasks} & {t.id for t in second.tasks}


async def test_a_workflow_task_too_large_for_any_answer_is_refused_with_a_clear_message(
    database_url: str, db: asyncpg.Connection
) -> None:
    async with running_control_plane(database_url, poll_interval=0.2, max_response_bytes=3 * MiB) as address:
        async with grpc.aio.insecure_channel(address) as channel:
            client = pb_grpc.ClientServiceStub(channel)
            blob = json.dumps({"blob": "s" * 1_000_000})
            await client.StartWorkflow(pb.StartWorkflowRequest(workflow_type="wf", workflow_id="huge", input_json=blob))
            for _ in range(3):
                await client.SignalWorkflow(pb.SignalWorkflowRequest(workflow_id="huge", signal_type="s", payload_json=blob))
            workers = pb_grpc.WorkerServiceStub(channel)
            await workers.RegisterWorker(pb.RegisterWorkerRequest(worker_id="w1", workflow_types=["wf"]))
            reply = await workers.ClaimTasks(pb.ClaimTasksRequest(worker_id="w1", workflow_types=["wf"], max_tasks=5))
            assert list(reply.tasks) == []
        # a failed decision blocks its workflow (it is not failed): blocked says why
        row = await db.fetchrow("SELECT status, blocked FROM durable_workflow_instances WHERE id = 'huge'")
        assert row["status"] == "running"
        blocked = json.loads(row["blocked"])
        assert blocked["type"] == "MessageTooLarge" and "DURABLE_MAX_RESPONSE_BYTES" in blocked["message"]
        assert await db.fetchval("SELECT count(*) FROM durable_task_queue WHERE status = 'claimed'") == 0


async def test_get_history_is_paged_by_count_and_by_bytes(database_url: str) -> None:
    from durable.client import Client

    async with running_control_plane(database_url, max_response_bytes=3 * MiB) as address:
        async with Client(address) as client:
            await client.start_workflow("wf", {}, workflow_id="long")
            for i in range(24):
                await client.signal_workflow("long", "tick", {"i": i})
            big = {"blob": "h" * 900_000}
            for _ in range(5):
                await client.signal_workflow("long", "big", big)
            async with grpc.aio.insecure_channel(address) as channel:
                stub = pb_grpc.ClientServiceStub(channel)
                page = await stub.GetHistory(pb.GetHistoryRequest(workflow_id="long", page_size=10))
                assert [e.sequence_num for e in page.events] == list(range(1, 11))
                assert page.has_more and page.next_after_seq == 10
                # the five 900 KB signals cannot share one 3 MiB answer: pages end at the budget
                tail = await stub.GetHistory(pb.GetHistoryRequest(workflow_id="long", after_seq=25))
                assert 0 < len(tail.events) < 5 and tail.has_more
                with pytest.raises(grpc.aio.AioRpcError) as bad:
                    await stub.GetHistory(pb.GetHistoryRequest(workflow_id="long", page_size=-1))
                assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            pages = [len(p) async for p in client.history_pages("long", page_size=7)]
            assert sum(pages) == 30 and len(pages) >= 5
            events = await client.history("long")
            assert [e.sequence_num for e in events] == list(range(1, 31))


async def test_a_decision_scheduling_four_900_kb_inputs_is_received(database_url: str, db: asyncpg.Connection) -> None:
    """Repro (the control plane's side): a decision of 4 activities with 900 KB inputs is 3.6 MB,
    over the seed's 3 MiB receive limit; the default limit (DURABLE_MAX_MESSAGE_BYTES, 16 MiB)
    takes it, and the worker is told that limit when it registers."""
    async with running_control_plane(database_url) as address:
        async with grpc.aio.insecure_channel(address, options=[("grpc.max_send_message_length", 64 * MiB)]) as channel:
            client = pb_grpc.ClientServiceStub(channel)
            workers = pb_grpc.WorkerServiceStub(channel)
            registered = await workers.RegisterWorker(pb.RegisterWorkerRequest(worker_id="w1", workflow_types=["wf"]))
            assert registered.max_request_bytes == 16 * MiB and registered.max_payload_bytes == MiB
            await client.StartWorkflow(pb.StartWorkflowRequest(workflow_type="wf", workflow_id="big-decision"))
            [task] = (await workers.ClaimTasks(pb.ClaimTasksRequest(worker_id="w1", workflow_types=["wf"], max_tasks=1))).tasks
            big = json.dumps({"blob": "d" * 900_000})
            decision = pb.CompleteWorkflowTaskRequest(
                worker_id="w1", task_id=task.id, attempt=task.attempt, seen_through_seq=task.history[-1].sequence_num,
                actions=[pb.WorkflowAction(schedule_activity=pb.ScheduleActivity(
                    activity_id=f"a{i}", activity_type="a", input_json=big)) for i in range(4)])
            assert decision.ByteSize() > SEED_RECEIVE_LIMIT
            assert (await workers.CompleteWorkflowTask(decision)).applied
    assert await db.fetchval("SELECT count(*) FROM durable_task_queue WHERE kind = 'activity'") == 4


async def test_a_worker_that_pages_gets_a_truncated_history_and_reads_the_rest(
    database_url: str, db: asyncpg.Connection
) -> None:
    async with running_control_plane(database_url, poll_interval=0.2, max_response_bytes=3 * MiB) as address:
        async with grpc.aio.insecure_channel(address) as channel:
            client = pb_grpc.ClientServiceStub(channel)
            blob = json.dumps({"blob": "s" * 1_000_000})
            await client.StartWorkflow(pb.StartWorkflowRequest(workflow_type="wf", workflow_id="huge", input_json=blob))
            for _ in range(3):
                await client.SignalWorkflow(pb.SignalWorkflowRequest(workflow_id="huge", signal_type="s", payload_json=blob))
            workers = pb_grpc.WorkerServiceStub(channel)
            await workers.RegisterWorker(pb.RegisterWorkerRequest(worker_id="w1", workflow_types=["wf"]))
            reply = await workers.ClaimTasks(pb.ClaimTasksRequest(
                worker_id="w1", workflow_types=["wf"], max_tasks=5, pages_history=True))
            [task] = reply.tasks
            assert task.history_truncated and 0 < len(task.history) < 4
            events = list(task.history)
            while True:
                page = await workers.GetTaskHistory(pb.GetTaskHistoryRequest(
                    worker_id="w1", task_id=task.id, attempt=task.attempt, after_seq=events[-1].sequence_num))
                events += page.events
                if not page.has_more:
                    break
            assert [e.sequence_num for e in events] == [1, 2, 3, 4]
            with pytest.raises(grpc.aio.AioRpcError) as stale:
                await workers.GetTaskHistory(pb.GetTaskHistoryRequest(worker_id="w1", task_id=task.id, attempt=9))
            assert stale.value.code() == grpc.StatusCode.FAILED_PRECONDITION
            applied = await workers.CompleteWorkflowTask(pb.CompleteWorkflowTaskRequest(
                worker_id="w1", task_id=task.id, attempt=task.attempt, seen_through_seq=4,
                actions=[pb.WorkflowAction(complete_workflow=pb.CompleteWorkflow(result_json="{}"))]))
            assert applied.applied
    assert await db.fetchval("SELECT status FROM durable_workflow_instances WHERE id = 'huge'") == "completed"
