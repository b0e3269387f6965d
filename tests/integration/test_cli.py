"""The client commands of `durable`, run as a user would, against a real control plane."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import grpc
import pytest

from durable.client import Client
from durable.controlplane.migrator import migrate_url
from durable.proto.v1 import durable_pb2 as pb
from durable.proto.v1 import durable_pb2_grpc as pb_grpc
from tests.support.controlplane import free_port, running_control_plane
from tests.support.pg_control import embedded_available, restartable_postgres
from tests.support.postgres import create_database
from tests.support.processes import wait_for, worker_process

ISO_MS_TZ = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00$")


def _env(address: str) -> dict[str, str]:
    return {**os.environ, "GRPC_ADDRESS": address}


async def durable(address: str, *args: str, stdin: bytes | None = None, timeout: float = 90) -> tuple[int, str]:
    """Run `durable ARGS`; (exit code, stdout and stderr together)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "durable.cli", *args, env=_env(address),
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(stdin), timeout=timeout)
    return proc.returncode or 0, out.decode()


class Background:
    """A `durable` command left running; its stderr is read line by line as it comes."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.err: list[str] = []
        self._reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        assert self.proc.stderr is not None
        async for line in self.proc.stderr:
            self.err.append(line.decode())

    def said(self, text: str) -> bool:
        return any(text in line for line in self.err)

    async def finish(self, timeout: float = 60) -> tuple[int, str, str]:
        assert self.proc.stdout is not None
        out = await asyncio.wait_for(self.proc.stdout.read(), timeout)
        code = await asyncio.wait_for(self.proc.wait(), timeout)
        await self._reader
        return code, out.decode(), "".join(self.err)


@asynccontextmanager
async def background(address: str, *args: str) -> AsyncIterator[Background]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "durable.cli", *args, env=_env(address), stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    job = Background(proc)
    try:
        yield job
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


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
        code, out = await durable(address, "workflows", "start", "order", "--input", "[1, 2")
        assert code == 2 and "--input is not valid JSON" in out
    code, out = await durable("127.0.0.1:1", "stats")
    assert code == 6 and "cannot reach the control plane at 127.0.0.1:1" in out
    assert "is `durable controlplane` running there?" in out and "Traceback" not in out


# -- item 5: exit codes, and --wait rides out an outage -----------------------------------------


async def test_start_wait_exits_with_how_the_workflow_ended(database_url: str, tmp_path: Path) -> None:
    async with running_control_plane(database_url) as address:
        with worker_process(address, "cli-worker", "tests.support.cli_app:app", log_dir=tmp_path):
            code, out = await durable(address, "workflows", "start", "echo_flow", "--input", '{"x": 1}', "--wait")
            assert code == 0, out
            assert 'completed: {"echo":{"x":1}}' in out and "echo[step]" in out

            code, out = await durable(address, "workflows", "start", "doomed_flow", "--wait")
            assert code == 3, out
            assert "failed: " in out and "this never works" in out

            code, out = await durable(address, "workflows", "start", "nobody_serves", "--id", "idle-1",
                                      "--wait", "--timeout", "0.5")
            assert code == 5, out
            assert "workflow idle-1 is still pending after" in out

            # cancelled while a `start --wait` waits for it
            async with background(address, "workflows", "start", "nobody_serves", "--id", "idle-2",
                                  "--wait", "--timeout", "60") as waiting:
                async with Client(address) as client:
                    async def started() -> bool:
                        return any(v.id == "idle-2" for v in await client.list_workflows())

                    await wait_for(started, 30, "idle-2 to start")
                    await client.cancel_workflow("idle-2", "test", terminate=True)
                code, out, err = await waiting.finish()
            assert code == 4, out + err
            assert "cancelled: " in out

            code, out = await durable(address, "workflows", "wait", "idle-2")
            assert code == 4 and "cancelled: " in out
            code, out = await durable(address, "workflows", "wait", "idle-1", "--timeout", "0")
            assert code == 5
    code, out = await durable(address, "workflows", "start", "echo_flow", "--wait", "--timeout", "1")
    assert code == 6 and "cannot reach the control plane" in out and "gave up starting echo_flow after 1 s" in out


async def test_start_wait_says_when_the_workflow_is_blocked(database_url: str, tmp_path: Path) -> None:
    async with running_control_plane(database_url) as address:
        with worker_process(address, "cli-blocked", "tests.support.cli_app:app", log_dir=tmp_path):
            async with background(address, "workflows", "start", "broken_flow", "--wait", "--timeout", "120") as waiting:
                await wait_for(lambda: waiting.said("is blocked, its decisions fail"), 60, "the blocked line")
    line = next(line for line in waiting.err if "is blocked" in line)
    assert "a bug in the workflow code" in line and "deploy fixed code" in line


async def test_wait_rides_out_a_control_plane_that_is_away(database_url: str) -> None:
    port = free_port()
    address = f"127.0.0.1:{port}"
    async with running_control_plane(database_url, address=address):
        code, _ = await durable(address, "workflows", "start", "nobody_serves", "--id", "away-1")
        assert code == 0
    # nothing listens now: the waiting command says so once and keeps trying
    async with background(address, "workflows", "wait", "away-1", "--timeout", "120") as waiting:
        await wait_for(lambda: waiting.said(f"cannot reach the control plane at {address}"), 30, "the outage line")
        async with running_control_plane(database_url, address=address):
            async with Client(address) as client:
                await client.cancel_workflow("away-1", "test", terminate=True)
            code, out, err = await waiting.finish()
    assert code == 4, out + err
    assert f"the control plane at {address} answers again" in err
    assert sum("cannot reach the control plane" in line for line in err.splitlines()) == 1, err

    # `start --wait` rides it out too, from the start call on (a retried start is idempotent)
    async with background(address, "workflows", "start", "nobody_serves", "--wait", "--timeout", "120") as waiting:
        await wait_for(lambda: waiting.said(f"cannot reach the control plane at {address}"), 30, "the outage line")
        async with running_control_plane(database_url, address=address):
            async with Client(address) as client:
                async def one_started() -> list[str]:
                    return [v.id for v in await client.list_workflows(workflow_type="nobody_serves")
                            if v.id != "away-1"]

                [started] = await wait_for(one_started, 30, "the start to go through")
                await client.cancel_workflow(started, "test", terminate=True)
            code, out, err = await waiting.finish()
    assert code == 4, out + err
    assert f"started {started}" in out and "cancelled: " in out


@pytest.mark.skipif(bool(os.environ.get("DATABASE_URL")) or not embedded_available(),
                    reason="needs a PostgreSQL it can stop (DATABASE_URL names an external server)")
async def test_wait_rides_out_a_database_outage_and_says_which_side_failed() -> None:
    with restartable_postgres() as pg:
        url = pg.url(await create_database(pg.admin_url, prefix="durable_cli"))
        await migrate_url(url)
        async with running_control_plane(url, health_interval=0.2) as address:
            code, _ = await durable(address, "workflows", "start", "nobody_serves", "--id", "db-1")
            assert code == 0
            await asyncio.to_thread(pg.stop, "fast")
            code, out = await durable(address, "stats")
            assert code == 6, out
            assert f"the control plane at {address} answered, but it cannot reach its database" in out
            assert "is `durable controlplane` running" not in out  # it is: the other side failed
            async with background(address, "workflows", "wait", "db-1", "--timeout", "120") as waiting:
                await wait_for(lambda: waiting.said("cannot reach its database"), 30, "the outage line")
                await asyncio.to_thread(pg.start)
                async with Client(address) as client:
                    async def cancelled() -> bool:
                        try:
                            await client.cancel_workflow("db-1", "test", terminate=True)
                        except Exception:
                            return False
                        return True

                    await wait_for(cancelled, 60, "the cancel to go through")
                code, out, err = await waiting.finish()
    assert code == 4, out + err


# -- item 6: --input @file and - -----------------------------------------------------------------


async def test_input_from_a_file_and_from_stdin(database_url: str, tmp_path: Path) -> None:
    big = {"text": "x" * 300_000}  # larger than one argument may be (128 KiB on Linux)
    path = tmp_path / "input.json"
    path.write_text(json.dumps(big))
    async with running_control_plane(database_url) as address:
        code, out = await durable(address, "workflows", "start", "order", "--id", "from-file", "--input", f"@{path}")
        assert code == 0, out
        code, out = await durable(address, "workflows", "start", "order", "--id", "from-stdin", "--input", "-",
                                  stdin=json.dumps(big).encode())
        assert code == 0, out
        code, out = await durable(address, "workflows", "signal", "from-file", "paid", "--payload", "-",
                                  stdin=b'{"amount": 5}')
        assert code == 0, out
        async with Client(address) as client:
            assert (await client.describe_workflow("from-file")).input == big
            assert (await client.describe_workflow("from-stdin")).input == big
            assert (await client.full_history("from-file"))[-1].data["payload"] == {"amount": 5}

        code, out = await durable(address, "workflows", "start", "order", "--input", f"@{tmp_path / 'missing.json'}")
        assert code == 2 and "cannot read" in out and "No such file or directory" in out
        code, out = await durable(address, "workflows", "start", "order", "--input", "-", stdin=b"[1")
        assert code == 2 and "--input - (standard input) is not valid JSON" in out


# -- item 7: show --json and the full history ----------------------------------------------------


async def test_show_prints_the_full_history_as_json_and_as_a_table(database_url: str, tmp_path: Path) -> None:
    long_text = "y" * 500
    async with running_control_plane(database_url) as address:
        with worker_process(address, "cli-show", "tests.support.cli_app:app", log_dir=tmp_path):
            code, out = await durable(address, "workflows", "start", "flaky_flow", "--id", "shown",
                                      "--input", json.dumps({"long": long_text}), "--wait")
            assert code == 0, out

        code, out = await durable(address, "workflows", "show", "shown", "--json")
        assert code == 0
        shown = json.loads(out)  # one object, nothing else on stdout
        assert set(shown) == {"workflow", "events"}
        workflow = shown["workflow"]
        assert set(workflow) == {"id", "workflow_type", "status", "input", "result", "error", "created_at",
                                 "updated_at", "started_at", "completed_at", "last_event_seq",
                                 "decided_through_seq", "replay_through_seq", "parent_workflow_id", "run_number",
                                 "history_bytes", "children", "runs"}
        assert workflow["id"] == "shown" and workflow["status"] == "completed"
        assert workflow["input"] == {"long": long_text} and workflow["result"] == {"attempt": 2}
        assert workflow["error"] is None
        for key in ("created_at", "updated_at", "completed_at"):
            assert ISO_MS_TZ.match(workflow[key]), workflow[key]
        events = shown["events"]
        assert [e["sequence_num"] for e in events] == list(range(1, workflow["last_event_seq"] + 1))
        assert [e["event_type"] for e in events][0] == "WorkflowStarted"
        assert "ActivityCompleted" in [e["event_type"] for e in events]
        for event in events:
            assert set(event) == {"sequence_num", "event_type", "data", "created_at"}
            assert isinstance(event["data"], dict) and ISO_MS_TZ.match(event["created_at"])
        assert events[0]["data"]["input"] == {"long": long_text}  # whole, decoded
        # ... and it is what `durable replay --history` reads
        history_file = tmp_path / "shown.json"
        history_file.write_text(out)
        code, replayed = await durable(address, "replay", "--app", "tests.support.cli_app:app",
                                       "--history", str(history_file))
        assert code == 0, replayed
        assert "ok      shown (flaky_flow" in replayed

        code, out = await durable(address, "workflows", "show", "shown")
        assert code == 0
        completed = next(line for line in out.splitlines() if "ActivityCompleted" in line)
        assert "flaky[step]" in completed and "2 (1 retry)" in completed
        step_row = next(line for line in out.splitlines() if line.startswith("flaky[step]"))
        assert "completed" in step_row and "2 of " in step_row and "1: NotYet: not yet" in step_row, out
        assert long_text not in out  # cut by default ...
        assert re.search(r"created:  \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", out)
        code, out = await durable(address, "workflows", "show", "shown", "--full")
        assert code == 0 and long_text in out  # ... whole on request


async def test_show_makes_a_retry_in_waiting_visible(database_url: str, tmp_path: Path) -> None:
    async with running_control_plane(database_url) as address:
        with worker_process(address, "cli-retry", "tests.support.cli_app:app", log_dir=tmp_path):
            async with Client(address) as client:
                await client.start_workflow("stubborn_flow", {}, workflow_id="later")

                async def failed_once() -> bool:
                    tasks = [t for t in await client.workflow_tasks("later", include_finished=True)
                             if t.kind == "activity"]
                    return bool(tasks) and tasks[0].attempt == 1 and tasks[0].status == "pending"

                await wait_for(failed_once, 30, "the first attempt to fail")
            code, out = await durable(address, "workflows", "show", "later")
    assert code == 0, out
    row = next(line for line in out.splitlines() if line.startswith("stubborn[step]"))
    assert "pending (retry at 20" in row and "1 of " in row and "1: Later: try again in an hour" in row, out


# -- item 8: an existing id with another type ----------------------------------------------------


async def test_starting_an_existing_id_with_another_type_is_an_error(database_url: str) -> None:
    async with running_control_plane(database_url) as address:
        code, out = await durable(address, "workflows", "start", "order", "--id", "same")
        assert code == 0
        code, out = await durable(address, "workflows", "start", "order", "--id", "same")
        assert code == 0 and "already exists: same" in out
        code, out = await durable(address, "workflows", "start", "invoice", "--id", "same")
        assert code == 1, out
        assert "workflow 'same' already exists with type 'order', not 'invoice'" in out
