"""Batched workflow writes (controlplane/store/workflow_batches.py): the step outcomes of many
workflows in one transaction, with the single path's rules: events numbered after the history
in the batch's order, one decision per workflow, nothing recorded twice, and what the batch
cannot take answered by the single path with its reason."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest

from durable.common.errors import ConcurrencyConflict, StaleAttempt
from durable.controlplane.store import Store


def schedule(activity_id: str) -> dict:
    return {"type": "schedule_activity", "activity_id": activity_id, "activity_type": "a", "input": {"id": activity_id}}


async def _scheduled(store: Store, worker: str, n: int, steps: tuple[str, ...]) -> list[str]:
    ids = [(await store.start_workflow("wf", {"i": i}, workflow_id=f"wf-{i}"))[0].id for i in range(n)]
    _, decisions = await store.claim(worker, [], ["wf"], limit=n)
    for d in decisions:
        assert await store.complete_workflow_task(
            worker, d.task.id, d.task.attempt, 1, [schedule(s) for s in steps])
    return ids


async def test_one_batch_completes_steps_of_many_workflows_in_order_with_one_decision_each(
    store: Store, worker: str, db: asyncpg.Connection
) -> None:
    ids = await _scheduled(store, worker, 3, ("s1", "s2"))
    acts, _ = await store.claim(worker, ["a"], [], limit=10)
    assert len(acts) == 6
    standalone = await store.enqueue_activity("a", {"alone": True})
    [alone], _ = await store.claim(worker, ["a"], [], limit=10)
    assert alone.id == standalone
    # a standalone task in the middle, results of every kind
    ordered = sorted(acts, key=lambda t: t.activity_id, reverse=True)
    results = [None, 0, "", [], {"x": 1}, False]
    items = [(t.id, t.attempt, r) for t, r in zip(ordered, results, strict=True)]
    items.insert(3, (alone.id, alone.attempt, {"alone": 1}))
    outcomes = await store.complete_tasks(worker, items)
    assert [error for _, error in outcomes] == [None] * 7
    by_task = {t.id: r for t, r in zip(ordered, results, strict=True)}
    for workflow_id in ids:
        events = await store.load_events(workflow_id)
        completed = [e for e in events if e.event_type == "ActivityCompleted"]
        assert [e.sequence_num for e in events] == list(range(1, 6))
        # numbered in the batch's order (by task id: the lock order)
        mine = sorted((t for t in acts if t.workflow_id == workflow_id), key=lambda t: t.id)
        assert [e.event_data["activity_id"] for e in completed] == [t.activity_id for t in mine]
        for e in completed:
            [task] = [t for t in acts if t.workflow_id == workflow_id and t.activity_id == e.event_data["activity_id"]]
            expected = by_task[task.id]
            assert e.event_data == {"activity_id": task.activity_id, "activity_type": "a",
                                    "result": {} if expected is None else expected, "attempt": 1}
        wf = await store.get_workflow(workflow_id)
        assert wf.last_event_seq == 5
    # one decision queued per workflow, though each had two outcomes
    assert await db.fetchval(
        "SELECT count(*) FROM durable_task_queue WHERE kind = 'workflow' AND status = 'pending'") == 3
    assert (await store.get_task(alone.id)).status == "completed"
    # history_bytes grew with the events
    assert all(r["history_bytes"] > 0 for r in await db.fetch("SELECT history_bytes FROM durable_workflow_instances"))


async def test_a_batch_with_a_task_no_longer_held_completes_the_rest_and_says_why(
    store: Store, worker: str
) -> None:
    await _scheduled(store, worker, 2, ("s1",))
    acts, _ = await store.claim(worker, ["a"], [], limit=10)
    stale, fresh = acts
    outcomes = await store.complete_tasks(worker, [(stale.id, stale.attempt + 1, {}), (fresh.id, fresh.attempt, {})])
    assert isinstance(outcomes[0][1], StaleAttempt)
    assert outcomes[1][1] is None
    assert (await store.get_task(stale.id)).status == "claimed"
    assert [e.event_type for e in await store.load_events(fresh.workflow_id)][-1] == "ActivityCompleted"
    assert [e.event_type for e in await store.load_events(stale.workflow_id)][-1] == "ActivityScheduled"


async def test_a_step_of_an_ended_workflow_completes_its_task_without_an_event(
    store: Store, worker: str, db: asyncpg.Connection
) -> None:
    [workflow_id] = await _scheduled(store, worker, 1, ("s1",))
    [act], _ = await store.claim(worker, ["a"], [], limit=10)
    # the workflow ended while its step ran (a decision that did not wait for it)
    await db.execute("UPDATE durable_workflow_instances SET status = 'completed', completed_at = now(), result = '{}' WHERE id = $1", workflow_id)
    before = [e.event_type for e in await store.load_events(workflow_id)]
    [(_, error)] = await store.complete_tasks(worker, [(act.id, act.attempt, {"late": True})])
    assert error is None
    assert (await store.get_task(act.id)).result == {"late": True}
    assert [e.event_type for e in await store.load_events(workflow_id)] == before
    assert await db.fetchval("SELECT count(*) FROM durable_task_queue WHERE kind = 'workflow' AND status = 'pending'") == 0


async def test_a_decision_batch_that_fails_after_it_wrote_is_rolled_back_and_applied_one_by_one(
    store: Store, worker: str, db: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    from durable.controlplane.store import workflow_batches
    from durable.controlplane.store.decisions import Applied, Decision

    for i in range(3):
        await store.start_workflow("wf", {"i": i}, workflow_id=f"wf-{i}")
    _, decisions = await store.claim(worker, [], ["wf"], limit=3)
    real = workflow_batches.apply_decisions
    calls: list[int] = []

    async def once_broken(*args: Any, **kwargs: Any) -> Any:
        calls.append(len(args[3]))
        result = await real(*args, **kwargs)  # it writes, then the batch meets an error
        if len(calls) == 1:
            raise ConcurrencyConflict("injected")
        return result

    monkeypatch.setattr(workflow_batches, "apply_decisions", once_broken)
    outcomes = await store.complete_workflow_tasks(worker, [
        Decision(d.task.id, d.task.attempt, 1, [schedule("s1")]) for d in decisions])
    assert [o.applied for o in outcomes if isinstance(o, Applied)] == [True, True, True]
    assert calls == [3, 1, 1, 1]  # the batch, then each decision alone
    # nothing of the rolled-back batch stayed: one activity and one event each
    assert await db.fetchval("SELECT count(*) FROM durable_task_queue WHERE kind = 'activity'") == 3
    assert await db.fetchval("SELECT count(*) FROM durable_workflow_events WHERE event_type = 'ActivityScheduled'") == 3


async def test_one_batch_mixes_the_set_based_and_the_single_path(store: Store, worker: str, db: asyncpg.Connection) -> None:
    from durable.controlplane.store.decisions import Decision

    ids = [(await store.start_workflow("wf", {}, workflow_id=f"mix-{i}"))[0].id for i in range(3)]
    _, claimed = await store.claim(worker, [], ["wf"], limit=3)
    by_workflow = {d.workflow.id: d for d in claimed}
    timer = {"type": "start_timer", "timer_id": "t1", "fire_after": 60}
    plans = {
        ids[0]: [schedule("s1"), timer],                                           # set-based
        ids[1]: [{"type": "cancel_workflow", "reason": "no"}],                      # single path
        ids[2]: [{"type": "record_marker", "kind": "side_effect", "marker_id": "m", "value": 7},
                 {"type": "complete_workflow", "result": {"done": True}}],          # set-based, ends
    }
    outcomes = await store.complete_workflow_tasks(worker, [
        Decision(by_workflow[w].task.id, by_workflow[w].task.attempt, 1, plans[w]) for w in ids])
    assert [o.applied for o in outcomes] == [True, True, True]  # type: ignore[union-attr]
    kinds = {w: [e.event_type for e in await store.load_events(w)] for w in ids}
    assert kinds[ids[0]] == ["WorkflowStarted", "ActivityScheduled", "TimerStarted"]
    assert kinds[ids[1]] == ["WorkflowStarted", "WorkflowCancelled"]
    assert kinds[ids[2]] == ["WorkflowStarted", "MarkerRecorded", "WorkflowCompleted"]
    views = {w: await store.get_workflow(w) for w in ids}
    assert [views[w].status for w in ids] == ["running", "cancelled", "completed"]
    assert views[ids[2]].result == {"done": True} and views[ids[2]].completed_at is not None
    assert [views[w].decided_through_seq for w in ids] == [3, 2, 3]
    assert await db.fetchval("SELECT count(*) FROM durable_task_queue WHERE kind = 'workflow' AND status = 'completed'") == 3
    timers = await db.fetch("SELECT visible_at, created_at FROM durable_task_queue WHERE kind = 'timer'")
    assert len(timers) == 1 and (timers[0]["visible_at"] - timers[0]["created_at"]).total_seconds() == 60


# -- following decisions: a decision that rides on an activity's completion -------------------

async def _kept_with_step(store: Store, worker: str, workflow_id: str) -> tuple[Any, int]:
    """A workflow whose first decision (kept by `worker`) scheduled step s1, now claimed:
    (the claimed activity, the history's last event)."""
    from durable.controlplane.store.decisions import Applied, Decision

    await store.start_workflow("wf", {}, workflow_id=workflow_id)
    _, [d] = await store.claim(worker, [], ["wf"], limit=1)
    [outcome] = await store.complete_workflow_tasks(worker, [Decision(d.task.id, d.task.attempt, 1, [schedule("s1")], True)])
    assert isinstance(outcome, Applied) and outcome.applied
    # the worker that keeps the instance is told the command events its decision appended
    assert [(e.sequence_num, e.event_type, e.event_data) for e in outcome.events] == [
        (2, "ActivityScheduled", {"activity_id": "s1", "activity_type": "a"})]
    [act], _ = await store.claim(worker, ["a"], [], limit=1)
    return act, 2


def _stamp(seconds_from_now: float = 0.0) -> tuple[int, Any]:
    from datetime import UTC, datetime, timedelta

    at = datetime.now(UTC) + timedelta(seconds=seconds_from_now)
    us = int(at.timestamp() * 1_000_000)
    return us, datetime.fromtimestamp(0, UTC) + timedelta(microseconds=us)


async def test_a_decision_that_follows_a_completion_is_applied_with_it_and_no_decision_task(
    store: Store, worker: str, db: asyncpg.Connection
) -> None:
    from durable.controlplane.store.workflow_batches import Following

    act, at = await _kept_with_step(store, worker, "follow-1")
    us, stamped = _stamp()
    outcomes, followed = await store.complete_tasks_following(
        worker, [(act.id, act.attempt, {"v": 1})], {0: Following.stamped_us(at, us, [schedule("s2")], True)})
    assert outcomes == [(act.id, None)]
    assert followed[0].applied
    assert [(e.sequence_num, e.event_type) for e in followed[0].events] == [(4, "ActivityScheduled")]
    events = await store.load_events("follow-1")
    assert [e.event_type for e in events] == ["WorkflowStarted", "ActivityScheduled", "ActivityCompleted", "ActivityScheduled"]
    # the completion's event bears the worker's stamp: the time its decision saw
    assert events[2].created_at == stamped
    assert events[2].event_data == {"activity_id": "s1", "activity_type": "a", "result": {"v": 1}, "attempt": 1}
    wf = await store.get_workflow("follow-1")
    assert (wf.last_event_seq, wf.decided_through_seq, wf.decision_seen_seq, wf.sticky_worker_id) == (4, 4, 3, worker)
    assert await db.fetchval("SELECT count(*) FROM durable_task_queue WHERE kind = 'workflow' AND status <> 'completed'") == 0
    assert await db.fetchval("SELECT count(*) FROM durable_task_queue WHERE kind = 'activity' AND activity_id = 's2'") == 1
    # and the next one ends the workflow
    [act2], _ = await store.claim(worker, ["a"], [], limit=1)
    us, _ = _stamp()
    _, followed = await store.complete_tasks_following(worker, [(act2.id, act2.attempt, None)], {
        0: Following.stamped_us(4, us, [{"type": "complete_workflow", "result": {"done": True}}], False)})
    assert followed[0].applied
    wf = await store.get_workflow("follow-1")
    assert (wf.status, wf.result, wf.last_event_seq) == ("completed", {"done": True}, 6)


@pytest.mark.parametrize("moved", ["signal", "stale point", "another worker", "far stamp", "bad action"])
async def test_a_following_decision_the_history_moved_under_is_dropped_and_a_decision_task_queued(
    store: Store, worker: str, db: asyncpg.Connection, moved: str
) -> None:
    from durable.controlplane.store.workflow_batches import Following

    act, at = await _kept_with_step(store, worker, "follow-2")
    us, stamped = _stamp(60 if moved == "far stamp" else 0)
    actions = [schedule("s2")] if moved != "bad action" else [{"type": "launch_rocket"}]
    if moved == "signal":
        await store.signal_workflow("follow-2", "poke", {"n": 1})
    if moved == "another worker":
        await store.register_worker("w2", activity_types=["a"], workflow_types=["wf"])
        await db.execute("UPDATE durable_workflow_instances SET sticky_worker_id = 'w2'")
    point = at - 1 if moved == "stale point" else at
    outcomes, followed = await store.complete_tasks_following(
        worker, [(act.id, act.attempt, {"v": 1})], {0: Following.stamped_us(point, us, actions, True)})
    # the completion is never lost to its decision
    assert outcomes == [(act.id, None)]
    assert 0 not in followed or not followed[0].applied
    events = await store.load_events("follow-2")
    assert "ActivityCompleted" in [e.event_type for e in events]
    [completed] = [e for e in events if e.event_type == "ActivityCompleted"]
    assert completed.created_at != stamped  # the control plane's time, as without a decision
    assert [e.event_type for e in events].count("ActivityScheduled") == 1  # s2 was not scheduled
    # a decision task decides on it instead
    assert await db.fetchval("SELECT count(*) FROM durable_task_queue WHERE kind = 'workflow' AND status = 'pending'") == 1


async def test_two_outcomes_of_one_workflow_in_a_batch_take_no_following_decision(
    store: Store, worker: str, db: asyncpg.Connection
) -> None:
    """Parallel steps that complete together: the decision made on one of them did not see the
    other, so it is dropped; one decision task decides on both."""
    from durable.controlplane.store.decisions import Decision
    from durable.controlplane.store.workflow_batches import Following

    await store.start_workflow("wf", {}, workflow_id="follow-3")
    _, [d] = await store.claim(worker, [], ["wf"], limit=1)
    [outcome] = await store.complete_workflow_tasks(
        worker, [Decision(d.task.id, d.task.attempt, 1, [schedule("p1"), schedule("p2")], True)])
    assert [e.sequence_num for e in outcome.events] == [2, 3]  # type: ignore[union-attr]
    acts, _ = await store.claim(worker, ["a"], [], limit=2)
    us, stamped = _stamp()
    done = {"type": "complete_workflow", "result": {}}
    outcomes, followed = await store.complete_tasks_following(
        worker, [(acts[0].id, acts[0].attempt, {}), (acts[1].id, acts[1].attempt, {})],
        {0: Following.stamped_us(3, us, [done], True)})
    assert [error for _, error in outcomes] == [None, None]
    assert 0 not in followed or not followed[0].applied
    events = await store.load_events("follow-3")
    assert [e.event_type for e in events][-2:] == ["ActivityCompleted", "ActivityCompleted"]
    assert stamped not in [e.created_at for e in events]
    assert (await store.get_workflow("follow-3")).status == "running"
    assert await db.fetchval("SELECT count(*) FROM durable_task_queue WHERE kind = 'workflow' AND status = 'pending'") == 1


def test_dropped_following_decisions_are_said_once_a_minute_per_worker(caplog: pytest.LogCaptureFixture) -> None:
    """A worker whose clock is far off would have each of its completions say so."""
    import logging

    from durable.controlplane.store import workflow_batches

    workflow_batches._dropped.clear()
    with caplog.at_level(logging.WARNING, logger=workflow_batches.__name__):
        for i in range(50):
            workflow_batches.log_dropped("skewed", f"t-{i}", "its event is stamped far off")
        workflow_batches.log_dropped("other", "t-x", "a bad action")
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2 and "worker skewed" in lines[0] and "t-0" in lines[0] and "worker other" in lines[1]
    workflow_batches._dropped["skewed"] = (workflow_batches._dropped["skewed"][0] - 61, 49)
    with caplog.at_level(logging.WARNING, logger=workflow_batches.__name__):
        workflow_batches.log_dropped("skewed", "t-50", "its event is stamped far off")
    assert "49 more from this worker" in caplog.records[-1].getMessage()


async def test_one_batch_applies_following_decisions_together_on_the_single_path_and_not_at_all(
    store: Store, worker: str, db: asyncpg.Connection
) -> None:
    """Three workflows' completions in one batch: one decision goes with the statement (a
    step), one takes the single path after it (a timer cancelled: not a set-based command),
    one carries none (a decision task follows). Each history stays whole and numbered."""
    from durable.controlplane.store.workflow_batches import Following

    acts = [await _kept_with_step(store, worker, f"mix-{i}") for i in range(3)]
    us, stamped = _stamp()
    outcomes, followed = await store.complete_tasks_following(
        worker, [(act.id, act.attempt, {"i": i}) for i, (act, _) in enumerate(acts)], {
            0: Following.stamped_us(2, us, [schedule("s2")], True),
            1: Following.stamped_us(2, us, [{"type": "cancel_timer", "timer_id": "never"}, schedule("s2")], True),
        })
    assert [error for _, error in outcomes] == [None, None, None]
    assert followed[0].applied and followed[1].applied and 2 not in followed
    # the worker that keeps each instance is told its command events, on either path
    assert [(e.sequence_num, e.event_type) for e in followed[0].events] == [(4, "ActivityScheduled")]
    assert [(e.sequence_num, e.event_type) for e in followed[1].events] == [(4, "TimerCancelled"), (5, "ActivityScheduled")]
    assert followed[1].events[0].event_data == {"timer_id": "never"}
    for i, expected in enumerate([
        ["WorkflowStarted", "ActivityScheduled", "ActivityCompleted", "ActivityScheduled"],
        ["WorkflowStarted", "ActivityScheduled", "ActivityCompleted", "TimerCancelled", "ActivityScheduled"],
        ["WorkflowStarted", "ActivityScheduled", "ActivityCompleted"],
    ]):
        events = await store.load_events(f"mix-{i}")
        assert [e.event_type for e in events] == expected
        assert [e.sequence_num for e in events] == list(range(1, len(expected) + 1))
        assert (events[2].created_at == stamped) is (i < 2)
        wf = await store.get_workflow(f"mix-{i}")
        decided = len(expected) if i < 2 else 2
        assert (wf.last_event_seq, wf.decided_through_seq) == (len(expected), decided)
    pending = await db.fetch("SELECT workflow_id FROM durable_task_queue WHERE kind = 'workflow' AND status = 'pending'")
    assert [r["workflow_id"] for r in pending] == ["mix-2"]
    assert await db.fetchval(
        "SELECT count(*) FROM durable_task_queue WHERE kind = 'activity' AND activity_id = 's2'") == 2


async def test_a_following_decision_that_ends_the_workflow_cancels_its_open_steps_and_notifies(
    store: Store, worker: str, db: asyncpg.Connection
) -> None:
    from durable.controlplane.store.workflow_batches import Following

    act, at = await _kept_with_step(store, worker, "end-1")
    # a timer the workflow left open, then the completion's decision ends the run
    await db.execute("INSERT INTO durable_task_queue (kind, workflow_id, activity_id, activity_type, visible_at) "
                     "VALUES ('timer', 'end-1', 't1', 'timer', now() + interval '1 hour')")
    heard: list[str] = []
    await db.add_listener("durable_workflows", lambda *args: heard.append(args[3]))
    us, _ = _stamp()
    _, followed = await store.complete_tasks_following(worker, [(act.id, act.attempt, {})], {
        0: Following.stamped_us(at, us, [{"type": "complete_workflow", "result": {"ok": 1}}], False)})
    assert followed[0].applied and not followed[0].events  # an instance that ended is told nothing
    wf = await store.get_workflow("end-1")
    assert (wf.status, wf.result, wf.last_event_seq, wf.decided_through_seq) == ("completed", {"ok": 1}, 4, 4)
    assert wf.completed_at is not None
    assert await db.fetchval("SELECT status FROM durable_task_queue WHERE activity_id = 't1'") == "cancelled"
    deadline = asyncio.get_running_loop().time() + 5
    while not heard and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.01)
    assert heard == ["end-1"]


