"""Workflows and their event log, against real PostgreSQL."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from durable.common.errors import ConcurrencyConflict, InvalidArgument, NotFound, PayloadTooLarge, WrongState
from durable.controlplane.store import Store


async def test_start_and_get_workflow(store: Store) -> None:
    wf, created = await store.start_workflow("order", {"n": 1})
    assert created
    got = await store.get_workflow(wf.id)
    assert (got.workflow_type, got.status, got.input) == ("order", "pending", {"n": 1})
    events = await store.load_events(wf.id)
    assert [(e.sequence_num, e.event_type) for e in events] == [(1, "WorkflowStarted")]
    data = events[0].event_data
    assert isinstance(data.pop("random_seed"), int)  # the seed of the workflow's ctx.random()
    assert data == {"workflow_type": "order", "input": {"n": 1}}


async def test_starting_the_same_id_twice_returns_the_first(store: Store, db: asyncpg.Connection) -> None:
    first, created1 = await store.start_workflow("order", {"n": 1}, workflow_id="order-42")
    again, created2 = await store.start_workflow("order", {"n": 2}, workflow_id="order-42")
    assert created1 and not created2
    assert again.id == first.id and again.input == {"n": 1}
    assert await db.fetchval("SELECT count(*) FROM durable_workflow_instances") == 1
    assert await db.fetchval("SELECT count(*) FROM durable_workflow_events") == 1
    assert await db.fetchval("SELECT count(*) FROM durable_task_queue WHERE kind = 'workflow'") == 1


async def test_starting_an_existing_id_with_another_type_is_refused(store: Store, db: asyncpg.Connection) -> None:
    await store.start_workflow("order", {}, workflow_id="order-43")
    with pytest.raises(WrongState, match="'order-43' already exists with type 'order', not 'invoice'"):
        await store.start_workflow("invoice", {}, workflow_id="order-43")
    assert await db.fetchval("SELECT count(*) FROM durable_workflow_events") == 1


async def test_concurrent_starts_of_one_id_create_one_workflow(store: Store, db: asyncpg.Connection) -> None:
    results = await asyncio.gather(*(store.start_workflow("order", {}, workflow_id="same") for _ in range(8)))
    assert sum(created for _, created in results) == 1
    assert await db.fetchval("SELECT count(*) FROM durable_workflow_events WHERE workflow_id = 'same'") == 1


async def test_workflow_not_found(store: Store) -> None:
    with pytest.raises(NotFound, match="'nope' does not exist"):
        await store.get_workflow("nope")
    with pytest.raises(NotFound):
        await store.load_events("nope")
    with pytest.raises(NotFound):
        await store.append_events("nope", 0, [("X", {})])
    with pytest.raises(NotFound):
        await store.signal_workflow("nope", "go", {})
    with pytest.raises(NotFound):
        await store.cancel_workflow("nope")


async def test_status_transitions(store: Store) -> None:
    wf, _ = await store.start_workflow("order", {})
    running = await store.set_workflow_status(wf.id, "running")
    assert running.status == "running" and running.started_at is not None
    done = await store.set_workflow_status(wf.id, "completed", result={"ok": True})
    assert done.status == "completed" and done.result == {"ok": True} and done.completed_at is not None
    with pytest.raises(WrongState, match="cannot go from completed to running"):
        await store.set_workflow_status(wf.id, "running")
    with pytest.raises(InvalidArgument, match="not one of"):
        await store.set_workflow_status(wf.id, "exploded")


async def test_append_and_load_events_with_optimistic_concurrency(store: Store, db: asyncpg.Connection) -> None:
    wf, _ = await store.start_workflow("order", {})
    last = await store.append_events(wf.id, 1, [("A", {"i": 1}), ("B", {"i": 2})])
    assert last == 3
    with pytest.raises(ConcurrencyConflict, match="moved past sequence 1"):
        await store.append_events(wf.id, 1, [("C", {"i": 3})])
    events = await store.load_events(wf.id)
    assert [(e.sequence_num, e.event_type) for e in events] == [(1, "WorkflowStarted"), (2, "A"), (3, "B")]
    assert [e.event_type for e in await store.load_events(wf.id, after_seq=2)] == ["B"]
    # the conflicting append wrote nothing
    assert await db.fetchval("SELECT count(*) FROM durable_workflow_events WHERE event_type = 'C'") == 0


async def test_racing_appends_one_wins(store: Store) -> None:
    wf, _ = await store.start_workflow("order", {})
    outcomes = await asyncio.gather(
        *(store.append_events(wf.id, 1, [(f"E{i}", {})]) for i in range(6)), return_exceptions=True
    )
    assert sum(1 for o in outcomes if o == 2) == 1
    assert sum(isinstance(o, ConcurrencyConflict) for o in outcomes) == 5
    assert len(await store.load_events(wf.id)) == 2


async def test_signals_are_recorded_in_order(store: Store) -> None:
    wf, _ = await store.start_workflow("order", {})
    seqs = [await store.signal_workflow(wf.id, "note", {"i": i}) for i in range(5)]
    assert seqs == [2, 3, 4, 5, 6]
    signals = await store.list_signals(wf.id)
    assert [s.payload["i"] for s in signals] == [0, 1, 2, 3, 4]
    events = await store.load_events(wf.id, after_seq=1)
    assert [e.event_data["payload"]["i"] for e in events] == [0, 1, 2, 3, 4]
    assert all(e.event_type == "SignalReceived" for e in events)


async def test_cancel_cancels_pending_tasks_and_ends_the_workflow(
    store: Store, worker: str, db: asyncpg.Connection
) -> None:
    wf, _ = await store.start_workflow("wf", {})
    await store.set_workflow_status(wf.id, "running")
    n = await store.cancel_workflow(wf.id, "user asked", terminate=True)
    assert n == 1  # the pending decision task
    got = await store.get_workflow(wf.id)
    assert got.status == "cancelled" and got.completed_at is not None
    assert await db.fetchval(
        "SELECT count(*) FROM durable_task_queue WHERE workflow_id = $1 AND status = 'pending'", wf.id
    ) == 0
    assert (await store.load_events(wf.id))[-1].event_type == "WorkflowCancelled"
    assert await store.cancel_workflow(wf.id, terminate=True) == 0  # idempotent
    with pytest.raises(WrongState, match="takes no more signals"):
        await store.signal_workflow(wf.id, "note", {})


async def test_bad_workflow_input_is_refused_and_nothing_is_written(store: Store, db: asyncpg.Connection) -> None:
    with pytest.raises(InvalidArgument, match="not JSON-serialisable"):
        await store.start_workflow("order", {"x": object()})
    with pytest.raises(PayloadTooLarge, match="over the limit"):
        await store.start_workflow("order", {"blob": "x" * (store.max_payload_bytes + 1)})
    with pytest.raises(InvalidArgument, match="workflow_type is required"):
        await store.start_workflow("", {})
    with pytest.raises(InvalidArgument, match="nests deeper"):
        deep: dict = {}
        node = deep
        for _ in range(100):
            node["x"] = {}
            node = node["x"]
        await store.start_workflow("order", deep)
    assert await db.fetchval("SELECT count(*) FROM durable_workflow_instances") == 0
