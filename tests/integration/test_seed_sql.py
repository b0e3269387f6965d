"""Every SQL query in the seed guide's Monitoring, Crash Recovery and Troubleshooting sections,
run unchanged against a migrated database holding real engine state, and checked for meaning."""

from __future__ import annotations

import asyncpg

from durable.controlplane.reaper import Reaper
from durable.controlplane.settings import ReaperSettings
from durable.controlplane.store import Store
from tests.support.clock import FakeClock

CHECK_ACTIVE_WORKFLOWS = """
SELECT id, workflow_type, status, created_at
FROM durable_workflow_instances
WHERE status IN ('pending', 'running')
ORDER BY created_at DESC;
"""

CHECK_PENDING_TASKS = """
SELECT id, workflow_id, activity_type, status, attempt
FROM durable_task_queue
WHERE status = 'pending'
ORDER BY created_at;
"""

CHECK_DEAD_LETTER_QUEUE = """
SELECT id, workflow_id, activity_type, last_error, dead_at
FROM durable_dead_letter_queue
ORDER BY dead_at DESC;
"""

CHECK_WORKER_STATUS = """
SELECT id, status, current_load, last_heartbeat_at
FROM durable_workers
WHERE status = 'active';
"""

TASKS_NEEDING_RECLAMATION = """
-- View tasks that may need reclamation
SELECT id, workflow_id, activity_type, claimed_by, heartbeat_at
FROM durable_task_queue
WHERE status = 'claimed'
  AND heartbeat_at < NOW() - INTERVAL '30 seconds';
"""

VIEW_DLQ_ENTRIES = """
-- View DLQ entries
SELECT * FROM durable_dead_letter_queue ORDER BY dead_at DESC;
"""

REQUEUE_A_TASK = """
-- Requeue a task
UPDATE durable_dead_letter_queue SET requeued_at = NOW() WHERE id = '<dlq_id>';
"""


async def test_seed_monitoring_queries_mean_what_they_say(db: asyncpg.Connection, pool: asyncpg.Pool) -> None:
    clock = FakeClock()
    store = Store(pool, clock=clock)
    await store.register_worker("busy", activity_types=["reason"], workflow_types=["agent_turn"])
    await store.register_worker("gone", activity_types=["reason"])
    await store.drain_worker("gone")
    await store.worker_heartbeat("busy", 3)
    done, _ = await store.start_workflow("agent_turn", {"m": "done"})
    await store.set_workflow_status(done.id, "running")
    await store.set_workflow_status(done.id, "completed", result={})
    live, _ = await store.start_workflow("agent_turn", {"m": "live"})
    await store.enqueue_activity("reason", {"k": 1})
    await store.enqueue_activity("reason", {"k": 2}, options={"retry_policy": {"max_attempts": 1}})
    [], [decision] = await store.claim("busy", [], ["agent_turn"])

    active = await db.fetch(CHECK_ACTIVE_WORKFLOWS)
    assert [r["id"] for r in active] == [live.id] and active[0]["status"] == "running"

    pending = await db.fetch(CHECK_PENDING_TASKS)
    assert [r["activity_type"] for r in pending] == ["reason", "reason"]
    assert {r["attempt"] for r in pending} == {0}

    workers = await db.fetch(CHECK_WORKER_STATUS)
    assert [(r["id"], r["current_load"]) for r in workers] == [("busy", 3)]

    # A crashed worker: its claimed task's heartbeat goes stale. The seed query sees it with
    # the database clock, so the heartbeat is written 31 s in the past.
    tasks, _ = await store.claim("busy", ["reason"], limit=2)
    by_input = {t.input["k"]: t for t in tasks}
    await db.execute("UPDATE durable_task_queue SET heartbeat_at = NOW() - INTERVAL '31 seconds' WHERE id = $1", by_input[1].id)
    stale = await db.fetch(TASKS_NEEDING_RECLAMATION)
    assert [(r["id"], r["claimed_by"]) for r in stale] == [(by_input[1].id, "busy")]
    clock.current = await db.fetchval("SELECT now()")
    reaper = Reaper(store, ReaperSettings(stale_after=30))
    assert (await reaper.run_once()).reclaimed == 1
    assert await db.fetch(TASKS_NEEDING_RECLAMATION) == []

    # Retries exhausted: the DLQ queries show it, and the seed's UPDATE requeues it once.
    await store.fail_task("busy", by_input[2].id, by_input[2].attempt, "model timed out", error_type="Timeout")
    dlq = await db.fetch(CHECK_DEAD_LETTER_QUEUE)
    assert [(r["activity_type"], r["last_error"]) for r in dlq] == [("reason", "Timeout: model timed out")]
    full = await db.fetch(VIEW_DLQ_ENTRIES)
    assert full[0]["original_task_id"] == by_input[2].id and full[0]["requeue_count"] == 0
    before = await db.fetchval("SELECT count(*) FROM durable_task_queue WHERE status = 'pending'")
    await db.execute(REQUEUE_A_TASK.replace("<dlq_id>", str(dlq[0]["id"])))
    after = await db.fetchval("SELECT count(*) FROM durable_task_queue WHERE status = 'pending'")
    assert after == before + 1
    assert decision is not None
