"""Bulk actions by filter against a real PostgreSQL: requeue 500 dead letters (a dry run's
count first, and it matches), cancel workflows, delete ended ones and dead letters; batch by
batch, each requeue still one live task, an ended workflow's step still refused."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from uuid import UUID

import asyncpg
import pytest

from durable.common.errors import InvalidArgument
from durable.controlplane.store import Store
from durable.controlplane.store.bulk import BulkActions, BulkOutcome, DeadLetterFilter, WorkflowFilter
from tests.support.clock import FakeClock


@pytest.fixture
def bulk(store: Store) -> BulkActions:
    return BulkActions(store)


async def bury(store: Store, worker: str, activity_type: str, error: str, count: int) -> None:
    """`count` standalone tasks of `activity_type`, each dead-lettered with `error`."""
    for _ in range(count):
        await store.enqueue_activity(activity_type, {}, options={"retry_policy": {"max_attempts": 1}})
    claimed, _ = await store.claim(worker, [activity_type], [], count)
    assert len(claimed) == count
    for task in claimed:
        await store.fail_task(worker, task.id, 1, error, non_retryable=True)


async def dead_steps(store: Store, worker: str, workflow_ids: list[str]) -> None:
    """A workflow each, whose one step (activity type a) was dead-lettered."""
    for wf_id in workflow_ids:
        await store.start_workflow("wf", {}, wf_id)
    _, decisions = await store.claim(worker, [], ["wf"], len(workflow_ids))
    for d in decisions:
        await store.complete_workflow_task(worker, d.task.id, 1, d.workflow.last_event_seq, [{
            "type": "schedule_activity", "activity_id": "s1", "activity_type": "a", "input": {},
            "options": {"retry_policy": {"max_attempts": 1}},
        }])
    steps, _ = await store.claim(worker, ["a"], [], len(workflow_ids))
    assert len(steps) == len(workflow_ids)
    for step in steps:
        await store.fail_task(worker, step.id, 1, "boom", non_retryable=True)


async def every_batch(step: object, *args: object, **kwargs: object) -> tuple[BulkOutcome, int]:
    """Call a bulk action batch after batch until it has no next token: the sum, and the calls."""
    total = BulkOutcome()
    token: str | None = None
    calls = 0
    while True:
        out = await step(*args, page_token=token, **kwargs)  # type: ignore[operator]
        calls += 1
        total.matched += out.matched
        total.affected += out.affected
        total.skipped += out.skipped
        total.errors += out.errors
        token = out.next_page_token
        if token is None:
            return total, calls


async def live(db: asyncpg.Connection, activity_type: str) -> int:
    return int(await db.fetchval(
        "SELECT count(*) FROM durable_task_queue WHERE activity_type = $1 AND status IN ('pending', 'claimed')",
        activity_type))


async def test_bulk_requeue_of_500_dead_letters_by_filter_matches_its_dry_run(
    bulk: BulkActions, store: Store, worker: str, db: asyncpg.Connection, clock: FakeClock
) -> None:
    started = clock()
    await bury(store, worker, "a", "TimeoutError: the bank did not answer", 500)
    await bury(store, worker, "a", "ValueError: bad card number", 40)
    await bury(store, worker, "b", "TimeoutError: the bank did not answer", 30)
    clock.advance(60)
    await bury(store, worker, "a", "TimeoutError: the bank did not answer", 20)  # dead after the range
    wanted = DeadLetterFilter(activity_type="a", error_contains="BANK did not", dead_before=started + timedelta(seconds=30))

    dry = await bulk.requeue_dead_letters(wanted, dry_run=True)
    assert dry.matched == 500 and dry.affected == 0
    assert await live(db, "a") == 0  # a dry run changes nothing

    total, calls = await every_batch(bulk.requeue_dead_letters, wanted, batch_size=120)
    assert (total.matched, total.affected, total.skipped) == (500, 500, 0)
    assert calls == 5  # 120 * 4 + 20: bounded batches, not one statement over everything
    assert await live(db, "a") == 500 and await live(db, "b") == 0
    assert await db.fetchval(
        "SELECT count(*) FROM durable_dead_letter_queue WHERE requeued_at IS NOT NULL") == 500
    # each entry once: a second pass finds nothing left to requeue
    assert (await bulk.requeue_dead_letters(wanted, dry_run=True)).matched == 0
    again, _ = await every_batch(bulk.requeue_dead_letters, wanted)
    assert again.affected == 0 and await live(db, "a") == 500
    assert (await bulk.requeue_dead_letters(DeadLetterFilter(activity_type="a"), dry_run=True)).matched == 60


async def test_bulk_requeue_refuses_the_steps_of_ended_workflows_as_one_by_one_does(
    bulk: BulkActions, store: Store, worker: str, db: asyncpg.Connection
) -> None:
    await dead_steps(store, worker, ["ended", "running"])
    await store.set_workflow_status("ended", "failed", error={"message": "gave up"})
    assert (await bulk.requeue_dead_letters(DeadLetterFilter(), dry_run=True)).matched == 1
    total, _ = await every_batch(bulk.requeue_dead_letters, DeadLetterFilter())
    assert total.affected == 1
    rows = await db.fetch("SELECT workflow_id, requeued_at IS NOT NULL AS requeued FROM durable_dead_letter_queue")
    assert {r["workflow_id"]: r["requeued"] for r in rows} == {"ended": False, "running": True}


async def test_a_workflow_that_ends_between_selection_and_requeue_is_skipped_and_said_why(
    bulk: BulkActions, store: Store, worker: str, db: asyncpg.Connection
) -> None:
    await dead_steps(store, worker, ["w"])
    original = bulk._requeue_one

    async def ended_first(entry_id: UUID) -> str | None:
        await store.set_workflow_status("w", "failed", error={"message": "gave up"})
        return await original(entry_id)

    bulk._requeue_one = ended_first  # type: ignore[method-assign]
    out = await bulk.requeue_dead_letters(DeadLetterFilter())
    assert (out.matched, out.affected, out.skipped) == (1, 0, 1)
    assert "which has ended (failed)" in out.errors[0]
    assert await live(db, "a") == 0


async def test_bulk_cancel_by_filter(bulk: BulkActions, store: Store, db: asyncpg.Connection, clock: FakeClock) -> None:
    for i in range(25):
        await store.start_workflow("order", {}, f"order-{i}")
    for i in range(5):
        await store.start_workflow("report", {}, f"report-{i}")
    await store.set_workflow_status("order-0", "completed")
    wanted = WorkflowFilter(workflow_type="order")
    assert (await bulk.cancel_workflows(wanted, dry_run=True)).matched == 24

    total, calls = await every_batch(bulk.cancel_workflows, wanted, reason="sale ended", batch_size=10)
    assert (total.affected, total.skipped, calls) == (24, 0, 3)
    requested = await db.fetch(
        "SELECT workflow_id, event_data->>'reason' AS reason FROM durable_workflow_events "
        "WHERE event_type = 'WorkflowCancelRequested'")
    assert sorted(r["workflow_id"] for r in requested) == sorted(f"order-{i}" for i in range(1, 25))
    assert {r["reason"] for r in requested} == {"sale ended"}
    assert (await bulk.cancel_workflows(wanted, dry_run=True)).matched == 0  # asked already
    # terminate still takes those whose cancel was asked: they end at once
    total, _ = await every_batch(bulk.cancel_workflows, wanted, terminate=True)
    assert total.affected == 24
    statuses = {r["id"]: r["status"] for r in await db.fetch("SELECT id, status FROM durable_workflow_instances")}
    assert [i for i, s in statuses.items() if s == "cancelled"] and all(
        statuses[f"order-{i}"] == "cancelled" for i in range(1, 25))
    assert statuses["order-0"] == "completed" and {statuses[f"report-{i}"] for i in range(5)} == {"pending"}


async def test_bulk_cancel_by_time_range_and_error_text(bulk: BulkActions, store: Store, clock: FakeClock) -> None:
    early = clock()
    await store.start_workflow("t", {}, "early")
    clock.advance(10)
    await store.start_workflow("t", {}, "late")
    out = await bulk.cancel_workflows(WorkflowFilter(created_before=early + timedelta(seconds=5)), terminate=True)
    assert out.affected == 1 and (await store.get_workflow("early")).status == "cancelled"
    assert (await store.get_workflow("late")).status == "pending"
    await store.set_workflow_status("late", "failed", error={"message": "Card DECLINED"})
    deleted, _ = await every_batch(bulk.delete_workflows, WorkflowFilter(error_contains="declined"))
    assert deleted.affected == 1
    assert (await bulk.delete_workflows(WorkflowFilter(), dry_run=True)).matched == 1  # "early" (cancelled)


async def test_bulk_delete_takes_ended_unpinned_workflows_only(
    bulk: BulkActions, store: Store, db: asyncpg.Connection
) -> None:
    for i in range(6):
        await store.start_workflow("wf", {}, f"w{i}")
    for i in range(4):
        await store.set_workflow_status(f"w{i}", "completed")
    await store.pin_workflow("w0", True)
    assert (await bulk.delete_workflows(WorkflowFilter(), dry_run=True)).matched == 3
    total, _ = await every_batch(bulk.delete_workflows, WorkflowFilter(), batch_size=2)
    assert total.affected == 3
    left = sorted(r["id"] for r in await db.fetch("SELECT id FROM durable_workflow_instances"))
    assert left == ["w0", "w4", "w5"]
    assert await db.fetchval("SELECT count(*) FROM durable_workflow_events WHERE workflow_id = 'w1'") == 0
    with pytest.raises(InvalidArgument, match="delete takes completed or failed or cancelled workflows, not running"):
        await bulk.delete_workflows(WorkflowFilter(status="running"))
    with pytest.raises(InvalidArgument, match="cancel takes pending or running workflows, not completed"):
        await bulk.cancel_workflows(WorkflowFilter(status="completed"))


async def test_bulk_delete_of_dead_letters_takes_a_standalone_dead_task_with_it(
    bulk: BulkActions, store: Store, worker: str, db: asyncpg.Connection
) -> None:
    await bury(store, worker, "a", "boom", 7)
    await bury(store, worker, "b", "boom", 3)
    assert (await bulk.delete_dead_letters(DeadLetterFilter(activity_type="a"), dry_run=True)).matched == 7
    total, calls = await every_batch(bulk.delete_dead_letters, DeadLetterFilter(activity_type="a"), batch_size=3)
    assert (total.affected, calls) == (7, 3)
    assert await db.fetchval("SELECT count(*) FROM durable_dead_letter_queue") == 3
    assert await db.fetchval("SELECT count(*) FROM durable_task_queue WHERE activity_type = 'a'") == 0


async def test_concurrent_bulk_requeues_make_one_task_per_entry(
    store: Store, worker: str, db: asyncpg.Connection, pool: asyncpg.Pool, clock: FakeClock
) -> None:
    await bury(store, worker, "a", "boom", 60)
    actions = [BulkActions(Store(pool, clock=clock)) for _ in range(3)]
    results = await asyncio.gather(*(every_batch(a.requeue_dead_letters, DeadLetterFilter(), batch_size=7)
                                     for a in actions))
    assert sum(r.affected for r, _ in results) == 60
    assert await live(db, "a") == 60


async def test_bad_bulk_input_is_one_clear_line(bulk: BulkActions) -> None:
    with pytest.raises(InvalidArgument, match="batch_size must be between 1 and 1000, not 5000"):
        await bulk.requeue_dead_letters(DeadLetterFilter(), batch_size=5000)
    with pytest.raises(InvalidArgument, match="page_token is not one this server handed out"):
        await bulk.requeue_dead_letters(DeadLetterFilter(), page_token="nonsense")
    with pytest.raises(InvalidArgument, match="status 'sleeping' is not one of"):
        await bulk.cancel_workflows(WorkflowFilter(status="sleeping"))