async def test_a_following_decision_that_would_schedule_a_step_twice_rolls_back_and_the_completion_stays(
    store: Store, worker: str, db: asyncpg.Connection
) -> None:
    """A decision that schedules the step just completed again (no kept instance does; a bug
    might): its step already has a task, so the batch is done again without the decision."""
    from durable.controlplane.store.workflow_batches import Following

    act, at = await _kept_with_step(store, worker, "twice-1")
    us, stamped = _stamp()
    outcomes, followed = await store.complete_tasks_following(
        worker, [(act.id, act.attempt, {"v": 2})], {0: Following.stamped_us(at, us, [schedule("s1")], True)})
    assert outcomes == [(act.id, None)]
    assert 0 not in followed or not followed[0].applied
    events = await store.load_events("twice-1")
    assert [e.event_type for e in events] == ["WorkflowStarted", "ActivityScheduled", "ActivityCompleted"]
    assert events[2].created_at != stamped
    assert await db.fetchval("SELECT count(*) FROM durable_task_queue WHERE kind = 'workflow' AND status = 'pending'") == 1
    wf = await store.get_workflow("twice-1")
    assert (wf.last_event_seq, wf.decided_through_seq) == (3, 2)


async def test_a_completion_reported_again_after_its_answer_was_lost_gets_what_that_answer_handed_out(
    store: Store, worker: str, db: asyncpg.Connection
) -> None:
    """The worker's first CompleteTasks was taken but its answer never came (the connection
    dropped): the same report again is taken, not refused, and hands out the activities the lost
    answer carried (eager), instead of leaving them held for no one until the reaper."""
    from durable.controlplane.store.workflow_batches import Following

    act, at = await _kept_with_step(store, worker, "lost-1")
    us, _ = _stamp()
    eager = {**schedule("s2"), "eager": True}
    report = ([(act.id, act.attempt, {"v": 1})], {0: Following.stamped_us(at, us, [eager], True)})
    _, first = await store.complete_tasks_following(worker, *report)
    assert first[0].applied and [t.activity_id for t in first[0].tasks] == ["s2"]
    outcomes, again = await store.complete_tasks_following(worker, *report)
    assert outcomes == [(act.id, None)]
    assert not again[0].applied  # taken before: nothing applied again, and the instance replays
    assert [t.id for t in again[0].tasks] == [t.id for t in first[0].tasks]
    assert [e.event_type for e in await store.load_events("lost-1")].count("ActivityCompleted") == 1
    assert await db.fetchval("SELECT count(*) FROM durable_task_queue WHERE activity_id = 's2'") == 1
    # another worker's report of the same attempt is still refused
    await store.register_worker("w2", activity_types=["a"], workflow_types=["wf"])
    [(_, error)] = (await store.complete_tasks_following("w2", [(act.id, act.attempt, {"v": 1})]))[0]
    assert isinstance(error, StaleAttempt)


