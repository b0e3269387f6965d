"""Idempotency keys on EnqueueActivity: the same key within the window returns the first task,
also when the enqueues race; the window and retention end a key."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from durable.client import Client
from durable.common.errors import InvalidArgument
from durable.controlplane.retention import Retention
from durable.controlplane.settings import RetentionSettings
from durable.controlplane.store import Store
from durable.controlplane.store.idempotency import IdempotencyStore
from tests.support.clock import FakeClock
from tests.support.controlplane import running_control_plane

HOUR = 3600.0


@pytest.fixture
def keys(pool: asyncpg.Pool, clock: FakeClock) -> IdempotencyStore:
    return IdempotencyStore(pool, clock=clock, window=HOUR)


async def tasks(db: asyncpg.Connection) -> int:
    return int(await db.fetchval("SELECT count(*) FROM durable_task_queue"))


async def test_the_same_key_returns_the_first_task_and_says_so(
    keys: IdempotencyStore, store: Store, worker: str, db: asyncpg.Connection
) -> None:
    first = await keys.enqueue_activity_once("a", {"n": 1}, "order-7", options={"priority": 5})
    again = await keys.enqueue_activity_once("a", {"n": 2}, "order-7")
    other = await keys.enqueue_activity_once("a", {"n": 3}, "order-8")
    assert not first.duplicate and again.duplicate and not other.duplicate
    assert again.task_id == first.task_id != other.task_id
    assert await tasks(db) == 2
    [claimed], _ = await store.claim(worker, ["a"], [], 1)  # a keyed task is an ordinary task
    assert claimed.id == first.task_id and claimed.priority == 5 and claimed.input == {"n": 1}


async def test_a_key_older_than_the_window_enqueues_anew(
    keys: IdempotencyStore, clock: FakeClock, db: asyncpg.Connection
) -> None:
    first = await keys.enqueue_activity_once("a", {}, "k")
    clock.advance(HOUR - 1)
    assert (await keys.enqueue_activity_once("a", {}, "k")).task_id == first.task_id
    clock.advance(2)
    later = await keys.enqueue_activity_once("a", {}, "k")
    assert not later.duplicate and later.task_id != first.task_id
    assert (await keys.enqueue_activity_once("a", {}, "k")).task_id == later.task_id
    assert await tasks(db) == 2


async def test_a_key_of_another_activity_type_is_refused_in_one_line(keys: IdempotencyStore) -> None:
    first = await keys.enqueue_activity_once("a", {}, "k")
    with pytest.raises(InvalidArgument) as err:
        await keys.enqueue_activity_once("b", {}, "k")
    assert str(err.value) == (
        f"idempotency_key 'k' was used for activity type 'a' (task {first.task_id}); use another key for 'b'")


async def test_concurrent_enqueues_of_one_key_make_one_task(
    keys: IdempotencyStore, db: asyncpg.Connection
) -> None:
    for round_ in range(5):
        done = await asyncio.gather(*(keys.enqueue_activity_once("a", {"i": i}, f"race-{round_}") for i in range(8)))
        assert len({d.task_id for d in done}) == 1
        assert sum(not d.duplicate for d in done) == 1
    assert await tasks(db) == 5


async def test_a_deleted_task_takes_its_key_with_it(keys: IdempotencyStore, db: asyncpg.Connection) -> None:
    first = await keys.enqueue_activity_once("a", {}, "k")
    await db.execute("DELETE FROM durable_task_queue WHERE id = $1", first.task_id)
    assert await db.fetchval("SELECT count(*) FROM durable_idempotency_keys") == 0
    assert not (await keys.enqueue_activity_once("a", {}, "k")).duplicate


async def test_retention_deletes_keys_older_than_the_window(
    keys: IdempotencyStore, store: Store, clock: FakeClock, db: asyncpg.Connection
) -> None:
    for i in range(5):
        await keys.enqueue_activity_once("a", {}, f"old-{i}")
    clock.advance(HOUR + 1)
    await keys.enqueue_activity_once("a", {}, "young")
    report = await Retention(store, RetentionSettings(idempotency_window=HOUR, batch_size=2)).run_once()
    assert report.idempotency_keys == 5
    assert [r["key"] for r in await db.fetch("SELECT key FROM durable_idempotency_keys")] == ["young"]
    assert await tasks(db) == 6  # the tasks stay: only the keys went


async def test_over_grpc_concurrent_keyed_enqueues_give_one_task(database_url: str, db: asyncpg.Connection) -> None:
    retention = RetentionSettings(DURABLE_IDEMPOTENCY_WINDOW="2h")
    async with running_control_plane(database_url, retention=retention) as address, Client(address) as client:
        done = await asyncio.gather(*(client.enqueue("a", {"i": i}, idempotency_key="pay-1") for i in range(10)))
        assert len({d.task_id for d in done}) == 1 and sum(not d.duplicate for d in done) == 1
        plain = [await client.enqueue_activity("a", {}) for _ in range(2)]
        assert len(set(plain)) == 2
        assert await client.enqueue_activity("a", {}, idempotency_key="pay-1") == done[0].task_id
        with pytest.raises(InvalidArgument, match="was used for activity type 'a'"):
            await client.enqueue("b", {}, idempotency_key="pay-1")
    assert await tasks(db) == 3
    assert await db.fetchval("SELECT count(*) FROM durable_idempotency_keys") == 1


def test_the_window_setting_takes_a_duration_and_names_itself_when_bad() -> None:
    assert RetentionSettings(DURABLE_IDEMPOTENCY_WINDOW="36h").idempotency_window == 36 * HOUR
    assert RetentionSettings().idempotency_window == 24 * HOUR
    with pytest.raises(ValueError, match="DURABLE_IDEMPOTENCY_WINDOW"):
        RetentionSettings(DURABLE_IDEMPOTENCY_WINDOW="soon")


async def test_a_keyed_enqueue_keeps_its_concurrency_key(keys: IdempotencyStore, db: asyncpg.Connection) -> None:
    done = await keys.enqueue_activity_once(
        "a", {}, "order-9", options={"concurrency_key": "customer-1", "concurrency_limit": 2})
    row = await db.fetchrow("SELECT concurrency_key, concurrency_limit FROM durable_task_queue WHERE id = $1",
                            done.task_id)
    assert (row["concurrency_key"], row["concurrency_limit"]) == ("customer-1", 2)
