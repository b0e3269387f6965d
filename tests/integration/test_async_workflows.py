"""The async workflow model end to end: a real PostgreSQL, a control-plane process and worker
processes running tests.support.async_apps."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from durable.client import Client
from tests.support.controlplane import control_plane_process, free_port, wait_serving
from tests.support.postgres import create_database, drop_database, with_database
from tests.support.processes import ROOT, read_records, wait_for, worker_env, worker_process

APP = "tests.support.async_apps:app"
FAST = {"DURABLE_TASK_HEARTBEAT_INTERVAL": "0.2"}
CONTROL_PLANE = {"DURABLE_DECISION_RETRY_MAX_SECONDS": "0.5", "REAPER_INTERVAL_SECONDS": "0.5",
                 "REAPER_STALE_AFTER_SECONDS": "2", "REAPER_WORKER_LOST_AFTER_SECONDS": "3"}


class Deployment:
    """One control plane and one worker process for a module's scenarios."""

    def __init__(self, address: str, records: Path, database_url: str) -> None:
        self.address = address
        self.records = records
        self.database_url = database_url


@pytest.fixture(scope="module")
async def deployment(pg_admin_url: str, template_database: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Deployment]:
    name = await create_database(pg_admin_url, template=template_database)
    url = with_database(pg_admin_url, name)
    logs = tmp_path_factory.mktemp("async-workflows")
    records = logs / "records.jsonl"
    try:
        with control_plane_process(url, **CONTROL_PLANE) as (_, address):
            await wait_serving(address)
            with worker_process(address, "async-w1", APP, log_dir=logs, DURABLE_TEST_RECORDS=str(records), **FAST):
                yield Deployment(address, records, url)
    finally:
        await drop_database(pg_admin_url, name)


async def run_workflow(d: Deployment, workflow_type: str, input: Any = None, timeout: float = 60) -> Any:
    async with Client(d.address) as client:
        workflow_id, _ = await client.start_workflow(workflow_type, input)
        view = await client.wait_workflow(workflow_id, timeout=timeout)
        return view, [e for e in await client.history(workflow_id)]


async def test_sequential_steps(deployment: Deployment) -> None:
    view, events = await run_workflow(deployment, "sequential", {"value": 1})
    assert view.status == "completed" and view.result == {"value": 8}
    assert [e.event_type for e in events].count("ActivityCompleted") == 3


async def test_gather_of_ten_activities(deployment: Deployment) -> None:
    view, events = await run_workflow(deployment, "fan_out")
    assert view.status == "completed" and view.result == [i * 2 for i in range(10)]
    kinds = [e.event_type for e in events]
    assert kinds[1:11] == ["ActivityScheduled"] * 10  # one decision scheduled all ten


async def test_task_group_failure_cancels_the_siblings(deployment: Deployment) -> None:
    view, events = await run_workflow(deployment, "task_group")
    assert view.status == "completed", view.error
    assert view.result.startswith("failed: activity flaky-3"), view.result
    assert len([e for e in events if e.event_type == "ActivityCancelRequested"]) == 2
    conn = await asyncpg.connect(deployment.database_url)
    try:
        statuses = await conn.fetch("SELECT status FROM durable_task_queue "
                                    "WHERE workflow_id = $1 AND activity_type = 'hang'", view.id)
    finally:
        await conn.close()
    assert [r["status"] for r in statuses] == ["cancelled", "cancelled"]


async def test_compensation_after_an_exhausted_activity(deployment: Deployment) -> None:
    view, _ = await run_workflow(deployment, "compensate")
    assert view.status == "completed"
    assert view.result == {"error": "RuntimeError", "attempts": 2, "undo": "noted compensated"}


async def test_wait_for_where_the_timer_wins(deployment: Deployment) -> None:
    view, events = await run_workflow(deployment, "deadline")
    assert view.status == "completed" and view.result == "the timer won"
    kinds = [e.event_type for e in events]
    assert "TimerFired" in kinds and "ActivityCancelRequested" in kinds
    started = [r for r in read_records(deployment.records) if r["kind"] == "hang-started"]
    assert started  # the activity ran and was told to stop through its heartbeat
    await wait_for(lambda: any(r["kind"] == "hang-cancelled" and r["task"] == started[-1]["task"]
                               for r in read_records(deployment.records)), 20, "the activity saw its cancellation")


