"""The task queue: claim, heartbeat, complete, fail, retry, dead-letter, fencing."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import asyncpg
import pytest

from durable.common.errors import InvalidArgument, PayloadTooLarge, StaleAttempt, WrongState
from durable.controlplane.store import Store
from durable.controlplane.store.queries import Q, queries
from tests.support.clock import FakeClock


async def test_claim_by_activity_type(store: Store, worker: str) -> None:
    a = await store.enqueue_activity("a", {"i": 1})
    await store.enqueue_activity("other", {"i": 2})
    tasks, decisions = await store.claim(worker, ["a"], [], limit=10)
    assert [t.id for t in tasks] == [a] and decisions == []
    t = tasks[0]
    assert (t.attempt, t.claimed_by, t.input) == (1, worker, {"i": 1})
    assert (await store.get_task(a)).status == "claimed"  # as the row says, not the handout


async def test_claim_honours_priority_and_visibility(store: Store, worker: str, clock: FakeClock) -> None:
    low = await store.enqueue_activity("a", {}, options={"priority": -5})
    high = await store.enqueue_activity("a", {}, options={"priority": 5})
    later = await store.enqueue_activity("a", {}, options={"start_delay": 60})
    tasks, _ = await store.claim(worker, ["a"], limit=10)
    assert [t.id for t in tasks] == [high, low]
    clock.advance(61)
    tasks, _ = await store.claim(worker, ["a"], limit=10)
    assert [t.id for t in tasks] == [later]


async def test_second_worker_gets_nothing_while_a_task_is_claimed(store: Store, worker: str) -> None:
    await store.register_worker("w2", activity_types=["a"])
    await store.enqueue_activity("a", {})
    first, _ = await store.claim(worker, ["a"])
    second, _ = await store.claim("w2", ["a"])
    assert len(first) == 1 and second == []


async def test_unregistered_and_draining_workers_claim_nothing(store: Store, worker: str) -> None:
    await store.enqueue_activity("a", {})
    with pytest.raises(WrongState, match="not registered"):
        await store.claim("ghost", ["a"])
    await store.drain_worker(worker)
    assert await store.claim(worker, ["a"]) == ([], [])


async def test_complete(store: Store, worker: str) -> None:
    task_id = await store.enqueue_activity("a", {})
    [t], _ = await store.claim(worker, ["a"])
    await store.complete_task(worker, t.id, t.attempt, {"out": 42})
    done = await store.get_task(task_id)
    assert (done.status, done.result) == ("completed", {"out": 42})
    with pytest.raises(StaleAttempt):  # completing twice changes nothing
        await store.complete_task(worker, t.id, t.attempt, {"out": 43})
    assert (await store.get_task(task_id)).result == {"out": 42}


async def test_retry_with_backoff_then_reclaim_at_attempt_two(store: Store, worker: str, clock: FakeClock) -> None:
    policy = {"retry_policy": {"initial_interval": 2, "jitter": 0}}
    task_id = await store.enqueue_activity("a", {}, options=policy)
    [t], _ = await store.claim(worker, ["a"])
    outcome = await store.fail_task(worker, t.id, 1, "boom", error_type="IOError")
    assert outcome.outcome == "retrying"
    assert (outcome.retry_at - clock()).total_seconds() == pytest.approx(2.0)
    assert await store.claim(worker, ["a"]) == ([], [])  # not visible during the backoff
    clock.advance(2.5)
    [again], _ = await store.claim(worker, ["a"])
    assert again.id == task_id and again.attempt == 2
    assert (await store.get_task(task_id)).last_error == "IOError: boom"
    outcome = await store.fail_task(worker, again.id, 2, "boom again")
    assert (outcome.retry_at - clock()).total_seconds() == pytest.approx(4.0)  # doubled


async def test_exhaustion_moves_to_the_dlq_with_history(store: Store, worker: str, clock: FakeClock, db: asyncpg.Connection) -> None:
    task_id = await store.enqueue_activity("a", {"k": 1}, options={"retry_policy": {"max_attempts": 3, "jitter": 0}})
    for attempt in (1, 2, 3):
        [t], _ = await store.claim(worker, ["a"])
        assert t.attempt == attempt
        outcome = await store.fail_task(worker, t.id, attempt, f"fail {attempt}", error_type="Flaky")
        clock.advance(120)
    assert outcome.outcome == "dead"
    assert (await store.get_task(task_id)).status == "dead"
    [entry] = await store.list_dead_letters()
    assert entry.original_task_id == task_id and entry.reason == "exhausted" and entry.attempts == 3
    assert [e["message"] for e in entry.error_history] == ["fail 1", "fail 2", "fail 3"]
    assert entry.last_error == "Flaky: fail 3" and entry.input == {"k": 1}
    assert await store.claim(worker, ["a"]) == ([], [])


async def test_non_retryable_error_goes_straight_to_the_dlq(store: Store, worker: str) -> None:
    typed = await store.enqueue_activity("a", {}, options={"retry_policy": {"non_retryable_error_types": ["BadInput"]}})
    flagged = await store.enqueue_activity("a", {})
    tasks, _ = await store.claim(worker, ["a"], limit=2)
    assert {t.id for t in tasks} == {typed, flagged}
    by_type = await store.fail_task(worker, typed, 1, "nope", error_type="BadInput")
    by_flag = await store.fail_task(worker, flagged, 1, "nope", non_retryable=True)
    assert by_type.outcome == by_flag.outcome == "dead"
    assert {e.reason for e in await store.list_dead_letters()} == {"non_retryable"}


async def test_heartbeat_is_accepted_for_the_owner_only(store: Store, worker: str, clock: FakeClock) -> None:
    await store.register_worker("w2", activity_types=["a"])
    await store.enqueue_activity("a", {})
    [t], _ = await store.claim(worker, ["a"])
    clock.advance(5)
    [(tid, accepted, cancelled)] = await store.heartbeat_tasks(worker, [(t.id, 1, {"progress": 50})])
    assert tid == t.id and accepted and not cancelled
    after = await store.get_task(t.id)
    assert after.heartbeat_at == clock() and after.heartbeat_details == {"progress": 50}
    [(_, accepted, _)] = await store.heartbeat_tasks("w2", [(t.id, 1, None)])
    assert not accepted
    [(_, accepted, _)] = await store.heartbeat_tasks(worker, [(t.id, 2, None)])  # wrong attempt
    assert not accepted
    assert (await store.get_task(t.id)).heartbeat_at == clock()  # unchanged by the rejected calls? same instant
    with pytest.raises(StaleAttempt, match="no longer held by worker 'w2'"):
        await store.complete_task("w2", t.id, 1, {})


async def test_payload_rules_on_results_and_ids(store: Store, worker: str, db: asyncpg.Connection) -> None:
    task_id = await store.enqueue_activity("a", {})
    [t], _ = await store.claim(worker, ["a"])
    with pytest.raises(PayloadTooLarge):
        await store.complete_task(worker, t.id, 1, {"x": "y" * store.max_payload_bytes})
    with pytest.raises(InvalidArgument, match="is not a UUID"):
        await store.complete_task(worker, "not-a-uuid", 1, {})
    assert (await store.get_task(task_id)).status == "claimed"
    assert await db.fetchval("SELECT count(*) FROM durable_task_queue") == 1


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        ({"max_attempts": 0}, "max_attempts"),
        ({"initial_interval": -1}, "initial_interval"),
        ({"backoff_coefficient": 0.5}, "backoff_coefficient"),
        ({"initial_interval": 10, "max_interval": 1}, "max_interval must be >= initial_interval"),
        ({"jitter": 2}, "jitter"),
        ({"surprise": 1}, "surprise"),
    ],
)
async def test_invalid_retry_policies_are_refused(store: Store, db: asyncpg.Connection, policy: dict, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        await store.enqueue_activity("a", {}, options={"retry_policy": policy})
    assert await db.fetchval("SELECT count(*) FROM durable_task_queue") == 0


async def test_invalid_claims_are_refused(store: Store, worker: str) -> None:
    with pytest.raises(InvalidArgument, match="max_tasks"):
        await store.claim(worker, ["a"], limit=0)
    with pytest.raises(InvalidArgument, match="at least one"):
        await store.claim(worker, [], [])


async def test_release_hands_tasks_back_without_burning_an_attempt(store: Store, worker: str) -> None:
    await store.enqueue_activity("a", {}, options={"retry_policy": {"max_attempts": 1}})
    [t], _ = await store.claim(worker, ["a"])
    assert await store.release_tasks(worker) == 1
    [again], _ = await store.claim(worker, ["a"])
    assert again.attempt == 2 and (await store.get_task(again.id)).failed_attempts == 1
    # with max_attempts 1 this failure is the first real one: dead, but only now
    assert (await store.fail_task(worker, again.id, 2, "x")).outcome == "dead"


async def test_three_concurrent_claimers_get_every_task_exactly_once(store: Store, pool: asyncpg.Pool) -> None:
    n = 600
    for i in range(n):
        await store.enqueue_activity("a", {"i": i})
    workers = [f"cw{i}" for i in range(4)]
    for w in workers:
        await store.register_worker(w, activity_types=["a"])
    seen: list[tuple[str, uuid.UUID]] = []

    async def drain(w: str) -> None:
        while True:
            tasks, _ = await store.claim(w, ["a"], limit=7)
            if not tasks:
                return
            for t in tasks:
                seen.append((w, t.id))
                await store.complete_task(w, t.id, t.attempt, {"by": w})

    await asyncio.gather(*(drain(w) for w in workers))
    ids = [tid for _, tid in seen]
    assert len(ids) == n and len(set(ids)) == n
    assert len({w for w, _ in seen}) > 1  # the work was really shared
    counts = await pool.fetchrow(
        "SELECT count(*) FILTER (WHERE status = 'completed') AS done, max(attempt) AS max_attempt FROM durable_task_queue"
    )
    assert counts["done"] == n and counts["max_attempt"] == 1


async def test_claim_uses_the_claim_index(db: asyncpg.Connection) -> None:
    """The real claim statement, over a realistic backlog, is served by the partial claim index."""
    await db.execute(
        "INSERT INTO durable_task_queue (activity_type, status, visible_at) "
        "SELECT 't' || (i % 40), CASE WHEN i % 3 = 0 THEN 'completed' ELSE 'pending' END, now() - i * interval '1 s' "
        "FROM generate_series(1, 20000) i"
    )
    await db.execute("ANALYZE durable_task_queue")
    plan = "\n".join(
        r[0] for r in await db.fetch("EXPLAIN " + Q.claim_tasks, "w", ["t1"], [], 10, datetime.now(UTC), [])
    )
    assert "durable_task_queue_claim_idx" in plan, plan
    plan = "\n".join(
        r[0] for r in await db.fetch("EXPLAIN " + Q.claim_tasks_of_types, "w", ["t1", "t2"], ["wf"], 10, datetime.now(UTC), [])
    )
    assert "durable_task_queue_claim_idx" in plan and "Seq Scan on durable_task_queue" not in plan, plan


async def test_a_claim_over_several_types_locks_only_the_rows_it_takes(
    store: Store, pool: asyncpg.Pool, db: asyncpg.Connection
) -> None:
    """Repro: a claim of 5 over types a and b locked 5 rows of each for its transaction; the 5
    it did not take were invisible to every other claimer (SKIP LOCKED) until it committed."""
    await store.register_worker("multi", activity_types=["a", "b"])
    for activity_type in ("a", "b"):
        for _ in range(10):
            await store.enqueue_activity(activity_type, {})
    async with pool.acquire() as conn, conn.transaction():
        # the statement the store runs for a worker of several types (main had one for all)
        query = Q.claim_tasks_of_types if "claim_tasks_of_types" in queries() else Q.claim_tasks
        taken = await conn.fetch(query, "multi", ["a", "b"], [], 5, store.now(), [])
        assert len(taken) == 5
        async with db.transaction():  # another claimer, while the first has not committed
            free = await db.fetch(
                "SELECT id FROM durable_task_queue WHERE status = 'pending' FOR UPDATE SKIP LOCKED")
        assert len(free) == 15


async def test_claims_over_several_types_take_by_priority_and_pass_each_other(store: Store) -> None:
    await store.register_worker("m1", activity_types=["a", "b"])
    await store.register_worker("m2", activity_types=["a", "b"])
    for i in range(6):
        await store.enqueue_activity("a", {"i": i}, options={"priority": i})
        await store.enqueue_activity("b", {"i": i}, options={"priority": 10 + i})
    first, _ = await store.claim("m1", ["a", "b"], [], 4)
    assert [t.priority for t in first] == [15, 14, 13, 12]
    both = await asyncio.gather(store.claim("m1", ["a", "b"], [], 4), store.claim("m2", ["a", "b"], [], 4))
    ids = [t.id for got, _ in both for t in got]
    assert len(ids) == len(set(ids)) == 8
