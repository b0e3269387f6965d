"""The worker runtime over real gRPC on loopback, against an in-test fake WorkerService.

The fake lets these tests produce what the real control plane rarely does on demand:
UNAVAILABLE outages, stale-attempt answers, lost tasks. The same behaviours against the real
control plane are in test_worker_controlplane.py.
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from durable.proto.v1 import durable_pb2 as pb
from durable.proto.v1 import durable_pb2_grpc as pb_grpc
from durable.worker import ActivityContext, App, CriticalTaskFailed, Worker, WorkerSettings
from durable.worker.loops import TaskHeartbeatLoop
from durable.worker.testing import RunningWorker, wait_until

ROOT = Path(__file__).resolve().parents[2]
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class FakeWorkerService(pb_grpc.WorkerServiceServicer):
    """Just enough of the control plane: a queue, owners and attempts, recorded calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.queue: list[pb.Task] = []
        self.held: dict[str, pb.Task] = {}
        self.completed: dict[str, str] = {}
        self.failed: dict[str, pb.Failure] = {}
        self.unavailable = False
        self.heartbeat_answers: dict[str, tuple[bool, bool]] = {}
        self.refuse_completion: set[str] = set()
        self.new_work = asyncio.Event()

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]

    def count(self, name: str) -> int:
        return self.names().count(name)

    def enqueue(self, activity_type: str, data: dict[str, Any] | None = None) -> str:
        task_id = str(uuid.uuid4())
        self.queue.append(pb.Task(id=task_id, kind="activity", activity_type=activity_type,
                                  input_json=json.dumps(data or {}), attempt=0, max_attempts=5))
        self.new_work.set()
        return task_id

    async def _enter(self, name: str, request: Any, context: grpc.aio.ServicerContext) -> None:
        self.calls.append((name, request))
        if self.unavailable:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "control plane restarting")

    async def RegisterWorker(self, request: Any, context: Any) -> Any:
        await self._enter("RegisterWorker", request, context)
        return pb.RegisterWorkerResponse()

    async def WorkerHeartbeat(self, request: Any, context: Any) -> Any:
        await self._enter("WorkerHeartbeat", request, context)
        return pb.WorkerHeartbeatResponse(status="active")

    async def DrainWorker(self, request: Any, context: Any) -> Any:
        await self._enter("DrainWorker", request, context)
        return pb.DrainWorkerResponse()

    async def DeregisterWorker(self, request: Any, context: Any) -> Any:
        await self._enter("DeregisterWorker", request, context)
        released = len(self.held)
        self.queue.extend(self.held.values())
        self.held.clear()
        return pb.DeregisterWorkerResponse(released_tasks=released)

    async def ClaimTasks(self, request: Any, context: Any) -> Any:
        await self._enter("ClaimTasks", request, context)
        if not self.queue:
            self.new_work.clear()
            try:
                await asyncio.wait_for(self.new_work.wait(), request.wait_seconds)
            except TimeoutError:
                pass
        tasks = []
        while self.queue and len(tasks) < request.max_tasks:
            task = self.queue.pop(0)
            task.attempt += 1
            self.held[task.id] = task
            tasks.append(task)
        return pb.ClaimTasksResponse(tasks=tasks)

    async def HeartbeatTasks(self, request: Any, context: Any) -> Any:
        await self._enter("HeartbeatTasks", request, context)
        results = []
        for ref in request.tasks:
            accepted, cancel = self.heartbeat_answers.get(ref.task_id, (True, False))
            results.append(pb.TaskHeartbeatResult(task_id=ref.task_id, accepted=accepted,
                                                  cancel_requested=cancel))
        return pb.HeartbeatTasksResponse(results=results)

    async def _finish(self, request: Any, context: Any) -> pb.Task:
        task = self.held.get(request.task_id)
        if request.task_id in self.refuse_completion or task is None or task.attempt != request.attempt:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "stale attempt")
        assert task is not None
        del self.held[request.task_id]
        return task

    async def CompleteTask(self, request: Any, context: Any) -> Any:
        await self._enter("CompleteTask", request, context)
        await self._finish(request, context)
        self.completed[request.task_id] = request.result_json
        return pb.CompleteTaskResponse()

    async def CompleteTasks(self, request: Any, context: Any) -> Any:
        # Each completion of the batch counts as one CompleteTask call for the assertions.
        for completion in request.completions:
            self.calls.append(("CompleteTask", completion))
        if self.unavailable:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "control plane restarting")
        outcomes = []
        for c in request.completions:
            task = self.held.get(c.task_id)
            if c.task_id in self.refuse_completion or task is None or task.attempt != c.attempt:
                outcomes.append(pb.CompletionOutcome(task_id=c.task_id, accepted=False,
                                                     code="FAILED_PRECONDITION", message="stale attempt"))
                continue
            del self.held[c.task_id]
            self.completed[c.task_id] = c.result_json
            outcomes.append(pb.CompletionOutcome(task_id=c.task_id, accepted=True))
        return pb.CompleteTasksResponse(outcomes=outcomes)

    async def FailTask(self, request: Any, context: Any) -> Any:
        await self._enter("FailTask", request, context)
        await self._finish(request, context)
        self.failed[request.task_id] = request.failure
        return pb.FailTaskResponse(outcome="retrying")

    async def CompleteWorkflowTask(self, request: Any, context: Any) -> Any:
        await self._enter("CompleteWorkflowTask", request, context)
        await self._finish(request, context)
        return pb.CompleteWorkflowTaskResponse(applied=True)

    async def ReleaseTasks(self, request: Any, context: Any) -> Any:
        await self._enter("ReleaseTasks", request, context)
        released = 0
        for ref in request.tasks:
            task = self.held.pop(ref.task_id, None)
            if task is not None:
                self.queue.append(task)
                released += 1
        return pb.ReleaseTasksResponse(released=released)


