"""A step records one outcome: a requeued step of a running workflow never adds ActivityCompleted
after its ActivityFailed (nor a second ActivityFailed); the schema refuses a second outcome."""

from __future__ import annotations

import json

import asyncpg
import pytest

from durable.controlplane.store import Store
from tests.support.clock import FakeClock


async def dead_step(store: Store, worker: str) -> str:
    """A running workflow whose step s1 died (ActivityFailed recorded); returns the workflow id."""
    wf, _ = await store.start_workflow("wf", {}, "w-outcome")
    _, [decision] = await store.claim(worker, [], ["wf"], 1)
    await store.complete_workflow_task(worker, decision.task.id, 1, wf.last_event_seq, [{
        "type": "schedule_activity", "activity_id": "s1", "activity_type": "a", "input": {},
        "options": {"retry_policy": {"max_attempts": 1}},
    }])
    [step], _ = await store.claim(worker, ["a"], [], 1)
    await store.fail_task(worker, step.id, 1, "boom", non_retryable=True)
    return wf.id


async def outcomes(db: asyncpg.Connection, workflow_id: str) -> list[str]:
    rows = await db.fetch(
        "SELECT event_type FROM durable_workflow_events WHERE workflow_id = $1 "
        "AND event_type IN ('ActivityCompleted', 'ActivityFailed') AND event_data->>'activity_id' = 's1' "
        "ORDER BY sequence_num", workflow_id)
    return [r["event_type"] for r in rows]


async def test_a_requeued_step_that_completes_keeps_its_first_outcome(
    store: Store, worker: str, db: asyncpg.Connection, clock: FakeClock
) -> None:
    """Repro: the history held ActivityFailed and then ActivityCompleted for s1."""
    workflow_id = await dead_step(store, worker)
    [entry] = await store.list_dead_letters()
    clock.advance(1)
    fresh = await store.requeue_dead_letter(entry.id)
    [again], _ = await store.claim(worker, ["a"], [], 1)
    assert again.id == fresh
    await store.complete_task(worker, again.id, again.attempt, {"late": True})
    assert await outcomes(db, workflow_id) == ["ActivityFailed"]
    task = await store.get_task(fresh)
    assert task.status == "completed" and task.result == {"late": True}  # kept on its task


async def test_a_requeued_step_that_dies_again_records_no_second_failure(
    store: Store, worker: str, db: asyncpg.Connection, clock: FakeClock
) -> None:
    workflow_id = await dead_step(store, worker)
    [entry] = await store.list_dead_letters()
    clock.advance(1)
    await store.requeue_dead_letter(entry.id)
    [again], _ = await store.claim(worker, ["a"], [], 1)
    await store.fail_task(worker, again.id, again.attempt, "boom again", non_retryable=True)
    assert await outcomes(db, workflow_id) == ["ActivityFailed"]
    assert len(await store.list_dead_letters()) == 2  # the second death is still dead-lettered


async def test_the_schema_refuses_a_second_outcome_of_a_step(
    store: Store, worker: str, db: asyncpg.Connection
) -> None:
    workflow_id = await dead_step(store, worker)
    seq = await db.fetchval("SELECT last_event_seq FROM durable_workflow_instances WHERE id = $1", workflow_id)
    with pytest.raises(asyncpg.UniqueViolationError, match="step_outcome"):
        await db.execute(
            "INSERT INTO durable_workflow_events (workflow_id, sequence_num, event_type, event_data) "
            "VALUES ($1, $2, 'ActivityCompleted', $3::jsonb)",
            workflow_id, seq + 1, json.dumps({"activity_id": "s1", "result": {}}))


async def test_the_migration_sets_aside_later_outcomes_of_old_histories(empty_database_url: str) -> None:
    from durable.controlplane.migrator import load_migrations, migrate

    every = load_migrations()
    [mine] = [m for m in every if m.name == "step_outcome_once"]
    conn = await asyncpg.connect(empty_database_url)
    try:
        await migrate(conn, [m for m in every if m.version < mine.version])
        await conn.execute("INSERT INTO durable_workflow_instances (id, workflow_type, status, last_event_seq) "
                           "VALUES ('old', 'wf', 'running', 3)")
        for seq, kind in ((1, "ActivityFailed"), (2, "ActivityCompleted"), (3, "ActivityFailed")):
            await conn.execute(
                "INSERT INTO durable_workflow_events (workflow_id, sequence_num, event_type, event_data) "
                "VALUES ('old', $1, $2, '{\"activity_id\": \"s1\"}')", seq, kind)
        await migrate(conn)
        kinds = [r["event_type"] for r in await conn.fetch(
            "SELECT event_type FROM durable_workflow_events ORDER BY sequence_num")]
        assert kinds == ["ActivityFailed", "ActivityOutcomeIgnored", "ActivityOutcomeIgnored"]
    finally:
        await conn.close()
