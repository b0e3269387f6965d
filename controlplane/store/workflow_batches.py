"""Batched workflow writes: the step outcomes of many workflows in one transaction and a few
statements, instead of one transaction each.

The lock order is the single paths' (workflow, then its task), for the whole batch at once:
the workflows are locked in id order first, in a statement of their own, so the statement
that writes sees what the transactions it waited for committed. What the batch cannot take
(a task no longer held, a task of another kind) is left to the single path, which says why.
A batch that meets a deadlock (a path that locks two workflows in another order: a child
telling its parent) is rolled back and left to the single path too.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

import asyncpg

from durable.controlplane.store.base import StoreBase
from durable.controlplane.store.queries import Q


async def complete_workflow_activities(
    store: StoreBase,
    conn: asyncpg.Connection,
    worker_id: str,
    items: Sequence[tuple[UUID, int, str]],
    now: datetime,
) -> dict[UUID, str]:
    """Complete activities of workflows (task id, attempt, result JSON text) in one
    transaction: per completed task, its activity type. Tasks missing from the answer were
    not completed (not held by this worker and attempt, not a workflow's activity)."""
    if not items:
        return {}
    ids = [i[0] for i in items]
    try:
        async with conn.transaction():
            await conn.execute(Q.lock_workflows_of_tasks, ids)
            rows = await conn.fetch(
                Q.complete_workflow_activities, worker_id, now, ids, [i[1] for i in items], [i[2] for i in items],
                store.workflow_task_max_attempts,
            )
            done = {r["id"]: r["activity_type"] for r in rows}
            for activity_type in sorted(set(done.values())):
                await store._breaker_success(conn, activity_type, now)
    except asyncpg.DeadlockDetectedError:
        return {}
    return done
