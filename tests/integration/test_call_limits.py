"""Bounded load: short calls beyond DURABLE_MAX_CONCURRENT_RPCS are refused at once with one
line naming the setting (RESOURCE_EXHAUSTED, Overloaded), while waiting calls (long-poll
claims, WaitWorkflow) have their own budget and are neither counted nor refused; health
checks always answer."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import asyncpg
import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from durable.client import Client
from durable.common.errors import Overloaded
from durable.common.status import ERROR_TYPE_KEY
from durable.controlplane.dispatch import ended_key
from durable.proto.v1 import durable_pb2 as pb
from durable.proto.v1 import durable_pb2_grpc as pb_grpc
from tests.support.controlplane import running_plane


async def until(condition: Callable[[], Awaitable[bool] | bool], what: str, deadline: float = 15.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    while True:
        value = condition()
        if not isinstance(value, bool):
            value = await value
        if value:
            return
        if loop.time() > end:
            raise AssertionError(f"timed out waiting until {what}")
        await asyncio.sleep(0.02)


async def lock_waiters(db: asyncpg.Connection) -> int:
    return int(await db.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"))


async def test_short_calls_over_the_cap_are_refused_and_waiting_calls_are_not(
    database_url: str, db: asyncpg.Connection,
) -> None:
    async with running_plane(database_url, max_concurrent_rpcs=2, max_waiting_rpcs=50) as plane, \
            Client(plane.address) as client, grpc.aio.insecure_channel(plane.address) as channel:
        store, signals = plane.store, plane.signals
        assert store is not None and signals is not None
        await store.register_worker("w1", workflow_types=["idle"])
        workflow_id, _ = await client.start_workflow("wf", {}, workflow_id="held")
        # waiting calls first: ten waits and a long-poll claim, more than the short cap
        waits = [asyncio.ensure_future(client.wait_workflow(workflow_id, timeout=60)) for _ in range(10)]
        workers = pb_grpc.WorkerServiceStub(channel)
        claim = asyncio.ensure_future(workers.ClaimTasks(pb.ClaimTasksRequest(
            worker_id="w1", workflow_types=["idle"], max_tasks=1, wait_seconds=30)))
        await until(lambda: signals.waiting_on(ended_key(workflow_id)) == 10, "the waits wait")
        await until(lambda: claim.done() or signals.waiting_on("workflow:idle") == 1, "the long-poll waits too")
        assert not claim.done(), claim.exception() or claim.result()

        # two short calls in flight, held by a row lock the test takes
        async with db.transaction():
            await db.execute("SELECT 1 FROM durable_workflow_instances WHERE id = $1 FOR UPDATE", workflow_id)
            signals_sent = [asyncio.ensure_future(client.signal_workflow(workflow_id, "go", {"i": i})) for i in range(2)]
            await until(lambda: lock_waiters(db), "the signals wait on the lock")
            await until(lambda: plane.limiter is not None and plane.limiter.short.in_flight == 2, "two short calls in flight")

            with pytest.raises(Overloaded) as refused:
                await client.describe_workflow(workflow_id)
            assert "DURABLE_MAX_CONCURRENT_RPCS" in str(refused.value)
            assert "\n" not in str(refused.value)
            clients = pb_grpc.ClientServiceStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as raw:
                await clients.DescribeWorkflow(pb.DescribeWorkflowRequest(workflow_id=workflow_id))
            assert raw.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert (ERROR_TYPE_KEY, "Overloaded") in tuple(raw.value.trailing_metadata() or ())
            # a waiting call is still admitted, and so is a health check
            extra_wait = asyncio.ensure_future(client.wait_workflow(workflow_id, timeout=60))
            await until(lambda: signals.waiting_on(ended_key(workflow_id)) == 11, "one more wait is admitted")
            health = health_pb2_grpc.HealthStub(channel)
            answer = await health.Check(health_pb2.HealthCheckRequest(service=""))
            assert answer.status == health_pb2.HealthCheckResponse.SERVING
            assert not claim.done() and not any(w.done() for w in waits)
        assert len(set(await asyncio.gather(*signals_sent))) == 2  # both served once the lock went
        assert (await client.describe_workflow(workflow_id)).id == workflow_id  # room again
        assert plane.limiter is not None and plane.limiter.short.refused == 2
        assert plane.limiter.waiting.refused == 0
        registry = plane.metrics.registry
        assert registry.get_sample_value("durable_rpcs_refused_total", {"budget": "short"}) == 2
        assert registry.get_sample_value("durable_rpcs_in_flight", {"budget": "waiting"}) == 12  # 11 waits, 1 claim
        await client.cancel_workflow(workflow_id, terminate=True)
        await asyncio.wait_for(asyncio.gather(*waits, extra_wait), timeout=30)
        claim.cancel()


async def test_waiting_calls_over_their_own_cap_are_refused(database_url: str) -> None:
    async with running_plane(database_url, max_waiting_rpcs=3) as plane, Client(plane.address) as client:
        signals = plane.signals
        assert signals is not None
        workflow_id, _ = await client.start_workflow("wf", {}, workflow_id="waited")
        waits = [asyncio.ensure_future(client.wait_workflow(workflow_id, timeout=60)) for _ in range(3)]
        await until(lambda: signals.waiting_on(ended_key(workflow_id)) == 3, "three waits")
        with pytest.raises(Overloaded) as refused:
            await client.wait_workflow(workflow_id, timeout=60)
        assert "DURABLE_MAX_WAITING_RPCS" in str(refused.value)
        assert (await client.describe_workflow(workflow_id)).status == "pending"  # short calls unaffected
        await client.cancel_workflow(workflow_id, terminate=True)
        await asyncio.wait_for(asyncio.gather(*waits), timeout=30)
