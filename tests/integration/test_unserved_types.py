"""Types nobody serves: a warning (metrics, `durable stats`, `durable workflows show`) instead of
silence, and the workflow schedule-to-start timeout that fails a workflow nobody decides."""

from __future__ import annotations

import json

import asyncpg
import pytest
from prometheus_client import generate_latest

from durable.controlplane.metrics import ControlPlaneMetrics
from durable.controlplane.reaper import Reaper
from durable.controlplane.settings import ReaperSettings
from durable.controlplane.store import Store
from durable.controlplane.store.served_types import ServedTypeStore
from tests.integration.test_cli import durable
from tests.support.clock import FakeClock
from tests.support.controlplane import running_control_plane


@pytest.fixture
def types(pool: asyncpg.Pool, clock: FakeClock) -> ServedTypeStore:
    return ServedTypeStore(pool, clock=clock)


async def test_a_workflow_of_a_type_nobody_serves_is_named(store: Store, types: ServedTypeStore, worker: str) -> None:
    served, _ = await store.start_workflow("wf", {}, "served")
    orphan, _ = await store.start_workflow("nobody_wf", {}, "orphan")
    assert await types.unserved_for_workflow(orphan.id) == ["workflow:nobody_wf"]
    assert await types.unserved_for_workflow(served.id) == []
    # a step of a type nobody serves, in a served workflow
    _, [decision] = await store.claim(worker, [], ["wf"], 1)
    await store.complete_workflow_task(worker, decision.task.id, 1, decision.workflow.last_event_seq, [
        {"type": "schedule_activity", "activity_id": "s1", "activity_type": "nobody_act", "input": {}}])
    assert await types.unserved_for_workflow(served.id) == ["activity:nobody_act"]
    # a worker that stops serving: its types are unserved again
    await store.drain_worker(worker)
    assert await types.unserved_for_workflow(orphan.id) == ["workflow:nobody_wf"]
    third, _ = await store.start_workflow("wf", {}, "third")
    assert await types.unserved_for_workflow(third.id) == ["workflow:wf"]


async def test_the_metrics_gauge_lists_unserved_types(store: Store, types: ServedTypeStore, worker: str) -> None:
    await store.start_workflow("wf", {}, "served")
    for _ in range(2):
        await store.enqueue_activity("nobody_act", {})
    await store.enqueue_activity("nobody_act", {}, options={"start_delay": 60})
    metrics = ControlPlaneMetrics()
    assert await metrics.refresh(store, None, types)
    text = generate_latest(metrics.registry).decode()
    assert 'durable_unserved_types{kind="activity",type="nobody_act"} 3.0' in text
    gauge = [line for line in text.splitlines() if line.startswith("durable_unserved_types{")]
    assert len(gauge) == 1  # the served workflow type wf is not listed


async def test_stats_and_show_say_no_worker_serves_the_type(database_url: str, store: Store) -> None:
    async with running_control_plane(database_url, poll_interval=0.2) as address:
        await store.register_worker("w-a", activity_types=["a"])
        await store.enqueue_activity("a", {})
        await store.start_workflow("nobody_wf", {}, "orphan")
        code, out = await durable(address, "stats")
        assert code == 0, out
        assert "warning: no worker serves workflow type 'nobody_wf' (1 tasks waiting)" in out
        assert "type 'a'" not in out
        code, out = await durable(address, "workflows", "show", "orphan")
        assert code == 0, out
        assert "warning: no worker serves workflow type 'nobody_wf'" in out


async def test_a_workflow_nobody_decides_fails_after_the_schedule_to_start_timeout(
    store: Store, types: ServedTypeStore, worker: str, clock: FakeClock, db: asyncpg.Connection
) -> None:
    reaper = Reaper(store, ReaperSettings(workflow_schedule_to_start=30), types=types)
    orphan, _ = await store.start_workflow("nobody_wf", {}, "orphan")
    taken, _ = await store.start_workflow("wf", {}, "taken")
    blocked, _ = await store.start_workflow("wf", {}, "blocked")
    _, decisions = await store.claim(worker, [], ["wf"], 2)
    by_id = {d.workflow.id: d for d in decisions}
    await store.fail_task(worker, by_id["blocked"].task.id, 1, "bug", error_type="TypeError")  # retried later
    clock.advance(29)
    assert (await reaper.run_once()).unstarted == 0
    clock.advance(2)
    report = await reaper.run_once()
    assert report.unstarted == 1
    failed = await store.get_workflow(orphan.id)
    assert failed.status == "failed" and failed.error["type"] == "ScheduleToStartTimeout"
    assert "DURABLE_WORKFLOW_SCHEDULE_TO_START_TIMEOUT" in failed.error["message"]
    last = await db.fetchrow("SELECT event_type, event_data FROM durable_workflow_events WHERE workflow_id = $1 "
                             "ORDER BY sequence_num DESC LIMIT 1", orphan.id)
    assert last["event_type"] == "WorkflowFailed"
    assert json.loads(last["event_data"])["error"]["type"] == "ScheduleToStartTimeout"
    assert await store.list_dead_letters() == []  # nothing ran: nothing to requeue
    for other in (taken.id, blocked.id):
        assert (await store.get_workflow(other)).status == "running"
    assert (await reaper.run_once()).unstarted == 0  # once


async def test_without_the_setting_nothing_fails(store: Store, types: ServedTypeStore, clock: FakeClock) -> None:
    orphan, _ = await store.start_workflow("nobody_wf", {}, "orphan")
    clock.advance(10 * 86400)
    await Reaper(store, ReaperSettings(), types=types).run_once()
    assert (await store.get_workflow(orphan.id)).status == "pending"


def test_the_setting_takes_a_duration() -> None:
    assert ReaperSettings(DURABLE_WORKFLOW_SCHEDULE_TO_START_TIMEOUT="5m").workflow_schedule_to_start == 300
    with pytest.raises(ValueError, match="must be a duration"):
        ReaperSettings(DURABLE_WORKFLOW_SCHEDULE_TO_START_TIMEOUT="soon")
