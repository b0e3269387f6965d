"""WaitWorkflow sleeps until the workflow's end is announced (NOTIFY durable_workflows on the
control plane's one listening connection), instead of re-reading the workflow on a timer."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import pytest

from durable.client import Client
from durable.controlplane.dispatch import ended_key
from durable.controlplane.grpc import client_service
from tests.support.controlplane import running_plane

WAITERS = 20


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


async def listening_connections(db: asyncpg.Connection) -> int:
    return int(await db.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN %'"))


@pytest.mark.parametrize("ending", ["completed", "terminated"])
async def test_waiters_sleep_until_the_end_is_announced_and_share_one_listener(
    database_url: str, db: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch, ending: str,
) -> None:
    # the fallback re-check out of reach: only the announcement can wake the waiters in time
    monkeypatch.setattr(client_service, "WAIT_RECHECK_SECONDS", 300.0)
    async with running_plane(database_url) as plane, Client(plane.address) as client:
        store, signals = plane.store, plane.signals
        assert store is not None and signals is not None
        reads = 0
        get_workflow = store.get_workflow

        async def counted(workflow_id: str) -> Any:
            nonlocal reads
            reads += 1
            return await get_workflow(workflow_id)

        monkeypatch.setattr(store, "get_workflow", counted)
        await store.register_worker("w1", workflow_types=["wf"])
        workflow_id, _ = await client.start_workflow("wf", {"n": 1}, workflow_id="wait-me")
        waits = [asyncio.ensure_future(client.wait_workflow(workflow_id, timeout=120)) for _ in range(WAITERS)]
        await until(lambda: signals.waiting_on(ended_key(workflow_id)) == WAITERS, f"{WAITERS} waiters wait")
        assert reads == WAITERS  # one read each, then asleep
        assert not any(w.done() for w in waits)
        await until(lambda: listening_connections(db), "the control plane listens")
        assert await listening_connections(db) == 1  # one for the control plane, not one per waiter

        if ending == "completed":
            _, decisions = await store.claim("w1", workflow_types=["wf"])
            (decision,) = decisions
            assert await store.complete_workflow_task(
                "w1", decision.task.id, decision.task.attempt, decision.workflow.last_event_seq,
                [{"type": "complete_workflow", "result": {"ok": True}}])
        else:
            await client.cancel_workflow(workflow_id, "enough", terminate=True)
        done = await asyncio.wait_for(asyncio.gather(*waits), timeout=30)
        assert {w.status for w in done} == {"completed" if ending == "completed" else "cancelled"}
        assert reads == 2 * WAITERS  # woken once each by the announcement: no polling in between
        assert signals.waiting_on(ended_key(workflow_id)) == 0


async def test_a_wait_ends_at_its_deadline_without_polling(
    database_url: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with running_plane(database_url) as plane, Client(plane.address) as client:
        store = plane.store
        assert store is not None
        workflow_id, _ = await client.start_workflow("wf", {}, workflow_id="never-ends")
        reads = 0
        get_workflow = store.get_workflow

        async def counted(wid: str) -> Any:
            nonlocal reads
            reads += 1
            return await get_workflow(wid)

        monkeypatch.setattr(store, "get_workflow", counted)
        view = await client.wait_workflow(workflow_id, timeout=1.0)
        assert view.status == "pending"
        assert reads == 2  # at the start and at the deadline