async def test_a_decision_reported_again_after_its_answer_was_lost_gets_what_that_answer_handed_out(
    store: Store, worker: str
) -> None:
    from durable.controlplane.store.decisions import Applied, Decision

    await store.start_workflow("wf", {}, workflow_id="lost-2")
    _, [d] = await store.claim(worker, [], ["wf"], limit=1)
    decision = Decision(d.task.id, d.task.attempt, 1, [{**schedule("s1"), "eager": True}], True)
    [first] = await store.complete_workflow_tasks(worker, [decision])
    assert isinstance(first, Applied) and first.applied and [t.activity_id for t in first.tasks] == ["s1"]
    [again] = await store.complete_workflow_tasks(worker, [decision])
    assert isinstance(again, Applied) and not again.applied
    assert [t.id for t in again.tasks] == [t.id for t in first.tasks]
    assert [e.event_type for e in await store.load_events("lost-2")] == ["WorkflowStarted", "ActivityScheduled"]
    # once the activity ran and reported, a late copy of the decision hands out nothing
    [act] = first.tasks
    await store.complete_tasks_following(worker, [(act.id, act.attempt, {})])
    [late] = await store.complete_workflow_tasks(worker, [decision])
    assert isinstance(late, StaleAttempt)  # refused, as any report of an attempt taken


