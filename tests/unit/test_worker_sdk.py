"""The worker SDK without I/O: registry, actions, context, settings, error reporting."""

from __future__ import annotations

import asyncio
import json
import threading
from datetime import timedelta
from typing import Any

import pytest

import durable.worker as sdk
from durable.common import ActivityCancelled, InvalidArgument, NonRetryableError, RetryableError
from durable.proto.v1 import durable_pb2 as pb
from durable.worker import ActivityContext, App, RetryPolicy, Workflow, WorkerSettings
from durable.worker.cli import load_app
from durable.worker.execution import RunningTask, TaskRunner
from durable.worker.link import Backoff
from durable.worker.protocol import action_to_proto, failure_from_exception


def test_public_surface() -> None:
    for name in sdk.__all__:
        assert getattr(sdk, name) is not None
    assert {"App", "Worker", "Workflow", "ActivityContext", "schedule_activity", "start_timer",
            "complete", "fail", "replay", "RetryableError", "NonRetryableError"} <= set(sdk.__all__)


def test_app_registers_async_and_sync_activities_and_workflows() -> None:
    app = App()

    @app.activity(name="a", retry_policy={"max_attempts": 3}, start_to_close_timeout=timedelta(seconds=5))
    async def a(ctx: ActivityContext, input: dict[str, Any]) -> dict[str, Any]:
        return input

    @app.activity
    def b(ctx: ActivityContext, input: dict[str, Any]) -> dict[str, Any]:
        return input

    @app.workflow(name="wf")
    class Wf(Workflow):
        pass

    assert a.__name__ == "a" and Wf.__name__ == "Wf"  # decorators return the originals
    assert app.activities["a"].is_async and not app.activities["b"].is_async
    assert app.activities["a"].options.retry_policy == RetryPolicy(max_attempts=3)
    assert app.activities["a"].options.start_to_close_timeout == 5.0
    assert app.workflows["wf"].cls is Wf
    assert app.activity_options("unknown") == sdk.ActivityOptions()

    @app.activity(name="erp", concurrency_key="legacy-erp", concurrency_limit=4)
    async def erp(ctx: ActivityContext, input: dict[str, Any]) -> dict[str, Any]:
        return input

    registered = app.activity_options("erp")
    assert (registered.concurrency_key, registered.concurrency_limit) == ("legacy-erp", 4)
    per_call = sdk.ActivityOptions.of(concurrency_key="cust-1", concurrency_limit=1).merged_over(registered)
    assert (per_call.concurrency_key, per_call.concurrency_limit) == ("cust-1", 1)  # the call's key wins


def test_app_rejects_bad_registrations() -> None:
    app = App()

    @app.activity(name="x")
    async def x(ctx: Any, input: Any) -> dict[str, Any]:
        return {}

    with pytest.raises(InvalidArgument, match="registered twice"):
        app.activity(name="x")(x)
    with pytest.raises(InvalidArgument, match=r"\(ctx, input\)"):
        app.activity(name="y")(lambda: None)
    with pytest.raises(InvalidArgument, match="retry_policy"):
        app.activity(name="z", retry_policy={"max_attempts": 0})
    with pytest.raises(InvalidArgument, match="must be an async function"):
        app.workflow(name="w")(lambda: None)  # type: ignore[arg-type]

    class Async:
        async def on_start(self, input: Any) -> list[Any]:
            return []

    with pytest.raises(InvalidArgument, match="not async"):
        app.workflow(Async)


