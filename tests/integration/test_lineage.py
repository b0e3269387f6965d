"""Child workflows, continue-as-new and history limits end to end: a real PostgreSQL, a
control-plane process (with small history limits) and a worker process running
tests.support.lineage_apps."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from durable.client import Client
from tests.support.controlplane import control_plane_process, wait_serving
from tests.support.postgres import create_database, drop_database, with_database
from tests.support.processes import wait_for, worker_process

APP = "tests.support.lineage_apps:app"
MAX_EVENTS = 40
CONTROL_PLANE = {"DURABLE_DECISION_RETRY_MAX_SECONDS": "0.5", "REAPER_INTERVAL_SECONDS": "0.5",
                 "REAPER_STALE_AFTER_SECONDS": "2", "REAPER_WORKER_LOST_AFTER_SECONDS": "5",
                 "DURABLE_HISTORY_MAX_EVENTS": str(MAX_EVENTS)}


@dataclass
class Deployment:
    address: str
    worker: subprocess.Popen[bytes]


@pytest.fixture(scope="module")
async def deployment(pg_admin_url: str, template_database: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Deployment]:
    name = await create_database(pg_admin_url, template=template_database)
    url = with_database(pg_admin_url, name)
    logs = tmp_path_factory.mktemp("lineage")
    try:
        with control_plane_process(url, **CONTROL_PLANE) as (_, address):
            await wait_serving(address)
            with worker_process(address, "lineage-w1", APP, log_dir=logs,
                                DURABLE_TASK_HEARTBEAT_INTERVAL="0.2") as worker:
                yield Deployment(address, worker)
    finally:
        await drop_database(pg_admin_url, name)


async def start_and_wait(d: Deployment, workflow_type: str, input: Any, workflow_id: str) -> Any:
    async with Client(d.address) as client:
        await client.start_workflow(workflow_type, input, workflow_id=workflow_id)
        return await client.wait_workflow(workflow_id, timeout=60)


async def test_a_child_that_succeeds_hands_its_result_to_the_parent(deployment: Deployment) -> None:
    view = await start_and_wait(deployment, "parent_ok", {"value": 21}, "parent-ok-1")
    assert view.status == "completed", view.error
    assert view.result == {"child": "parent-ok-1-kid", "value": 42}
    async with Client(deployment.address) as client:
        kinds = [e.event_type for e in await client.history("parent-ok-1")]
        assert kinds.count("ChildWorkflowStarted") == 1 and kinds.count("ChildWorkflowCompleted") == 1
        child = await client.describe_workflow("parent-ok-1-kid")
        assert child.parent_workflow_id == "parent-ok-1" and child.parent_close_policy == "cancel"
        parent = await client.describe_workflow("parent-ok-1")
        assert [(c.id, c.status) for c in parent.children] == [("parent-ok-1-kid", "completed")]


async def test_a_child_that_fails_is_caught_by_the_parent(deployment: Deployment) -> None:
    view = await start_and_wait(deployment, "parent_catches", {"child_id": "failing-kid"}, "parent-catches-1")
    assert view.status == "completed", view.error
    assert view.result == {"type": "OutOfStock", "message": "no stock left", "child_id": "failing-kid",
                           "workflow_type": "child_fails"}
    async with Client(deployment.address) as client:
        assert (await client.describe_workflow("failing-kid")).status == "failed"


async def test_a_child_id_that_exists_fails_the_start_with_an_error_the_parent_catches(deployment: Deployment) -> None:
    async with Client(deployment.address) as client:
        await client.start_workflow("child_waits", None, workflow_id="taken-id")
    view = await start_and_wait(deployment, "parent_catches", {"child_id": "taken-id"}, "parent-catches-2")
    assert view.status == "completed", view.error
    assert view.result["type"] == "ChildWorkflowAlreadyExists" and "taken-id" in view.result["message"]
    async with Client(deployment.address) as client:
        taken = await client.describe_workflow("taken-id")
        assert taken.status == "running" and taken.parent_workflow_id == ""  # not adopted
        await client.cancel_workflow("taken-id", terminate=True)


async def test_cancelling_a_parent_cancels_its_child_and_not_an_abandoned_one(deployment: Deployment) -> None:
    async with Client(deployment.address) as client:
        await client.start_workflow("parent_of_waiters", {}, workflow_id="waiting-parent")

        async def both_started() -> bool:
            parent = await client.describe_workflow("waiting-parent")
            return len(parent.children) == 2 and all(c.status == "running" for c in parent.children)

        await wait_for(both_started, 30, "both children running")
        await client.cancel_workflow("waiting-parent", "test")
        parent = await client.wait_workflow("waiting-parent", timeout=30)
        assert parent.status == "cancelled"
        child = await client.wait_workflow("waiting-parent-cancelled", timeout=30)
        assert child.status == "cancelled"
        abandoned = await client.describe_workflow("waiting-parent-abandoned")
        assert abandoned.status == "running" and abandoned.cancel_requested_at == 0
        await client.cancel_workflow("waiting-parent-abandoned", terminate=True)


async def test_continue_as_new_three_times_with_a_signal_during_each_switch(deployment: Deployment) -> None:
    runs = 3
    async with Client(deployment.address) as client:
        await client.start_workflow("forever", {"runs": runs}, workflow_id="forever-1")
        for run in range(1, runs + 1):
            async def on_run(expected: int = run) -> bool:
                view = await client.describe_workflow("forever-1")
                return view.run_number == expected and view.decided_through_seq >= 1

            await wait_for(on_run, 30, f"run {run} waiting for its signal")
            # The worker is paused while both signals are recorded, so "payload" lands after
            # the "next" that makes the run continue as new: the run ends without seeing it.
            os.kill(deployment.worker.pid, signal.SIGSTOP)
            try:
                await client.signal_workflow("forever-1", "next", {})
                await client.signal_workflow("forever-1", "payload", f"p{run}")
            finally:
                os.kill(deployment.worker.pid, signal.SIGCONT)
        view = await client.wait_workflow("forever-1", timeout=60)
        assert view.status == "completed", view.error
        assert view.result == {"seen": ["p1", "p2", "p3"], "run": runs + 1}  # each signal once
        assert view.run_number == runs + 1
        described = await client.describe_workflow("forever-1")
        assert [r.run_number for r in described.runs] == [1, 2, 3]
        assert all(r.status == "continued_as_new" for r in described.runs)
        history = await client.history("forever-1")
        assert history[0].event_type == "WorkflowStarted" and history[0].data["continued_from_run"] == runs
        assert [e.data.get("payload") for e in history if e.event_type == "SignalReceived"] == ["p3"]


async def test_the_history_limit_warns_then_fails_the_workflow(deployment: Deployment) -> None:
    view = await start_and_wait(deployment, "long_loop", {"rounds": 100}, "long-loop-1")
    assert view.status == "failed"
    assert view.error["type"] == "HistoryLimitExceeded"
    assert "continue_as_new" in view.error["message"] and "DURABLE_HISTORY_MAX_EVENTS" in view.error["message"]
    async with Client(deployment.address) as client:
        events = await client.history("long-loop-1")
    warnings = [e for e in events if e.event_type == "HistorySizeWarning"]
    assert len(warnings) == 1 and warnings[0].data["max_events"] == MAX_EVENTS
    assert warnings[0].sequence_num >= 0.8 * MAX_EVENTS
    assert events[-1].event_type == "WorkflowFailed" and len(events) <= MAX_EVENTS + 1
