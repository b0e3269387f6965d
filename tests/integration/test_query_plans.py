"""The statistics read every few seconds (queue_stats, queue_stats_all, worker_counts,
dead_letter_counts, list_workflows, throughput) run on indexes and never scan the finished rows of a
filled table, in custom and in generic (prepared-statement) plans."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from durable.controlplane.store.queries import Q

BIG_TABLES = {"durable_task_queue", "durable_workflow_instances", "durable_workers", "durable_dead_letter_queue"}


@pytest.fixture
async def filled(db: asyncpg.Connection) -> asyncpg.Connection:
    """200k finished tasks, 50k finished workflows, 5k stopped workers, 5k resolved dead
    letters, and a little live work among them."""
    await db.execute(
        """
        INSERT INTO durable_task_queue (activity_type, status, attempt, completed_at, created_at)
        SELECT 't' || (i % 5), 'completed', 1, now() - interval '1 hour', now() - interval '2 hours'
        FROM generate_series(1, 200000) AS i;
        INSERT INTO durable_task_queue (activity_type, status, visible_at)
        SELECT 't' || (i % 5), 'pending', now() + (i % 3 - 1) * interval '1 minute' FROM generate_series(1, 2000) AS i;
        INSERT INTO durable_task_queue (activity_type, status, attempt, claimed_by, claimed_at, heartbeat_at)
        SELECT 't' || (i % 5), 'claimed', 1, 'w1', now(), now() FROM generate_series(1, 500) AS i;
        INSERT INTO durable_workflow_instances (id, workflow_type, status, created_at, completed_at)
        SELECT 'wf-' || i, 'type' || (i % 5), CASE WHEN i % 2 = 0 THEN 'completed' ELSE 'failed' END,
               now() - i * interval '1 second', now()
        FROM generate_series(1, 50000) AS i;
        INSERT INTO durable_workflow_instances (id, workflow_type, status, created_at)
        SELECT 'live-' || i, 'type' || (i % 5), 'running', now() FROM generate_series(1, 500) AS i;
        INSERT INTO durable_workers (id, status, stopped_at) SELECT 'gone-' || i, 'stopped', now()
        FROM generate_series(1, 5000) AS i;
        INSERT INTO durable_workers (id) SELECT 'w' || i FROM generate_series(1, 10) AS i;
        INSERT INTO durable_dead_letter_queue (original_task_id, activity_type, input, attempts, reason, requeued_at)
        SELECT id, activity_type, '{}', 1, 'exhausted', now() FROM durable_task_queue
        WHERE status = 'completed' LIMIT 5000;
        ANALYZE;
        """
    )
    return db


def _nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    out = [plan]
    for child in plan.get("Plans", []):
        out += _nodes(child)
    return out


async def _seq_scans(db: asyncpg.Connection, query: str, *args: Any) -> list[str]:
    found = []
    for mode in ("auto", "force_generic_plan"):
        await db.execute(f"SET plan_cache_mode = {mode}")
        # a prepared statement, as the store runs it (the generic plan is the prepared one's)
        statement = await db.prepare("EXPLAIN (FORMAT JSON) " + query)
        [plan] = json.loads(await statement.fetchval(*args))
        found += [f"{mode}: {n['Relation Name']}" for n in _nodes(plan["Plan"])
                  if n["Node Type"] == "Seq Scan" and n.get("Relation Name") in BIG_TABLES]
    await db.execute("RESET plan_cache_mode")
    return found


async def test_statistics_queries_read_live_rows_through_indexes(filled: asyncpg.Connection) -> None:
    now = datetime.now(UTC)
    checks = {
        "queue_stats": (Q.queue_stats, ["t1", "t2"], ["type1"], now),
        "queue_stats_all": (Q.queue_stats_all, now),
        "worker_counts": (Q.worker_counts,),
        "dead_letter_counts": (Q.dead_letter_counts,),
        "list_workflows": (Q.list_workflows, 50),
        "list_workflows_by_status": (Q.list_workflows_by_status, "running", 50),
        "list_workflows_by_type": (Q.list_workflows_by_type, "type1", 50),
        "list_workflows_by_type_and_status": (Q.list_workflows_by_type_and_status, "type1", "running", 50),
        # ListWorkflows (the console's and the CLI's listing) pages with browse_workflows
        "browse_workflows": (Q.browse_workflows, None, None, None, None, None, None, None, 51),
        "browse_workflows_by_status": (Q.browse_workflows, "running", None, None, None, None, None, None, 51),
        # GetThroughput (the console's queue chart): the last hour's completions, through 0008's index
        "throughput": (Q.throughput, now - timedelta(hours=1), now, 60, [], []),
        "throughput_by_type": (Q.throughput, now - timedelta(hours=1), now, 60, ["t1"], ["type1"]),
    }
    scans = {name: await _seq_scans(filled, *args) for name, args in checks.items()}
    assert {name: s for name, s in scans.items() if s} == {}


async def test_the_rewritten_statistics_count_what_the_seed_counted(filled: asyncpg.Connection) -> None:
    now = datetime.now(UTC)
    seed = await filled.fetch(
        """
        SELECT kind, activity_type AS type,
               count(*) FILTER (WHERE status = 'pending' AND visible_at <= $1) AS pending,
               count(*) FILTER (WHERE status = 'pending' AND visible_at > $1) AS delayed,
               count(*) FILTER (WHERE status = 'claimed') AS claimed,
               min(visible_at) FILTER (WHERE status = 'pending' AND visible_at <= $1) AS oldest_visible_at
        FROM durable_task_queue
        WHERE status IN ('pending', 'claimed') AND kind IN ('activity', 'workflow')
        GROUP BY kind, activity_type ORDER BY kind, activity_type
        """, now)
    assert [dict(r) for r in await filled.fetch(Q.queue_stats_all, now)] == [dict(r) for r in seed]
    typed = await filled.fetch(Q.queue_stats, ["t1", "t3"], [], now)
    assert [dict(r) for r in typed] == [dict(r) for r in seed if r["type"] in ("t1", "t3")]


async def test_the_batched_workflow_writes_read_their_rows_through_indexes(filled: asyncpg.Connection) -> None:
    """The statements of workflow_batches.py touch only the rows of their batch: by primary key
    or the workflow's index, in custom and in generic plans, on a filled table."""
    now = datetime.now(UTC)
    ids = [uuid.uuid4() for _ in range(3)]
    wfs = ["live-1", "live-2", "live-3"]
    texts, ints, floats = ["x"] * 3, [1] * 3, [1.0] * 3
    nulls: list[Any] = [None] * 3
    checks = {
        "lock_workflows_of_tasks": (Q.lock_workflows_of_tasks, ids),
        "complete_workflow_activities": (Q.complete_workflow_activities, "w1", now, ids, ints, ["{}"] * 3, 5,
                                         [2] * 3, [now] * 3, [True] * 3, ints, texts, nulls, nulls, nulls,
                                         wfs, [3] * 3, ["MarkerRecorded"] * 3, ["{}"] * 3, ints),
        "lock_workflows_of_decisions": (Q.lock_workflows_of_decisions, ids),
        "lock_owned_decisions": (Q.lock_owned_decisions, "w1", ids, ints),
        "insert_decided_steps": (Q.insert_decided_steps, now, "w1", ids, ["activity"] * 3, wfs, texts, texts,
                                 ["{}"] * 3, ints, [now] * 3, ints, ["{}"] * 3, floats, floats, floats,
                                 nulls, nulls, nulls, nulls, [False] * 3),
        "apply_decisions": (Q.apply_decisions, now, wfs, ints, ints, ints, nulls, ids, ["{}"] * 3, nulls, nulls,
                            nulls, wfs, ints, texts, ["{}"] * 3),
        "cancel_open_steps_of": (Q.cancel_open_steps_of, wfs, now),
        "children_to_cancel": (Q.children_to_cancel, wfs, now),
    }
    scans = {name: await _seq_scans(filled, *args) for name, args in checks.items()}
    assert {name: s for name, s in scans.items() if s} == {}