def test_action_helpers_validate_and_convert() -> None:
    action = sdk.schedule_activity(
        "t", {"k": 1}, activity_id="id", retry_policy=RetryPolicy(max_attempts=2,
                                                                  non_retryable_error_types=("E",)),
        priority=3, start_to_close_timeout=2.5, start_delay=timedelta(seconds=1),
    )
    message = action_to_proto(action)
    assert message.schedule_activity.activity_id == "id"
    assert json.loads(message.schedule_activity.input_json) == {"k": 1}
    options = message.schedule_activity.options
    assert (options.priority, options.start_to_close_timeout, options.start_delay) == (3, 2.5, 1.0)
    assert options.retry_policy.max_attempts == 2
    assert list(options.retry_policy.non_retryable_error_types) == ["E"]

    with pytest.raises(InvalidArgument, match="priority"):
        sdk.schedule_activity("t", priority=5000)
    keyed = action_to_proto(sdk.schedule_activity("t", activity_id="k", concurrency_key="cust-1", concurrency_limit=2))
    assert (keyed.schedule_activity.options.concurrency_key, keyed.schedule_activity.options.concurrency_limit) == (
        "cust-1", 2)
    assert action_to_proto(sdk.schedule_activity("t", activity_id="u")).schedule_activity.options.concurrency_key == ""
    with pytest.raises(InvalidArgument, match="go together"):
        sdk.schedule_activity("t", concurrency_key="cust-1")
    with pytest.raises(InvalidArgument, match="concurrency_limit must be"):
        sdk.schedule_activity("t", concurrency_key="cust-1", concurrency_limit=0)
    with pytest.raises(InvalidArgument, match="seconds"):
        sdk.start_timer(-1)
    assert action_to_proto(sdk.CompleteWorkflow(result=[1])).complete_workflow.result_json == "[1]"
    with pytest.raises(InvalidArgument, match="not JSON-serialisable"):
        action_to_proto(sdk.CompleteWorkflow(result=[object()]))

    failed = action_to_proto(sdk.fail("bad", type="Oops")).fail_workflow.failure
    assert (failed.message, failed.type, failed.non_retryable) == ("bad", "Oops", True)
    timer = action_to_proto(sdk.StartTimer(fire_after=3.0, timer_id="t1")).start_timer
    assert (timer.timer_id, timer.fire_after) == ("t1", 3.0)


def test_failures_carry_their_policy() -> None:
    retry = failure_from_exception(RetryableError("later", next_retry_delay=timedelta(seconds=7)))
    assert (retry.type, retry.non_retryable, retry.next_retry_delay) == ("RetryableError", False, 7.0)
    permanent = failure_from_exception(NonRetryableError("never", type="BadInput"))
    assert (permanent.type, permanent.non_retryable) == ("BadInput", True)
    other = failure_from_exception(KeyError("k"))
    assert (other.type, other.non_retryable, other.next_retry_delay) == ("KeyError", False, 0.0)


async def test_context_heartbeat_and_cancellation() -> None:
    task = pb.Task(id="t1", kind="activity", activity_type="a", attempt=2, workflow_id="w",
                   activity_id="a-1", max_attempts=5, heartbeat_details_json='{"done": 3}')
    ctx = ActivityContext.for_task(task)
    assert (ctx.task_id, ctx.attempt, ctx.workflow_id, ctx.activity_id) == ("t1", 2, "w", "a-1")
    assert ctx.previous_heartbeat_details == {"done": 3}
    assert ctx.heartbeat_details_json == ""

    # From another thread, as a sync activity would.
    worker = threading.Thread(target=ctx.heartbeat, args=({"done": 4},))
    worker.start()
    worker.join()
    assert json.loads(ctx.heartbeat_details_json) == {"done": 4}
    with pytest.raises(InvalidArgument):
        ctx.heartbeat({"x": object()})

    assert not ctx.is_cancelled
    ctx._cancel("stop")
    assert ctx.is_cancelled and ctx.cancelled.is_set()
    with pytest.raises(ActivityCancelled, match="stop"):
        ctx.heartbeat({})
    standalone = ActivityContext.for_task(pb.Task(id="t2", activity_type="a", attempt=1))
    assert standalone.workflow_id is None and standalone.previous_heartbeat_details is None