async def test_wait_signal_with_a_timeout_both_ways(deployment: Deployment) -> None:
    async with Client(deployment.address) as client:
        waiting, _ = await client.start_workflow("waiter", {"timeout": 60})
        await wait_for(lambda: _has(client, waiting, "TimerStarted"), 20, "the wait began")
        await client.signal_workflow(waiting, "go", {"ok": True})
        signalled = await client.wait_workflow(waiting, timeout=30)
        timing_out, _ = await client.start_workflow("waiter", {"timeout": 0.5})
        timed_out = await client.wait_workflow(timing_out, timeout=30)
    assert signalled.status == "completed" and signalled.result == {"got": {"ok": True}}
    assert timed_out.status == "completed" and timed_out.result == {"got": None}


async def _has(client: Client, workflow_id: str, event_type: str) -> bool:
    return any(e.event_type == event_type for e in await client.history(workflow_id))


async def test_signals_sent_before_the_wait_arrive_in_order_once(deployment: Deployment) -> None:
    async with Client(deployment.address) as client:
        workflow_id, _ = await client.start_workflow("collector", {"n": 5})
        for i in range(5):
            await client.signal_workflow(workflow_id, "item", {"i": i})
        await client.signal_workflow(workflow_id, "start", {})
        view = await client.wait_workflow(workflow_id, timeout=30)
    assert view.status == "completed" and view.result == [{"i": i} for i in range(5)]


async def test_cancellation_runs_finally(deployment: Deployment) -> None:
    async with Client(deployment.address) as client:
        workflow_id, _ = await client.start_workflow("cancellable")
        await wait_for(lambda: _has(client, workflow_id, "ActivityScheduled"), 20, "the activity was scheduled")
        await client.cancel_workflow(workflow_id, "stop it")
        view = await client.wait_workflow(workflow_id, timeout=30)
        events = await client.history(workflow_id)
    assert view.status == "cancelled"
    kinds = [e.event_type for e in events]
    assert kinds.index("WorkflowCancelRequested") < kinds.index("ActivityCancelRequested")
    assert kinds[-1] == "WorkflowCancelled"
    finally_ran = [e.data["result"] for e in events if e.event_type == "ActivityCompleted"]
    assert finally_ran == ["noted finally ran"]


async def test_now_random_and_uuid_are_stable_across_replay(deployment: Deployment) -> None:
    view, events = await run_workflow(deployment, "values")
    assert view.status == "completed"
    # computed in the first decision (recorded as the note's input), returned after two replays
    noted = next(e.data["input"] for e in events if e.event_type == "ActivityScheduled")
    assert view.result == noted
    assert noted["now"] == datetime.fromtimestamp(events[0].created_at, UTC).isoformat()  # the start's time
    assert len(noted["uuid"]) == 36 and 0 <= noted["random"] < 1


async def test_pydantic_input_and_output_round_trip(deployment: Deployment) -> None:
    view, events = await run_workflow(deployment, "typed", {"order_id": "o-7", "amount": 12.5})
    assert view.status == "completed"
    assert view.result == {"order_id": "o-7", "charged": 12.5, "note": "Order"}


