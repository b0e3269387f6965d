"""Workflow decisions: applied once, conditional on the history, and durable timers."""

from __future__ import annotations

import asyncpg
import pytest

from durable.common.errors import InvalidArgument, StaleAttempt
from durable.controlplane.store import Store
from durable.controlplane.timers import TimerFirer
from tests.support.clock import FakeClock


def schedule(activity_id: str, activity_type: str = "a", **input: object) -> dict:
    return {"type": "schedule_activity", "activity_id": activity_id, "activity_type": activity_type, "input": dict(input)}


async def test_decision_schedules_activities_and_completion_wakes_the_workflow(store: Store, worker: str) -> None:
    wf, _ = await store.start_workflow("wf", {"go": 1})
    [], [d] = await store.claim(worker, [], ["wf"])
    assert [e.event_type for e in d.history] == ["WorkflowStarted"] and d.workflow.status == "running"
    assert await store.complete_workflow_task(worker, d.task.id, d.task.attempt, 1, [schedule("s1", n=1), schedule("s2", n=2)])
    assert (await store.get_workflow(wf.id)).decided_through_seq == 3
    acts, decisions = await store.claim(worker, ["a"], ["wf"], limit=10)
    assert {t.activity_id for t in acts} == {"s1", "s2"} and decisions == []
    for t in acts:
        await store.complete_task(worker, t.id, t.attempt, {"done": t.activity_id})
    # two completions, but one waiting decision
    [], [d2] = await store.claim(worker, [], ["wf"], limit=10)
    assert [e.event_type for e in d2.history][-2:] == ["ActivityCompleted", "ActivityCompleted"]
    assert d2.workflow.decided_through_seq == 3
    assert await store.complete_workflow_task(
        worker, d2.task.id, d2.task.attempt, d2.workflow.last_event_seq,
        [{"type": "complete_workflow", "result": {"answer": 42}}],
    )
    done = await store.get_workflow(wf.id)
    assert (done.status, done.result) == ("completed", {"answer": 42})
    assert [e.event_type for e in await store.load_events(wf.id)] == [
        "WorkflowStarted", "ActivityScheduled", "ActivityScheduled",
        "ActivityCompleted", "ActivityCompleted", "WorkflowCompleted",
    ]


async def test_a_decision_on_a_prefix_is_applied_and_the_new_events_start_the_next(
    store: Store, worker: str, db: asyncpg.Connection
) -> None:
    wf, _ = await store.start_workflow("wf", {})
    [], [d] = await store.claim(worker, [], ["wf"])
    await store.signal_workflow(wf.id, "hurry", {})  # the history moves while the worker decides
    assert await store.complete_workflow_task(worker, d.task.id, d.task.attempt, 1, [schedule("s1")])
    # its command goes after the signal it did not see; the signal is not delivered yet
    assert [e.event_type for e in await store.load_events(wf.id)] == [
        "WorkflowStarted", "SignalReceived", "ActivityScheduled"]
    assert await db.fetchval("SELECT count(*) FROM durable_task_queue WHERE kind = 'activity'") == 1
    assert (await store.list_signals(wf.id))[0].delivered_at is None
    after = await store.get_workflow(wf.id)
    assert (after.decided_through_seq, after.replay_through_seq) == (3, 1)
    # the signal's decision follows, with the whole history
    [], [nxt] = await store.claim(worker, [], ["wf"])
    assert [e.event_type for e in nxt.history] == ["WorkflowStarted", "SignalReceived", "ActivityScheduled"]
    assert await store.complete_workflow_task(worker, nxt.task.id, nxt.task.attempt, 3, [])
    assert (await store.list_signals(wf.id))[0].delivered_at is not None


async def test_a_decision_made_before_another_was_applied_is_dropped(
    store: Store, worker: str, db: asyncpg.Connection
) -> None:
    wf, _ = await store.start_workflow("wf", {})
    [], [d] = await store.claim(worker, [], ["wf"])
    assert await store.complete_workflow_task(worker, d.task.id, d.task.attempt, 1, [schedule("s1")])
    # a second decision task computed on the history before that decision (a duplicate
    # attempt, say) would schedule s1 again: it is dropped, and nothing is applied twice
    await store.signal_workflow(wf.id, "hurry", {})
    [], [late] = await store.claim(worker, [], ["wf"])
    assert await store.complete_workflow_task(worker, late.task.id, late.task.attempt, 1, [schedule("s1")]) is False
    assert [e.event_type for e in await store.load_events(wf.id)] == [
        "WorkflowStarted", "ActivityScheduled", "SignalReceived"]
    # and dropping it queued a decision for the signal
    [], [retry] = await store.claim(worker, [], ["wf"])
    assert await store.complete_workflow_task(worker, retry.task.id, retry.task.attempt, 3, [schedule("s2")])
    assert (await store.list_signals(wf.id))[0].delivered_at is not None


async def test_a_decision_that_would_end_the_workflow_before_unseen_events_is_dropped(
    store: Store, worker: str
) -> None:
    wf, _ = await store.start_workflow("wf", {})
    [], [d] = await store.claim(worker, [], ["wf"])
    await store.signal_workflow(wf.id, "wait", {})
    done = {"type": "complete_workflow", "result": {}}
    assert await store.complete_workflow_task(worker, d.task.id, d.task.attempt, 1, [done]) is False
    assert (await store.get_workflow(wf.id)).status != "completed"
    [], [retry] = await store.claim(worker, [], ["wf"])
    assert await store.complete_workflow_task(worker, retry.task.id, retry.task.attempt, 2, [done])
    assert (await store.get_workflow(wf.id)).status == "completed"