def test_settings_defaults_and_validation(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("GRPC_ADDRESS", "WORKER_ID", "MAX_CONCURRENT_TASKS", "WORKER_GROUP",
                 "DURABLE_ACTIVITY_TYPES", "DURABLE_WORKFLOW_TYPES", "WORKER_HEALTH_PORT",
                 "DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    settings = WorkerSettings.from_env()
    assert settings.grpc_address == "127.0.0.1:9001"
    assert settings.max_concurrent_tasks == 10
    assert settings.worker_group == "default"
    assert settings.health_port == 9002
    assert settings.task_heartbeat_interval == 10.0
    assert settings.drain_grace_period == 30.0
    assert settings.activity_type_filter is None
    assert (settings.high_watermark, settings.low_watermark) == (9, 7)
    assert settings.worker_id.count("-") >= 2
    assert WorkerSettings.from_env().worker_id != settings.worker_id

    monkeypatch.setenv("DURABLE_ACTIVITY_TYPES", " a, b ,,")
    monkeypatch.setenv("MAX_CONCURRENT_TASKS", "1")
    settings = WorkerSettings.from_env()
    assert settings.activity_type_filter == ("a", "b")
    assert (settings.high_watermark, settings.low_watermark) == (1, 0)

    monkeypatch.setenv("MAX_CONCURRENT_TASKS", "zero")
    monkeypatch.setenv("GRPC_ADDRESS", "nohost")
    with pytest.raises(InvalidArgument) as info:
        WorkerSettings.from_env()
    assert "MAX_CONCURRENT_TASKS='zero'" in str(info.value)
    assert "GRPC_ADDRESS='nohost'" in str(info.value)
    monkeypatch.delenv("GRPC_ADDRESS")
    monkeypatch.setenv("MAX_CONCURRENT_TASKS", "0")
    with pytest.raises(InvalidArgument, match="MAX_CONCURRENT_TASKS"):
        WorkerSettings.from_env()


def test_worker_type_filters_must_name_registered_types(monkeypatch: pytest.MonkeyPatch) -> None:
    app = App()

    @app.activity(name="a")
    async def a(ctx: Any, input: Any) -> dict[str, Any]:
        return {}

    worker = sdk.Worker(app, WorkerSettings(WORKER_ID="w"))
    assert worker.activity_types == ("a",) and worker.workflow_types == ()
    with pytest.raises(InvalidArgument, match="DURABLE_ACTIVITY_TYPES.*nope"):
        sdk.Worker(app, WorkerSettings(DURABLE_ACTIVITY_TYPES="a,nope"))


def test_backoff_is_capped_and_jittered() -> None:
    backoff = Backoff(0.1, 2.0)
    delays = [backoff.next_delay() for _ in range(12)]
    assert all(0.05 <= d <= 2.0 for d in delays)
    assert max(delays[6:]) > 1.0  # grew to the cap
    backoff.reset()
    assert backoff.next_delay() <= 0.1


def test_load_app_errors() -> None:
    from durable.examples.agent_turn import app

    assert load_app("durable.examples.agent_turn:app") is app
    for reference, message in (("nocolon", "module:attr"), ("no_such_mod_x:app", "cannot import"),
                               ("durable.worker:nothing", "has no"),
                               ("durable.worker:__all__", "expected a durable.worker.App")):
        with pytest.raises(InvalidArgument, match=message):
            load_app(reference)


class _NoLink:
    async def call(self, method: str, request: Any, *, timeout: float | None = None) -> Any:
        raise AssertionError("no I/O in unit tests")


def _runner(app: App) -> TaskRunner:
    from concurrent.futures import ThreadPoolExecutor

    return TaskRunner(app, _NoLink(), worker_id="w", executor=ThreadPoolExecutor(2),  # type: ignore[arg-type]
                      backoff=lambda: Backoff(0.01, 0.1))


async def test_activity_outcomes_become_the_right_requests() -> None:
    app = App()

    @app.activity(name="ok")
    def ok(ctx: ActivityContext, input: dict[str, Any]) -> dict[str, Any]:
        return {"double": input["n"] * 2, "attempt": ctx.attempt, "thread": threading.current_thread().name}

    @app.activity(name="later")
    async def later(ctx: ActivityContext, input: dict[str, Any]) -> dict[str, Any]:
        raise RetryableError("rate limited", next_retry_delay=timedelta(seconds=3))

    @app.activity(name="bad_result")
    async def bad_result(ctx: ActivityContext, input: dict[str, Any]) -> Any:
        return {"not": object()}

    @app.activity(name="slow", start_to_close_timeout=0.05)
    async def slow(ctx: ActivityContext, input: dict[str, Any]) -> dict[str, Any]:
        await asyncio.Event().wait()
        return {}

    @app.activity(name="times_out_itself", start_to_close_timeout=60)
    async def times_out_itself(ctx: ActivityContext, input: dict[str, Any]) -> dict[str, Any]:
        raise TimeoutError("the upstream API did not answer")

    runner = _runner(app)

    def task(kind: str, **kw: Any) -> RunningTask:
        return RunningTask(task=pb.Task(id="t", kind="activity", activity_type=kind, attempt=3, **kw))

    method, request = await runner._run_activity(task("ok", input_json='{"n": 21}'))
    assert method == "CompleteTask"
    result = json.loads(request.result_json)
    assert result["double"] == 42 and result["attempt"] == 3
    assert result["thread"] != threading.current_thread().name  # sync code ran in a thread
    assert request.attempt == 3

    method, request = await runner._run_activity(task("later"))
    assert method == "FailTask" and request.failure.next_retry_delay == 3.0

    method, request = await runner._run_activity(task("bad_result"))
    assert method == "FailTask" and request.failure.non_retryable

    method, request = await runner._run_activity(task("ok", input_json="not json"))
    assert method == "FailTask" and request.failure.non_retryable

    method, request = await runner._run_activity(task("slow"))
    assert method == "FailTask" and request.failure.type == "StartToCloseTimeout"

    # a TimeoutError of the activity's own is its failure, not the deadline's
    method, request = await runner._run_activity(task("times_out_itself"))
    assert method == "FailTask" and request.failure.type == "TimeoutError"
    assert "upstream" in request.failure.message

    method, request = await runner._run_activity(task("unregistered"))
    assert method == "FailTask" and request.failure.type == "ActivityNotRegistered"


async def test_workflow_task_becomes_a_decision() -> None:
    from durable.examples.agent_turn import build_app

    runner = _runner(build_app())
    history = [pb.Event(sequence_num=1, event_type="WorkflowStarted",
                        event_data_json=json.dumps({"input": {"message": "hi"}}))]
    wf_task = pb.Task(id="t", kind="workflow", activity_type="agent_turn", workflow_id="w",
                      attempt=1, history=history, decided_through_seq=0)
    method, request = await runner._decide(wf_task)
    assert method == "CompleteWorkflowTask"
    assert request.seen_through_seq == 1
    (action,) = request.actions
    assert action.schedule_activity.activity_type == "process_input"
    # The registry's retry policy travels with the scheduled activity.
    assert action.schedule_activity.options.retry_policy.max_attempts == 3

    # A history the code does not issue again: the decision fails, naming the event.
    bad = pb.Task(id="t", kind="workflow", activity_type="agent_turn", attempt=1, history=[
        *history, pb.Event(sequence_num=2, event_type="ActivityScheduled",
                           event_data_json='{"activity_id": "reason-1", "activity_type": "reason"}')])
    method, request = await runner._decide(bad)
    assert method == "FailTask" and request.failure.type == "NonDeterminismError"
    assert "event 2" in request.failure.message and "'reason-1'" in request.failure.message
    assert "process_input" in request.failure.message


def test_the_worker_never_loads_the_control_plane_or_a_database_driver() -> None:
    import subprocess
    import sys

    code = ("import sys, durable.worker, durable.worker.cli, durable.examples.agent_turn; "
            "bad = [m for m in sys.modules if m.startswith(('durable.controlplane', 'asyncpg'))]; "
            "print(bad); sys.exit(1 if bad else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_worker_command_attaches_to_a_group_and_reports_bad_input() -> None:
    import click
    from click.testing import CliRunner

    from durable.worker.cli import worker_command

    @click.group()
    def group() -> None:
        pass

    group.add_command(worker_command)
    runner = CliRunner()
    help_text = runner.invoke(group, ["worker", "--help"]).output
    for option in ("--app", "--health-port", "--grpc-address", "--worker-id",
                   "--max-concurrent-tasks", "--drain-grace-period"):
        assert option in help_text
    result = runner.invoke(group, ["worker", "--app", "nocolon"])
    assert result.exit_code == 2 and "module:attr" in result.output
    result = runner.invoke(group, ["worker", "--app", "durable.examples.agent_turn:app",
                                   "--max-concurrent-tasks", "0"])
    assert result.exit_code == 2 and "MAX_CONCURRENT_TASKS" in result.output
