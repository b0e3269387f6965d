"""Circuit breakers at the limits: a new breaker counts and holds back at once (on every
replica), breaker rows are locked in key order, one silent worker is one failure, and breakers
come from the public surface (the SDK's activity options at registration, control-plane settings)."""

from __future__ import annotations

import asyncio
import random
import uuid
from typing import Any

import asyncpg
import grpc
import pytest

from durable.common.errors import InvalidArgument
from durable.controlplane.reaper import Reaper
from durable.controlplane.settings import BreakerSettings, ReaperSettings
from durable.controlplane.store import Store
from durable.proto.v1 import durable_pb2 as pb
from durable.proto.v1 import durable_pb2_grpc as pb_grpc
from durable.worker import ActivityContext, App, Worker, WorkerSettings
from durable.worker.testing import RunningWorker
from tests.support.clock import FakeClock
from tests.support.controlplane import running_control_plane

async def wait_registered(store: Store, worker_id: str, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while worker_id not in {w.id for w in await store.list_workers()}:
        assert loop.time() < deadline, f"worker {worker_id} did not register within {timeout} s"
        await asyncio.sleep(0.02)


RETRY = {"retry_policy": {"max_attempts": 50, "initial_interval": 0.001, "jitter": 0}}


async def test_a_breaker_made_through_another_replica_counts_and_holds_back_at_once(
    store: Store, pool: asyncpg.Pool, clock: FakeClock, worker: str
) -> None:
    """Repro: the replica that claimed had cached "no breakers" for 2 s; the failures it
    recorded meanwhile were not counted and the breaker never opened."""
    replica = Store(pool, clock=clock, rng=random.Random(1))
    for _ in range(3):
        await store.enqueue_activity("a", {}, options=RETRY)
    [first], _ = await replica.claim(worker, ["a"])  # the replica reads the breaker keys: none
    await store.configure_circuit_breaker("a", {"failure_threshold": 1, "reset_timeout": 60})
    await replica.fail_task(worker, first.id, first.attempt, "down")
    breaker = await store.get_circuit_breaker("a")
    assert (breaker.state, breaker.failure_count) == ("open", 1)
    clock.advance(1)  # the retry is visible again; the breaker holds it back on the replica too
    assert await replica.claim(worker, ["a"], limit=10) == ([], [])
    assert await replica.claim(worker, ["a", "b"], limit=10) == ([], [])  # the several-types claim


async def test_completion_batches_lock_breakers_in_key_order(store: Store, worker: str) -> None:
    names = [f"t{i}" for i in range(12)]
    while list(dict.fromkeys(set(names))) == sorted(names):  # a set order that is not sorted
        names = [f"t{random.randrange(10**6)}" for _ in range(12)]
    await store.register_worker("wk", activity_types=names)
    for name in names:
        await store.configure_circuit_breaker(name, {})
        await store.enqueue_activity(name, {})
    tasks, _ = await store.claim("wk", names, limit=len(names))
    locked: list[str] = []
    real = store._breaker_success

    async def spy(conn: Any, activity_type: str, now: Any, count: int = 1) -> None:
        locked.append(activity_type)
        await real(conn, activity_type, now, count)

    store._breaker_success = spy  # type: ignore[method-assign]
    await store.complete_tasks("wk", [(t.id, t.attempt, {}) for t in tasks])
    assert locked == sorted(names)


async def test_half_open_trials_completed_in_one_batch_each_give_their_slot_back(
    store: Store, worker: str, clock: FakeClock
) -> None:
    """Repro: a batch of completions counted one success for its type, so of two trials that
    completed together one slot stayed taken."""
    await store.configure_circuit_breaker("a", {
        "failure_threshold": 1, "reset_timeout": 10, "half_open_max_trials": 2, "success_threshold": 5})
    for _ in range(3):
        await store.enqueue_activity("a", {}, options=RETRY)
    [first], _ = await store.claim(worker, ["a"])
    await store.fail_task(worker, first.id, first.attempt, "down")
    assert (await store.get_circuit_breaker("a")).state == "open"
    clock.advance(11)
    trials, _ = await store.claim(worker, ["a"], limit=10)
    assert len(trials) == 2
    assert [e for _, e in await store.complete_tasks(worker, [(t.id, t.attempt, {}) for t in trials])] == [None, None]
    breaker = await store.get_circuit_breaker("a")
    assert (breaker.state, breaker.success_count, breaker.half_open_in_flight) == ("half_open", 2, 0)


async def test_one_silent_worker_holding_several_tasks_is_one_failure(
    store: Store, worker: str, clock: FakeClock
) -> None:
    """Repro: a crashed worker holding 3 tasks counted 3 failures and opened a threshold-3 breaker."""
    await store.configure_circuit_breaker("a", {"failure_threshold": 3})
    for _ in range(3):
        await store.enqueue_activity("a", {})
    tasks, _ = await store.claim(worker, ["a"], limit=3)
    assert len(tasks) == 3
    clock.advance(60)
    report = await Reaper(store, ReaperSettings(stale_after=30)).run_once()
    assert report.reclaimed == 3
    breaker = await store.get_circuit_breaker("a")
    assert (breaker.state, breaker.failure_count) == ("closed", 1)


def test_a_bad_circuit_breaker_option_is_one_clear_error() -> None:
    app = App()
    with pytest.raises(InvalidArgument, match="circuit_breaker.failure_threshold"):
        app.activity(circuit_breaker={"failure_threshold": 0})(lambda ctx, i: i)
    with pytest.raises(InvalidArgument, match="circuit_breaker must be True"):
        app.activity(circuit_breaker="yes")(lambda ctx, i: i)  # type: ignore[arg-type]


async def test_breakers_from_the_sdk_and_the_settings(database_url: str, store: Store) -> None:
    app = App()

    @app.activity(circuit_breaker={"failure_threshold": 2})
    def payments(ctx: ActivityContext, data: dict[str, Any]) -> dict[str, Any]:
        return data

    @app.activity(circuit_breaker=True)
    def mail(ctx: ActivityContext, data: dict[str, Any]) -> dict[str, Any]:
        return data

    @app.activity
    def plain(ctx: ActivityContext, data: dict[str, Any]) -> dict[str, Any]:
        return data

    defaults = BreakerSettings(DURABLE_CIRCUIT_BREAKERS="ledger", DURABLE_CIRCUIT_BREAKER_RESET_TIMEOUT_SECONDS=7)
    async with running_control_plane(database_url, poll_interval=0.2, breakers=defaults) as address:
        ledger = await store.get_circuit_breaker("ledger")  # from DURABLE_CIRCUIT_BREAKERS at start
        assert (ledger.failure_threshold, ledger.reset_timeout_seconds) == (5, 7)
        worker = Worker(app, WorkerSettings(
            GRPC_ADDRESS=address, WORKER_ID=f"bw-{uuid.uuid4().hex[:6]}", WORKER_HEALTH_PORT=0,
            WORKER_HEALTH_HOST="127.0.0.1", DURABLE_CLAIM_WAIT=1))
        async with RunningWorker(worker):
            await wait_registered(store, worker.worker_id)
            pay = await store.get_circuit_breaker("payments")
            assert (pay.failure_threshold, pay.reset_timeout_seconds, pay.window_seconds) == (2, 7, 60)
            assert (await store.get_circuit_breaker("mail")).failure_threshold == 5
            assert {b.key for b in await store.list_circuit_breakers()} == {"ledger", "payments", "mail"}
        async with grpc.aio.insecure_channel(address) as channel:
            stub = pb_grpc.WorkerServiceStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as bad:
                await stub.RegisterWorker(pb.RegisterWorkerRequest(
                    worker_id="w-bad", activity_types=["x"],
                    circuit_breakers=[pb.ActivityCircuitBreaker(activity_type="y")]))
            assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "not among the worker's activity_types" in (bad.value.details() or "")
            with pytest.raises(grpc.aio.AioRpcError) as negative:
                await stub.RegisterWorker(pb.RegisterWorkerRequest(
                    worker_id="w-bad", activity_types=["x"],
                    circuit_breakers=[pb.ActivityCircuitBreaker(activity_type="x", failure_threshold=-1)]))
            assert "circuit_breakers[0].failure_threshold" in (negative.value.details() or "")


def test_a_breaker_change_notification_makes_the_store_forget_its_cache() -> None:
    from durable.controlplane.dispatch import TaskSignals

    signals = TaskSignals()
    told: list[int] = []
    signals.on_breakers_changed = lambda: told.append(1)
    signals.notify(["activity:a=1", "breakers:changed=1"])
    assert told == [1]
