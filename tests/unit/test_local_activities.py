"""Local activities on the runtime (no I/O): run within the decision, recorded as markers,
replayed from them, retried within their budget, checked for non-determinism."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Any

import pytest

from durable.common import NonRetryableError, RetryPolicy
from durable.proto.v1 import durable_pb2 as pb
from durable.testing import WorkflowEnded, WorkflowEnvironment
from durable.worker import ActivityError, App, NonDeterminismError, WorkflowContext, replay
from durable.worker.local_activities import LocalActivityRunner
from durable.worker.workflows import HistoryEvent, WorkflowCodeError
from durable.worker.workflows.commands import CompleteWorkflow, RecordMarker, ScheduleActivity
from durable.worker.workflows.local import LocalActivity

NO_JITTER = {"initial_interval": 1.0, "backoff_coefficient": 2.0, "jitter": 0.0}


def make_app() -> tuple[App, list[str]]:
    app = App()
    calls: list[str] = []

    @app.activity(name="parse")
    async def parse(ctx: Any, input: dict[str, Any]) -> dict[str, Any]:
        calls.append(f"parse:{input['text']}")
        return {"n": int(input["text"])}

    @app.workflow(name="four_parses")
    async def four_parses(ctx: WorkflowContext, input: None) -> int:
        total = 0
        for i in range(4):
            total += (await ctx.local_activity(parse, {"text": str(i + 1)}))["n"]
        return total

    return app, calls


def history(*events: tuple[str, dict[str, Any]]) -> list[HistoryEvent]:
    return [HistoryEvent(i, kind, data) for i, (kind, data) in enumerate(events, start=1)]


def marker(marker_id: str, activity_type: str, seen_seq: int, **outcome: Any) -> tuple[str, dict[str, Any]]:
    value = {"activity_type": activity_type, "attempts": 1, "seen_seq": seen_seq, **outcome}
    return ("MarkerRecorded", {"kind": "local_activity", "marker_id": marker_id, "value": value})


STARTED = ("WorkflowStarted", {"workflow_type": "wf", "input": None})


async def test_four_local_activities_are_one_decision_and_replay_without_running() -> None:
    app, calls = make_app()
    handle = await WorkflowEnvironment(app).start("four_parses")
    assert await handle.result() == 10
    assert [e.event_type for e in handle.history] == ["WorkflowStarted", *["MarkerRecorded"] * 4, "WorkflowCompleted"]
    assert calls == ["parse:1", "parse:2", "parse:3", "parse:4"]
    first = handle.events("MarkerRecorded")[0].data
    assert first == {"kind": "local_activity", "marker_id": "parse-1",
                     "value": {"activity_type": "parse", "attempts": 1, "seen_seq": 1, "result": {"n": 1}}}

    # A fresh replay of the recorded history: nothing new, and nothing runs again.
    decision = replay(app.workflows["four_parses"], handle.history, decided_through_seq=6)
    assert decision.actions == [] and decision.local_activities == () and decision.ended
    assert len(calls) == 4


async def test_a_failing_step_is_retried_within_its_policy_and_the_clock_moves_not_time() -> None:
    app = App()
    attempts: list[int] = []

    def flaky(ctx: Any, input: str) -> str:  # sync, called (ctx, input)
        attempts.append(ctx.attempt)
        if ctx.attempt < 3:
            raise RuntimeError(f"attempt {ctx.attempt}")
        return input.upper()

    @app.workflow(name="retrying")
    async def retrying(ctx: WorkflowContext, input: None) -> str:
        return str(await ctx.local_activity(flaky, "ok", retry_policy={"max_attempts": 5, **NO_JITTER}))

    env = WorkflowEnvironment(app)
    handle = await env.start("retrying")
    assert await handle.result() == "OK"
    assert attempts == [1, 2, 3]
    assert handle.events("MarkerRecorded")[0].data["value"]["attempts"] == 3
    assert env.now() - env.start_time == timedelta(seconds=3)  # the 1 s and 2 s backoffs, skipped


async def test_exhausted_retries_raise_activity_error_that_the_code_catches() -> None:
    app = App()

    @app.workflow(name="compensating")
    async def compensating(ctx: WorkflowContext, input: None) -> dict[str, Any]:
        try:
            await ctx.local_activity(lambda text: int(text), "x", activity_id="to-int",
                                     retry_policy={"max_attempts": 2, "initial_interval": 0.1})
        except ActivityError as exc:
            return {"type": exc.type, "attempts": exc.attempts, "reason": exc.reason, "id": exc.activity_id}
        return {}

    handle = await WorkflowEnvironment(app).start("compensating")
    assert await handle.result() == {"type": "ValueError", "attempts": 2, "reason": "exhausted", "id": "to-int"}
    value = handle.events("MarkerRecorded")[0].data["value"]
    assert value["error"]["type"] == "ValueError" and "invalid literal" in value["error"]["message"]


async def test_uncaught_failure_fails_the_workflow_like_an_activity_and_non_retryable_is_not_retried() -> None:
    app = App()
    tried: list[int] = []

    def refuse(ctx: Any, input: Any) -> None:
        tried.append(ctx.attempt)
        raise NonRetryableError("no such customer", type="UnknownCustomer")

    @app.workflow(name="failing")
    async def failing(ctx: WorkflowContext, input: None) -> None:
        await ctx.local_activity(refuse)

    handle = await WorkflowEnvironment(app).start("failing")
    with pytest.raises(WorkflowEnded) as ended:
        await handle.result()
    assert ended.value.status == "failed" and ended.value.error["type"] == "UnknownCustomer"
    assert ended.value.error["details"]["activity_id"] == "refuse-1"
    assert tried == [1]


async def test_retries_stop_where_they_would_pass_the_schedule_to_close_budget() -> None:
    app = App()
    tried: list[int] = []

    def always(ctx: Any, input: Any) -> None:
        tried.append(ctx.attempt)
        raise RuntimeError("down")

    @app.workflow(name="bounded")
    async def bounded(ctx: WorkflowContext, input: None) -> dict[str, Any]:
        try:
            await ctx.local_activity(always, retry_policy={"max_attempts": 10, **NO_JITTER},
                                     schedule_to_close_timeout=2.5)
        except ActivityError as exc:
            return {"type": exc.type, "reason": exc.reason, "attempts": exc.attempts}
        return {}

    env = WorkflowEnvironment(app)
    handle = await env.start("bounded")
    # attempts at 0 s and 1 s; the next would come at 3 s, past 2.5 s: not made
    assert await handle.result() == {"type": "RuntimeError", "reason": "schedule_to_close", "attempts": 2}
    assert tried == [1, 2] and env.now() - env.start_time == timedelta(seconds=1)


async def test_an_attempt_is_cut_off_by_start_to_close_and_the_whole_by_schedule_to_close() -> None:
    runner = LocalActivityRunner({})

    async def hang(ctx: Any, input: Any) -> None:
        await asyncio.Event().wait()

    quick = RetryPolicy(max_attempts=2, initial_interval=0.01, jitter=0.0)
    per_attempt = await runner.run(LocalActivity("h-1", "hang", None, fn=hang, retry_policy=quick,
                                                 start_to_close_timeout=0.05), "wf")
    assert per_attempt.attempts == 2 and per_attempt.reason == "exhausted"
    assert per_attempt.error is not None and per_attempt.error["type"] == "StartToCloseTimeout"
    whole = await runner.run(LocalActivity("h-2", "hang", None, fn=hang, retry_policy=quick,
                                           schedule_to_close_timeout=0.05), "wf")
    assert whole.attempts == 1 and whole.reason == "schedule_to_close"
    assert whole.error is not None and whole.error["type"] == "ScheduleToCloseTimeout"


async def test_gathered_local_activities_run_together_and_are_recorded_in_call_order() -> None:
    app = App()
    started: list[str] = []
    release = asyncio.Event()

    async def step(ctx: Any, name: str) -> str:
        started.append(name)
        if len(started) == 3:
            release.set()
        await release.wait()  # only returns once all three run at once
        return name

    @app.workflow(name="together")
    async def together(ctx: WorkflowContext, input: None) -> list[str]:
        return list(await asyncio.gather(*(ctx.local_activity(step, n) for n in ("a", "b", "c"))))

    handle = await WorkflowEnvironment(app).start("together")
    assert await handle.result() == ["a", "b", "c"]
    assert [e.data["marker_id"] for e in handle.events("MarkerRecorded")] == ["step-1", "step-2", "step-3"]


async def test_a_local_activity_by_name_runs_the_registered_one_or_the_fake() -> None:
    app, calls = make_app()

    @app.workflow(name="by_name")
    async def by_name(ctx: WorkflowContext, input: None) -> Any:
        return await ctx.local_activity("parse", {"text": "7"})

    assert await WorkflowEnvironment(app).run("by_name") == {"n": 7}
    faked = WorkflowEnvironment(app, activities={"parse": lambda ctx, input: {"n": -1}})
    assert await faked.run("by_name") == {"n": -1}
    assert calls == ["parse:7"]


async def test_replay_resolves_it_where_its_decision_did_before_events_that_decision_had_not_seen() -> None:
    # The step sends a signal while it runs: the decision is applied after it, and replay must
    # still hand the step's result to the code before the signal, as the first run saw it.
    app = App()
    box: dict[str, Any] = {}

    async def poke(ctx: Any, input: Any) -> None:
        await box["handle"].signal("s", 1)

    @app.activity(name="a")
    async def a(ctx: Any, input: Any) -> str:
        return "a"

    @app.activity(name="b")
    async def b(ctx: Any, input: Any) -> str:
        return "b"

    @app.workflow(name="ordered")
    async def ordered(ctx: WorkflowContext, input: None) -> str:
        seen: list[Any] = []
        ctx.set_signal_handler("s", seen.append)
        await ctx.local_activity(poke)
        branch = "b" if seen else "a"  # the first run had no signal yet
        result = str(await ctx.activity(branch))
        await ctx.wait_condition(lambda: bool(seen))
        return result

    env = WorkflowEnvironment(app)
    handle = await env.start("ordered")
    box["handle"] = handle
    assert await handle.result() == "a"
    kinds = [e.event_type for e in handle.history]
    assert kinds[:4] == ["WorkflowStarted", "SignalReceived", "MarkerRecorded", "ActivityScheduled"]


def test_non_determinism_both_ways() -> None:
    app, _ = make_app()
    definition = app.workflows["four_parses"]

    # the code runs a local activity where the history scheduled an activity
    scheduled = history(STARTED, ("ActivityScheduled", {"activity_id": "parse-1", "activity_type": "parse"}))
    with pytest.raises(NonDeterminismError, match=r"event 2 .*ActivityScheduled.*waits on local activity parse \(parse-1\)"):
        replay(definition, scheduled, decided_through_seq=1)

    # ... or where the decision recorded nothing
    with pytest.raises(NonDeterminismError, match="called local activity 'parse' .*history does not hold"):
        replay(definition, history(STARTED), decided_through_seq=1)

    # the history holds a local activity where the code schedules an activity
    @app.workflow(name="plain")
    async def plain(ctx: WorkflowContext, input: None) -> None:
        await ctx.activity("parse", {"text": "1"})

    recorded = history(STARTED, marker("parse-1", "parse", 1, result={"n": 1}))
    with pytest.raises(NonDeterminismError, match=r"event 2 .*local_activity.*ScheduleActivity"):
        replay(app.workflows["plain"], recorded, decided_through_seq=1)

    # ... or another local activity (another id; the same id with another type)
    @app.workflow(name="other")
    async def other(ctx: WorkflowContext, input: None) -> None:
        await ctx.local_activity("lookup")
        await ctx.local_activity("lookup", activity_id="parse-1")

    with pytest.raises(NonDeterminismError, match=r"event 2 .*'parse-1'.*issued no command"):
        replay(app.workflows["other"], recorded, decided_through_seq=1)
    renamed = history(STARTED, marker("lookup-1", "lookup", 1), marker("parse-1", "parse", 1))
    with pytest.raises(NonDeterminismError, match="event 3 .*of type 'parse'; the code called 'lookup'"):
        replay(app.workflows["other"], renamed, decided_through_seq=1)


def test_a_kept_instance_goes_on_from_its_resolved_local_activities() -> None:
    app = App()

    @app.workflow(name="mixed")
    async def mixed(ctx: WorkflowContext, input: None) -> Any:
        parsed = await ctx.local_activity("parse", {"text": "2"})
        return await ctx.activity("double", parsed)

    definition = app.workflows["mixed"]
    instance = definition.instance("w")
    first = instance.replay(history(STARTED), 0, keep_open=True)
    (request,) = first.local_activities
    assert first.actions == [] and request.marker_id == "parse-1" and request.input == {"text": "2"}
    from durable.worker.workflows.local import LocalOutcome

    decision = instance.resolve_local([LocalOutcome("parse-1", "parse", 1, result={"n": 2})])
    assert decision.local_activities == ()
    assert [type(a) for a in decision.actions] == [RecordMarker, ScheduleActivity]
    assert decision.actions[1].input == {"n": 2}  # type: ignore[union-attr]
    # the events of that decision, and the activity's result: fed to the kept instance
    after = [
        HistoryEvent(2, *marker("parse-1", "parse", 1, result={"n": 2})),
        HistoryEvent(3, "ActivityScheduled", {"activity_id": "double-1", "activity_type": "double"}),
        HistoryEvent(4, "ActivityCompleted", {"activity_id": "double-1", "result": 4}),
    ]
    kept = instance.advance(after, decided_through_seq=1, keep_open=False)
    fresh = definition.decide([HistoryEvent(1, *STARTED), *after], decided_through_seq=1)
    assert kept.actions == fresh.actions == [CompleteWorkflow(4)]


async def test_a_worker_decision_runs_its_local_activities_and_sends_one_decision() -> None:
    from tests.unit.test_worker_sdk import _runner

    app, calls = make_app()
    started = pb.Event(sequence_num=1, event_type="WorkflowStarted", event_data_json=json.dumps({"input": None}))
    task = pb.Task(id="t", kind="workflow", activity_type="four_parses", workflow_id="w", attempt=1,
                   history=[started], decided_through_seq=0)
    method, request = await _runner(app)._decide(task)
    assert method == "CompleteWorkflowTask"
    assert [a.WhichOneof("action") for a in request.actions] == ["record_marker"] * 4 + ["complete_workflow"]
    assert json.loads(request.actions[3].record_marker.value_json)["result"] == {"n": 4}
    assert calls == ["parse:1", "parse:2", "parse:3", "parse:4"]

    # a name no activity of the App has: the decision fails (the workflow blocks), nothing runs
    @app.workflow(name="unknown")
    async def unknown(ctx: WorkflowContext, input: None) -> None:
        await ctx.local_activity("nope")

    task = pb.Task(id="t", kind="workflow", activity_type="unknown", workflow_id="w", attempt=1,
                   history=[started], decided_through_seq=0)
    method, request = await _runner(app)._decide(task)
    assert method == "FailTask" and request.failure.type == "WorkflowCodeError"
    assert "'nope'" in request.failure.message


async def test_a_budget_over_the_cap_is_a_bug_in_the_code() -> None:
    app = App()

    @app.workflow(name="greedy")
    async def greedy(ctx: WorkflowContext, input: None) -> None:
        await ctx.local_activity(lambda x: x, 1, schedule_to_close_timeout=120)

    with pytest.raises(WorkflowCodeError, match="at most 60 s"):
        await WorkflowEnvironment(app).run("greedy")


async def test_a_local_activity_the_code_stops_waiting_for_records_nothing() -> None:
    app = App()

    async def step(ctx: Any, name: str) -> str:
        return name

    @app.workflow(name="first_wins")
    async def first_wins(ctx: WorkflowContext, input: None) -> list[str]:
        first = ctx.start_local_activity(step, "a")
        second = ctx.start_local_activity(step, "b")
        done, waiting = await asyncio.wait([first, second], return_when=asyncio.FIRST_COMPLETED)
        for future in waiting:
            future.cancel()
        return [future.result() for future in done]

    handle = await WorkflowEnvironment(app).start("first_wins")
    assert await handle.result() == ["a"]
    assert [e.data["marker_id"] for e in handle.events("MarkerRecorded")] == ["step-1"]
    assert replay(app.workflows["first_wins"], handle.history, decided_through_seq=3).actions == []


def test_a_query_may_not_start_a_local_activity() -> None:
    app = App()

    @app.workflow(name="asking")
    async def asking(ctx: WorkflowContext, input: None) -> None:
        ctx.set_query_handler("peek", lambda: ctx.start_local_activity("parse") and None)
        await ctx.wait_signal("never")

    with pytest.raises(WorkflowCodeError, match="tried to change the workflow"):
        app.workflows["asking"].query(history(STARTED), "peek")


class Journaller:
    """Stands in for durable.worker.journals.Journal: `write` makes a journal; `unseen` is what
    its answer says (events came that the decision has not seen)."""

    def __init__(self, write: Any) -> None:
        self.write = write
        self.unseen = False

    async def __call__(self, decision: Any) -> Any:
        return await self.write(decision)


def appended(events: list[HistoryEvent], actions: Any) -> list[HistoryEvent]:
    """The command events the store appends for `actions` (markers and activities)."""
    new = []
    for action in actions:
        if isinstance(action, RecordMarker):
            new.append(HistoryEvent(len(events) + 1, "MarkerRecorded", {
                "kind": action.kind, "marker_id": action.marker_id, "value": action.value}))
        elif isinstance(action, ScheduleActivity):
            new.append(HistoryEvent(len(events) + 1, "ActivityScheduled", {
                "activity_type": action.activity_type, "activity_id": action.activity_id, "input": 1}))
        else:
            new.append(HistoryEvent(len(events) + 1, "WorkflowCompleted", {"result": action.result}))
        events.append(new[-1])
    return new


def _steps_app() -> tuple[App, list[str]]:
    app, calls = make_app()
    parse = app.activities["parse"].fn

    @app.workflow(name="three_steps")
    async def three_steps(ctx: WorkflowContext, input: None) -> int:
        total = (await ctx.step(parse, {"text": "1"}))["n"]
        later = ctx.start_activity("double", total)  # issued between two steps: journalled with the first
        total += (await ctx.step(parse, {"text": "2"}))["n"]
        total += (await ctx.step(parse, {"text": "3"}))["n"]
        return total + await later

    return app, calls


@pytest.mark.parametrize("told", [True, False])
async def test_steps_write_what_came_before_them_and_replay_from_it(told: bool) -> None:
    """Before each step the decision's commands so far go out as a journal (none before the
    first); the decision sends only what no journal wrote, and a fresh replay of the history
    the journals made runs nothing again. Untold (events came meanwhile), the instance stands
    where it was and is not sent the same commands twice."""
    app, calls = _steps_app()
    definition = app.workflows["three_steps"]
    instance = definition.instance("wf-1")
    events = [HistoryEvent(1, *STARTED)]
    journals: list[list[str]] = []

    async def journal(decision: Any) -> Any:
        sent = [type(a).__name__ + ":" + getattr(a, "marker_id", getattr(a, "activity_id", "")) for a in decision.actions]
        journals.append(sent)
        new = appended(events, decision.actions)
        return instance.journalled(len(decision.actions), new if told else [])

    decision = instance.replay(events, 0, keep_open=True)
    assert [r.journalled for r in decision.local_activities] == [True]
    decision = await LocalActivityRunner(app.activities).settle(instance, decision, "wf-1", Journaller(journal))
    assert journals == [["RecordMarker:parse-1", "ScheduleActivity:double-1"], ["RecordMarker:parse-2"]]
    # the decision: the last step's marker only; it saw through its journals' events when told
    assert [type(a).__name__ for a in decision.actions] == ["RecordMarker"]
    assert decision.seen_through_seq == (4 if told else 1)
    assert calls == ["parse:1", "parse:2", "parse:3"]
    instance.close()

    [last] = decision.actions
    events.append(HistoryEvent(5, "MarkerRecorded", {"kind": last.kind, "marker_id": last.marker_id,
                                                     "value": last.value}))
    events.append(HistoryEvent(6, "ActivityCompleted", {"activity_id": "double-1", "result": 2}))
    again = definition.instance("wf-1").replay(events, 5)
    assert [type(a).__name__ for a in again.actions] == ["CompleteWorkflow"] and again.ended
    assert calls == ["parse:1", "parse:2", "parse:3"]  # nothing ran again


async def test_a_worker_that_died_after_a_journal_runs_only_the_steps_after_it() -> None:
    app, calls = _steps_app()
    value = {"activity_type": "parse", "attempts": 1, "seen_seq": 1, "result": {"n": 1}}
    events = history(STARTED, ("MarkerRecorded", {"kind": "local_activity", "marker_id": "parse-1", "value": value}),
                     ("ActivityScheduled", {"activity_type": "double", "activity_id": "double-1", "input": 1}))
    instance = app.workflows["three_steps"].instance("wf-1")
    decision = instance.replay(events, 0, keep_open=True)  # decided through nothing: the journal's decision died
    assert [r.marker_id for r in decision.local_activities] == ["parse-2"] and decision.actions == []
    decision = await LocalActivityRunner(app.activities).settle(instance, decision, "wf-1")
    assert calls == ["parse:2", "parse:3"]
    assert [a.marker_id for a in decision.actions] == ["parse-2", "parse-3"]
    instance.close()


async def test_durable_testing_runs_steps_with_their_journals() -> None:
    app, calls = _steps_app()

    @app.activity(name="double")
    async def double(ctx: Any, input: int) -> int:
        return input * 2

    handle = await WorkflowEnvironment(app).start("three_steps")
    assert await handle.result() == 8
    assert [e.data["marker_id"] for e in handle.events("MarkerRecorded")] == ["parse-1", "parse-2", "parse-3"]
    assert calls == ["parse:1", "parse:2", "parse:3"]


async def test_parallel_steps_run_together_and_are_journalled_before_the_next() -> None:
    app, _ = make_app()
    parse = app.activities["parse"].fn

    @app.workflow(name="fan_out")
    async def fan_out(ctx: WorkflowContext, input: None) -> int:
        a, b = await asyncio.gather(ctx.step(parse, {"text": "1"}), ctx.step(parse, {"text": "2"}))
        plain = await ctx.local_activity(parse, {"text": "3"})  # no journal before a local activity
        last = await ctx.step(parse, {"text": "4"})
        return a["n"] + b["n"] + plain["n"] + last["n"]

    instance = app.workflows["fan_out"].instance("wf-2")
    journals: list[list[str]] = []

    async def journal(decision: Any) -> Any:
        journals.append([a.marker_id for a in decision.actions])
        return instance.journalled(len(decision.actions))

    decision = instance.replay([HistoryEvent(1, *STARTED)], 0, keep_open=True)
    assert len(decision.local_activities) == 2
    decision = await LocalActivityRunner(app.activities).settle(instance, decision, "wf-2", Journaller(journal))
    assert journals == [["parse-1", "parse-2", "parse-3"]]
    assert [type(a).__name__ for a in decision.actions] == ["RecordMarker", "CompleteWorkflow"]
    assert decision.actions[-1].result == 10
    instance.close()


def _stepping_app() -> tuple[App, list[str]]:
    app, calls = make_app()
    parse = app.activities["parse"].fn

    @app.workflow(name="stepping")
    async def stepping(ctx: WorkflowContext, input: None) -> list[Any]:
        notes: list[Any] = []
        done = {"steps": 0}
        ctx.set_signal_handler("note", lambda value: notes.append([value, done["steps"]]))
        for i in range(1, 5):
            await ctx.step(parse, {"text": str(i)})
            done["steps"] = i
        return notes

    return app, calls


@pytest.mark.parametrize("kept", [True, False])
async def test_a_loop_of_steps_sees_a_signal_between_two_steps(kept: bool) -> None:
    """A signal that comes while a decision runs its steps: the journal before the next step
    says so (unseen), the decision ends there with that step deferred, and the next decision
    (the kept instance fed the new events, or a fresh replay) delivers the signal first, then
    runs the deferred step; the whole history replays with nothing run again."""
    app, calls = _stepping_app()
    definition = app.workflows["stepping"]
    instance = definition.instance("wf-3")
    events = [HistoryEvent(1, *STARTED)]

    async def first(decision: Any) -> Any:  # a signal comes while step 1 runs
        count = len(decision.actions)
        appended(events, decision.actions)
        events.append(HistoryEvent(len(events) + 1, "SignalReceived", {"signal_type": "note", "payload": "hi"}))
        journal.unseen = True
        return instance.journalled(count)

    journal = Journaller(first)
    seen: list[tuple[str, str, bool]] = []  # what the worker's metrics are told
    runner = LocalActivityRunner(app.activities, observe=lambda r, outcome, s: seen.append((r.marker_id, outcome, s is None)))
    decision = instance.replay(events, 0, keep_open=True)
    decision = await runner.settle(instance, decision, "wf-3", journal)
    assert calls == ["parse:1"]  # step 2 deferred
    assert seen == [("parse-1", "completed", False), ("parse-2", "deferred", True)]
    [deferral] = decision.actions
    assert (deferral.kind, deferral.marker_id) == ("local_activity_deferred", "parse-2")
    assert decision.seen_through_seq == 1 and not decision.ended
    appended(events, decision.actions)  # the decision, applied after the signal
    assert [e.event_type for e in events] == ["WorkflowStarted", "MarkerRecorded", "SignalReceived", "MarkerRecorded"]

    # without its deferral marker, that history would not be deterministic (local rule 4)
    with pytest.raises(NonDeterminismError, match="parse-2"):
        definition.instance("wf-3").replay(events[:3], 1)

    if kept:
        decision = instance.advance(events[1:], 1)  # replay_through_seq: what the decision saw
    else:
        instance.close()
        instance = definition.instance("wf-3")
        decision = instance.replay(events, 1, keep_open=True)
    assert [r.marker_id for r in decision.local_activities] == ["parse-2"] and decision.actions == []

    async def later(decision: Any) -> Any:
        count = len(decision.actions)
        return instance.journalled(count, appended(events, decision.actions))

    journal = Journaller(later)
    decision = await LocalActivityRunner(app.activities).settle(instance, decision, "wf-3", journal)
    assert calls == ["parse:1", "parse:2", "parse:3", "parse:4"]
    assert decision.ended and decision.actions[-1].result == [["hi", 1]]  # seen after step 1, before step 2
    appended(events, decision.actions)
    instance.close()
    markers = {e.data["marker_id"]: e.data["value"]["seen_seq"] for e in events
               if e.event_type == "MarkerRecorded" and e.data["kind"] == "local_activity"}
    assert markers == {"parse-1": 1, "parse-2": 3, "parse-3": 3, "parse-4": 3}  # run after the signal (rule 3)

    again = replay(definition, events, decided_through_seq=events[-1].sequence_num)
    assert again.ended and again.actions == []
    assert calls == ["parse:1", "parse:2", "parse:3", "parse:4"]  # nothing ran again


async def test_durable_testing_delivers_a_signal_between_two_steps() -> None:
    app = App()

    @app.activity(name="tick")
    async def tick(ctx: Any, input: None) -> None:
        await asyncio.sleep(0)

    @app.workflow(name="ticking")
    async def ticking(ctx: WorkflowContext, input: None) -> dict[str, Any]:
        stop: list[Any] = []
        ctx.set_signal_handler("stop", stop.append)
        steps = 0
        while not stop and steps < 2000:
            await ctx.step(tick, None)
            steps += 1
        return {"steps": steps, "stopped": bool(stop)}

    handle = await WorkflowEnvironment(app).start("ticking")
    await handle.wait_for_event("MarkerRecorded")  # a journal: the steps are running
    await handle.signal("stop")
    result = await handle.result()
    assert result["stopped"] and result["steps"] < 2000, result
    kinds = [(e.event_type, e.data.get("kind")) for e in handle.history]
    assert kinds.index(("SignalReceived", None)) < kinds.index(("MarkerRecorded", "local_activity_deferred"))
    assert kinds.count(("MarkerRecorded", "local_activity")) == result["steps"]
