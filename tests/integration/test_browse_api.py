"""ClientService's browsing calls against real PostgreSQL: filters, keyset paging (ties
included), capped counts by status, a workflow's tasks, breakers, dead letters by error text."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import asyncpg
import pytest

from durable.client import Client
from durable.common.errors import InvalidArgument
from durable.controlplane.store import Store
from tests.support.clock import FakeClock
from tests.support.controlplane import running_control_plane


@pytest.fixture
async def api(database_url: str, clock: FakeClock) -> AsyncIterator[Client]:
    async with running_control_plane(database_url, clock=clock) as address, Client(address) as client:
        yield client


async def test_workflow_pages_cover_every_row_once_even_with_equal_times(
    api: Client, store: Store, clock: FakeClock
) -> None:
    # 23 workflows, in groups that share a created_at (the clock stands still within a group)
    ids = []
    for i in range(23):
        if i % 5 == 0:
            clock.advance(1)
        wid, _ = await api.start_workflow("wf" if i % 2 else "other", {"i": i}, workflow_id=f"w-{i:02d}")
        ids.append(wid)
    seen: list[str] = []
    token = ""
    while True:
        page = await api.list_workflows_page(limit=4, page_token=token)
        seen += [w.id for w in page.workflows]
        assert len(page.workflows) <= 4
        if not page.next_page_token:
            break
        token = page.next_page_token
    assert sorted(seen) == sorted(ids) and len(seen) == len(set(seen))
    # newest first
    created = [(await api.describe_workflow(w)).created_at for w in seen]
    assert created == sorted(created, reverse=True)
    # filters compose with paging
    typed = await api.list_workflows_page(workflow_type="wf", limit=100)
    assert {w.id for w in typed.workflows} == {f"w-{i:02d}" for i in range(23) if i % 2}
    prefixed = await api.list_workflows_page(id_prefix="w-1", limit=100)
    assert {w.id for w in prefixed.workflows} == {f"w-{i}" for i in range(10, 20)}


async def test_id_prefix_is_literal_and_time_bounds_apply(api: Client, clock: FakeClock) -> None:
    await api.start_workflow("wf", workflow_id="a_b%1")
    await api.start_workflow("wf", workflow_id="axb-2")
    first = (await api.describe_workflow("a_b%1")).created_at
    clock.advance(60)
    await api.start_workflow("wf", workflow_id="later")
    assert [w.id for w in (await api.list_workflows_page(id_prefix="a_b%")).workflows] == ["a_b%1"]
    assert [w.id for w in (await api.list_workflows_page(id_prefix="a_")).workflows] == ["a_b%1"]
    window = await api.list_workflows_page(created_after=first + 30)
    assert [w.id for w in window.workflows] == ["later"]
    before = await api.list_workflows_page(created_before=first + 30)
    assert sorted(w.id for w in before.workflows) == ["a_b%1", "axb-2"]
    with pytest.raises(InvalidArgument, match="earlier"):
        await api.list_workflows_page(created_after=first + 30, created_before=first)
    with pytest.raises(InvalidArgument, match="page_token"):
        await api.list_workflows_page(page_token="not-a-token")


async def test_counts_by_status_exact_and_capped(api: Client, db: asyncpg.Connection) -> None:
    for i in range(5):
        await api.start_workflow("wf", workflow_id=f"c-{i}")
    # one ends, as an operator could end it by hand (the runtime's own paths are tested elsewhere)
    await db.execute("UPDATE durable_workflow_instances SET status = 'cancelled', completed_at = now() "
                     "WHERE id = 'c-0'")
    await api.start_workflow("other", workflow_id="o-1")
    assert await api.count_workflows() == {"pending": 5, "running": 0, "completed": 0, "failed": 0, "cancelled": 1}
    assert (await api.count_workflows(workflow_type="other"))["pending"] == 1
    assert (await api.count_workflows(id_prefix="c-"))["pending"] == 4
    assert (await api.count_workflows(at_most=2))["pending"] == 2


async def test_workflow_tasks_breakers_and_dead_letters(api: Client, store: Store) -> None:
    wid, _ = await api.start_workflow("wf", workflow_id="with-tasks")
    [decision] = await api.workflow_tasks(wid)
    assert decision.kind == "workflow" and decision.status == "pending" and decision.attempt == 0
    assert await api.workflow_tasks(wid, include_finished=True) == [decision]
    with pytest.raises(Exception, match="does not exist"):
        await api.workflow_tasks("no-such-workflow")

    assert await api.circuit_breakers() == []
    await store.configure_circuit_breaker("flaky", {"failure_threshold": 3})
    [breaker] = await api.circuit_breakers()
    assert (breaker.key, breaker.state, breaker.failure_threshold) == ("flaky", "closed", 3)

    await store.register_worker("w1", activity_types=["doomed"])
    for i in range(5):
        await api.enqueue_activity("doomed", {"i": i})
    claimed, _ = await store.claim("w1", ["doomed"], limit=5)
    assert len(claimed) == 5
    for i, task in enumerate(claimed):
        await store.fail_task("w1", task.id, task.attempt, f"Disk {'FULL' if i % 2 else 'gone'} #{i}",
                              error_type="Boom", non_retryable=True)
    full, _ = await api.dead_letters_page(error_contains="disk full")
    assert len(full) == 2 and all("FULL" in e.last_error for e in full)
    seen, token = [], ""
    while True:
        entries, token = await api.dead_letters_page(limit=2, page_token=token)
        seen += [e.id for e in entries]
        if not token:
            break
    assert len(seen) == len(set(seen)) == 5


async def test_throughput_counts_completions_per_type_and_minute(
    api: Client, store: Store, clock: FakeClock, db: asyncpg.Connection
) -> None:
    await store.register_worker("w1", activity_types=["a", "b"])

    async def complete(activity_type: str, n: int) -> None:
        for _ in range(n):
            await api.enqueue_activity(activity_type, {})
        claimed, _ = await store.claim("w1", [activity_type], limit=n)
        assert len(claimed) == n
        for task in claimed:
            await store.complete_task("w1", task.id, task.attempt, {"ok": True})

    await complete("a", 1)  # before the range: not counted
    since = clock.advance(10)
    clock.advance(10)
    await complete("a", 2)  # minute 0
    clock.advance(60)
    await complete("b", 1)  # minute 1
    clock.advance(60)
    await complete("a", 3)  # minute 2
    await api.enqueue_activity("a", {})  # pending, and a dead one: neither is a completion
    await db.execute("UPDATE durable_task_queue SET status = 'dead', completed_at = $1 WHERE status = 'pending'",
                     clock.current)
    # a workflow's decision task, completed in minute 2
    await api.start_workflow("wf", workflow_id="decided")
    await db.execute("UPDATE durable_task_queue SET status = 'completed', completed_at = $1 "
                     "WHERE workflow_id = 'decided'", clock.current)
    clock.advance(70)  # now: 210 s after since, 4 buckets (the last one 30 s)

    types, start = await api.throughput(since=since.timestamp(), bucket_seconds=60)
    assert start == since.timestamp()
    assert {(t.kind, t.type): list(t.completed) for t in types} == {
        ("activity", "a"): [2, 0, 3, 0], ("activity", "b"): [0, 1, 0, 0], ("workflow", "wf"): [0, 0, 1, 0],
    }
    # named types: each in the answer, in the order asked, zeros when idle
    named, _ = await api.throughput(["b", "idle"], ["wf"], since=since.timestamp(), bucket_seconds=120)
    assert [(t.kind, t.type, list(t.completed)) for t in named] == [
        ("activity", "b", [1, 0]), ("activity", "idle", [0, 0]), ("workflow", "wf", [0, 1]),
    ]
    # the default: the last hour, per minute
    hour, start = await api.throughput(["a"])
    assert start == (clock.current - timedelta(hours=1)).timestamp()
    [a] = hour
    assert len(a.completed) == 60 and sum(a.completed) == 6

    with pytest.raises(InvalidArgument, match="at most 1440"):
        await api.throughput(since=since.timestamp() - 7200, bucket_seconds=1)
    with pytest.raises(InvalidArgument, match="whole seconds"):
        await api.throughput(since=since.timestamp(), bucket_seconds=0.5)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="whole seconds"):
        await api.throughput(since=since.timestamp(), bucket_seconds=-60)
    with pytest.raises(InvalidArgument, match="earlier"):
        await api.throughput(since=clock.current.timestamp() + 5)
