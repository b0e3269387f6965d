"""Child workflows and continue-as-new on the runtime, in-process (durable.testing), and their
replay against recorded histories."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from durable.testing import WorkflowEnded, WorkflowEnvironment
from durable.worker import App, ChildWorkflowError, NonDeterminismError, WorkflowContext, WorkflowFailed, replay
from durable.worker.workflows.history import HistoryEvent


async def settle(condition: Callable[[], bool], what: str, turns: int = 1000) -> None:
    """Let the in-memory engine run (no clock involved) until `condition` holds."""
    for _ in range(turns):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError(f"not reached: {what}")


def make_app() -> App:
    app = App()

    @app.activity(name="double")
    async def double(ctx: Any, input: int) -> int:
        return input * 2

    @app.workflow(name="kid")
    async def kid(ctx: WorkflowContext, input: int) -> int:
        if input < 0:
            raise WorkflowFailed("negative", type="Negative")
        return int(await ctx.activity("double", input))

    @app.workflow(name="sleeper")
    async def sleeper(ctx: WorkflowContext, input: Any) -> str:
        await ctx.wait_signal("never")
        return "woke"

    @app.workflow(name="parent")
    async def parent(ctx: WorkflowContext, input: int) -> dict[str, Any]:
        try:
            return {"value": await ctx.child(kid, input)}
        except ChildWorkflowError as exc:
            return {"error": exc.type, "child_id": exc.child_id, "message": exc.message}

    @app.workflow(name="careless_parent")
    async def careless_parent(ctx: WorkflowContext, input: int) -> int:
        return int(await ctx.child("kid", input, id="the-kid"))

    @app.workflow(name="sleepy_parent")
    async def sleepy_parent(ctx: WorkflowContext, input: Any) -> None:
        await ctx.child("sleeper", id="sleepy-kid")

    @app.workflow(name="counter")
    async def counter(ctx: WorkflowContext, input: dict[str, Any]) -> dict[str, Any]:
        seen = list(input["seen"])
        asked = []
        ctx.set_signal_handler("add", seen.append)
        ctx.set_signal_handler("next", asked.append)
        await ctx.wait_condition(lambda: bool(asked) or len(seen) >= 3)
        if len(seen) >= 3:
            return {"seen": seen}
        try:
            ctx.continue_as_new({"seen": seen})
        except Exception:  # noqa: BLE001 - continue-as-new must pass through this
            return {"swallowed": True}
        return {}

    return app


async def test_a_child_result_and_a_child_failure_caught_by_the_parent() -> None:
    env = WorkflowEnvironment(make_app())
    assert await env.run("parent", 21, workflow_id="p1") == {"value": 42}
    assert env.handles["p1/kid-1"].parent is not None
    failed = await env.run("parent", -1, workflow_id="p2")
    assert failed == {"error": "Negative", "child_id": "p2/kid-1", "message": "negative"}


async def test_an_uncaught_child_failure_fails_the_parent_with_the_childs_error() -> None:
    env = WorkflowEnvironment(make_app())
    with pytest.raises(WorkflowEnded) as ended:
        await env.run("careless_parent", -5, workflow_id="p")
    assert ended.value.status == "failed" and ended.value.error is not None
    assert ended.value.error["type"] == "Negative"
    assert ended.value.error["details"]["child_id"] == "the-kid"


async def test_a_taken_child_id_fails_the_start_with_an_error_the_parent_sees() -> None:
    env = WorkflowEnvironment(make_app())
    await env.start("sleeper", None, workflow_id="the-kid")
    with pytest.raises(WorkflowEnded) as ended:
        await env.run("careless_parent", 1, workflow_id="p")
    assert ended.value.error is not None and ended.value.error["type"] == "ChildWorkflowAlreadyExists"


async def test_cancelling_the_parent_cancels_its_child() -> None:
    env = WorkflowEnvironment(make_app())
    handle = await env.start("sleepy_parent", None, workflow_id="p")
    await handle.wait_for_event("ChildWorkflowStarted")
    await handle.cancel()
    with pytest.raises(WorkflowEnded):
        await handle.result()
    child = env.handles["sleepy-kid"]
    with pytest.raises(WorkflowEnded) as ended:
        await child.result()
    assert ended.value.status == "cancelled"


async def test_continue_as_new_starts_a_fresh_history_and_carries_late_signals() -> None:
    env = WorkflowEnvironment(make_app())
    handle = await env.start("counter", {"seen": []}, workflow_id="c")
    for n in range(3):
        await settle(lambda: handle.decided_through == handle.history[-1].sequence_num, "the run waits")
        # both recorded before the next decision: "add" comes after the "next" that ends the run
        handle._append("SignalReceived", {"signal_type": "next", "payload": {}})
        handle._append("SignalReceived", {"signal_type": "add", "payload": n})
        await settle(lambda: len(handle.runs) == n + 1, f"continued as new {n + 1} time(s)")
    assert await handle.result() == {"seen": [0, 1, 2]}
    assert len(handle.runs) == 3
    assert all(run[-1].event_type == "WorkflowContinuedAsNew" for run in handle.runs)


def _history(*events: tuple[str, dict[str, Any]]) -> list[HistoryEvent]:
    return [HistoryEvent(i, kind, data) for i, (kind, data) in enumerate(events, start=1)]


def test_replay_matches_a_child_command_with_its_event_and_names_a_mismatch() -> None:
    app = make_app()
    recorded = _history(
        ("WorkflowStarted", {"input": 2}),
        ("ChildWorkflowStarted", {"child_id": "p/kid-1", "workflow_type": "kid"}),
        ("ChildWorkflowCompleted", {"child_id": "p/kid-1", "workflow_type": "kid", "result": 4}),
    )
    decision = replay(app.workflows["parent"], recorded, 2, workflow_id="p")
    assert [type(a).__name__ for a in decision.actions] == ["CompleteWorkflow"]
    assert decision.actions[0].result == {"value": 4}  # type: ignore[union-attr]

    other = _history(
        ("WorkflowStarted", {"input": 2}),
        ("ChildWorkflowStarted", {"child_id": "p/other-1", "workflow_type": "other"}),
    )
    with pytest.raises(NonDeterminismError, match=r"ChildWorkflowStarted\(workflow_type='other'"):
        replay(app.workflows["parent"], other, 2, workflow_id="p")


def test_a_continued_run_replays_to_its_recorded_end() -> None:
    app = make_app()
    recorded = _history(
        ("WorkflowStarted", {"input": {"seen": []}}),
        ("SignalReceived", {"signal_type": "next", "payload": {}}),
        ("WorkflowContinuedAsNew", {"input": {"seen": []}, "handled_through_seq": 2}),
    )
    decision = replay(app.workflows["counter"], recorded, 3, workflow_id="c")
    assert decision.actions == [] and decision.ended


def test_a_child_of_an_unregistered_function_is_a_clear_error() -> None:
    from durable.worker.workflows.context import _workflow_name

    async def not_registered(ctx: WorkflowContext) -> None: ...

    with pytest.raises(TypeError, match="not a registered workflow"):
        _workflow_name(not_registered)
