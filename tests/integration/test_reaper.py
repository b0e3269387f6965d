"""The reaper: stale claims, poison guard, timeouts, lost workers, two reapers at once."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from durable.common.errors import StaleAttempt
from durable.controlplane.reaper import Reaper
from durable.controlplane.settings import ReaperSettings
from durable.controlplane.store import Store
from tests.support.clock import FakeClock


def reaper(store: Store, **overrides: float) -> Reaper:
    return Reaper(store, ReaperSettings(**{"stale_after": 30, "worker_lost_after": 30, "max_reclaims": 3, **overrides}))


async def test_stale_task_is_reclaimed_and_the_next_attempt_runs(store: Store, worker: str, clock: FakeClock) -> None:
    await store.register_worker("w2", activity_types=["a"])
    task_id = await store.enqueue_activity("a", {})
    [t], _ = await store.claim(worker, ["a"])
    clock.advance(10)
    assert (await reaper(store).run_once()).reclaimed == 0  # heartbeat still fresh enough
    clock.advance(25)
    report = await reaper(store).run_once()
    assert report.reclaimed == 1
    reclaimed = await store.get_task(task_id)
    assert (reclaimed.status, reclaimed.claimed_by, reclaimed.reclaim_count) == ("pending", None, 1)
    assert reclaimed.error_history[-1]["type"] == "HeartbeatTimeout"
    [again], _ = await store.claim("w2", ["a"])
    assert again.id == task_id and again.attempt == 2
    # the first worker's late completion is rejected and changes nothing
    with pytest.raises(StaleAttempt):
        await store.complete_task(worker, task_id, 1, {"late": True})
    await store.complete_task("w2", task_id, 2, {"on": "time"})
    assert (await store.get_task(task_id)).result == {"on": "time"}


async def test_heartbeats_keep_a_task(store: Store, worker: str, clock: FakeClock) -> None:
    await store.enqueue_activity("a", {})
    [t], _ = await store.claim(worker, ["a"])
    for _ in range(5):
        clock.advance(20)
        await store.heartbeat_tasks(worker, [(t.id, t.attempt, None)])
        assert (await reaper(store).run_once()).reclaimed == 0


async def test_poison_guard_dead_letters_a_task_that_keeps_killing_workers(store: Store, worker: str, clock: FakeClock) -> None:
    task_id = await store.enqueue_activity("a", {}, options={"retry_policy": {"max_attempts": 100}})
    r = reaper(store, max_reclaims=2)
    for _ in range(2):
        await store.claim(worker, ["a"])
        clock.advance(31)
        assert (await r.run_once()).reclaimed == 1
    await store.claim(worker, ["a"])
    clock.advance(31)
    report = await r.run_once()
    assert report.poisoned == 1 and report.reclaimed == 0
    assert (await store.get_task(task_id)).status == "dead"
    [entry] = await store.list_dead_letters()
    assert entry.reason == "poison" and len(entry.error_history) == 3


async def test_workers_with_stale_heartbeats_are_marked_lost(store: Store, worker: str, clock: FakeClock) -> None:
    await store.register_worker("w2", activity_types=["a"])
    clock.advance(20)
    await store.worker_heartbeat("w2", 1)
    clock.advance(15)
    report = await reaper(store).run_once()
    assert report.lost_workers == [worker]
    assert {w.id: w.status for w in await store.list_workers()} == {worker: "lost", "w2": "active"}
    assert await store.worker_heartbeat(worker, 0) == "active"  # it was alive after all


async def test_start_to_close_timeout_fails_the_attempt(store: Store, worker: str, clock: FakeClock) -> None:
    task_id = await store.enqueue_activity("a", {}, options={"start_to_close_timeout": 5, "retry_policy": {"jitter": 0}})
    [t], _ = await store.claim(worker, ["a"])
    clock.advance(4)
    await store.heartbeat_tasks(worker, [(t.id, 1, None)])
    assert (await reaper(store).run_once()).timed_out == 0
    clock.advance(2)
    assert (await reaper(store).run_once()).timed_out == 1
    task = await store.get_task(task_id)
    assert task.status == "pending" and task.last_error.startswith("StartToCloseTimeout")


async def test_schedule_to_start_timeout_dead_letters(store: Store, clock: FakeClock) -> None:
    task_id = await store.enqueue_activity("nobody-serves-this", {}, options={"schedule_to_start_timeout": 60})
    clock.advance(61)
    assert (await reaper(store).run_once()).unstarted == 1
    assert (await store.get_task(task_id)).status == "dead"
    assert (await store.list_dead_letters())[0].reason == "schedule_to_start_timeout"


async def test_two_reapers_at_once_take_each_task_back_once(store: Store, worker: str, clock: FakeClock, db: asyncpg.Connection) -> None:
    for i in range(300):
        await store.enqueue_activity("a", {"i": i})
    for _ in range(3):
        await store.claim(worker, ["a"], limit=100)
    clock.advance(31)
    reports = await asyncio.gather(reaper(store, batch_size=50).run_once(), reaper(store, batch_size=50).run_once(),
                                   reaper(store, batch_size=50).run_once())
    # each pass keeps taking batches until nothing is stale; together they must not overlap
    assert sum(r.reclaimed for r in reports) == 300
    counts = await db.fetchrow(
        "SELECT count(*) FILTER (WHERE status = 'pending') AS pending, max(reclaim_count) AS most FROM durable_task_queue"
    )
    assert counts["pending"] == 300 and counts["most"] == 1


async def test_a_pass_sweeps_the_queries_of_gone_callers(pool: asyncpg.Pool, store: Store) -> None:
    """The query sweep runs in every pass; its statement must be valid SQL (it was not: the
    untyped `$1 - interval` compared a timestamp with an interval and failed every pass)."""
    from durable.controlplane.store.workflow_queries import WorkflowQueryStore

    reaper = Reaper(store, ReaperSettings(), queries=WorkflowQueryStore(pool))
    await reaper.run_once()
