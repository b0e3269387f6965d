"""Concurrency keys and rate limits in the store: limits, slots freed by every way a claim
ends, round robin between keys, priorities, breakers, the DLQ, and token buckets on a moved
clock."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from datetime import UTC, datetime

import asyncpg
import pytest

from durable.common.errors import InvalidArgument
from durable.controlplane.reaper import Reaper
from durable.controlplane.settings import ReaperSettings
from durable.controlplane.store import Store
from durable.controlplane.store.queries import Q
from durable.controlplane.store.rate_limits import RateLimitStore
from tests.support.clock import FakeClock
from tests.support.processes import wait_for

FAST_RETRY = {"max_attempts": 3, "initial_interval": 0.001, "max_interval": 0.001, "jitter": 0}


def keyed(key: str, limit: int, **more: object) -> dict[str, object]:
    return {"concurrency_key": key, "concurrency_limit": limit, **more}


async def test_a_key_never_has_more_than_its_limit_claimed(store: Store, worker: str) -> None:
    for _ in range(5):
        await store.enqueue_activity("a", {}, options=keyed("cust-1", 2))
    first, _ = await store.claim(worker, ["a"], limit=10)
    assert len(first) == 2
    assert await store.claim(worker, ["a"], limit=10) == ([], [])  # the key is full; nothing burns
    await store.complete_task(worker, first[0].id, first[0].attempt, {})
    again, _ = await store.claim(worker, ["a"], limit=10)
    assert len(again) == 1  # one slot came back
    counts = await store.pool.fetch("SELECT status, count(*) AS n FROM durable_task_queue GROUP BY status")
    assert {r["status"]: r["n"] for r in counts} == {"completed": 1, "claimed": 2, "pending": 2}
    assert max(t.attempt for t in [*first, *again]) == 1


async def test_keys_are_independent_and_unkeyed_tasks_are_not_limited(store: Store, worker: str) -> None:
    for key in ("k1", "k2"):
        for _ in range(3):
            await store.enqueue_activity("a", {}, options=keyed(key, 1))
    for _ in range(3):
        await store.enqueue_activity("a", {})
    tasks, _ = await store.claim(worker, ["a"], limit=10)
    rows = await store.pool.fetch("SELECT concurrency_key, count(*) AS n FROM durable_task_queue "
                                  "WHERE status = 'claimed' GROUP BY concurrency_key")
    assert {r["concurrency_key"]: r["n"] for r in rows} == {None: 3, "k1": 1, "k2": 1}
    assert len(tasks) == 5


async def test_a_failed_retried_reaped_released_or_dead_task_frees_its_slot(
    store: Store, worker: str, clock: FakeClock
) -> None:
    for _ in range(6):
        await store.enqueue_activity("a", {}, options=keyed("k", 1, retry_policy={**FAST_RETRY, "max_attempts": 1}))
    # dead-lettered (one attempt only)
    [t], _ = await store.claim(worker, ["a"], limit=5)
    outcome = await store.fail_task(worker, t.id, t.attempt, "boom")
    assert outcome.outcome == "dead"
    # handed back by a draining worker
    [t], _ = await store.claim(worker, ["a"], limit=5)
    assert await store.release_tasks(worker, [(t.id, t.attempt)]) == 1
    # taken back by the reaper (the worker stopped heartbeating)
    [t], _ = await store.claim(worker, ["a"], limit=5)
    clock.advance(120)
    report = await Reaper(store, ReaperSettings(stale_after=30, worker_lost_after=10_000)).run_once()
    assert report.reclaimed + report.poisoned == 1, report  # one attempt only: poisoned, dead-lettered
    [t2], _ = await store.claim(worker, ["a"], limit=5)
    assert await store.claim(worker, ["a"], limit=5) == ([], [])


async def test_retry_of_a_keyed_task_waits_without_burning_attempts(store: Store, worker: str, clock: FakeClock) -> None:
    await store.enqueue_activity("a", {"n": 1}, options=keyed("k", 1, retry_policy=FAST_RETRY))
    await store.enqueue_activity("a", {"n": 2}, options=keyed("k", 1, retry_policy=FAST_RETRY))
    [t], _ = await store.claim(worker, ["a"])
    await store.fail_task(worker, t.id, t.attempt, "flaky")
    clock.advance(1)
    [u], _ = await store.claim(worker, ["a"])
    for _ in range(5):  # the retried task waits while the other holds the key
        assert await store.claim(worker, ["a"]) == ([], [])
    await store.complete_task(worker, u.id, u.attempt, {})
    [v], _ = await store.claim(worker, ["a"])
    assert v.id == t.id and v.attempt == 2


async def test_round_robin_between_keys(store: Store, worker: str, clock: FakeClock) -> None:
    """A busy key with an old backlog does not starve a key whose tasks arrived later."""
    for _ in range(50):
        await store.enqueue_activity("a", {}, options=keyed("busy", 100))
    clock.advance(1)
    for key in ("late-1", "late-2", "late-3"):
        await store.enqueue_activity("a", {}, options=keyed(key, 100))
    clock.advance(1)
    tasks, _ = await store.claim(worker, ["a"], limit=4)
    keys = await store.pool.fetch("SELECT concurrency_key FROM durable_task_queue WHERE id = ANY($1::uuid[])",
                                  [t.id for t in tasks])
    assert sorted(r["concurrency_key"] for r in keys) == ["busy", "late-1", "late-2", "late-3"]


async def test_priority_first_within_and_across_keys(store: Store, worker: str) -> None:
    await store.enqueue_activity("a", {"p": 0}, options=keyed("k1", 5))
    await store.enqueue_activity("a", {"p": 9}, options=keyed("k2", 5, priority=9))
    await store.enqueue_activity("a", {"p": 5}, options=keyed("k1", 5, priority=5))
    [t], _ = await store.claim(worker, ["a"], limit=1)
    assert t.input == {"p": 9}
    [t], _ = await store.claim(worker, ["a"], limit=1)
    assert t.input == {"p": 5}


async def test_concurrent_claimers_never_exceed_the_limit(store: Store, pool: asyncpg.Pool) -> None:
    """Eight claimers race on one key of limit 3, over and over: the claimed count never passes 3."""
    for i in range(8):
        await store.register_worker(f"c{i}", activity_types=["a"])
    for _ in range(60):
        await store.enqueue_activity("a", {}, options=keyed("hot", 3))
    peak = 0
    for _ in range(20):
        results = await asyncio.gather(*(store.claim(f"c{i}", ["a"], limit=3, known_active=True) for i in range(8)))
        claimed = [t for tasks, _ in results for t in tasks]
        running = await pool.fetchval("SELECT count(*) FROM durable_task_queue WHERE status = 'claimed'")
        assert running <= 3
        peak = max(peak, running)
        for t in claimed[:2]:
            await store.complete_task(t.claimed_by, t.id, t.attempt, {})
    assert peak == 3


async def test_a_dead_letter_requeued_keeps_its_key(store: Store, worker: str) -> None:
    await store.enqueue_activity("a", {}, options=keyed("k", 1, retry_policy={**FAST_RETRY, "max_attempts": 1}))
    await store.enqueue_activity("a", {}, options=keyed("k", 1))
    [t], _ = await store.claim(worker, ["a"])
    await store.fail_task(worker, t.id, t.attempt, "boom")
    [u], _ = await store.claim(worker, ["a"])
    dlq = await store.pool.fetchval("SELECT id FROM durable_dead_letter_queue")
    await store.pool.execute("UPDATE durable_dead_letter_queue SET requeued_at = now() WHERE id = $1", dlq)
    row = await store.pool.fetchrow(
        "SELECT concurrency_key, concurrency_limit FROM durable_task_queue WHERE status = 'pending'"
    )
    assert (row["concurrency_key"], row["concurrency_limit"]) == ("k", 1)
    assert await store.claim(worker, ["a"]) == ([], [])  # u still holds the key


async def test_keyed_trials_of_a_half_open_breaker(store: Store, worker: str, clock: FakeClock) -> None:
    """A type whose tasks are all keyed still gets its half-open trials (or its breaker would never close)."""
    await store.configure_circuit_breaker("a", {"failure_threshold": 1, "reset_timeout": 10, "half_open_max_trials": 1})
    for _ in range(3):
        await store.enqueue_activity("a", {}, options=keyed("k", 5, retry_policy={**FAST_RETRY, "max_attempts": 9}))
    [t], _ = await store.claim(worker, ["a"])
    await store.fail_task(worker, t.id, t.attempt, "down")
    assert (await store.get_circuit_breaker("a")).state == "open"
    clock.advance(1)
    assert await store.claim(worker, ["a"], limit=5) == ([], [])  # open: keyed tasks wait too
    clock.advance(10)
    trials, _ = await store.claim(worker, ["a"], limit=5)
    assert len(trials) == 1
    await store.complete_task(worker, trials[0].id, trials[0].attempt, {})
    assert (await store.get_circuit_breaker("a")).state == "closed"
    rest, _ = await store.claim(worker, ["a"], limit=5)
    assert len(rest) == 2


async def test_bad_keys_are_refused_in_one_line(store: Store) -> None:
    with pytest.raises(InvalidArgument, match="concurrency_key and concurrency_limit go together"):
        await store.enqueue_activity("a", {}, options={"concurrency_key": "k"})
    with pytest.raises(InvalidArgument, match="concurrency_limit"):
        await store.enqueue_activity("a", {}, options=keyed("k", 0))


async def test_the_unkeyed_claim_reads_only_unkeyed_rows(db: asyncpg.Connection) -> None:
    """The unkeyed claim is served by the claim index, which holds no keyed task: a keyed
    backlog of the same type is never walked by it."""
    await db.execute(
        "INSERT INTO durable_task_queue (activity_type, status, visible_at, concurrency_key, concurrency_limit) "
        "SELECT 't1', 'pending', now() - i * interval '1 s', 'k' || (i % 100), 2 FROM generate_series(1, 20000) i"
    )
    await db.execute("INSERT INTO durable_task_queue (activity_type) SELECT 't1' FROM generate_series(1, 10)")
    await db.execute("INSERT INTO durable_workers (id, activity_types) VALUES ('w', '{t1}')")
    await db.execute("ANALYZE durable_task_queue")
    now = datetime.now(UTC)
    plan = json.loads(await db.fetchval("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + Q.claim_tasks,
                                        "w", ["t1"], [], 10, now, []))
    text = json.dumps(plan)
    assert "durable_task_queue_claim_idx" in text, "the unkeyed claim did not use the claim index"
    # the keyed backlog (20,000 rows) is not read: a handful of index and heap pages
    assert '"Shared Hit Blocks"' in text
    total = plan[0]["Plan"]["Shared Hit Blocks"] + plan[0]["Plan"].get("Shared Read Blocks", 0)
    assert total < 200, total
    assert await db.fetchval("SELECT count(*) FROM durable_task_queue WHERE status = 'claimed'") == 10  # it ran
    keys = await db.fetch("EXPLAIN " + Q.lock_keys_after, "activity", "t1", "", 50, 1685418593)
    assert "durable_task_queue_keyed_claim_idx" in "\n".join(r[0] for r in keys)


# -- rate limits ---------------------------------------------------------------------------------


async def test_a_token_bucket_on_a_moved_clock(store: Store, worker: str, clock: FakeClock, pool: asyncpg.Pool) -> None:
    limits = RateLimitStore(pool, clock=clock)
    await limits.set_rate_limit("a", 10, burst=5)
    store.forget_breaker_keys()
    for _ in range(40):
        await store.enqueue_activity("a", {})
    got, _ = await store.claim(worker, ["a"], limit=40)
    assert len(got) == 5  # a full bucket: the burst
    assert await store.claim(worker, ["a"], limit=40) == ([], [])
    clock.advance(0.25)  # 2.5 tokens
    got, _ = await store.claim(worker, ["a"], limit=40)
    assert len(got) == 2
    clock.advance(0.05)  # 0.5 + 0.5
    got, _ = await store.claim(worker, ["a"], limit=40)
    assert len(got) == 1
    clock.advance(100)  # never more than the burst
    got, _ = await store.claim(worker, ["a"], limit=40)
    assert len(got) == 5
    [listed] = await limits.list_rate_limits()
    assert (listed.key, listed.rate, listed.burst, listed.pending, listed.running) == ("a", 10, 5, 27, 13)
    assert listed.tokens == pytest.approx(0)


async def test_rate_limited_keyed_tasks_spend_tokens_too(store: Store, worker: str, clock: FakeClock, pool: asyncpg.Pool) -> None:
    await RateLimitStore(pool, clock=clock).set_rate_limit("a", 1, burst=3)
    store.forget_breaker_keys()
    for i in range(5):
        await store.enqueue_activity("a", {}, options=keyed(f"k{i}", 1))
    got, _ = await store.claim(worker, ["a"], limit=10)
    assert len(got) == 3
    clock.advance(1)
    got, _ = await store.claim(worker, ["a"], limit=10)
    assert len(got) == 1


async def test_concurrent_claimers_share_one_bucket(store: Store, pool: asyncpg.Pool, clock: FakeClock) -> None:
    await RateLimitStore(pool, clock=clock).set_rate_limit("a", 5, burst=5)
    store.forget_breaker_keys()
    for i in range(6):
        await store.register_worker(f"r{i}", activity_types=["a"])
    for _ in range(100):
        await store.enqueue_activity("a", {})
    taken = Counter[int]()
    for step in range(10):
        results = await asyncio.gather(*(store.claim(f"r{i}", ["a"], limit=10, known_active=True) for i in range(6)))
        taken[step] = sum(len(t) for t, _ in results)
        clock.advance(0.2)  # one token per step
    # the first step spends the full bucket, each later one at most the token that came in
    assert taken[0] == 5 and all(taken[s] <= 1 for s in range(1, 10)), taken
    assert sum(taken.values()) <= 5 + 9


async def test_rate_limit_settings_are_checked(pool: asyncpg.Pool) -> None:
    limits = RateLimitStore(pool)
    with pytest.raises(InvalidArgument, match="rate must be"):
        await limits.set_rate_limit("a", 0)
    with pytest.raises(InvalidArgument, match="burst must be"):
        await limits.set_rate_limit("a", 5, burst=0.5)
    first = await limits.set_rate_limit("a", 5)
    assert (first.rate, first.burst, first.tokens) == (5, 1, 1)  # a tenth of a second's starts, at least 1
    assert (await limits.set_rate_limit("b", 200)).burst == 20
    await limits.delete_rate_limit("b")
    retuned = await limits.set_rate_limit("a", 50, burst=10)
    assert (retuned.rate, retuned.burst) == (50, 10)
    await limits.delete_rate_limit("a")
    assert await limits.list_rate_limits() == []


# -- workflow starts -------------------------------------------------------------------------------


async def test_keyed_workflows_start_at_most_their_limit(store: Store, worker: str, clock: FakeClock) -> None:
    """Three workflows of a key of limit 2: two start, the third stays pending until one ends;
    a started one's later decisions (and a retried first one) are not held back."""
    ids = []
    for i in range(3):
        wf, created = await store.start_workflow("wf", {"i": i}, f"wf-{i}", concurrency_key="tenant", concurrency_limit=2)
        assert created and wf.status == "pending"
        ids.append(wf.id)
        clock.advance(0.01)
    _, decisions = await store.claim(worker, workflow_types=["wf"], limit=10)
    assert sorted(d.workflow.id for d in decisions) == ["wf-0", "wf-1"]
    statuses = {r["id"]: r["status"] for r in await store.pool.fetch("SELECT id, status FROM durable_workflow_instances")}
    assert statuses == {"wf-0": "running", "wf-1": "running", "wf-2": "pending"}
    # a failed first decision is retried without waiting for a slot (its workflow holds one)
    first = decisions[0].task
    await store.fail_task(worker, first.id, first.attempt, "bug", error_type="Bug")
    clock.advance(120)
    _, again = await store.claim(worker, workflow_types=["wf"], limit=10)
    assert [d.workflow.id for d in again] == [first.workflow_id]
    assert again[0].task.attempt == 2
    # wf-2 starts once another ends
    other = decisions[1]
    assert await store.complete_workflow_task(worker, other.task.id, other.task.attempt, other.workflow.last_event_seq,
                                              [{"type": "complete_workflow", "result": {}}])
    _, third = await store.claim(worker, workflow_types=["wf"], limit=10)
    assert [d.workflow.id for d in third] == ["wf-2"]


