"""Prometheus metrics: each component's series exist and move."""

from __future__ import annotations

import asyncio
import urllib.request

import pytest

from durable.client import Client
from durable.controlplane.settings import MetricsSettings
from durable.worker import ActivityError, App, Worker, WorkerSettings, WorkflowContext
from durable.worker.testing import RunningWorker
from tests.support.controlplane import free_port, running_control_plane
from tests.support.processes import wait_for


def scrape(port: int) -> dict[str, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    series: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            series["declared:" + line.split()[2]] = 1.0
        elif line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            series[name] = float(value)
    return series


def value(series: dict[str, float], prefix: str) -> float:
    return sum(v for k, v in series.items() if k.startswith(prefix))


async def test_control_plane_and_worker_metrics_exist_and_move(database_url: str) -> None:
    cp_port, worker_port = free_port(), free_port()
    metrics = MetricsSettings(port=cp_port, refresh=0.1)
    app = App()

    @app.activity(name="flaky")
    async def flaky(ctx: object, data: dict) -> dict:
        if data.get("fail"):
            raise RuntimeError("boom")
        return {}

    @app.workflow(name="stepping")
    async def stepping(ctx: WorkflowContext, data: None) -> str:
        await ctx.step(flaky, {})
        await ctx.step(flaky, {})
        try:
            await ctx.local_activity(flaky, {"fail": True}, retry_policy={"max_attempts": 1})
        except ActivityError:
            return "failed as meant"
        return "unexpected"

    async with running_control_plane(database_url, metrics=metrics) as address:
        before = scrape(cp_port)
        for name in ("durable_tasks_pending", "durable_workers", "durable_database_up", "durable_claim_duration_seconds_count"):
            assert any(k.startswith(name) or k == f"declared:{name}" for k in before), f"{name} missing"
        async with Client(address) as client:
            for i in range(3):
                await client.enqueue_activity("flaky", {"i": i})
            await client.enqueue_activity("flaky", {"fail": True}, max_attempts=1)
            await wait_for(lambda: value(scrape(cp_port), 'durable_tasks_pending{kind="activity",type="flaky"}') == 4,
                           10, "the backlog gauge to show 4 pending")
            settings = WorkerSettings(GRPC_ADDRESS=address, WORKER_ID="metered", WORKER_HEALTH_PORT=0,
                                      WORKER_METRICS_PORT=worker_port)
            async with RunningWorker(Worker(app, settings)):
                await wait_for(lambda: value(scrape(cp_port), "durable_tasks_completed_total") == 3, 20, "3 completions")
                await wait_for(lambda: value(scrape(cp_port), "durable_dead_letter_tasks") == 1, 20, "the DLQ gauge")
                after = scrape(cp_port)
                assert value(after, 'durable_tasks_claimed_total{kind="activity",type="flaky"}') == 4
                assert value(after, 'durable_task_failures_total{outcome="dead",type="flaky"}') == 1
                assert value(after, "durable_claim_duration_seconds_count") > value(before, "durable_claim_duration_seconds_count")
                assert value(after, 'durable_workers{status="active"}') == 1
                await wait_for(lambda: value(scrape(cp_port), 'durable_tasks_pending{kind="activity",type="flaky"}') == 0,
                               10, "the backlog gauge to drain")
                w = scrape(worker_port)
                assert value(w, 'durable_worker_tasks_total{kind="activity",outcome="completed",type="flaky"}') == 3
                assert value(w, 'durable_worker_tasks_total{kind="activity",outcome="failed",type="flaky"}') == 1
                assert value(w, "durable_worker_task_duration_seconds_count") == 4
                assert "durable_worker_running_tasks" in w
                # a workflow's two steps and a local activity that fails
                workflow_id, _ = await client.start_workflow("stepping")
                view = await client.wait_workflow(workflow_id, timeout=30)
                assert view.result == "failed as meant", view.error
                w = scrape(worker_port)
                assert value(w, 'durable_worker_local_activities_total{kind="step",outcome="completed",type="flaky"}') == 2
                assert value(w, 'durable_worker_local_activities_total{kind="local",outcome="failed",type="flaky"}') == 1
                assert value(w, "durable_worker_local_activity_duration_seconds_count") == 3
                # the second step's journal (none before the first)
                assert value(scrape(cp_port), 'durable_workflow_journals_total{result="applied",type="stepping"}') == 1
