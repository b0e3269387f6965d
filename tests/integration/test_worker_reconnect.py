"""The worker survives a control-plane restart: reconnects, re-registers, keeps its running
task and delivers its result (a real `durable controlplane` process, killed and restarted)."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import asyncpg
import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from durable.proto.v1 import durable_pb2 as pb
from durable.proto.v1 import durable_pb2_grpc as pb_grpc
from durable.worker import ActivityContext, App, Worker, WorkerSettings
from durable.worker.testing import RunningWorker, wait_until
from tests.support.controlplane import control_plane_process, free_port, wait_serving


async def _health(port: int) -> int:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service="durable.v1.WorkerService"), timeout=5)
        return reply.status  # type: ignore[no-any-return]


async def test_worker_reconnects_after_the_control_plane_restarts(
    database_url: str, db: asyncpg.Connection
) -> None:
    app = App()
    release = asyncio.Event()
    started: list[str] = []

    @app.activity(name="slow_add")
    async def slow_add(ctx: ActivityContext, input: dict[str, Any]) -> dict[str, Any]:
        started.append(ctx.task_id)
        await release.wait()
        return {"sum": input["a"] + input["b"]}

    port = free_port()
    settings = WorkerSettings(
        GRPC_ADDRESS=f"127.0.0.1:{port}", WORKER_ID=f"reconnect-{uuid.uuid4().hex[:6]}",
        WORKER_HEALTH_PORT=0, WORKER_HEALTH_HOST="127.0.0.1",
        DURABLE_TASK_HEARTBEAT_INTERVAL=0.2, DURABLE_WORKER_HEARTBEAT_INTERVAL=0.2,
        DURABLE_CLAIM_WAIT=1, DURABLE_DRAIN_GRACE_PERIOD=2,
        DURABLE_RECONNECT_INITIAL_BACKOFF=0.05, DURABLE_RECONNECT_MAX_BACKOFF=0.5,
        DURABLE_RPC_TIMEOUT=2,
    )
    with control_plane_process(database_url, port=port) as (first, address):
        await wait_serving(address)
        async with RunningWorker(Worker(app, settings)) as worker:
            await wait_until(lambda: worker.link.connected, timeout=20, what="registered")
            async with grpc.aio.insecure_channel(address) as channel:
                reply = await pb_grpc.ClientServiceStub(channel).EnqueueActivity(
                    pb.EnqueueActivityRequest(activity_type="slow_add",
                                              input_json=json.dumps({"a": 1, "b": 2})))
            await wait_until(lambda: started == [reply.task_id], timeout=20, what="running")
            health_port = worker.health_port or 0
            assert await _health(health_port) == health_pb2.HealthCheckResponse.SERVING

            first.kill()
            first.wait()
            await wait_until(lambda: not worker.link.connected, timeout=20, what="outage seen")
            assert await _health(health_port) == health_pb2.HealthCheckResponse.NOT_SERVING
            release.set()  # the result is ready while the control plane is down
            await wait_until(lambda: len(worker.running) == 1 and worker.running[reply.task_id].phase
                             == "reporting", what="completion pending")

            with control_plane_process(database_url, port=port) as (_, again):
                await wait_serving(again)
                await wait_until(lambda: worker.link.connected, timeout=20, what="reconnected")
                await wait_until(lambda: len(worker.running) == 0, timeout=20, what="completion delivered")
                row = await db.fetchrow(
                    "SELECT status, result, attempt FROM durable_task_queue WHERE id = $1",
                    uuid.UUID(reply.task_id))
                assert row["status"] == "completed" and row["attempt"] == 1
                assert json.loads(row["result"]) == {"sum": 3}
                assert await _health(health_port) == health_pb2.HealthCheckResponse.SERVING
                status = await db.fetchval("SELECT status FROM durable_workers WHERE id = $1",
                                           worker.worker_id)
                assert status == "active"
                assert started == [reply.task_id]  # ran once: nothing was lost or redone