async def test_a_following_decision_that_starts_a_child_tells_its_keeper_the_event_to_match(
    store: Store, worker: str
) -> None:
    from durable.controlplane.store.workflow_batches import Following

    act, at = await _kept_with_step(store, worker, "parent-1")
    us, _ = _stamp()
    child = {"type": "start_child_workflow", "child_id": "parent-1-child", "workflow_type": "child", "input": {"x": 1}}
    _, followed = await store.complete_tasks_following(
        worker, [(act.id, act.attempt, {})], {0: Following.stamped_us(at, us, [child], True)})
    assert followed[0].applied
    [told] = followed[0].events
    assert (told.sequence_num, told.event_type) == (4, "ChildWorkflowStarted")
    assert told.event_data == {"child_id": "parent-1-child", "workflow_type": "child"}  # what the matcher reads
    assert (await store.get_workflow("parent-1-child")).status == "pending"
    # not kept: told nothing
    act2, at2 = await _kept_with_step(store, worker, "parent-2")
    _, followed = await store.complete_tasks_following(worker, [(act2.id, act2.attempt, {})], {
        0: Following.stamped_us(at2, us, [{**child, "child_id": "parent-2-child"}], False)})
    assert followed[0].applied and followed[0].events == ()


async def test_a_decision_on_the_single_path_tells_its_keeper_the_command_events_unless_it_saw_less(
    store: Store, worker: str
) -> None:
    from durable.controlplane.store.decisions import Applied, Decision

    for workflow_id in ("single-1", "single-2"):
        await store.start_workflow("wf", {}, workflow_id=workflow_id)
    _, decisions = await store.claim(worker, [], ["wf"], limit=2)
    by_id = {d.workflow.id: d for d in decisions}
    child = {"type": "start_child_workflow", "child_id": "single-1-child", "workflow_type": "child", "input": {}}
    await store.signal_workflow("single-2", "poke", {})  # single-2's decision does not see it
    one, two = await store.complete_workflow_tasks(worker, [
        Decision(by_id["single-1"].task.id, by_id["single-1"].task.attempt, 1, [child], True),
        Decision(by_id["single-2"].task.id, by_id["single-2"].task.attempt, 1,
                 [{**child, "child_id": "single-2-child"}], True)])
    assert isinstance(one, Applied) and one.applied
    assert [(e.sequence_num, e.event_type, e.event_data) for e in one.events] == [
        (2, "ChildWorkflowStarted", {"child_id": "single-1-child", "workflow_type": "child"})]
    assert isinstance(two, Applied) and two.applied and two.events == ()  # after an event it did not see
