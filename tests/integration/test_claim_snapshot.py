"""A claimed decision (and a claimed query) reads its workflow row and its history in one
snapshot: an event appended while the claim reads them shows in neither or in both."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from durable.controlplane.store import Store
from durable.controlplane.store.queries import Q
from durable.controlplane.store.workflow_queries import WorkflowQueryStore
from tests.support.clock import FakeClock


class _Conn:
    """A connection that runs `between` once, right after the first read that follows `after`."""

    def __init__(self, conn: asyncpg.Connection, after: str, between: Callable[[], Awaitable[None]]) -> None:
        self._conn = conn
        self._after = after
        self._between = between
        self._armed = False
        self.fired = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)

    async def fetch(self, query: str, *args: Any) -> Any:
        rows = await self._conn.fetch(query, *args)
        if self._armed and not self.fired:
            self.fired = True
            await self._between()  # another transaction commits here, mid-claim
        if query == self._after:
            self._armed = True
        return rows


class _Pool:
    def __init__(self, pool: asyncpg.Pool, after: str, between: Callable[[], Awaitable[None]]) -> None:
        self._pool = pool
        self._after = after
        self._between = between
        self.conns: list[_Conn] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._pool, name)

    @asynccontextmanager
    async def acquire(self) -> AsyncIterator[_Conn]:
        async with self._pool.acquire() as conn:
            wrapped = _Conn(conn, self._after, self._between)
            self.conns.append(wrapped)
            yield wrapped


async def test_a_claimed_decision_sees_its_row_and_history_in_one_snapshot(pool: asyncpg.Pool, clock: FakeClock) -> None:
    plain = Store(pool, clock=clock, rng=random.Random(7))
    await plain.register_worker("w1", workflow_types=["wf"])
    await plain.start_workflow("wf", {"n": 1}, "snap")

    async def signal() -> None:
        await plain.signal_workflow("snap", "poke", {"at": "mid-claim"})

    proxy = _Pool(pool, Q.claim_tasks, signal)
    store = Store(proxy, clock=clock, rng=random.Random(7))  # type: ignore[arg-type]
    _, decisions = await store.claim("w1", workflow_types=["wf"])
    assert any(c.fired for c in proxy.conns), "the concurrent signal ran during the claim"
    (decision,) = decisions
    seqs = [e.sequence_num for e in decision.history]
    assert seqs == list(range(1, len(seqs) + 1))
    assert decision.workflow.last_event_seq == seqs[-1]  # the row and its history agree
    assert len(await plain.load_events("snap", 0)) == len(seqs) + 1  # the signal landed after


async def test_a_claimed_query_sees_its_row_and_history_in_one_snapshot(pool: asyncpg.Pool, clock: FakeClock) -> None:
    plain = Store(pool, clock=clock, rng=random.Random(7))
    await plain.register_worker("w1", workflow_types=["wf"])
    await plain.start_workflow("wf", {"n": 1}, "asked")
    import uuid

    asker = WorkflowQueryStore(pool, clock=clock)
    await asker.ask_query(uuid.uuid4(), "asked", "status", None, 30)

    async def signal() -> None:
        await plain.signal_workflow("asked", "poke", {})

    proxy = _Pool(pool, Q.claim_queries, signal)
    queries = WorkflowQueryStore(proxy, clock=clock)  # type: ignore[arg-type]
    (claimed,) = await queries.claim_queries("w1", ["wf"], 10)
    assert any(c.fired for c in proxy.conns)
    assert claimed.workflow.last_event_seq == claimed.history[-1].sequence_num