@pytest.fixture
async def fake() -> AsyncIterator[tuple[FakeWorkerService, str]]:
    service = FakeWorkerService()
    server = grpc.aio.server()
    pb_grpc.add_WorkerServiceServicer_to_server(service, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield service, f"127.0.0.1:{port}"
    await server.stop(0)


def settings_for(address: str, **overrides: Any) -> WorkerSettings:
    values: dict[str, Any] = {
        "GRPC_ADDRESS": address,
        "WORKER_ID": f"test-worker-{uuid.uuid4().hex[:8]}",
        "WORKER_HEALTH_PORT": 0,
        "WORKER_HEALTH_HOST": "127.0.0.1",
        "DURABLE_TASK_HEARTBEAT_INTERVAL": 0.05,
        "DURABLE_WORKER_HEARTBEAT_INTERVAL": 0.05,
        "DURABLE_CLAIM_WAIT": 0.5,
        "DURABLE_DRAIN_GRACE_PERIOD": 5,
        "DURABLE_CANCEL_GRACE_PERIOD": 2,
        "DURABLE_RECONNECT_INITIAL_BACKOFF": 0.02,
        "DURABLE_RECONNECT_MAX_BACKOFF": 0.2,
        "DURABLE_RPC_TIMEOUT": 2,
    }
    values.update(overrides)
    return WorkerSettings(**values)


async def health_status(port: int, service: str = "") -> int:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        response = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=5
        )
        return response.status  # type: ignore[no-any-return]


