"""The bulk verbs and the keyed enqueue of `durable`, run as a user would (subprocesses),
against a real control plane: dry-run counts, the batches, refusals in one line."""

from __future__ import annotations

import asyncpg

from durable.controlplane.store import Store
from tests.integration.test_cli import durable
from tests.support.controlplane import running_control_plane


async def test_dlq_requeue_and_workflows_cancel_by_filter(database_url: str, db: asyncpg.Connection) -> None:
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    store = Store(pool)
    try:
        await store.register_worker("w1", activity_types=["a"], workflow_types=[])
        for i in range(30):
            error = "TimeoutError: the bank did not answer" if i % 3 else "ValueError: bad card"
            await store.enqueue_activity("a", {}, options={"retry_policy": {"max_attempts": 1}})
            [task], _ = await store.claim("w1", ["a"], [], 1)
            await store.fail_task("w1", task.id, 1, error, non_retryable=True)
        for i in range(12):
            await store.start_workflow("order", {}, f"order-{i}")
        await store.start_workflow("report", {}, "report-0")
    finally:
        await pool.close()

    async with running_control_plane(database_url) as address:
        code, out = await durable(address, "dlq", "requeue", "--type", "a", "--error", "bank", "--dry-run")
        assert (code, out.strip()) == (0, "would requeue 20 dead letters")
        code, out = await durable(address, "dlq", "requeue", "--type", "a", "--error", "bank")  # no --yes, no tty
        assert code == 1 and "Aborted" in out
        assert await db.fetchval("SELECT count(*) FROM durable_task_queue WHERE status = 'pending' AND kind = 'activity'") == 0
        code, out = await durable(address, "dlq", "requeue", "--type", "a", "--error", "bank", "--yes",
                                  "--batch-size", "7")
        assert code == 0 and out.strip().endswith("requeued 20 dead letters"), out
        assert await db.fetchval("SELECT count(*) FROM durable_task_queue WHERE status = 'pending' AND kind = 'activity'") == 20
        code, out = await durable(address, "dlq", "requeue", "--type", "a", "--error", "bank", "--yes")
        assert (code, out.strip()) == (0, "nothing to requeue: no dead letters match")

        code, out = await durable(address, "workflows", "cancel", "--type", "order", "--dry-run")
        assert (code, out.strip()) == (0, "would cancel 12 workflows")
        code, out = await durable(address, "workflows", "cancel", "--type", "order", "--terminate", "-y")
        assert code == 0 and out.strip().endswith("cancelled 12 workflows"), out
        statuses = dict(await db.fetch("SELECT id, status FROM durable_workflow_instances"))
        assert statuses.pop("report-0") == "pending" and set(statuses.values()) == {"cancelled"}

        code, out = await durable(address, "workflows", "delete", "--status", "cancelled", "--dry-run")
        assert (code, out.strip()) == (0, "would delete 12 workflows")
        code, out = await durable(address, "workflows", "delete", "--status", "running")
        assert code == 1 and out.strip().splitlines()[-1] == (
            "Error: delete takes completed or failed or cancelled workflows, not running ones; cancel them first")
        code, out = await durable(address, "workflows", "cancel")
        assert code == 2 and "name an ID, or a filter" in out and "Traceback" not in out


async def test_activities_enqueue_with_an_idempotency_key(database_url: str, db: asyncpg.Connection) -> None:
    async with running_control_plane(database_url) as address:
        code, first = await durable(address, "activities", "enqueue", "charge", "--input", '{"cents": 5}',
                                    "--idempotency-key", "order-1")
        assert code == 0 and first.startswith("enqueued "), first
        task_id = first.split()[-1]
        code, again = await durable(address, "activities", "enqueue", "charge", "--idempotency-key", "order-1")
        assert (code, again.strip()) == (0, f"already enqueued (same idempotency key): {task_id}")
        code, other = await durable(address, "activities", "enqueue", "refund", "--idempotency-key", "order-1")
        assert code == 1 and "was used for activity type 'charge'" in other and "Traceback" not in other
    assert await db.fetchval("SELECT count(*) FROM durable_task_queue") == 1
