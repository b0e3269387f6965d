"""Local activities end to end: a real PostgreSQL, a control-plane process and `durable worker`
processes running tests.support.local_app. A local activity runs in the worker within its
decision and is recorded as a MarkerRecorded event; a fresh worker replays it from there."""

from __future__ import annotations

import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from durable.client import Client
from tests.support.controlplane import control_plane_process, wait_serving
from tests.support.postgres import create_database, drop_database, with_database
from tests.support.processes import read_records, wait_for, worker_process

APP = "tests.support.local_app:app"
FAST = {"DURABLE_TASK_HEARTBEAT_INTERVAL": "0.2"}
# A killed worker's kept workflow moves to another worker after a second (the sticky fallback).
CONTROL_PLANE = {"DURABLE_STICKY_FALLBACK_SECONDS": "1", "REAPER_INTERVAL_SECONDS": "0.5",
                 "REAPER_STALE_AFTER_SECONDS": "3"}  # a killed worker's claimed decision, taken back


class Deployment:
    def __init__(self, address: str, url: str, logs: Path) -> None:
        self.address, self.url, self.logs = address, url, logs
        self.records = logs / "records.jsonl"

    def worker(self, worker_id: str) -> Any:
        return worker_process(self.address, worker_id, APP, log_dir=self.logs,
                              DURABLE_TEST_RECORDS=str(self.records), **FAST)


@pytest.fixture(scope="module")
async def deployment(pg_admin_url: str, template_database: str,
                     tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Deployment]:
    name = await create_database(pg_admin_url, template=template_database)
    url = with_database(pg_admin_url, name)
    try:
        with control_plane_process(url, **CONTROL_PLANE) as (_, address):
            await wait_serving(address)
            yield Deployment(address, url, tmp_path_factory.mktemp("local-activities"))
    finally:
        await drop_database(pg_admin_url, name)


async def run(client: Client, workflow_type: str, input: Any = None) -> tuple[Any, list[Any]]:
    workflow_id, _ = await client.start_workflow(workflow_type, input)
    view = await client.wait_workflow(workflow_id, timeout=60)
    return view, await client.history(workflow_id)


