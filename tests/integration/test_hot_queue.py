"""Heartbeats are HOT updates of the task queue: no index entry is written, the row's new
version stays on its page (the seed's queue indexed heartbeat_at at fillfactor 100: 0 HOT)."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg

from durable.controlplane.store.queries import Q


async def _updates(db: asyncpg.Connection) -> tuple[int, int]:
    await db.execute("SELECT pg_stat_force_next_flush()")
    await db.execute("SELECT pg_stat_clear_snapshot()")
    row = await db.fetchrow(
        "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE relname = 'durable_task_queue'")
    return int(row["n_tup_upd"]), int(row["n_tup_hot_upd"])


async def test_heartbeat_rounds_are_hot_updates(db: asyncpg.Connection) -> None:
    await db.execute("INSERT INTO durable_workers (id, activity_types) VALUES ('w1', '{a}')")
    await db.execute("INSERT INTO durable_task_queue (activity_type) SELECT 'a' FROM generate_series(1, 500)")
    claimed = await db.fetch(Q.claim_tasks, "w1", ["a"], [], 500, datetime.now(UTC), [])
    assert len(claimed) == 500
    ids = [r["id"] for r in claimed]
    upd0, hot0 = await _updates(db)
    for _ in range(10):  # one transaction per round, as the control plane runs them
        rows = await db.fetch(Q.heartbeat_tasks, "w1", datetime.now(UTC), ids, [1] * len(ids), [None] * len(ids))
        assert len(rows) == 500
    upd, hot = await _updates(db)
    assert upd - upd0 == 5000
    assert (hot - hot0) / (upd - upd0) >= 0.9, f"{hot - hot0} of {upd - upd0} heartbeat updates were HOT"
