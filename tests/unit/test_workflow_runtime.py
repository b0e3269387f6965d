"""The async workflow runtime, in-process (durable.testing): every decision replays the whole
history on a fresh instance, so each test also proves that the code replays."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from datetime import timedelta
from typing import Any

import pytest
from pydantic import BaseModel

from durable.common import NonRetryableError
from durable.testing import WorkflowEnded, WorkflowEnvironment
from durable.worker import (
    ActivityError,
    App,
    DeterminismViolation,
    NonDeterminismError,
    WorkflowContext,
    WorkflowFailed,
    replay,
    signal,
)
from durable.worker.workflows.history import HistoryEvent


def make_app() -> tuple[App, list[str]]:
    app = App()
    calls: list[str] = []

    @app.activity(name="step")
    async def step(ctx: Any, input: dict[str, Any]) -> dict[str, Any]:
        calls.append(f"step:{input['i']}")
        return {"i": input["i"], "double": input["i"] * 2}

    @app.activity(name="boom", retry_policy={"max_attempts": 3})
    async def boom(ctx: Any, input: Any) -> None:
        calls.append("boom")
        raise ValueError("it broke")

    @app.activity(name="refund")
    def refund(ctx: Any, input: Any) -> str:
        calls.append(f"refund:{input}")
        return "refunded"

    @app.activity(name="hang")
    async def hang(ctx: Any, input: Any) -> None:
        calls.append("hang")
        await asyncio.Event().wait()

    return app, calls


async def test_sequential_steps_and_a_registered_activity_called_directly() -> None:
    app, calls = make_app()

    @app.workflow(name="seq")
    async def seq(ctx: WorkflowContext, input: dict[str, Any]) -> dict[str, Any]:
        total = 0
        for i in range(input["n"]):
            result = await ctx.activity("step", {"i": i})
            total += result["double"]
        step = app.activities["step"]  # the decorated function, awaited like ctx.activity
        assert step.name == "step"
        return {"total": total}

    env = WorkflowEnvironment(app)
    handle = await env.start("seq", {"n": 3})
    assert await handle.result() == {"total": 6}
    assert calls == ["step:0", "step:1", "step:2"]
    assert [e.data["activity_id"] for e in handle.events("ActivityScheduled")] == ["step-1", "step-2", "step-3"]


async def test_calling_a_registered_activity_function_inside_a_workflow() -> None:
    app = App()

    @app.activity(name="reason")
    async def reason(ctx: Any, messages: dict[str, Any]) -> dict[str, Any]:
        return {"content": f"{len(messages['m'])} messages"}

    @app.workflow(name="agent")
    async def agent(ctx: WorkflowContext, input: dict[str, Any]) -> str:
        reply = await reason(input)  # = ctx.activity("reason", input)
        return str(reply["content"])

    handle = await WorkflowEnvironment(app).start("agent", {"m": [1, 2]})
    assert await handle.result() == "2 messages"
    assert handle.events("ActivityScheduled")[0].data["activity_type"] == "reason"


async def test_gather_of_ten_activities_issues_them_in_one_decision() -> None:
    app, calls = make_app()

    @app.workflow(name="fan")
    async def fan(ctx: WorkflowContext, input: None) -> list[int]:
        results = await asyncio.gather(*(ctx.activity("step", {"i": i}) for i in range(10)))
        return [r["double"] for r in results]

    handle = await WorkflowEnvironment(app).start("fan")
    assert await handle.result() == [i * 2 for i in range(10)]
    kinds = [e.event_type for e in handle.history]
    assert kinds[1:11] == ["ActivityScheduled"] * 10  # all ten before any result


async def test_task_group_failure_cancels_the_siblings() -> None:
    app, calls = make_app()

    @app.workflow(name="group")
    async def group(ctx: WorkflowContext, input: None) -> str:
        outcome = "no"
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(ctx.activity("hang", activity_id="slow-1"))
                tg.create_task(ctx.activity("hang", activity_id="slow-2"))
                tg.create_task(ctx.activity("boom"))
        except* ActivityError as errors:
            outcome = f"failed: {errors.exceptions[0].type}"  # type: ignore[attr-defined]
        return outcome

    handle = await WorkflowEnvironment(app).start("group")
    assert await handle.result() == "failed: ValueError"
    cancelled = {e.data["activity_id"] for e in handle.events("ActivityCancelRequested")}
    assert cancelled == {"slow-1", "slow-2"}
    assert calls.count("boom") == 3  # its retry policy ran out


async def test_try_except_around_an_exhausted_activity_then_compensation() -> None:
    app, calls = make_app()

    @app.workflow(name="saga")
    async def saga(ctx: WorkflowContext, input: None) -> dict[str, Any]:
        try:
            await ctx.activity("boom")
        except ActivityError as error:
            compensation = await ctx.activity("refund", "order-1")
            return {"error": error.type, "attempts": error.attempts, "compensation": compensation}
        return {}

    result = await WorkflowEnvironment(app).run("saga")
    assert result == {"error": "ValueError", "attempts": 3, "compensation": "refunded"}
    assert calls == ["boom", "boom", "boom", "refund:order-1"]


async def test_an_uncaught_activity_error_fails_the_workflow() -> None:
    app, _ = make_app()

    @app.workflow(name="careless")
    async def careless(ctx: WorkflowContext, input: None) -> None:
        await ctx.activity("boom")

    with pytest.raises(WorkflowEnded) as ended:
        await WorkflowEnvironment(app).run("careless")
    assert ended.value.status == "failed" and ended.value.error["type"] == "ValueError"


async def test_wait_for_an_activity_where_the_timer_wins() -> None:
    app, calls = make_app()

    @app.workflow(name="deadline")
    async def deadline(ctx: WorkflowContext, input: None) -> str:
        try:
            await asyncio.wait_for(ctx.activity("hang"), 1)
        except TimeoutError:
            return "timed out"
        return "finished"

    env = WorkflowEnvironment(app)
    handle = await env.start("deadline")
    assert await handle.result() == "timed out"
    kinds = [e.event_type for e in handle.history]
    assert kinds == ["WorkflowStarted", "TimerStarted", "ActivityScheduled", "TimerFired",
                     "ActivityCancelRequested", "WorkflowCompleted"] or \
        kinds == ["WorkflowStarted", "ActivityScheduled", "TimerStarted", "TimerFired",
                  "ActivityCancelRequested", "WorkflowCompleted"]
    assert env.now() - env.start_time == timedelta(seconds=1)  # the clock skipped


async def test_asyncio_timeout_and_sleep_are_durable_timers() -> None:
    app, _ = make_app()

    @app.workflow(name="sleepy")
    async def sleepy(ctx: WorkflowContext, input: None) -> list[str]:
        started = ctx.now()
        await asyncio.sleep(3600)
        slept = ctx.now() - started
        try:
            async with asyncio.timeout(5):
                await ctx.activity("hang")
        except TimeoutError:
            pass
        return [str(slept), str(ctx.now() - started)]

    env = WorkflowEnvironment(app)
    assert await env.run("sleepy") == ["1:00:00", "1:00:05"]


async def test_wait_signal_with_a_timeout_both_ways_and_buffered_signals_in_order() -> None:
    app, _ = make_app()

    @app.workflow(name="listener")
    async def listener(ctx: WorkflowContext, input: None) -> dict[str, Any]:
        first = await ctx.wait_signal("go", timeout=10)
        early = [await ctx.wait_signal("n") for _ in range(5)]
        late = await ctx.wait_signal("never", timeout=timedelta(minutes=5))
        return {"first": first, "early": early, "late": late}

    env = WorkflowEnvironment(app)
    handle = await env.start("listener")
    for i in range(5):
        await handle.signal("n", {"v": i})
    await handle.signal("go", "yes")
    result = await handle.result()
    assert result == {"first": "yes", "early": [{"v": i} for i in range(5)], "late": None}
    assert len(handle.events("TimerCancelled")) == 1  # the first wait's timer, not needed


async def test_cancellation_runs_finally_and_compensation() -> None:
    app, calls = make_app()

    @app.workflow(name="cancellable")
    async def cancellable(ctx: WorkflowContext, input: None) -> str:
        try:
            await ctx.activity("hang")
            return "done"
        finally:
            await ctx.activity("refund", "after-cancel")

    handle = await WorkflowEnvironment(app).start("cancellable")
    await asyncio.sleep(0.01)
    await handle.cancel("stop")
    with pytest.raises(WorkflowEnded) as ended:
        await handle.result()
    assert ended.value.status == "cancelled"
    assert "refund:after-cancel" in calls
    assert handle.events("ActivityCancelRequested")[0].data["activity_id"] == "hang-1"


async def test_now_random_uuid_and_side_effects_are_stable_across_replay() -> None:
    app, _ = make_app()
    produced: list[int] = []

    @app.workflow(name="values")
    async def values(ctx: WorkflowContext, input: None) -> dict[str, Any]:
        first = {"now": ctx.now().isoformat(), "random": ctx.random(), "uuid": str(ctx.uuid4()),
                 "effect": ctx.side_effect(lambda: produced.append(1) or len(produced))}
        echoed = await ctx.activity("step", {"i": 1, "first": first})
        return {"first": first, "scheduled_with": echoed}

    app.activities["step"]  # the step activity echoes only i; compare with the recorded input
    handle = await WorkflowEnvironment(app).start("values")
    result = await handle.result()
    recorded_input = handle.events("ActivityScheduled")[0].data["input"]["first"]
    assert result["first"] == recorded_input  # computed in decision 1, recomputed on replay
    assert produced == [1]  # the side effect ran once; replays read the marker
    assert handle.events("MarkerRecorded")[0].data["value"] == 1


class Order(BaseModel):
    order_id: str
    amount: float


@dataclasses.dataclass
class Receipt:
    order_id: str
    charged: float


async def test_pydantic_and_dataclass_payloads_round_trip() -> None:
    app = App()

    @app.activity(name="charge")
    async def charge(ctx: Any, order: Order) -> Receipt:
        assert isinstance(order, Order)
        return Receipt(order.order_id, order.amount)

    @app.workflow(name="order")
    async def order(ctx: WorkflowContext, input: Order) -> Receipt:
        assert isinstance(input, Order)
        receipt = await ctx.activity(charge, input)
        assert isinstance(receipt, Receipt)
        return receipt

    handle = await WorkflowEnvironment(app).start("order", Order(order_id="o-1", amount=5.5))
    assert await handle.result(type=Receipt) == Receipt("o-1", 5.5)
    assert handle.history[0].data["input"] == {"order_id": "o-1", "amount": 5.5}


async def test_class_form_with_signal_methods_and_wait_condition() -> None:
    app, _ = make_app()

    @app.workflow(name="approval")
    class Approval:
        def __init__(self) -> None:
            self.decision: str | None = None

        @signal(name="decide")
        def on_decide(self, payload: dict[str, Any]) -> None:
            self.decision = payload["answer"]

        async def run(self, ctx: WorkflowContext, input: dict[str, Any]) -> str:
            if not await ctx.wait_condition(lambda: self.decision is not None, timeout=timedelta(hours=24)):
                return "expired"
            return f"{input['who']}: {self.decision}"

    env = WorkflowEnvironment(app)
    handle = await env.start("approval", {"who": "ann"})
    await handle.signal("decide", {"answer": "yes"})
    assert await handle.result() == "ann: yes"
    assert await env.run("approval", {"who": "bob"}) == "expired"


async def test_workflow_failed_is_the_way_to_fail() -> None:
    app, _ = make_app()

    @app.workflow(name="gives_up")
    async def gives_up(ctx: WorkflowContext, input: None) -> None:
        raise WorkflowFailed("no answer after 8 rounds", type="TooManyRounds", details={"rounds": 8})

    with pytest.raises(WorkflowEnded) as ended:
        await WorkflowEnvironment(app).run("gives_up")
    assert ended.value.error["type"] == "TooManyRounds"
    assert ended.value.error["details"] == {"rounds": 8}


async def test_breaking_a_determinism_rule_names_the_call() -> None:
    app, _ = make_app()

    @app.workflow(name="sleeper")
    async def sleeper(ctx: WorkflowContext, input: None) -> None:
        time.sleep(0.01)

    @app.workflow(name="sneaky")
    async def sneaky(ctx: WorkflowContext, input: None) -> str:
        try:
            await asyncio.get_running_loop().run_in_executor(None, print)
        except Exception:  # noqa: BLE001 - swallowing it does not help
            pass
        return "hidden"

    env = WorkflowEnvironment(app)
    with pytest.raises(DeterminismViolation, match=r"time\.sleep\(\) is not allowed in workflow code"):
        await env.run("sleeper")
    with pytest.raises(DeterminismViolation, match=r"loop\.run_in_executor\(\)"):
        await env.run("sneaky")
    time.sleep(0)  # outside workflow code the guard lets everything through


def v1_history() -> list[HistoryEvent]:
    return [
        HistoryEvent(1, "WorkflowStarted", {"input": {}}),
        HistoryEvent(2, "ActivityScheduled", {"activity_id": "charge-1", "activity_type": "charge"}),
        HistoryEvent(3, "ActivityCompleted", {"activity_id": "charge-1", "activity_type": "charge", "result": {}}),
        HistoryEvent(4, "ActivityScheduled", {"activity_id": "ship-2", "activity_type": "ship"}),
    ]


def test_a_v1_history_replayed_by_v2_code_that_inserts_a_step() -> None:
    async def v2(ctx: WorkflowContext, input: Any) -> None:
        await ctx.activity("charge")
        await ctx.activity("fraud_check")  # inserted
        await ctx.activity("ship")

    with pytest.raises(NonDeterminismError) as error:
        replay(v2, v1_history(), 4, workflow_id="o-1", workflow_type="order")
    message = str(error.value)
    assert "event 4" in message and "'ship'" in message and "'fraud_check'" in message

    async def v2_patched(ctx: WorkflowContext, input: Any) -> None:
        await ctx.activity("charge")
        if ctx.patched("fraud-check"):
            await ctx.activity("fraud_check")
        await ctx.activity("ship")

    assert replay(v2_patched, v1_history(), 4).actions == []  # V1's path, no new commands
    # A new run takes the new branch and records the patch.
    # V2 without the patch on that history: the code issued a command V1's decision did not.
    with pytest.raises(NonDeterminismError, match="handling event 3 .*'fraud_check'"):
        replay(v2, [*v1_history()[:3], HistoryEvent(4, "SignalReceived", {"signal_type": "x"})], 3)
    new_run = replay(v2_patched, [*v1_history()[:3]], 2)
    assert [type(c).__name__ for c in new_run.actions] == ["RecordMarker", "ScheduleActivity"]


async def test_patched_is_true_for_new_runs_and_retired_patches_replay() -> None:
    app, _ = make_app()

    @app.workflow(name="patched")
    async def patched(ctx: WorkflowContext, input: None) -> str:
        if ctx.patched("new-step"):
            await ctx.activity("step", {"i": 7})
            return "new"
        return "old"

    handle = await WorkflowEnvironment(app).start("patched")
    assert await handle.result() == "new"

    async def retired(ctx: WorkflowContext, input: Any) -> str:  # the patch call removed later
        await ctx.activity("step", {"i": 7})
        return "new"

    assert replay(retired, handle.history, handle.history[-1].sequence_num).ended


async def test_a_raising_workflow_is_a_code_error_not_a_failure() -> None:
    app, _ = make_app()

    @app.workflow(name="buggy")
    async def buggy(ctx: WorkflowContext, input: None) -> None:
        await ctx.activity("step", {"i": 1})
        {}["missing"]  # noqa: B018 - the bug

    from durable.worker import WorkflowCodeError

    with pytest.raises(WorkflowCodeError, match="KeyError") as error:
        await WorkflowEnvironment(app).run("buggy")
    assert "line" in str(error.value)  # the traceback's frames


async def test_ctx_logger_does_not_repeat_lines_on_replay(caplog: pytest.LogCaptureFixture) -> None:
    app, _ = make_app()

    @app.workflow(name="chatty")
    async def chatty(ctx: WorkflowContext, input: None) -> None:
        ctx.logger.info("starting")
        await ctx.activity("step", {"i": 1})
        ctx.logger.info("between")
        await ctx.activity("step", {"i": 2})
        ctx.logger.info("done")

    with caplog.at_level(logging.INFO, logger="durable.workflow"):
        await WorkflowEnvironment(app).run("chatty")
    lines = [r.getMessage().split("] ", 1)[1] for r in caplog.records if r.name == "durable.workflow"]
    assert lines == ["starting", "between", "done"]


async def test_a_non_retryable_activity_error_reaches_the_workflow_at_once() -> None:
    app = App()
    attempts: list[int] = []

    @app.activity(name="picky", retry_policy={"max_attempts": 5})
    async def picky(ctx: Any, input: Any) -> None:
        attempts.append(ctx.attempt)
        raise NonRetryableError("bad input", type="BadInput")

    @app.workflow(name="w")
    async def w(ctx: WorkflowContext, input: None) -> str:
        try:
            await ctx.activity("picky")
        except ActivityError as error:
            return f"{error.type} after {error.attempts}"
        return ""

    assert await WorkflowEnvironment(app).run("w") == "BadInput after 1"
    assert attempts == [1]


async def test_asyncio_event_and_wait_first_completed() -> None:
    app, _ = make_app()

    @app.workflow(name="racing")
    async def racing(ctx: WorkflowContext, input: None) -> dict[str, Any]:
        ready = asyncio.Event()

        async def opener() -> None:
            await ctx.activity("step", {"i": 1})
            ready.set()

        opening = asyncio.ensure_future(opener())
        await ready.wait()
        slow = asyncio.ensure_future(ctx.activity("hang"))
        fast = asyncio.ensure_future(ctx.activity("step", {"i": 2}))
        done, pending = await asyncio.wait([slow, fast], return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        await opening
        return {"first": [t.result()["i"] for t in done], "pending": len(pending)}

    handle = await WorkflowEnvironment(app).start("racing")
    assert await handle.result() == {"first": [2], "pending": 1}
    assert [e.data["activity_id"] for e in handle.events("ActivityCancelRequested")] == ["hang-2"]


async def test_queries_read_the_replayed_state_during_a_sleep_and_after_the_end() -> None:
    from durable.worker import WorkflowCodeError, query
    from durable.worker.workflows import QueryNotFound

    app, _ = make_app()

    @app.workflow(name="progress")
    class Progress:
        def __init__(self) -> None:
            self.done = 0

        @query
        def status(self) -> dict[str, int]:
            return {"done": self.done}

        @query(name="times")
        def times(self, factor: int) -> int:
            return self.done * factor

        @query
        def sneaky(self) -> None:
            asyncio.ensure_future(asyncio.sleep(5))  # a timer: a query may not issue commands

        async def run(self, ctx: WorkflowContext, input: None) -> int:
            for i in range(2):
                await ctx.activity("step", {"i": i})
                self.done += 1
            await asyncio.sleep(3600)
            return self.done

    @app.workflow(name="function_form")
    async def function_form(ctx: WorkflowContext, input: None) -> str:
        stage = {"now": "started"}
        ctx.set_query_handler("stage", lambda: stage["now"])
        await ctx.activity("step", {"i": 0})
        stage["now"] = "stepped"
        return "ok"

    env = WorkflowEnvironment(app)
    handle = await env.start("progress")
    await handle.wait_for_event("TimerStarted")  # sleeping
    assert handle.query("status") == {"done": 2} and handle.query("times", 10) == 20
    with pytest.raises(WorkflowCodeError, match="a query only reads"):
        handle.query("sneaky")
    with pytest.raises(QueryNotFound, match="queries: sneaky, status, times"):
        handle.query("nope")
    assert await handle.result() == 2
    assert handle.query("status") == {"done": 2}  # after completion too
    events = len(handle.history)
    handle.query("status")
    assert len(handle.history) == events  # a query writes nothing

    other = await env.start("function_form")
    await other.result()
    assert other.query("stage") == "stepped"