def _task_rows_read(plan: dict[str, Any]) -> int:
    """Rows the executed plan read from the task queue, every loop counted."""
    return sum(int(n.get("Actual Rows", 0) * n.get("Actual Loops", 1)) for n in _nodes(plan)
               if n.get("Relation Name") == "durable_task_queue")


async def test_a_claim_of_several_types_reads_its_candidates_only_whatever_the_statistics(db: asyncpg.Connection) -> None:
    """Statistics taken while nothing was pending (a fresh or quiet queue), then a backlog: the
    claim, in its generic plan too, reads the few candidates it locks, not the backlog (it once
    walked every pending task and re-ran the candidates' scans for each: 1.4 s per claim at
    30,000 pending)."""
    now = datetime.now(UTC)
    await db.execute(Q.register_worker, "w1", "default", ["t1", "t2"], ["type1"], 32, now, None, None)
    await db.execute("ANALYZE durable_task_queue")
    await db.execute("INSERT INTO durable_task_queue (activity_type, visible_at) "
                     "SELECT 't' || (1 + i % 2), now() - interval '1 second' FROM generate_series(1, 20000) AS i")
    read = {}
    for mode in ("auto", "force_generic_plan"):
        await db.execute(f"SET plan_cache_mode = {mode}")
        statement = await db.prepare("EXPLAIN (ANALYZE, FORMAT JSON) " + Q.claim_tasks_of_types)
        tr = db.transaction()
        await tr.start()
        try:
            [plan] = json.loads(await statement.fetchval("w1", ["t1", "t2"], ["type1"], 32, now, []))
        finally:
            await tr.rollback()
        read[mode] = _task_rows_read(plan["Plan"])
    await db.execute("RESET plan_cache_mode")
    # 2 x 32 candidates per type, the 64 of them read again to lock 32, the 32 updated
    assert max(read.values()) < 1000, read
