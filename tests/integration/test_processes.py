"""End to end with real processes: a control plane, worker processes, crashes and signals."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import asyncpg
import pytest

from durable.client import Client
from tests.support.controlplane import control_plane_process, wait_serving
from tests.support.processes import read_records, wait_for, worker_process

FAST_REAPER = {
    "REAPER_INTERVAL_SECONDS": "0.5",
    "REAPER_STALE_AFTER_SECONDS": "2",
    "REAPER_WORKER_LOST_AFTER_SECONDS": "3",
}


async def test_fifty_agent_turns_on_two_worker_processes(database_url: str, tmp_path: Path, db: asyncpg.Connection) -> None:
    with control_plane_process(database_url) as (_, address):
        await wait_serving(address)
        with worker_process(address, "agent-a", "durable.examples.agent_turn:app", log_dir=tmp_path), \
             worker_process(address, "agent-b", "durable.examples.agent_turn:app", log_dir=tmp_path):
            async with Client(address) as client:
                messages = [f"what is {i}+{i}*2?" if i % 2 == 0 else f"hello number {i}" for i in range(50)]
                ids = [(await client.start_workflow("agent_turn", {"message": m}))[0] for m in messages]
                views = await asyncio.gather(*(client.wait_workflow(w, timeout=120) for w in ids))
                assert [v.status for v in views] == ["completed"] * 50, [v.error for v in views if v.status != "completed"]
                for i, (wid, view) in enumerate(zip(ids, views, strict=True)):
                    types = [e.event_type for e in await client.history(wid)]
                    scheduled = [e.data["activity_type"] for e in await client.history(wid) if e.event_type == "ActivityScheduled"]
                    assert types[0] == "WorkflowStarted" and types[-1] == "WorkflowCompleted"
                    assert types.count("ActivityScheduled") == types.count("ActivityCompleted")
                    if i % 2 == 0:  # arithmetic: the model calls the calculator tool, then answers
                        assert scheduled == ["process_input", "reason", "act", "reason"], scheduled
                        assert str(i + i * 2) in view.result["answer"]
                    else:
                        assert scheduled == ["process_input", "reason"], scheduled
    by_worker = await db.fetch(
        "SELECT claimed_by, count(*) AS n FROM durable_task_queue WHERE kind = 'activity' GROUP BY claimed_by"
    )
    assert {r["claimed_by"] for r in by_worker} == {"agent-a", "agent-b"}  # both did real work
    assert await db.fetchval("SELECT count(*) FROM durable_workflow_instances WHERE status = 'completed'") == 50


async def test_sigkilled_worker_loses_nothing(database_url: str, tmp_path: Path, db: asyncpg.Connection) -> None:
    records = tmp_path / "records.jsonl"
    release = tmp_path / "release"
    with control_plane_process(database_url, **FAST_REAPER) as (_, address):
        await wait_serving(address)
        async with Client(address) as client:
            with worker_process(address, "doomed", log_dir=tmp_path, DURABLE_TEST_RECORD=str(records)) as doomed:
                workflow_id, _ = await client.start_workflow("one_slow_step", {"release": str(release)})
                await wait_for(lambda: any(r["kind"] == "started" for r in read_records(records)), 30, "the activity to start")
                doomed.send_signal(signal.SIGKILL)
                doomed.wait()
            assert (await client.describe_workflow(workflow_id)).status == "running"
            with worker_process(address, "survivor", log_dir=tmp_path, DURABLE_TEST_RECORD=str(records)):
                await wait_for(
                    lambda: any(r["kind"] == "started" and r["worker"] == "survivor" for r in read_records(records)),
                    30, "the reclaimed task to start on the survivor",
                )
                release.touch()
                view = await client.wait_workflow(workflow_id, timeout=30)

                async def doomed_is_lost() -> bool:  # lost after 3 s without a heartbeat
                    return await db.fetchval("SELECT status FROM durable_workers WHERE id = 'doomed'") == "lost"

                await wait_for(doomed_is_lost, 30, "the reaper to mark the killed worker lost")
    assert view.status == "completed"
    assert view.result == {"worker": "survivor", "attempt": 2}
    runs = [(r["kind"], r["worker"], r["attempt"]) for r in read_records(records)]
    assert runs == [("started", "doomed", 1), ("started", "survivor", 2), ("finished", "survivor", 2)]
    assert not any(r["has_database_url"] for r in read_records(records))  # workers work without it
    task = await db.fetchrow("SELECT status, attempt, reclaim_count FROM durable_task_queue WHERE kind = 'activity'")
    assert dict(task) == {"status": "completed", "attempt": 2, "reclaim_count": 1}



async def test_sigterm_hands_back_tasks_at_once_and_exits_zero(database_url: str, tmp_path: Path, db: asyncpg.Connection) -> None:
    records = tmp_path / "records.jsonl"
    release = tmp_path / "release"
    # A slow reaper: only the worker's own hand-back can bring the task back in time.
    with control_plane_process(database_url, REAPER_STALE_AFTER_SECONDS="300") as (_, address):
        await wait_serving(address)
        async with Client(address) as client:
            with worker_process(address, "leaving", log_dir=tmp_path, DURABLE_TEST_RECORD=str(records),
                                DURABLE_DRAIN_GRACE_PERIOD="0.5") as leaving:
                workflow_id, _ = await client.start_workflow("one_slow_step", {"release": str(release)})
                await wait_for(lambda: read_records(records), 30, "the activity to start")
                leaving.send_signal(signal.SIGTERM)
                code = await asyncio.to_thread(leaving.wait, 15)
            assert code == 0
            task = await db.fetchrow("SELECT status, claimed_by, release_count FROM durable_task_queue WHERE kind = 'activity'")
            assert dict(task) == {"status": "pending", "claimed_by": None, "release_count": 1}
            assert await db.fetchval("SELECT status FROM durable_workers WHERE id = 'leaving'") == "stopped"
            release.touch()
            with worker_process(address, "next", log_dir=tmp_path, DURABLE_TEST_RECORD=str(records)):
                view = await client.wait_workflow(workflow_id, timeout=30)
    assert view.status == "completed" and view.result["worker"] == "next"


async def test_workers_reconnect_when_the_control_plane_restarts(database_url: str, tmp_path: Path) -> None:
    from tests.support.controlplane import free_port

    port = free_port()
    records = tmp_path / "records.jsonl"
    release = tmp_path / "release"
    with control_plane_process(database_url, port=port) as (first, address):
        await wait_serving(address)
        with worker_process(address, "steady", log_dir=tmp_path, DURABLE_TEST_RECORD=str(records),
                            DURABLE_RECONNECT_MAX_BACKOFF="0.5") as steady:
            async with Client(address) as client:
                workflow_id, _ = await client.start_workflow("one_slow_step", {"release": str(release)})
                await wait_for(lambda: read_records(records), 30, "the activity to start")
            first.send_signal(signal.SIGTERM)
            assert await asyncio.to_thread(first.wait, 15) == 0
            # the activity finishes while the control plane is down; its completion must not be lost
            release.touch()
            await wait_for(lambda: any(r["kind"] == "finished" for r in read_records(records)), 30, "the activity to finish")
            with control_plane_process(database_url, port=port) as (_, again):
                await wait_serving(again)
                async with Client(again) as client:
                    view = await client.wait_workflow(workflow_id, timeout=60)
                    assert view.status == "completed" and view.result == {"worker": "steady", "attempt": 1}
                    second, _ = await client.start_workflow("one_slow_step", {"release": str(release)})
                    assert (await client.wait_workflow(second, timeout=60)).status == "completed"
            assert steady.poll() is None  # the worker rode out the restart