def blocking_app(started: asyncio.Event | None = None) -> tuple[App, dict[str, Any]]:
    """An app whose `block` activity waits for its release event or its cancellation."""
    app = App()
    seen: dict[str, Any] = {"release": asyncio.Event(), "cancelled": [], "running": 0, "peak": 0,
                            "one": collections.defaultdict(asyncio.Event)}

    @app.activity(name="echo")
    async def echo(ctx: ActivityContext, input: dict[str, Any]) -> dict[str, Any]:
        ctx.heartbeat({"progress": 1})
        return {"echo": input, "attempt": ctx.attempt}

    @app.activity(name="block")
    async def block(ctx: ActivityContext, input: dict[str, Any]) -> dict[str, Any]:
        seen["running"] += 1
        seen["peak"] = max(seen["peak"], seen["running"])
        try:
            ctx.heartbeat({"step": input.get("n", 0)})
            waits = [asyncio.create_task(seen["release"].wait()),
                     asyncio.create_task(seen["one"][input.get("n", 0)].wait()),
                     asyncio.create_task(ctx.cancelled.wait())]
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            for wait in waits:
                wait.cancel()
            if ctx.is_cancelled:
                seen["cancelled"].append(ctx.task_id)
            return {"n": input.get("n", 0)}
        finally:
            seen["running"] -= 1

    @app.activity(name="stubborn")
    async def stubborn(ctx: ActivityContext, input: dict[str, Any]) -> dict[str, Any]:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            seen["cancelled"].append(ctx.task_id)
            raise
        return {}

    return app, seen


async def test_activity_runs_completes_and_heartbeats(fake: tuple[FakeWorkerService, str]) -> None:
    service, address = fake
    app, seen = blocking_app()
    async with RunningWorker(Worker(app, settings_for(address))) as worker:
        await wait_until(lambda: service.count("RegisterWorker") == 1, what="registration")
        register = next(r for n, r in service.calls if n == "RegisterWorker")
        assert register.worker_id == worker.worker_id
        assert sorted(register.activity_types) == ["block", "echo", "stubborn"]
        assert register.max_concurrency == 10

        echo_id = service.enqueue("echo", {"x": 1})
        await wait_until(lambda: echo_id in service.completed, what="echo completed")
        assert json.loads(service.completed[echo_id]) == {"echo": {"x": 1}, "attempt": 1}

        block_id = service.enqueue("block", {"n": 7})
        await wait_until(lambda: seen["running"] == 1, what="block running")
        # The batched task heartbeat carries the activity's progress and its attempt.
        await wait_until(lambda: any(
            n == "HeartbeatTasks" and any(t.task_id == block_id and t.details_json for t in r.tasks)
            for n, r in service.calls), what="heartbeat with details")
        ref = next(t for n, r in service.calls if n == "HeartbeatTasks" for t in r.tasks
                   if t.task_id == block_id)
        assert json.loads(ref.details_json) == {"step": 7} and ref.attempt == 1
        await wait_until(lambda: any(n == "WorkerHeartbeat" and r.current_load == 1
                                     for n, r in service.calls), what="load reported")
        assert await health_status(worker.health_port or 0) == SERVING
        assert await health_status(worker.health_port or 0, "durable.v1.WorkerService") == SERVING
        seen["release"].set()
        await wait_until(lambda: block_id in service.completed, what="block completed")
    assert service.names()[-1] == "DeregisterWorker"


async def test_cancel_requested_and_lost_tasks_are_cancelled_without_reporting(
    fake: tuple[FakeWorkerService, str],
) -> None:
    service, address = fake
    app, seen = blocking_app()
    async with RunningWorker(Worker(app, settings_for(address))) as worker:
        cancelled_id = service.enqueue("block", {"n": 1})
        lost_id = service.enqueue("block", {"n": 2})
        await wait_until(lambda: seen["running"] == 2, what="both running")
        service.heartbeat_answers[cancelled_id] = (True, True)
        service.heartbeat_answers[lost_id] = (False, False)
        await wait_until(lambda: sorted(seen["cancelled"]) == sorted([cancelled_id, lost_id]),
                         what="activities saw the cancellation")
        await wait_until(lambda: len(worker.running) == 0, what="slots freed")
    assert cancelled_id not in service.completed and lost_id not in service.completed
    assert not any(n in ("CompleteTask", "FailTask") for n in service.names())


