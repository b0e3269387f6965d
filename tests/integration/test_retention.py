"""Retention: finished work is deleted by status after its retention, in bounded batches, by
several control planes at once; pinned workflows and unresolved dead letters stay."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
from pydantic import ValidationError

from durable.controlplane.metrics import ControlPlaneMetrics
from durable.controlplane.retention import Retention
from durable.controlplane.settings import RetentionSettings
from durable.controlplane.store import Store
from tests.support.clock import FakeClock
from tests.support.controlplane import running_control_plane

DAY = 86400.0


async def finished_workflow(store: Store, status: str, workflow_id: str, *, signal: bool = False) -> None:
    await store.start_workflow("wf", {"n": 1}, workflow_id)
    if signal:
        await store.signal_workflow(workflow_id, "poke", {"x": 1})
    await store.set_workflow_status(workflow_id, "running")
    extra = {"result": {}} if status == "completed" else {"error": {"m": 1}} if status == "failed" else {}
    await store.set_workflow_status(workflow_id, status, **extra)


async def standalone(store: Store, worker: str, *, fail: bool = False) -> Any:
    task_id = await store.enqueue_activity("a", {"k": 1}, options={"retry_policy": {"max_attempts": 1}})
    activities, _ = await store.claim(worker, ["a"], [], 1)
    assert activities and activities[0].id == task_id
    if fail:
        await store.fail_task(worker, task_id, 1, "boom", non_retryable=True)
    else:
        await store.complete_task(worker, task_id, 1, {"ok": True})
    return task_id


async def ids(db: asyncpg.Connection, table: str) -> set[str]:
    return {str(r[0]) for r in await db.fetch(f"SELECT id FROM {table}")}


async def test_a_pass_deletes_by_status_and_age_and_keeps_what_it_must(
    store: Store, clock: FakeClock, worker: str, db: asyncpg.Connection
) -> None:
    await finished_workflow(store, "completed", "done-old", signal=True)
    await finished_workflow(store, "failed", "failed-10d")
    await finished_workflow(store, "cancelled", "cancelled-31d")
    await finished_workflow(store, "completed", "pinned-old")
    await store.pin_workflow("pinned-old")
    await store.start_workflow("wf", {}, "still-running")
    old_task = await standalone(store, worker)
    dead_task = await standalone(store, worker, fail=True)  # its dead letter is unresolved
    clock.advance(21 * DAY)
    await finished_workflow(store, "completed", "done-recent")
    clock.advance(10 * DAY)  # now: the first ones ended 31 d ago, done-recent 10 d ago
    await db.execute("UPDATE durable_workflow_instances SET completed_at = $1 WHERE id = 'failed-10d'",
                     clock() - timedelta(days=10))
    await store.register_worker("gone", activity_types=["a"])
    await store.deregister_worker("gone")
    await store.worker_heartbeat(worker, 0)
    clock.advance(2 * DAY)
    await store.worker_heartbeat(worker, 0)
    events_before = await db.fetchval("SELECT count(*) FROM durable_workflow_events WHERE workflow_id = 'done-old'")
    assert events_before >= 2

    report = await Retention(store, RetentionSettings()).run_once()

    assert await ids(db, "durable_workflow_instances") == {"failed-10d", "pinned-old", "still-running"}
    assert report.workflows == {"completed": 2, "failed": 0, "cancelled": 1}
    for table in ("durable_workflow_events", "durable_task_queue", "durable_signals"):
        assert await db.fetchval(
            f"SELECT count(*) FROM {table} WHERE workflow_id IN ('done-old', 'done-recent', 'cancelled-31d')") == 0
    remaining = await ids(db, "durable_task_queue")
    assert str(old_task) not in remaining and str(dead_task) in remaining
    assert report.tasks == 1
    assert await db.fetchval("SELECT count(*) FROM durable_dead_letter_queue") == 1
    assert await ids(db, "durable_workers") == {worker}
    again = await Retention(store, RetentionSettings()).run_once()
    assert again.deleted == 0
    metrics = ControlPlaneMetrics(interval=60)
    metrics.record_retention(report)
    assert metrics.registry.get_sample_value("durable_retention_deleted_total", {"kind": "workflow_completed"}) == 2
    assert metrics.registry.get_sample_value("durable_retention_deleted_total", {"kind": "tasks"}) == 1


async def test_unresolved_dead_letters_keep_their_workflow_until_resolved(
    store: Store, clock: FakeClock, worker: str, db: asyncpg.Connection
) -> None:
    wf, _ = await store.start_workflow("wf", {}, "wf-dlq")
    _, [decision] = await store.claim(worker, [], ["wf"], 1)
    await store.complete_workflow_task(worker, decision.task.id, decision.task.attempt, wf.last_event_seq, [{
        "type": "schedule_activity", "activity_id": "s1", "activity_type": "a", "input": {},
        "options": {"retry_policy": {"max_attempts": 1}},
    }])
    [step], _ = await store.claim(worker, ["a"], [], 1)
    await store.fail_task(worker, step.id, step.attempt, "boom", non_retryable=True)
    await store.set_workflow_status("wf-dlq", "failed", error={"m": 1})
    entry = await db.fetchval("SELECT id FROM durable_dead_letter_queue WHERE workflow_id = 'wf-dlq'")
    clock.advance(40 * DAY)
    settings = RetentionSettings(DURABLE_RETENTION_TASKS=1)
    await Retention(store, settings).run_once()
    assert await ids(db, "durable_workflow_instances") == {"wf-dlq"}
    await store.delete_dead_letter(entry)  # `durable dlq delete`
    assert str(step.id) in await ids(db, "durable_task_queue")  # a workflow's step stays with it
    await Retention(store, settings).run_once()
    assert await ids(db, "durable_workflow_instances") == set()
    assert await db.fetchval("SELECT count(*) FROM durable_task_queue") == 0


async def test_resolved_dead_letters_go_after_their_own_retention(
    store: Store, clock: FakeClock, worker: str, db: asyncpg.Connection
) -> None:
    await standalone(store, worker, fail=True)
    entry = await db.fetchval("SELECT id FROM durable_dead_letter_queue")
    await store.requeue_dead_letter(entry)
    clock.advance(29 * DAY)
    settings = RetentionSettings(DURABLE_RETENTION_TASKS=0)
    assert (await Retention(store, settings).run_once()).dead_letters == 0
    clock.advance(2 * DAY)
    assert (await Retention(store, settings).run_once()).dead_letters == 1
    assert await db.fetchval("SELECT count(*) FROM durable_dead_letter_queue") == 0


async def test_zero_keeps_for_ever(store: Store, clock: FakeClock, db: asyncpg.Connection) -> None:
    await finished_workflow(store, "completed", "forever")
    clock.advance(3650 * DAY)
    report = await Retention(store, RetentionSettings(DURABLE_RETENTION_COMPLETED="0")).run_once()
    assert report.deleted == 0 and await ids(db, "durable_workflow_instances") == {"forever"}


async def test_several_control_planes_share_a_large_pass_in_bounded_batches(
    pool: asyncpg.Pool, database_url: str, db: asyncpg.Connection
) -> None:
    n = 3000
    await db.execute(
        """
        WITH w AS (
            INSERT INTO durable_workflow_instances (id, workflow_type, status, created_at, updated_at, completed_at,
                                                    last_event_seq, decided_through_seq)
            SELECT 'bulk-' || i, 'wf', 'completed', now() - interval '20 days', now() - interval '20 days',
                   now() - interval '10 days', 2, 2
            FROM generate_series(1, $1) AS i
            RETURNING id
        ), e AS (
            INSERT INTO durable_workflow_events (workflow_id, sequence_num, event_type)
            SELECT id, s, 'E' FROM w, generate_series(1, 2) AS s
        )
        INSERT INTO durable_task_queue (kind, workflow_id, activity_id, activity_type, status, completed_at)
        SELECT 'activity', id, 'a1', 'a', 'completed', now() - interval '10 days' FROM w
        """,
        n,
    )
    settings = RetentionSettings(DURABLE_RETENTION_BATCH_SIZE=200)
    pools = [await asyncpg.create_pool(database_url, min_size=1, max_size=2) for _ in range(3)]
    try:
        reports = await asyncio.gather(*(Retention(Store(p), settings).run_once() for p in pools))
    finally:
        for p in pools:
            await p.close()
    assert sum(r.workflows["completed"] for r in reports) == n
    assert all(r.statements >= 1 for r in reports)
    for table in ("durable_workflow_instances", "durable_workflow_events", "durable_task_queue"):
        assert await db.fetchval(f"SELECT count(*) FROM {table}") == 0


async def test_every_foreign_key_is_indexed(db: asyncpg.Connection) -> None:
    """A cascade (or SET NULL) on delete looks the referencing rows up by the key: without an
    index, each deleted row scans the referencing table (the seed's DLQ did)."""
    rows = await db.fetch(
        """
        SELECT c.conrelid::regclass::text AS tab, a.attname AS col
        FROM pg_constraint c JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
        WHERE c.contype = 'f' AND cardinality(c.conkey) = 1
          AND NOT EXISTS (
              SELECT 1 FROM pg_index i WHERE i.indrelid = c.conrelid AND i.indkey[0] = c.conkey[1])
        """
    )
    assert [(r["tab"], r["col"]) for r in rows] == []


def test_retention_settings_parse_durations_and_name_bad_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DURABLE_RETENTION_COMPLETED", "12h")
    monkeypatch.setenv("DURABLE_RETENTION_WORKERS", "90m")
    settings = RetentionSettings()
    assert settings.completed == 12 * 3600 and settings.workers == 5400 and settings.failed == 30 * DAY
    monkeypatch.setenv("DURABLE_RETENTION_FAILED", "soon")
    with pytest.raises(ValidationError, match="DURABLE_RETENTION_FAILED"):
        RetentionSettings()
    monkeypatch.setenv("DURABLE_RETENTION_FAILED", "-1")
    with pytest.raises(ValidationError, match="DURABLE_RETENTION_FAILED"):
        RetentionSettings()


async def durable(address: str, *args: str) -> tuple[int, str]:
    env = {**os.environ, "GRPC_ADDRESS": address}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "durable.cli", *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=60)
    return proc.returncode or 0, out.decode()


