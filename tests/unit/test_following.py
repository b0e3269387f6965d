"""The worker's side of following decisions (durable.worker.following, InstanceCache.confirm):
an instance confirmed to stand where the history ends decides on a completion; one whose
told events do not fit is dropped; a decision task's history overlapping what it was told is
passed over."""

from __future__ import annotations

import json
from typing import Any

from durable.proto.v1 import durable_pb2 as pb
from durable.worker import App, WorkflowContext
from durable.worker.following import decide_on_completion, stamped_time
from durable.worker.workflows.cache import InstanceCache
from durable.worker.workflows.commands import CompleteWorkflow, ScheduleActivity
from durable.worker.workflows.history import HistoryEvent

app = App()


@app.workflow(name="two")
async def two(ctx: WorkflowContext, input: Any) -> list[Any]:
    first = await ctx.activity("step", 1)
    second = await ctx.activity("step", first)
    return [first, second, ctx.now().isoformat()]


def _first_decision() -> tuple[InstanceCache, Any, str]:
    cache = InstanceCache(10)
    instance = app.workflows["two"].instance("wf-1")
    decision = instance.replay([HistoryEvent(1, "WorkflowStarted", {"input": None})], 0, keep_open=True)
    [schedule] = decision.actions
    assert isinstance(schedule, ScheduleActivity)
    cache.put("wf-1", instance, decision.seen_through_seq)
    return cache, instance, schedule.activity_id


def _task(activity_id: str) -> pb.Task:
    return pb.Task(id="t-1", kind="activity", workflow_id="wf-1", activity_id=activity_id, activity_type="step", attempt=1)


def test_a_confirmed_instance_decides_on_the_completion_with_the_event_as_stored() -> None:
    cache, instance, activity_id = _first_decision()
    assert decide_on_completion(cache, _task(activity_id), "2") is None  # not confirmed yet: a task decides
    cache.confirm("wf-1", instance, [HistoryEvent(2, "ActivityScheduled", {"activity_id": activity_id, "activity_type": "step"})], 1)
    following = decide_on_completion(cache, _task(activity_id), "2")
    assert following is not None and len(cache) == 0  # out of the cache while its report travels
    [schedule] = following.decision.actions
    assert isinstance(schedule, ScheduleActivity) and schedule.input == 2
    assert (following.request.after_seq, following.request.keeps_instance) == (2, True)
    # back in the cache once applied, standing on the events told in the answer
    told = pb.CompletionOutcome(applied=True, events=[pb.Event(sequence_num=4, event_type="ActivityScheduled", event_data_json=json.dumps(
        {"activity_id": schedule.activity_id, "activity_type": "step"}))])
    following.settle(cache, told)
    second = decide_on_completion(cache, _task(schedule.activity_id), "3")
    assert second is not None
    [end] = second.decision.actions
    assert isinstance(end, CompleteWorkflow)
    # the code saw the completion's time as a replay of the stored event will
    assert end.result[:2] == [2, 3] and end.result[2] == stamped_time(second.stamped_us).isoformat()  # type: ignore[union-attr]
    assert second.request.keeps_instance is False  # it ended: nothing to keep


def test_told_events_that_do_not_fit_drop_the_instance_and_a_refused_decision_closes_it() -> None:
    cache, instance, activity_id = _first_decision()
    cache.confirm("wf-1", instance, [HistoryEvent(2, "ActivityScheduled", {"activity_id": "other", "activity_type": "step"})], 1)
    assert len(cache) == 0  # it does not stand where the history does
    cache, instance, activity_id = _first_decision()
    cache.confirm("wf-1", instance, [HistoryEvent(2, "ActivityScheduled", {"activity_id": activity_id, "activity_type": "step"})], 1)
    following = decide_on_completion(cache, _task(activity_id), "2")
    assert following is not None
    following.settle(cache, pb.CompletionOutcome(applied=False))
    assert len(cache) == 0 and instance.torn_down  # past the history: closed, a task replays


def test_a_decision_task_after_a_confirmation_passes_over_the_events_the_instance_was_told() -> None:
    cache, instance, activity_id = _first_decision()
    cache.confirm("wf-1", instance, [HistoryEvent(2, "ActivityScheduled", {"activity_id": activity_id, "activity_type": "step"})], 1)
    taken = cache.take("wf-1", 1)  # the task's history starts after what the decision saw
    assert taken is instance
    decision = taken.advance([
        HistoryEvent(2, "ActivityScheduled", {"activity_id": activity_id, "activity_type": "step", "input": 1, "task_id": "x"}),
        HistoryEvent(3, "ActivityCompleted", {"activity_id": activity_id, "activity_type": "step", "result": 2, "attempt": 1}),
    ], 1)
    [schedule] = decision.actions
    assert isinstance(schedule, ScheduleActivity) and schedule.input == 2 and decision.seen_through_seq == 3


@app.activity(name="parse")
async def parse(ctx: Any, input: Any) -> Any:
    return input


@app.workflow(name="then_local")
async def then_local(ctx: WorkflowContext, input: Any) -> Any:
    fetched = await ctx.activity("step", 1)
    return await ctx.local_activity(parse, fetched)


def test_a_decision_that_waits_on_local_activities_does_not_hold_the_completion_back() -> None:
    """Running them in the following decision would hold the activity's completion (and its
    result) until they end: the completion goes alone, and a decision task runs them."""
    from concurrent.futures import ThreadPoolExecutor

    from durable.worker.execution import TaskRunner

    runner = TaskRunner(app, None, worker_id="w", executor=ThreadPoolExecutor(1),  # type: ignore[arg-type]
                        backoff=lambda: None, cache_size=10, following_decisions=True)  # type: ignore[arg-type,return-value]
    instance = app.workflows["then_local"].instance("wf-1")
    decision = instance.replay([HistoryEvent(1, "WorkflowStarted", {"input": None})], 0, keep_open=True)
    [schedule] = decision.actions
    runner.cache.put("wf-1", instance, decision.seen_through_seq)  # type: ignore[union-attr]
    runner.cache.confirm("wf-1", instance, [HistoryEvent(2, "ActivityScheduled", {  # type: ignore[union-attr]
        "activity_id": schedule.activity_id, "activity_type": "step"})], 1)
    task = pb.Task(id="t-1", kind="activity", workflow_id="wf-1", activity_id=schedule.activity_id,
                   activity_type="step", attempt=1)
    assert runner._make_following(task, "7") is None
    assert len(runner.cache) == 0 and instance.torn_down  # type: ignore[arg-type]  # past the history: a task replays
    # the same instance, ending on the activity's result alone, would ride
    cache, first, activity_id = _first_decision()
    cache.confirm("wf-1", first, [HistoryEvent(2, "ActivityScheduled", {"activity_id": activity_id, "activity_type": "step"})], 1)
    runner.cache = cache
    assert runner._make_following(_task(activity_id), "2") is not None