async def test_claims_respect_capacity_and_watermarks(fake: tuple[FakeWorkerService, str]) -> None:
    service, address = fake
    app, seen = blocking_app()
    # Capacity 10: claiming pauses at 9 running tasks and resumes at 7.
    async with RunningWorker(Worker(app, settings_for(address))) as worker:
        ids = [service.enqueue("block", {"n": i}) for i in range(14)]
        await wait_until(lambda: seen["running"] == 10, what="ten running")

        def claims() -> list[int]:
            return [r.max_tasks for n, r in service.calls if n == "ClaimTasks"]

        async def heartbeat_rounds(rounds: int) -> None:
            target = service.count("HeartbeatTasks") + rounds
            await wait_until(lambda: service.count("HeartbeatTasks") >= target, what="heartbeats")

        await heartbeat_rounds(3)
        paused_at = len(claims())
        seen["one"][0].set()
        seen["one"][1].set()
        await wait_until(lambda: worker.load == 8, what="two finished")
        await heartbeat_rounds(5)
        assert len(claims()) == paused_at, "claimed above the low watermark"
        seen["one"][2].set()
        await wait_until(lambda: len(claims()) > paused_at, what="claiming resumed")
        assert claims()[paused_at] == 3  # capacity - running
        await wait_until(lambda: seen["running"] == 10, what="refilled")
        assert seen["peak"] == 10
        assert all(1 <= m <= 10 for m in claims())
        seen["release"].set()
        await wait_until(lambda: all(i in service.completed for i in ids), what="all completed")
        assert seen["peak"] == 10


async def test_the_claim_after_short_tasks_asks_for_the_slots_they_freed(fake: tuple[FakeWorkerService, str]) -> None:
    """Tasks that finish at once free their slots for the very next claim: with them counted as
    running, claims alternated big and small (6 claimed, then 4 asked for), a round trip each."""
    service, address = fake
    app, _ = blocking_app()
    async with RunningWorker(Worker(app, settings_for(address))):

        def claims() -> list[int]:
            return [r.max_tasks for n, r in service.calls if n == "ClaimTasks"]

        await wait_until(lambda: len(claims()) == 1, what="the first claim waiting")
        ids = [service.enqueue("echo", {"n": i}) for i in range(6)]
        await wait_until(lambda: len(claims()) >= 2, what="the next claim")
        assert claims()[:2] == [10, 10]
        await wait_until(lambda: all(i in service.completed for i in ids), what="all completed")


async def test_reconnects_after_an_outage_and_retries_completion(
    fake: tuple[FakeWorkerService, str],
) -> None:
    service, address = fake
    app, seen = blocking_app()
    async with RunningWorker(Worker(app, settings_for(address))) as worker:
        port = worker.health_port or 0
        task_id = service.enqueue("block", {"n": 3})
        await wait_until(lambda: seen["running"] == 1, what="running")
        assert await health_status(port) == SERVING

        service.unavailable = True
        await wait_until(lambda: not worker.link.connected, what="link down")
        assert await health_status(port) == NOT_SERVING
        registrations = service.count("RegisterWorker")
        seen["release"].set()  # finishes during the outage: its completion must be retried
        await wait_until(lambda: service.count("CompleteTask") >= 2, what="completion retried")
        assert task_id not in service.completed

        service.unavailable = False
        await wait_until(lambda: task_id in service.completed, what="completion delivered")
        await wait_until(lambda: worker.link.connected, what="reconnected")
        assert service.count("RegisterWorker") > registrations
        assert await health_status(port) == SERVING