async def test_pin_and_dlq_delete_from_the_client_and_the_command_line(
    database_url: str, db: asyncpg.Connection
) -> None:
    from durable.client import Client

    async with running_control_plane(database_url) as address:
        async with Client(address) as client:
            await client.start_workflow("wf", {}, workflow_id="keep-me")
            assert await client.pin_workflow("keep-me") is True
            assert (await client.describe_workflow("keep-me")).pinned
        code, out = await durable(address, "workflows", "unpin", "keep-me")
        assert code == 0 and "unpinned keep-me" in out
        assert await db.fetchval("SELECT pinned FROM durable_workflow_instances") is False
        code, out = await durable(address, "workflows", "pin", "keep-me")
        assert code == 0 and "pinned keep-me" in out
        assert await db.fetchval("SELECT pinned FROM durable_workflow_instances") is True
        code, out = await durable(address, "workflows", "pin", "nobody")
        assert code != 0 and "does not exist" in out

        task = await db.fetchval("INSERT INTO durable_task_queue (activity_type, status, completed_at) "
                                 "VALUES ('a', 'dead', now()) RETURNING id")
        entry = await db.fetchval(
            "INSERT INTO durable_dead_letter_queue (original_task_id, activity_type, input, attempts, reason) "
            "VALUES ($1, 'a', '{}', 1, 'exhausted') RETURNING id", task)
        code, out = await durable(address, "dlq", "delete", str(entry))
        assert code == 0 and "deleted dead-letter entry" in out
        assert await db.fetchval("SELECT count(*) FROM durable_dead_letter_queue") == 0
        assert await db.fetchval("SELECT count(*) FROM durable_task_queue WHERE id = $1", task) == 0
        code, out = await durable(address, "dlq", "delete", str(uuid.uuid4()))
        assert code != 0 and "does not exist" in out
