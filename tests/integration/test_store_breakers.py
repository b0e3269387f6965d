"""Circuit breakers: closed -> open -> half-open -> closed, with concurrent updates."""

from __future__ import annotations

import asyncio

import asyncpg

from durable.controlplane.store import Store
from tests.support.clock import FakeClock


async def _fail_one(store: Store, worker: str, key: str) -> None:
    tasks, _ = await store.claim(worker, [key])
    for t in tasks:
        await store.fail_task(worker, t.id, t.attempt, "down", error_type="Down")


async def test_open_half_open_close(store: Store, worker: str, clock: FakeClock) -> None:
    await store.configure_circuit_breaker("a", {"failure_threshold": 3, "window": 60, "reset_timeout": 30,
                                                "half_open_max_trials": 1, "success_threshold": 2})
    for _ in range(5):
        await store.enqueue_activity("a", {}, options={"retry_policy": {"max_attempts": 50, "initial_interval": 0.001, "jitter": 0}})
    for _ in range(3):
        await _fail_one(store, worker, "a")
        clock.advance(0.01)
    breaker = await store.get_circuit_breaker("a")
    assert (breaker.state, breaker.failure_count) == ("open", 3)
    # open: nothing of type a is handed out, and waiting burns no attempts
    assert await store.claim(worker, ["a"], limit=10) == ([], [])
    clock.advance(31)
    tasks, _ = await store.claim(worker, ["a"], limit=10)
    assert len(tasks) == 1  # half-open: one trial
    assert (await store.get_circuit_breaker("a")).state == "half_open"
    assert await store.claim(worker, ["a"], limit=10) == ([], [])  # the trial slot is taken
    await store.complete_task(worker, tasks[0].id, tasks[0].attempt, {})
    tasks, _ = await store.claim(worker, ["a"], limit=10)
    assert len(tasks) == 1
    await store.complete_task(worker, tasks[0].id, tasks[0].attempt, {})
    closed = await store.get_circuit_breaker("a")
    assert (closed.state, closed.failure_count) == ("closed", 0)
    tasks, _ = await store.claim(worker, ["a"], limit=10)
    assert len(tasks) == 3


async def test_half_open_failure_reopens(store: Store, worker: str, clock: FakeClock) -> None:
    await store.configure_circuit_breaker("a", {"failure_threshold": 1, "reset_timeout": 10})
    for _ in range(3):
        await store.enqueue_activity("a", {}, options={"retry_policy": {"initial_interval": 0.001, "jitter": 0}})
    await _fail_one(store, worker, "a")
    assert (await store.get_circuit_breaker("a")).state == "open"
    clock.advance(11)
    await _fail_one(store, worker, "a")
    assert (await store.get_circuit_breaker("a")).state == "open"


async def test_failures_outside_the_window_do_not_add_up(store: Store, worker: str, clock: FakeClock) -> None:
    await store.configure_circuit_breaker("a", {"failure_threshold": 2, "window": 10})
    for _ in range(2):
        await store.enqueue_activity("a", {})
    await _fail_one(store, worker, "a")
    clock.advance(11)
    await _fail_one(store, worker, "a")
    b = await store.get_circuit_breaker("a")
    assert (b.state, b.failure_count) == ("closed", 1)


async def test_concurrent_failures_are_all_counted(store: Store, pool: asyncpg.Pool) -> None:
    await store.configure_circuit_breaker("a", {"failure_threshold": 1000, "window": 600})
    n = 120
    for _ in range(n):
        await store.enqueue_activity("a", {})
    workers = [f"cw{i}" for i in range(6)]
    for w in workers:
        await store.register_worker(w, activity_types=["a"])

    async def run(w: str) -> None:
        while True:
            tasks, _ = await store.claim(w, ["a"], limit=3)
            if not tasks:
                return
            await asyncio.gather(*(store.fail_task(w, t.id, t.attempt, "x", non_retryable=True) for t in tasks))

    await asyncio.gather(*(run(w) for w in workers))
    assert (await store.get_circuit_breaker("a")).failure_count == n


async def test_types_without_a_breaker_are_unaffected(store: Store, worker: str) -> None:
    await store.configure_circuit_breaker("b", {"failure_threshold": 1})
    await store.enqueue_activity("b", {})
    await _fail_one(store, worker, "b")
    await store.enqueue_activity("a", {})
    tasks, _ = await store.claim(worker, ["a", "b"], limit=10)
    assert [t.activity_type for t in tasks] == ["a"]


async def test_a_handed_back_trial_frees_its_slot(store: Store, worker: str, clock: FakeClock) -> None:
    await store.configure_circuit_breaker("a", {"failure_threshold": 1, "reset_timeout": 10, "half_open_max_trials": 1})
    for _ in range(2):
        await store.enqueue_activity("a", {}, options={"retry_policy": {"initial_interval": 0.001, "jitter": 0}})
    await _fail_one(store, worker, "a")
    clock.advance(11)
    [trial], _ = await store.claim(worker, ["a"])
    assert (await store.get_circuit_breaker("a")).half_open_in_flight == 1
    assert await store.release_tasks(worker) == 1  # a draining worker hands the trial back
    assert (await store.get_circuit_breaker("a")).half_open_in_flight == 0
    again, _ = await store.claim(worker, ["a"])
    assert len(again) == 1  # the slot is usable again


async def test_unused_trial_slots_go_back(store: Store, worker: str, clock: FakeClock) -> None:
    """A half-open breaker reserves trial slots for a claim; slots the claim could not fill
    (nothing visible yet) are returned at once."""
    await store.configure_circuit_breaker("a", {"failure_threshold": 1, "reset_timeout": 10, "half_open_max_trials": 3})
    await store.enqueue_activity("a", {}, options={"retry_policy": {"initial_interval": 30, "jitter": 0}})
    await _fail_one(store, worker, "a")  # opens; the task retries in 30 s
    clock.advance(11)
    assert await store.claim(worker, ["a"], limit=5) == ([], [])  # half-open, nothing visible
    breaker = await store.get_circuit_breaker("a")
    assert (breaker.state, breaker.half_open_in_flight) == ("half_open", 0)


async def test_a_trial_cancelled_with_its_workflow_frees_its_slot(store: Store, worker: str, clock: FakeClock) -> None:
    """A half-open trial that belongs to a workflow being cancelled will neither succeed nor
    fail: its slot goes back with the cancellation, or the breaker would admit no trial again."""
    await store.configure_circuit_breaker("a", {"failure_threshold": 1, "reset_timeout": 10, "half_open_max_trials": 1})
    await store.enqueue_activity("a", {}, options={"retry_policy": {"max_attempts": 1}})
    await _fail_one(store, worker, "a")  # opens the breaker
    clock.advance(11)
    wf, _ = await store.start_workflow("wf", {})
    [], [d] = await store.claim(worker, [], ["wf"])
    await store.complete_workflow_task(worker, d.task.id, d.task.attempt, 1, [
        {"type": "schedule_activity", "activity_id": "s1", "activity_type": "a", "input": {}}])
    [trial], _ = await store.claim(worker, ["a"])
    assert trial.workflow_id == wf.id
    breaker = await store.get_circuit_breaker("a")
    assert (breaker.state, breaker.half_open_in_flight) == ("half_open", 1)
    assert await store.cancel_workflow(wf.id, "stop", terminate=True) == 1
    assert (await store.get_circuit_breaker("a")).half_open_in_flight == 0
    await store.enqueue_activity("a", {})
    again, _ = await store.claim(worker, ["a"])
    assert len(again) == 1  # the slot is usable again