async def test_stale_completion_is_dropped_not_retried(fake: tuple[FakeWorkerService, str]) -> None:
    service, address = fake
    app, _ = blocking_app()
    async with RunningWorker(Worker(app, settings_for(address))) as worker:
        task_id = service.enqueue("echo", {})
        service.refuse_completion.add(task_id)
        await wait_until(lambda: service.count("CompleteTask") == 1 and len(worker.running) == 0,
                         what="completion refused")
        follow_up = service.enqueue("echo", {})
        await wait_until(lambda: follow_up in service.completed, what="next task")
    assert service.count("CompleteTask") == 2


async def test_drain_waits_then_hands_back_and_deregisters(fake: tuple[FakeWorkerService, str]) -> None:
    service, address = fake
    app, seen = blocking_app()
    worker = Worker(app, settings_for(address, DURABLE_DRAIN_GRACE_PERIOD=0.3))
    runner = RunningWorker(worker)
    await runner.__aenter__()
    port = worker.health_port or 0
    finishing = service.enqueue("echo", {})
    stuck = service.enqueue("stubborn", {})
    await wait_until(lambda: finishing in service.completed and stuck in service.held,
                     what="one done, one stuck")
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(service=""))
        assert (await watch.read()).status == SERVING
        stopping = asyncio.create_task(worker.stop())
        assert (await watch.read()).status == NOT_SERVING
        await stopping
        watch.cancel()
    await worker.stop()  # idempotent
    await runner.task
    names = service.names()
    assert names.index("DrainWorker") < names.index("ReleaseTasks") < names.index("DeregisterWorker")
    release = next(r for n, r in service.calls if n == "ReleaseTasks")
    assert [(t.task_id, t.attempt) for t in release.tasks] == [(stuck, 1)]
    assert seen["cancelled"] == [stuck]
    assert stuck not in service.completed and stuck not in service.failed
    assert [t.id for t in service.queue] == [stuck]  # handed back, not lost
    assert worker.released_tasks == 1
    with pytest.raises(grpc.aio.AioRpcError):
        await health_status(port)


async def test_a_dying_critical_loop_stops_the_worker_loudly(
    fake: tuple[FakeWorkerService, str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    service, address = fake
    app, _ = blocking_app()

    async def broken(self: TaskHeartbeatLoop) -> int:
        raise RuntimeError("heartbeat bug")

    monkeypatch.setattr(TaskHeartbeatLoop, "run_once", broken)
    worker = Worker(app, settings_for(address))
    with pytest.raises(CriticalTaskFailed, match="worker:task-heartbeats.*heartbeat bug"):
        await asyncio.wait_for(worker.run(handle_signals=False), 30)
    assert "DeregisterWorker" in service.names()


async def test_sigterm_drains_the_worker_process(fake: tuple[FakeWorkerService, str]) -> None:
    service, address = fake
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update({"GRPC_ADDRESS": address, "WORKER_ID": "proc-worker", "WORKER_HEALTH_HOST": "127.0.0.1",
                "DURABLE_WORKER_HEARTBEAT_INTERVAL": "0.1", "DURABLE_CLAIM_WAIT": "0.5"})
    code = "from durable.worker.cli import worker_command; worker_command()"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, "--app", "durable.examples.agent_turn:app",
        "--health-port", "0", cwd=str(ROOT), env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        await wait_until(lambda: service.count("WorkerHeartbeat") >= 1, timeout=30,
                         what="worker process registered")
        register = next(r for n, r in service.calls if n == "RegisterWorker")
        assert register.worker_id == "proc-worker"
        assert sorted(register.workflow_types) == ["agent_turn"]
        process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), 30)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, stderr.decode()
    assert service.names()[-1] == "DeregisterWorker"
    assert "DrainWorker" in service.names()


async def test_worker_process_rejects_bad_settings() -> None:
    env = dict(os.environ, MAX_CONCURRENT_TASKS="lots")
    code = "from durable.worker.cli import worker_command; worker_command()"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, "--app", "durable.examples.agent_turn:app", cwd=str(ROOT),
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 2
    assert b"MAX_CONCURRENT_TASKS" in stderr
