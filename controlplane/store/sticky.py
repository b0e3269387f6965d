"""Sticky decisions' fallback: a decision routed to the worker that keeps its workflow's instance
(durable_task_queue.sticky_to, see migration 0009) goes to any worker of its type when that
worker has not claimed it within the fallback, or has stopped or is draining.

Routing itself happens where decisions are queued (the append and wake statements) and
claimed (the claim statements read a worker's own index first); this is the way back.
"""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg

from durable.controlplane.store.queries import Q


async def unstick(
    conn: asyncpg.Connection, *, before: datetime, worker_id: str | None = None, limit: int = 1000
) -> int:
    """Free the sticky decisions visible since before `before` (and all of `worker_id`'s), up
    to `limit`, and wake claims of their types on commit; how many were freed."""
    async with conn.transaction():
        rows = await conn.fetch(Q.unstick_overdue, before, limit, worker_id)
        if rows:
            payload = ",".join(f"{r['kind']}:{r['activity_type']}={r['n']}" for r in rows)
            await conn.execute(Q.notify_tasks, payload[:7900])
    return sum(int(r["n"]) for r in rows)


async def unstick_worker(conn: asyncpg.Connection, worker_id: str) -> int:
    """Free every pending decision routed to `worker_id` (it stopped, or drains)."""
    return await unstick(conn, before=datetime.fromtimestamp(0, UTC), worker_id=worker_id)
