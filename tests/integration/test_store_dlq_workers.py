"""Dead-letter queue (both requeue paths) and the worker registry lifecycle."""

from __future__ import annotations

import asyncpg
import pytest

from durable.common.errors import NotFound, WrongState
from durable.controlplane.store import Store
from tests.support.clock import FakeClock


async def _dead_task(store: Store, worker: str, activity_type: str = "a") -> None:
    await store.enqueue_activity(activity_type, {"payload": 1}, options={"retry_policy": {"max_attempts": 1}})
    [t], _ = await store.claim(worker, [activity_type])
    assert (await store.fail_task(worker, t.id, t.attempt, "broken", error_type="Broken")).outcome == "dead"


async def test_dlq_list_and_requeue_through_the_api(store: Store, worker: str) -> None:
    await _dead_task(store, worker)
    [entry] = await store.list_dead_letters()
    assert entry.activity_type == "a" and entry.requeue_count == 0
    new_id = await store.requeue_dead_letter(entry.id)
    fresh = await store.get_task(new_id)
    assert (fresh.status, fresh.attempt, fresh.input, fresh.activity_type) == ("pending", 0, {"payload": 1}, "a")
    after = await store.get_dead_letter(entry.id)
    assert after.requeue_count == 1 and after.requeued_at is not None and after.requeued_task_id == new_id
    [claimed], _ = await store.claim(worker, ["a"])
    assert claimed.id == new_id
    assert await store.list_dead_letters(activity_type="other") == []


async def test_dlq_requeue_with_the_seed_sql(store: Store, worker: str, db: asyncpg.Connection) -> None:
    """The seed's own statement: UPDATE durable_dead_letter_queue SET requeued_at = NOW() WHERE id = '<dlq_id>'."""
    await _dead_task(store, worker)
    [entry] = await store.list_dead_letters()
    await db.execute(f"UPDATE durable_dead_letter_queue SET requeued_at = NOW() WHERE id = '{entry.id}'")
    pending = await db.fetch("SELECT id FROM durable_task_queue WHERE status = 'pending'")
    assert len(pending) == 1  # exactly one fresh task
    # an unrelated update of the row (not of requeued_at) enqueues nothing more
    await db.execute("UPDATE durable_dead_letter_queue SET last_error = last_error WHERE id = $1", entry.id)
    assert await db.fetchval("SELECT count(*) FROM durable_task_queue WHERE status = 'pending'") == 1
    assert (await store.get_dead_letter(entry.id)).requeue_count == 1


async def test_requeue_errors(store: Store) -> None:
    with pytest.raises(NotFound):
        await store.requeue_dead_letter("00000000-0000-0000-0000-000000000000")


async def test_requeue_of_a_workflow_step_twice_while_live_is_refused(store: Store, worker: str, clock: FakeClock) -> None:
    wf, _ = await store.start_workflow("wf", {})
    [], [decision] = await store.claim(worker, [], ["wf"])
    await store.complete_workflow_task(
        worker, decision.task.id, decision.task.attempt, decision.workflow.last_event_seq,
        [{"type": "schedule_activity", "activity_id": "s1", "activity_type": "a", "input": {},
          "options": {"retry_policy": {"max_attempts": 1}}}],
    )
    [t], _ = await store.claim(worker, ["a"])
    await store.fail_task(worker, t.id, t.attempt, "x")
    [entry] = await store.list_dead_letters()
    first = await store.requeue_dead_letter(entry.id)
    assert await store.requeue_dead_letter(entry.id) == first  # the same instant: the same requeue
    clock.advance(1)
    with pytest.raises(WrongState, match="already requeued"):
        await store.requeue_dead_letter(entry.id)


async def test_worker_registration_lifecycle(store: Store, db: asyncpg.Connection) -> None:
    w = await store.register_worker("w9", worker_group="gpu", activity_types=["a"], max_concurrency=3,
                                    hostname="host-1", version="1.2.3")
    assert (w.status, w.worker_group, w.activity_types, w.max_concurrency, w.hostname) == ("active", "gpu", ["a"], 3, "host-1")
    assert await store.worker_heartbeat("w9", 2) == "active"
    assert (await store.get_worker("w9")).current_load == 2
    await store.enqueue_activity("a", {})
    await store.claim("w9", ["a"])
    await store.drain_worker("w9")
    assert await store.worker_heartbeat("w9", 1) == "draining"
    assert await store.deregister_worker("w9") == 1  # the claimed task went back
    assert await db.fetchval("SELECT count(*) FROM durable_task_queue WHERE status = 'pending'") == 1
    assert (await store.get_worker("w9")).status == "stopped"
    assert await store.list_workers() == []
    assert [x.id for x in await store.list_workers(include_stopped=True)] == ["w9"]
    with pytest.raises(NotFound, match="register it again"):
        await store.worker_heartbeat("w9", 0)
    again = await store.register_worker("w9", activity_types=["a"])  # a restart re-registers
    assert again.status == "active" and again.stopped_at is None