async def test_a_workflow_key_needs_its_limit(store: Store) -> None:
    with pytest.raises(InvalidArgument, match="go together"):
        await store.start_workflow("wf", {}, concurrency_key="tenant")


async def test_a_workflow_schedules_keyed_activities(store: Store, worker: str) -> None:
    """The per-call options of a workflow's activity (a decision's schedule_activity) carry the key."""
    await store.start_workflow("wf", {}, "parent")
    _, [d] = await store.claim(worker, workflow_types=["wf"])
    actions = [{"type": "schedule_activity", "activity_id": f"s{i}", "activity_type": "a", "input": {},
                "options": {"concurrency_key": "cust-9", "concurrency_limit": 1}} for i in range(3)]
    assert await store.complete_workflow_task(worker, d.task.id, d.task.attempt, d.workflow.last_event_seq, actions)
    tasks, _ = await store.claim(worker, ["a"], limit=10)
    assert len(tasks) == 1
    keys = await store.pool.fetch("SELECT DISTINCT concurrency_key, concurrency_limit FROM durable_task_queue "
                                  "WHERE kind = 'activity'")
    assert [(r["concurrency_key"], r["concurrency_limit"]) for r in keys] == [("cust-9", 1)]


async def test_keyed_tasks_are_not_held_behind_an_unkeyed_backlog(store: Store, worker: str) -> None:
    """After a claim that comes back full, a look for keyed tasks (at most every
    KEYED_LOOK_EVERY seconds, in the background), and the next claim of its types leaves them
    half of itself: a keyed task does not wait out the unkeyed backlog."""
    keyed_id = await store.enqueue_activity("a", {"keyed": True}, options=keyed("tenant-1", 1))
    for i in range(40):
        await store.enqueue_activity("a", {"i": i})
    first, _ = await store.claim(worker, ["a"], limit=10)
    assert keyed_id not in [t.id for t in first] and len(first) == 10  # unkeyed first, as before

    async def looked() -> bool:  # the look runs in the background, after the full claim
        return bool(store.gates.owed)

    await wait_for(looked, 10, "the look for keyed tasks after a full claim")
    second, _ = await store.claim(worker, ["a"], limit=10)
    assert keyed_id in [t.id for t in second], "the keyed task waited behind the unkeyed backlog"
    assert len(second) == 10  # the claim is still full: the unkeyed ones take what it leaves
