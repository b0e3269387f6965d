"""Journals (controlplane/store/journals.py): a decision's commands written while its task
stays the worker's (ctx.step), against a real PostgreSQL: the workflow decided no further,
nothing written twice when a journal is made again, no ending, and a journal that is not
applied drops its decision."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from durable.common.errors import InvalidArgument, StaleAttempt
from durable.controlplane.store import Store
from durable.controlplane.store.decisions import Decision


def marker(n: int) -> dict[str, Any]:
    return {"type": "record_marker", "kind": "local_activity", "marker_id": f"parse-{n}",
            "value": {"activity_type": "parse", "attempts": 1, "seen_seq": 1, "result": {"n": n}}}


async def _deciding(store: Store, worker: str) -> Any:
    workflow_id = (await store.start_workflow("wf", {}, workflow_id="wf-j"))[0].id
    _, [claimed] = await store.claim(worker, [], ["wf"], limit=1)
    assert claimed.task.workflow_id == workflow_id
    return claimed.task


async def journal(store: Store, worker: str, task: Any, seen: int, actions: list[dict[str, Any]],
                  journalled: int) -> Any:
    [outcome] = await store.complete_workflow_tasks(worker, [Decision(
        task.id, task.attempt, seen, actions, keeps_instance=True, journal=True, journalled=journalled)])
    return outcome


async def test_a_journal_writes_the_commands_and_keeps_the_task(
    store: Store, worker: str, db: asyncpg.Connection
) -> None:
    task = await _deciding(store, worker)
    first = await journal(store, worker, task, 1, [marker(1)], 0)
    assert first.applied and not first.unseen
    # told: the instance stands where the history ends
    assert [(e.sequence_num, e.event_type, e.event_data["marker_id"]) for e in first.events] == [
        (2, "MarkerRecorded", "parse-1")]
    second = await journal(store, worker, task, 2, [marker(2), {
        "type": "schedule_activity", "activity_id": "a1", "activity_type": "a", "input": {}}], 1)
    assert second.applied and [e.sequence_num for e in second.events] == [3, 4]
    row = await db.fetchrow("SELECT status, claimed_by, heartbeat_details FROM durable_task_queue WHERE id = $1",
                            task.id)
    assert (row["status"], row["claimed_by"]) == ("claimed", worker)
    wf = await store.get_workflow("wf-j")
    assert (wf.status, wf.decided_through_seq, wf.last_event_seq) == ("running", 0, 4)
    # the activity it scheduled is a task; the decision's end finishes it all
    assert await db.fetchval("SELECT count(*) FROM durable_task_queue WHERE kind = 'activity'") == 1
    assert await store.complete_workflow_task(worker, task.id, task.attempt, 4, [marker(3)])
    wf = await store.get_workflow("wf-j")
    assert (wf.decided_through_seq, wf.last_event_seq) == (5, 5)
    events = await store.load_events("wf-j")
    assert [e.event_type for e in events] == [
        "WorkflowStarted", "MarkerRecorded", "MarkerRecorded", "ActivityScheduled", "MarkerRecorded"]


async def test_a_journal_made_again_is_not_written_twice(store: Store, worker: str) -> None:
    task = await _deciding(store, worker)
    assert (await journal(store, worker, task, 1, [marker(1)], 0)).applied
    again = await journal(store, worker, task, 1, [marker(1)], 0)  # its answer was lost
    assert again.applied and again.events == ()
    assert again.unseen  # its own first writing is beyond what it saw
    assert [e.event_type for e in await store.load_events("wf-j")] == ["WorkflowStarted", "MarkerRecorded"]
    # one that counts more than was written is refused, and writes nothing
    ahead = await journal(store, worker, task, 2, [marker(2)], 5)
    assert isinstance(ahead, InvalidArgument) and "wrote 1" in str(ahead), ahead
    assert len(await store.load_events("wf-j")) == 2


async def test_a_journal_carries_no_ending_and_another_attempt_is_refused(store: Store, worker: str) -> None:
    task = await _deciding(store, worker)
    ending = await journal(store, worker, task, 1, [marker(1), {"type": "complete_workflow", "result": 1}], 0)
    assert isinstance(ending, InvalidArgument) and "no ending action" in str(ending)
    stale = await store.complete_workflow_tasks(worker, [Decision(
        task.id, task.attempt + 1, 1, [marker(1)], journal=True)])
    assert isinstance(stale[0], StaleAttempt)
    assert len(await store.load_events("wf-j")) == 1


async def test_a_journal_after_events_it_did_not_see_is_written_untold(store: Store, worker: str) -> None:
    task = await _deciding(store, worker)
    await store.signal_workflow("wf-j", "go", {"now": True})
    outcome = await journal(store, worker, task, 1, [marker(1)], 0)
    assert outcome.applied and outcome.events == ()  # after an event it did not see: not told
    assert outcome.unseen  # and said: its worker ends the decision there (journals, rule 5)
    assert [e.event_type for e in await store.load_events("wf-j")] == [
        "WorkflowStarted", "SignalReceived", "MarkerRecorded"]
    # the decision that ends there, its next step deferred: applied after the signal, which
    # starts the next decision
    deferral = {"type": "record_marker", "kind": "local_activity_deferred", "marker_id": "parse-2",
                "value": {"activity_type": "parse", "seen_seq": 1}}
    assert await store.complete_workflow_task(worker, task.id, task.attempt, 1, [deferral])
    assert [e.event_type for e in await store.load_events("wf-j")][-1] == "MarkerRecorded"
    _, [following] = await store.claim(worker, [], ["wf"], limit=1)
    assert following.task.workflow_id == "wf-j"


async def test_a_journal_that_is_not_applied_drops_its_decision(
    store: Store, worker: str, db: asyncpg.Connection
) -> None:
    task = await _deciding(store, worker)
    # one that saw what is not there: not applied, and its task done (the workflow woken)
    outcome = await journal(store, worker, task, 7, [marker(1)], 0)
    assert not outcome.applied
    assert await db.fetchval("SELECT status FROM durable_task_queue WHERE id = $1", task.id) == "completed"
    assert await db.fetchval("SELECT count(*) FROM durable_task_queue WHERE kind = 'workflow' AND status = 'pending'") == 1
    _, [again] = await store.claim(worker, [], ["wf"], limit=1)
    # a workflow terminated meanwhile: its task is no longer held
    await store.cancel_workflow("wf-j", "stop", terminate=True)
    stale = await journal(store, worker, again.task, 1, [marker(1)], 0)
    assert isinstance(stale, StaleAttempt)
    assert "MarkerRecorded" not in [e.event_type for e in await store.load_events("wf-j")]