async def test_a_query_during_a_durable_sleep_and_after_completion(deployment: Deployment) -> None:
    from durable.common.errors import TimedOut, WrongState

    async with Client(deployment.address) as client:
        workflow_id, _ = await client.start_workflow("counter", {"steps": 3, "sleep": 2})
        await wait_for(lambda: _has(client, workflow_id, "TimerStarted"), 20, "the sleep began")
        events = len(await client.history(workflow_id))
        assert await client.query_workflow(workflow_id, "progress") == {"steps": 3, "unit": None}
        assert await client.query_workflow(workflow_id, "progress", "steps") == {"steps": 3, "unit": "steps"}
        assert len(await client.history(workflow_id)) == events  # a query writes no history
        with pytest.raises(WrongState, match="has no query 'nope'"):
            await client.query_workflow(workflow_id, "nope")
        done = await client.wait_workflow(workflow_id, timeout=30)
        assert done.status == "completed" and done.result == 3
        assert await client.query_workflow(workflow_id, "progress") == {"steps": 3, "unit": None}
        shown = durable_cli(deployment.address, "workflows", "query", workflow_id, "progress", "--arg", '"x"')
        assert shown.returncode == 0 and json.loads(shown.stdout) == {"steps": 3, "unit": "x"}, shown.stderr
        # a type no worker serves: the caller hears so, in time
        orphan, _ = await client.start_workflow("nobody_serves_this")
        with pytest.raises(TimedOut, match="no worker of workflow type 'nobody_serves_this'"):
            await client.query_workflow(orphan, "progress", timeout=0.5)
    conn = await asyncpg.connect(deployment.database_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM durable_workflow_queries") == 0  # nothing left behind
    finally:
        await conn.close()


async def test_a_durable_sleep_survives_a_worker_kill_and_a_control_plane_restart(
    database_url: str, tmp_path: Path
) -> None:
    port = free_port()
    async with Client(f"127.0.0.1:{port}") as client:
        with control_plane_process(database_url, port, **CONTROL_PLANE) as (_, address):
            await wait_serving(address)
            with worker_process(address, "sleepy-1", APP, log_dir=tmp_path, **FAST) as worker:
                workflow_id, _ = await client.start_workflow("sleeper", {"seconds": 2})
                await wait_for(lambda: _has(client, workflow_id, "TimerStarted"), 20, "the sleep began")
                worker.send_signal(signal.SIGKILL)
                worker.wait()
        # the control plane is down too; the timer is a row, not a process
        with control_plane_process(database_url, port, **CONTROL_PLANE) as (_, address):
            await wait_serving(address)
            with worker_process(address, "sleepy-2", APP, log_dir=tmp_path, **FAST):
                view = await client.wait_workflow(workflow_id, timeout=60)
    assert view.status == "completed" and view.result["slept"] >= 2


async def test_a_decision_over_the_message_limit_blocks_the_workflow_saying_so(
    database_url: str, tmp_path: Path
) -> None:
    limits = {"DURABLE_MAX_PAYLOAD_BYTES": "16384", "DURABLE_MAX_MESSAGE_BYTES": str(16384 + 65536)}
    with control_plane_process(database_url, **CONTROL_PLANE, **limits) as (_, address):
        await wait_serving(address)
        with worker_process(address, "wide-1", APP, log_dir=tmp_path, **FAST):
            async with Client(address) as client:
                # ten 15 KB inputs: each within the payload limit, the decision over the message limit
                workflow_id, _ = await client.start_workflow("wide", {"n": 10, "bytes": 15_000})
                view = await wait_for(lambda: _blocked(client, workflow_id), 30, "the decision blocked")
                assert view.status == "running" and view.blocked["type"] == "MessageTooLarge"
                assert "DURABLE_MAX_MESSAGE_BYTES" in view.blocked["message"]
                small, _ = await client.start_workflow("wide", {"n": 3, "bytes": 15_000})
                done = await client.wait_workflow(small, timeout=30)  # under the limit: fine
    assert done.status == "completed" and done.result == 3


async def test_a_history_larger_than_a_claims_answer_is_read_in_pages(database_url: str, tmp_path: Path) -> None:
    limits = {"DURABLE_MAX_PAYLOAD_BYTES": "16384", "DURABLE_MAX_RESPONSE_BYTES": str(2 * 16384 + 65536)}
    with control_plane_process(database_url, **CONTROL_PLANE, **limits) as (_, address):
        await wait_serving(address)
        with worker_process(address, "long-1", APP, log_dir=tmp_path, **FAST):
            async with Client(address) as client:
                # 12 steps of 8 KB in and 8 KB out: the history outgrows the 96 KiB answer
                workflow_id, _ = await client.start_workflow("long", {"n": 12, "bytes": 8_000})
                view = await client.wait_workflow(workflow_id, timeout=60)
                size = sum(len(json.dumps(e.data)) for e in await client.history(workflow_id))
    assert view.status == "completed" and view.result == 12, view.blocked
    assert size > 2 * 16384 + 65536


def durable_cli(address: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = worker_env(address, "cli")
    return subprocess.run([sys.executable, "-m", "durable.cli", *args], env=env, capture_output=True,
                          text=True, timeout=60, cwd=ROOT)


async def test_non_determinism_blocks_the_workflow_until_patched_code_runs(
    database_url: str, tmp_path: Path, db: asyncpg.Connection
) -> None:
    with control_plane_process(database_url, **CONTROL_PLANE) as (_, address):
        await wait_serving(address)
        async with Client(address) as client:
            with worker_process(address, "v1", "tests.support.async_apps:app_v1", log_dir=tmp_path, **FAST):
                versioned, _ = await client.start_workflow("versioned")
                buggy, _ = await client.start_workflow("buggy")
                await wait_for(lambda: _has(client, versioned, "ActivityCompleted"), 20, "v1's first step")
                # and v1's decision after it (the wait for the signal) applied: had v1 been
                # killed before that, v2 would make it, and its new step would be no mismatch
                await wait_for(lambda: _settled(db, versioned), 20, "v1's decision after its first step")
                await wait_for(lambda: _blocked(client, buggy), 20, "the buggy workflow blocked")
            # v2 inserted a step without a patch: the running workflow cannot replay on it
            with worker_process(address, "v2", "tests.support.async_apps:app_v2", log_dir=tmp_path, **FAST):
                await client.signal_workflow(versioned, "go", {})
                view = await wait_for(lambda: _blocked(client, versioned), 30, "v2 blocked on the history")
                assert view.status == "running"
                assert view.blocked["type"] == "NonDeterminismError"
                assert "event 3" in view.blocked["message"] and "'note-2'" in view.blocked["message"]
                shown = durable_cli(address, "workflows", "show", versioned)
                assert shown.returncode == 0 and "blocked:  NonDeterminismError" in shown.stdout, shown.stdout
                replayed = durable_cli(address, "replay", "--app", "tests.support.async_apps:app_v2",
                                       "--workflow-id", versioned, "--workflow-id", buggy)
                assert replayed.returncode == 1, replayed.stdout + replayed.stderr
                assert f"FAILED  {versioned} (versioned): NonDeterminismError" in replayed.stdout
                events = await client.history(versioned)
                assert events[-1].event_type == "SignalReceived"  # nothing was written
                buggy_view = await client.describe_workflow(buggy)
                assert buggy_view.status == "running" and buggy_view.blocked["type"] == "KeyError"
                assert "raise KeyError" in buggy_view.blocked["traceback"]
            ok = durable_cli(address, "replay", "--app", "tests.support.async_apps:app_v3", "--workflow-id", versioned)
            assert ok.returncode == 0 and "1 of 1 replayed cleanly" in ok.stdout, ok.stdout + ok.stderr
            # v3 guards the step with ctx.patched and fixes the bug: both complete
            with worker_process(address, "v3", "tests.support.async_apps:app_v3", log_dir=tmp_path, **FAST):
                done = await client.wait_workflow(versioned, timeout=60)
                fixed = await client.wait_workflow(buggy, timeout=60)
    assert done.status == "completed" and done.result == {"version": 3} and done.blocked is None
    assert fixed.status == "completed" and fixed.result == "fixed"
    notes = await db.fetch("SELECT input FROM durable_task_queue WHERE workflow_id = $1 AND kind = 'activity' "
                           "ORDER BY created_at", versioned)
    assert [json.loads(n["input"]) for n in notes] == ["first", "last"]  # no inserted step for the old run
    assert await db.fetchval("SELECT count(*) FROM durable_dead_letter_queue") == 0


async def _settled(db: asyncpg.Connection, workflow_id: str) -> bool:
    """The workflow's history is decided through its last event and no decision task is open."""
    return bool(await db.fetchval(
        "SELECT w.decided_through_seq = w.last_event_seq AND NOT EXISTS ("
        "  SELECT 1 FROM durable_task_queue t WHERE t.workflow_id = w.id AND t.kind = 'workflow'"
        "  AND t.status IN ('pending', 'claimed')) FROM durable_workflow_instances w WHERE w.id = $1", workflow_id))


async def _blocked(client: Client, workflow_id: str) -> Any:
    view = await client.describe_workflow(workflow_id)
    return view if view.blocked else None


async def test_the_console_asks_a_query_from_the_workflow_page(deployment: Deployment) -> None:
    import urllib.parse
    import urllib.request

    from tests.integration.test_console import console

    async with Client(deployment.address) as client:
        workflow_id, _ = await client.start_workflow("counter", {"steps": 2, "sleep": 3600})
        await wait_for(lambda: _has(client, workflow_id, "TimerStarted"), 20, "the sleep began")
        async with console(deployment.address) as base:
            url = f"{base}/workflows/{urllib.parse.quote(workflow_id)}?query=progress&arg=%22km%22"
            page = await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=20).read().decode())
            assert 'aria-label="Answer to progress"' in page
            assert "&#34;steps&#34;: 2" in page and "&#34;unit&#34;: &#34;km&#34;" in page
            missing = await asyncio.to_thread(lambda: urllib.request.urlopen(
                f"{base}/workflows/{urllib.parse.quote(workflow_id)}?query=nope", timeout=20).read().decode())
            assert "has no query" in missing and 'role="alert"' in missing
        await client.cancel_workflow(workflow_id, terminate=True)
