"""The client commands of `durable`, run as a user would, against a real control plane."""

from __future__ import annotations

import asyncio
import os
import sys

import asyncpg
import grpc

from durable.proto.v1 import durable_pb2 as pb
from durable.proto.v1 import durable_pb2_grpc as pb_grpc
from tests.support.controlplane import running_control_plane


async def durable(address: str, *args: str) -> tuple[int, str]:
    env = {**os.environ, "GRPC_ADDRESS": address}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "durable.cli", *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=60)
    return proc.returncode or 0, out.decode()


async def test_workflow_dlq_and_stats_commands(database_url: str, db: asyncpg.Connection) -> None:
    async with running_control_plane(database_url) as address:
        code, out = await durable(address, "workflows", "start", "order", "--id", "order-1", "--input", '{"n": 1}')
        assert code == 0 and "started order-1" in out
        code, out = await durable(address, "workflows", "start", "order", "--id", "order-1")
        assert code == 0 and "already exists: order-1" in out
        code, out = await durable(address, "workflows", "signal", "order-1", "paid", "--payload", '{"amount": 5}')
        assert code == 0 and "recorded as event 2" in out
        code, out = await durable(address, "workflows", "show", "order-1")
        assert code == 0 and "WorkflowStarted" in out and "SignalReceived" in out and "status:   pending" in out
        code, out = await durable(address, "workflows", "list")
        assert code == 0 and "order-1" in out.splitlines()[2]
        code, out = await durable(address, "stats")
        assert code == 0 and "workflow  order" in out
        code, out = await durable(address, "workflows", "cancel", "order-1")
        assert code == 0 and "cancel requested for order-1" in out
        assert await db.fetchval("SELECT status FROM durable_workflow_instances") == "pending"
        code, out = await durable(address, "workflows", "cancel", "order-1", "--terminate")
        assert code == 0 and "cancelled order-1" in out
        assert await db.fetchval("SELECT status FROM durable_workflow_instances") == "cancelled"

        # a dead-lettered task, listed and requeued from the command line
        await db.execute("INSERT INTO durable_workers (id, activity_types) VALUES ('w', '{a}')")
        await db.execute("INSERT INTO durable_task_queue (activity_type, max_attempts) VALUES ('a', 1)")
        task = await db.fetchrow("UPDATE durable_task_queue SET status = 'claimed', claimed_by = 'w', claimed_at = now(), "
                                 "heartbeat_at = now(), attempt = 1 WHERE kind = 'activity' RETURNING id")
        async with grpc.aio.insecure_channel(address) as channel:
            await pb_grpc.WorkerServiceStub(channel).FailTask(pb.FailTaskRequest(
                worker_id="w", task_id=str(task["id"]), attempt=1, failure=pb.Failure(message="boom", type="Boom")))
        code, out = await durable(address, "dlq", "list")
        assert code == 0 and "Boom: boom" in out
        dlq_id = await db.fetchval("SELECT id FROM durable_dead_letter_queue")
        code, out = await durable(address, "dlq", "requeue", str(dlq_id))
        assert code == 0 and "requeued as task" in out


async def test_errors_are_clear(database_url: str) -> None:
    async with running_control_plane(database_url) as address:
        code, out = await durable(address, "workflows", "show", "missing")
        assert code == 1 and "workflow 'missing' does not exist" in out
        code, out = await durable(address, "workflows", "start", "order", "--input", "[1, 2]")
        assert code == 2 and "--input must be a JSON object" in out
    code, out = await durable("127.0.0.1:1", "stats")
    assert code == 1 and "is `durable controlplane` running there?" in out