async def decisions(url: str, workflow_id: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        return int(await conn.fetchval(
            "SELECT count(*) FROM durable_task_queue WHERE workflow_id = $1 AND kind = 'workflow'", workflow_id))
    finally:
        await conn.close()


def calls(d: Deployment, kind: str, workflow_id: str) -> list[int]:
    return [r["attempt"] for r in read_records(d.records) if r["kind"] == kind and r["workflow"] == workflow_id]


async def test_local_activities_run_within_one_decision_with_their_retries(deployment: Deployment) -> None:
    with deployment.worker("local-1"):
        async with Client(deployment.address) as client:
            four, events = await run(client, "four_local")
            assert four.status == "completed" and four.result == 10, four.error
            assert [e.event_type for e in events] == ["WorkflowStarted", *["MarkerRecorded"] * 4, "WorkflowCompleted"]
            assert [e.data["marker_id"] for e in events[1:5]] == ["parse-1", "parse-2", "parse-3", "parse-4"]
            assert [e.data["value"]["result"] for e in events[1:5]] == [{"n": n} for n in (1, 2, 3, 4)]
            assert await decisions(deployment.url, four.id) == 1  # no task, no decision per step
            assert calls(deployment, "parse", four.id) == [1, 1, 1, 1]

            # fails twice, then succeeds: all within its retry policy, in the same decision
            recovered, events = await run(client, "flaky_local", {"failures": 2})
            assert recovered.status == "completed" and recovered.result == {"ok": "ok after 3"}, recovered.error
            (marker,) = [e for e in events if e.event_type == "MarkerRecorded"]
            assert marker.data["value"]["attempts"] == 3
            assert await decisions(deployment.url, recovered.id) == 1
            assert calls(deployment, "flaky", recovered.id) == [1, 2, 3]

            # its retries run out: ActivityError, caught by the workflow's code
            exhausted, events = await run(client, "flaky_local", {"failures": 5})
            assert exhausted.status == "completed"
            assert exhausted.result == {"error": "RuntimeError", "attempts": 3, "reason": "exhausted"}
            (marker,) = [e for e in events if e.event_type == "MarkerRecorded"]
            assert marker.data["value"]["error"] == {"type": "RuntimeError", "message": "attempt 3 failed"}
            assert calls(deployment, "flaky", exhausted.id) == [1, 2, 3]


async def test_a_fresh_worker_replays_a_local_activity_from_its_marker(deployment: Deployment) -> None:
    conn = await asyncpg.connect(deployment.url)
    try:
        async with Client(deployment.address) as client:
            with deployment.worker("local-a") as first:
                workflow_id, _ = await client.start_workflow("local_then_wait")

                async def waiting() -> bool:
                    # the local activity's marker, the activity, and the decision after it
                    # applied with no decision open: the workflow waits for its signal
                    row = await conn.fetchrow(
                        "SELECT decision_seen_seq, NOT EXISTS ("
                        "  SELECT 1 FROM durable_task_queue t WHERE t.workflow_id = i.id AND t.kind = 'workflow'"
                        "  AND t.status IN ('pending', 'claimed')) AS settled "
                        "FROM durable_workflow_instances i WHERE id = $1", workflow_id)
                    return bool((row["decision_seen_seq"] or 0) >= 4 and row["settled"])

                await wait_for(waiting, 30, "the workflow waiting for its signal")
                os.kill(first.pid, signal.SIGKILL)  # its kept instance dies with it
                first.wait()
            assert calls(deployment, "parse", workflow_id) == [1]
            with deployment.worker("local-b"):
                await client.signal_workflow(workflow_id, "go", "now")
                view = await client.wait_workflow(workflow_id, timeout=30)
            events = await client.history(workflow_id)
        deciders = [r["claimed_by"] for r in await conn.fetch(
            "SELECT claimed_by FROM durable_task_queue WHERE workflow_id = $1 AND kind = 'workflow' "
            "ORDER BY created_at", workflow_id)]
    finally:
        await conn.close()
    assert deciders[-1] == "local-b", deciders
    assert view.status == "completed" and view.result == [21, 42, "now", 42], view.error
    kinds = [e.event_type for e in events]
    assert kinds[:4] == ["WorkflowStarted", "MarkerRecorded", "ActivityScheduled", "ActivityCompleted"]
    assert kinds.count("MarkerRecorded") == 2
    # local-b replayed the first local activity from its marker and ran only the second
    assert calls(deployment, "parse", workflow_id) == [1, 1]


async def test_steps_are_journalled_in_one_decision(deployment: Deployment) -> None:
    with deployment.worker("steps-1"):
        async with Client(deployment.address) as client:
            four, events = await run(client, "four_steps")
    assert four.status == "completed" and four.result == 10, four.error
    assert [e.event_type for e in events] == ["WorkflowStarted", *["MarkerRecorded"] * 4, "WorkflowCompleted"]
    assert [e.data["value"]["seen_seq"] for e in events[1:5]] == [1, 1, 1, 1]
    assert await decisions(deployment.url, four.id) == 1  # one decision, its task kept through the steps
    assert calls(deployment, "parse", four.id) == [1, 1, 1, 1]


@pytest.mark.parametrize("stop", [signal.SIGKILL, signal.SIGTERM], ids=["killed", "drained"])
async def test_a_step_journalled_before_its_worker_stopped_is_not_run_again(
    deployment: Deployment, stop: signal.Signals
) -> None:
    """Killed, the worker's decision comes back through the reaper; drained, it is handed back
    once its grace period ends (the held step cancelled): either way the next worker goes on
    from the journals."""
    conn = await asyncpg.connect(deployment.url)
    try:
        async with Client(deployment.address) as client:
            with worker_process(deployment.address, f"steps-a-{stop.name}", APP, log_dir=deployment.logs,
                                DURABLE_TEST_RECORDS=str(deployment.records), DURABLE_TEST_HOLD="1",
                                DURABLE_DRAIN_GRACE_PERIOD="0.5", **FAST) as first:
                workflow_id, _ = await client.start_workflow("steps_then_hold")

                async def holding() -> bool:
                    # the third step runs, and the two before it are in the history
                    written = await conn.fetchval(
                        "SELECT count(*) FROM durable_workflow_events WHERE workflow_id = $1 "
                        "AND event_type = 'MarkerRecorded'", workflow_id)
                    return written == 2 and calls(deployment, "hold", workflow_id) == [1]

                await wait_for(holding, 30, "the third step running, the first two journalled")
                os.kill(first.pid, stop)
                first.wait(timeout=30)
            with deployment.worker(f"steps-b-{stop.name}"):
                view = await client.wait_workflow(workflow_id, timeout=60)
            events = await client.history(workflow_id)
    finally:
        await conn.close()
    assert view.status == "completed" and view.result == [1, 2, 2, "held"], view.error
    markers = [e.data["marker_id"] for e in events if e.event_type == "MarkerRecorded"]
    assert markers == ["parse-1", "parse-2", "hold-3"]
    assert [e.event_type for e in events].count("ActivityScheduled") == 1
    # the two journalled steps ran once; the one that was running when the worker died, again
    assert calls(deployment, "parse", workflow_id) == [1, 1]
    assert len(calls(deployment, "hold", workflow_id)) == 2


@pytest.mark.parametrize("how", ["signal", "cancel"])
async def test_a_loop_of_steps_sees_a_signal_or_cancellation_between_two_steps(
    deployment: Deployment, how: str
) -> None:
    """A signal (or a cancellation request) that comes while one decision runs step after step:
    the journal before the next step says so, the decision ends there (that step deferred),
    and the next one delivers the event first: the loop stops (or is cancelled) at once,
    not when its 2,000 steps are over."""
    with deployment.worker(f"steps-{how}"):
        async with Client(deployment.address) as client:
            workflow_id, _ = await client.start_workflow("steps_until_stopped")

            async def ticking() -> bool:
                return len(calls(deployment, "tick", workflow_id)) >= 3

            await wait_for(ticking, 30, "the workflow's steps running")
            if how == "signal":
                await client.signal_workflow(workflow_id, "stop", True)
            else:
                await client.cancel_workflow(workflow_id, "enough")
            view = await client.wait_workflow(workflow_id, timeout=60)
            events = await client.history(workflow_id)
    kinds = [(e.event_type, e.data.get("kind")) for e in events]
    steps = kinds.count(("MarkerRecorded", "local_activity"))
    assert steps < 2000
    if how == "signal":
        assert view.status == "completed" and view.result == {"steps": steps, "stopped": True}, view.error
        came = kinds.index(("SignalReceived", None))
    else:
        assert view.status == "cancelled", (view.status, view.error)
        came = kinds.index(("WorkflowCancelRequested", None))
    assert came < kinds.index(("MarkerRecorded", "local_activity_deferred"))
    assert calls(deployment, "tick", workflow_id) == [1] * steps  # each step ran once