async def test_a_replayed_action_for_an_existing_step_is_not_scheduled_twice(
    store: Store, worker: str, db: asyncpg.Connection
) -> None:
    wf, _ = await store.start_workflow("wf", {})
    [], [d] = await store.claim(worker, [], ["wf"])
    assert await store.complete_workflow_task(worker, d.task.id, d.task.attempt, 1, [schedule("s1")])
    # a replayed action for a step that already exists is not scheduled twice
    [t], _ = await store.claim(worker, ["a"])
    await store.complete_task(worker, t.id, t.attempt, {})
    [], [d3] = await store.claim(worker, [], ["wf"])
    await store.complete_workflow_task(worker, d3.task.id, d3.task.attempt, d3.workflow.last_event_seq, [schedule("s1")])
    assert await db.fetchval("SELECT count(*) FROM durable_task_queue WHERE kind = 'activity'") == 1
    assert await db.fetchval(
        "SELECT count(*) FROM durable_workflow_events WHERE event_type = 'ActivityScheduled'"
    ) == 1


async def test_a_decision_is_fenced_like_any_task(store: Store, worker: str) -> None:
    await store.register_worker("w2", workflow_types=["wf"])
    await store.start_workflow("wf", {})
    [], [d] = await store.claim(worker, [], ["wf"])
    with pytest.raises(StaleAttempt):
        await store.complete_workflow_task("w2", d.task.id, d.task.attempt, 1, [])


async def test_invalid_decisions_write_nothing(store: Store, worker: str, db: asyncpg.Connection) -> None:
    wf, _ = await store.start_workflow("wf", {})
    [], [d] = await store.claim(worker, [], ["wf"])
    bad = [
        ([{"type": "launch_rocket"}], "not one of"),
        ([schedule("s1"), {"type": "complete_workflow"}, schedule("s2")], "must be the last"),
        ([{"type": "schedule_activity", "activity_type": "a"}], "activity_id is required"),
        ([{"type": "start_timer", "timer_id": "t", "fire_after": -1}], "fire_after"),
        ([{"type": "fail_workflow", "error": {}}], "needs a message"),
        ([{**schedule("s1"), "options": {"retry_policy": {"max_attempts": 0}}}], "max_attempts"),
    ]
    for actions, message in bad:
        with pytest.raises(InvalidArgument, match=message):
            await store.complete_workflow_task(worker, d.task.id, d.task.attempt, 1, actions)
    assert await db.fetchval("SELECT count(*) FROM durable_workflow_events") == 1
    assert (await store.get_task(d.task.id)).status == "claimed"


async def test_timers_fire_durably(store: Store, worker: str, clock: FakeClock) -> None:
    wf, _ = await store.start_workflow("wf", {})
    [], [d] = await store.claim(worker, [], ["wf"])
    await store.complete_workflow_task(worker, d.task.id, d.task.attempt, 1,
                                       [{"type": "start_timer", "timer_id": "nap", "fire_after": 60}])
    firer = TimerFirer(store)  # a new control plane after a restart knows the timer from the table
    assert await firer.run_once() == 0
    clock.advance(61)
    assert await firer.run_once() == 1
    assert await firer.run_once() == 0
    [], [d2] = await store.claim(worker, [], ["wf"])
    assert [e.event_type for e in d2.history][-2:] == ["TimerStarted", "TimerFired"]
    assert d2.history[-1].event_data == {"timer_id": "nap"}


async def test_failing_activity_reaches_the_workflow_as_an_event(store: Store, worker: str) -> None:
    wf, _ = await store.start_workflow("wf", {})
    [], [d] = await store.claim(worker, [], ["wf"])
    await store.complete_workflow_task(worker, d.task.id, d.task.attempt, 1,
                                       [{**schedule("s1"), "options": {"retry_policy": {"max_attempts": 1}}}])
    [t], _ = await store.claim(worker, ["a"])
    await store.fail_task(worker, t.id, t.attempt, "kaput", error_type="Kaput")
    [], [d2] = await store.claim(worker, [], ["wf"])
    failed = d2.history[-1]
    assert failed.event_type == "ActivityFailed"
    assert failed.event_data["error"] == {"message": "kaput", "type": "Kaput"}
    assert failed.event_data["reason"] == "exhausted"
    await store.complete_workflow_task(worker, d2.task.id, d2.task.attempt, d2.workflow.last_event_seq,
                                       [{"type": "fail_workflow", "error": {"message": "step s1 failed"}}])
    assert (await store.get_workflow(wf.id)).status == "failed"


async def test_cancel_marks_running_activities_for_cancellation(store: Store, worker: str) -> None:
    wf, _ = await store.start_workflow("wf", {})
    [], [d] = await store.claim(worker, [], ["wf"])
    await store.complete_workflow_task(worker, d.task.id, d.task.attempt, 1, [schedule("s1")])
    [t], _ = await store.claim(worker, ["a"])
    await store.cancel_workflow(wf.id, "stop", terminate=True)
    [(_, accepted, cancel_requested)] = await store.heartbeat_tasks(worker, [(t.id, t.attempt, None)])
    assert not accepted and cancel_requested
    with pytest.raises(StaleAttempt):
        await store.complete_task(worker, t.id, t.attempt, {})


async def test_a_decision_task_is_not_completed_as_an_activity(store: Store, worker: str) -> None:
    wf, _ = await store.start_workflow("wf", {})
    [], [d] = await store.claim(worker, [], ["wf"])
    with pytest.raises(InvalidArgument, match="is a workflow task; complete it with its own call"):
        await store.complete_task(worker, d.task.id, d.task.attempt, {})
    assert (await store.get_task(d.task.id)).status == "claimed"  # nothing changed
    with pytest.raises(StaleAttempt):  # and a stale attempt is told so, as before
        await store.complete_task(worker, d.task.id, d.task.attempt + 1, {})
