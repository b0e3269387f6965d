"""Dead-letter requeue makes exactly one live task, for standalone entries too, however often
and however concurrently the documented UPDATE runs; an ended workflow's step is refused."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from durable.common.errors import WrongState
from durable.controlplane.store import Store
from tests.support.clock import FakeClock


async def dead_standalone(store: Store, worker: str) -> str:
    task_id = await store.enqueue_activity("a", {}, options={"retry_policy": {"max_attempts": 1}})
    await store.claim(worker, ["a"], [], 1)
    await store.fail_task(worker, task_id, 1, "boom", non_retryable=True)
    return str(task_id)


async def live_tasks(db: asyncpg.Connection) -> int:
    return int(await db.fetchval(
        "SELECT count(*) FROM durable_task_queue WHERE status IN ('pending', 'claimed', 'completed')"))


async def test_repeated_sql_requeues_of_a_standalone_entry_make_one_task(
    store: Store, worker: str, db: asyncpg.Connection
) -> None:
    """Repro: two UPDATEs gave two pending tasks."""
    await dead_standalone(store, worker)
    await db.execute("UPDATE durable_dead_letter_queue SET requeued_at = NOW()")
    with pytest.raises(asyncpg.UniqueViolationError, match="already requeued"):
        await db.execute("UPDATE durable_dead_letter_queue SET requeued_at = NOW()")
    assert await live_tasks(db) == 1


async def test_concurrent_requeues_of_a_standalone_entry_make_one_task(
    store: Store, worker: str, database_url: str, db: asyncpg.Connection
) -> None:
    """Repro: four concurrent UPDATEs gave four pending tasks."""
    await dead_standalone(store, worker)
    conns = [await asyncpg.connect(database_url) for _ in range(4)]
    try:
        results = await asyncio.gather(
            *(c.execute("UPDATE durable_dead_letter_queue SET requeued_at = clock_timestamp()") for c in conns),
            return_exceptions=True,
        )
    finally:
        for c in conns:
            await c.close()
    assert sum(1 for r in results if not isinstance(r, BaseException)) == 1
    assert all(isinstance(r, asyncpg.UniqueViolationError) for r in results if isinstance(r, BaseException))
    assert await live_tasks(db) == 1
    assert await db.fetchval("SELECT requeue_count FROM durable_dead_letter_queue") == 1


async def test_a_standalone_entry_can_be_requeued_again_after_its_task_died(
    store: Store, worker: str, db: asyncpg.Connection, clock: FakeClock
) -> None:
    await dead_standalone(store, worker)
    entry = await db.fetchval("SELECT id FROM durable_dead_letter_queue")
    fresh = await store.requeue_dead_letter(entry)
    assert await store.requeue_dead_letter(entry) == fresh  # the same instant: the same requeue
    clock.advance(1)
    with pytest.raises(WrongState, match="already requeued"):
        await store.requeue_dead_letter(entry)
    await store.claim(worker, ["a"], [], 1)
    await store.fail_task(worker, fresh, 1, "boom again", non_retryable=True)
    clock.advance(1)
    assert await store.requeue_dead_letter(entry) != fresh
    assert await live_tasks(db) == 1


async def test_requeueing_a_step_of_an_ended_workflow_is_refused(
    store: Store, worker: str, db: asyncpg.Connection
) -> None:
    wf, _ = await store.start_workflow("wf", {}, "ended")
    _, [decision] = await store.claim(worker, [], ["wf"], 1)
    await store.complete_workflow_task(worker, decision.task.id, 1, wf.last_event_seq, [{
        "type": "schedule_activity", "activity_id": "s1", "activity_type": "a", "input": {},
        "options": {"retry_policy": {"max_attempts": 1}},
    }])
    [step], _ = await store.claim(worker, ["a"], [], 1)
    await store.fail_task(worker, step.id, 1, "boom", non_retryable=True)
    await store.set_workflow_status("ended", "failed", error={"message": "gave up"})
    entry = await db.fetchval("SELECT id FROM durable_dead_letter_queue")
    with pytest.raises(WrongState, match="workflow ended which has ended .failed."):
        await store.requeue_dead_letter(entry)
    assert await db.fetchval("SELECT count(*) FROM durable_task_queue WHERE status = 'pending' AND kind = 'activity'") == 0
