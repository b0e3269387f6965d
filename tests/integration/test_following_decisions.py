"""Following decisions (durable.worker.following): the worker that keeps a workflow's instance
makes the next decision when the workflow's activity completes there, and sends it with the
completion; the control plane applies it in the completion's transaction, or queues a
decision task as without it when the history moved. Real processes here; the store's rules
are in test_workflow_batches.py."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from durable.client import Client
from durable.worker.workflows.history import parse_time
from durable.worker.workflows.replay import check_history
from tests.support.controlplane import control_plane_process, wait_serving
from tests.support.postgres import create_database, drop_database, with_database
from tests.support.processes import worker_process
from tests.support.sticky_app import app

APP = "tests.support.sticky_app:app"


@pytest.fixture
async def database(pg_admin_url: str, template_database: str) -> AsyncIterator[str]:
    name = await create_database(pg_admin_url, template=template_database)
    try:
        yield with_database(pg_admin_url, name)
    finally:
        await drop_database(pg_admin_url, name)


async def test_one_worker_decides_each_step_on_its_completion_and_the_history_replays(
    database: str, tmp_path: Path
) -> None:
    with control_plane_process(database) as (_, address), \
            worker_process(address, "follow-1", APP, log_dir=tmp_path, MAX_CONCURRENT_TASKS="16"):
        await wait_serving(address)
        async with Client(address) as client:
            ids = [(await client.start_workflow("steps", {"n": 12}))[0] for _ in range(3)]
            clock_id, _ = await client.start_workflow("clock_and_keys", {"n": 5})
            for workflow_id in ids:
                view = await client.wait_workflow(workflow_id, timeout=60)
                assert (view.status, view.result) == ("completed", 12), view.error
            clock = await client.wait_workflow(clock_id, timeout=60)
            assert clock.status == "completed", clock.error
    conn = await asyncpg.connect(database)
    try:
        for workflow_id in [*ids, clock_id]:
            # one worker with slots to spare: every activity was handed to it in the answer of
            # the decision that scheduled it (eager), after the instance was told where the
            # history ends, so only the first decision was a task; every other rode on a
            # completion
            tasks = await conn.fetchval(
                "SELECT count(*) FROM durable_task_queue WHERE workflow_id = $1 AND kind = 'workflow'", workflow_id)
            assert tasks == 1, workflow_id
            rows = await conn.fetch(
                "SELECT sequence_num, event_type, event_data::text AS data, created_at FROM durable_workflow_events "
                "WHERE workflow_id = $1 ORDER BY sequence_num", workflow_id)
            history = [_event(r) for r in rows]
            workflow_type = "steps" if workflow_id in ids else "clock_and_keys"
            outcome = check_history(app.workflows[workflow_type], workflow_id, history)
            assert outcome.error is None, outcome.error
        # what the code saw live is what the stored history says: the completions' times (the
        # worker's stamp, stored with the event) and the result's keys in jsonb's order
        completed = [e for e in (_event(r) for r in await conn.fetch(
            "SELECT sequence_num, event_type, event_data::text AS data, created_at FROM durable_workflow_events "
            "WHERE workflow_id = $1 AND event_type = 'ActivityCompleted' ORDER BY sequence_num", clock_id))]
        assert clock.result["times"] == [e.created_at.isoformat() for e in completed[:5]]
        assert clock.result["keys"] == ["a", "cc", "bbb"]
    finally:
        await conn.close()


def _event(row: asyncpg.Record):  # type: ignore[no-untyped-def]
    import json

    from durable.worker.workflows.history import HistoryEvent

    return HistoryEvent(sequence_num=row["sequence_num"], event_type=row["event_type"],
                        data=json.loads(row["data"]), created_at=parse_time(row["created_at"].timestamp()))


async def test_a_result_reads_back_from_jsonb_as_the_following_decision_saw_it(db: asyncpg.Connection) -> None:
    """The worker feeds its instance the result as jsonb will give it back (key order,
    numbers); a value jsonb would give back otherwise gets no following decision."""
    import json

    from durable.worker.following import _Unstorable, stored_result

    values = [
        {"bbb": 1, "a": 2, "cc": 3},
        {"é": 1, "z": 2, "ab": 3, "日本": 4, "": 5, "Z": 6},  # keys by byte length, then bytes
        {"outer": {"yy": [1, {"b": 2, "a": 1}], "x": None}, "n": [0.5, 1.0, 12345678901234567890, -3, 1e-07]},
        [3, "x", True, None],
        "text",
        0.1,
        None,
    ]
    for value in values:
        text = json.dumps(value)
        back = json.loads(await db.fetchval("SELECT $1::jsonb::text", text))
        expected = stored_result(text)
        assert json.dumps(expected) == json.dumps({} if back is None else back), value
    for odd in (1e16, -0.0, {"deep": [1.5e300]}):
        with pytest.raises(_Unstorable):
            stored_result(json.dumps(odd))


async def test_a_completion_whose_answer_is_lost_hands_out_its_next_step_on_the_retry(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first CompleteTasks that carries a following decision is taken by the control
    plane, but its answer (with the next step, handed out eager) never reaches the worker: the
    call fails UNAVAILABLE. The worker reports again and gets that step in the answer. With
    the reaper far off (an hour), a step left held for no one would never run."""
    import grpc

    from durable.controlplane.grpc.worker_service import WorkerService
    from durable.worker import Worker, WorkerSettings
    from durable.worker.testing import RunningWorker
    from tests.support.controlplane import running_control_plane

    original = WorkerService.CompleteTasks
    dropped: list[int] = []

    async def lose_first_answer(self: WorkerService, request: Any, context: Any) -> Any:
        response = await original(self, request, context)
        handed = sum(len(o.tasks) for o in response.outcomes)
        if not dropped and handed:
            dropped.append(handed)
            await context.abort(grpc.StatusCode.UNAVAILABLE, "the answer was lost (test)")
        return response

    monkeypatch.setattr(WorkerService, "CompleteTasks", lose_first_answer)
    async with running_control_plane(database_url, poll_interval=0.2, stale_after=3600) as address:
        worker = Worker(app, WorkerSettings(
            GRPC_ADDRESS=address, WORKER_ID="lost-answer", WORKER_HEALTH_PORT=0, WORKER_HEALTH_HOST="127.0.0.1",
            MAX_CONCURRENT_TASKS=4, DURABLE_CLAIM_WAIT=1, DURABLE_RECONNECT_INITIAL_BACKOFF=0.05,
            DURABLE_RECONNECT_MAX_BACKOFF=0.5))
        async with RunningWorker(worker), Client(address) as client:
            workflow_id, _ = await client.start_workflow("steps", {"n": 4})
            view = await client.wait_workflow(workflow_id, timeout=30)
            assert (view.status, view.result) == ("completed", 4), view.error
    assert dropped == [1]
    conn = await asyncpg.connect(database_url)
    try:
        # each step ran once, on its first attempt, and none was taken back
        attempts = await conn.fetch(
            "SELECT activity_id, attempt, status FROM durable_task_queue WHERE workflow_id = $1 AND kind = 'activity' "
            "ORDER BY created_at", workflow_id)
        assert [(r["attempt"], r["status"]) for r in attempts] == [(1, "completed")] * 4
    finally:
        await conn.close()
