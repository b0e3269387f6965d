"""Concurrency keys and rate limits with real processes: a control plane, three `durable worker`
processes and PostgreSQL. What is checked is what ran, as recorded by the activities and the
queue, not how fast our code is."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import asyncpg

from durable.client import Client
from tests.support.controlplane import control_plane_process, wait_serving
from tests.support.processes import wait_for, worker_process

WORKERS = 3


def max_overlap(intervals: list[tuple[float, float]]) -> int:
    """The most intervals open at one instant (an end at t closes before a start at t)."""
    points = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals], key=lambda p: (p[0], p[1]))
    peak = open_now = 0
    for _, step in points:
        open_now += step
        peak = max(peak, open_now)
    return peak


def test_max_overlap() -> None:
    assert max_overlap([(0, 1), (1, 2), (2, 3)]) == 1
    assert max_overlap([(0, 2), (1, 3), (1.5, 4)]) == 3


async def _enqueue(address: str, n: int, extra: dict[str, Any] | None = None, **options: Any) -> None:
    async with Client(address) as client:
        sem = asyncio.Semaphore(32)

        async def one(i: int) -> None:
            async with sem:
                await client.enqueue_activity("timed", {"i": i, **(extra or {})}, **options)

        await asyncio.gather(*(one(i) for i in range(n)))


async def _all_done(db: asyncpg.Connection, n: int) -> bool:
    return bool(await db.fetchval(
        "SELECT count(*) FROM durable_task_queue WHERE activity_type = 'timed' AND status = 'completed'") == n)


async def test_a_key_of_limit_2_never_runs_more_than_2_across_3_workers(
    database_url: str, tmp_path: Path, db: asyncpg.Connection
) -> None:
    """1,000 tasks of one key (limit 2) and 300 of another (limit 1) drain through 3 worker
    processes: at no instant do more than 2 (1) of a key run, and every worker took part."""
    with control_plane_process(database_url) as (_, address):
        await wait_serving(address)
        with worker_process(address, "kw-0", log_dir=tmp_path, MAX_CONCURRENT_TASKS="8"), \
             worker_process(address, "kw-1", log_dir=tmp_path, MAX_CONCURRENT_TASKS="8"), \
             worker_process(address, "kw-2", log_dir=tmp_path, MAX_CONCURRENT_TASKS="8"):
            await wait_for(lambda: db.fetchval("SELECT count(*) FROM durable_workers WHERE status = 'active'"),
                           30, "the workers to register")
            await asyncio.gather(
                _enqueue(address, 1000, concurrency_key="customer-a", concurrency_limit=2),
                _enqueue(address, 300, concurrency_key="customer-b", concurrency_limit=1),
            )
            await wait_for(lambda: _all_done(db, 1300), 240, "1,300 keyed tasks to complete")
    rows = await db.fetch(
        "SELECT concurrency_key, attempt, result FROM durable_task_queue WHERE activity_type = 'timed'"
    )

    by_key: dict[str, list[tuple[float, float]]] = {"customer-a": [], "customer-b": []}
    workers: set[str] = set()
    for r in rows:
        result = json.loads(r["result"]) if isinstance(r["result"], str) else r["result"]
        by_key[r["concurrency_key"]].append((result["start"], result["end"]))
        workers.add(result["worker"])
    assert len(by_key["customer-a"]) == 1000 and len(by_key["customer-b"]) == 300
    assert max_overlap(by_key["customer-a"]) == 2  # never more, and the limit was used
    assert max_overlap(by_key["customer-b"]) == 1
    assert workers == {"kw-0", "kw-1", "kw-2"}
    assert {r["attempt"] for r in rows} == {1}  # waiting burnt no attempt


async def test_a_rate_limit_of_50_per_second_holds_over_10_seconds(
    database_url: str, tmp_path: Path, db: asyncpg.Connection
) -> None:
    """50 starts/s of a type across 3 worker processes with room for many more: the starts the
    queue recorded in the first 10 s of the drain are 500 +/- 10% (a correctness bound on the
    bucket, not a speed measure: unlimited, these workers start thousands a second)."""
    with control_plane_process(database_url) as (_, address):
        await wait_serving(address)
        async with Client(address) as client:
            await client.set_rate_limit("timed", 50)
            limits, _ = await client.rate_limits()
            assert [(r.activity_type, r.rate, r.burst) for r in limits] == [("timed", 50, 5)]
        await _enqueue(address, 700, {"seconds": 0.001})
        with worker_process(address, "rw-0", log_dir=tmp_path, MAX_CONCURRENT_TASKS="16"), \
             worker_process(address, "rw-1", log_dir=tmp_path, MAX_CONCURRENT_TASKS="16"), \
             worker_process(address, "rw-2", log_dir=tmp_path, MAX_CONCURRENT_TASKS="16"):
            await wait_for(lambda: db.fetchval(
                "SELECT count(*) >= 560 FROM durable_task_queue WHERE activity_type = 'timed' AND claimed_at IS NOT NULL"),
                60, "11 s of starts")
    first = await db.fetchval("SELECT min(claimed_at) FROM durable_task_queue WHERE claimed_at IS NOT NULL")
    started = await db.fetchval(
        "SELECT count(*) FROM durable_task_queue WHERE claimed_at >= $1 AND claimed_at < $1 + interval '10 s'", first
    )
    print(f"rate limit 50/s: {started} starts in the first 10 s of the drain")
    assert 450 <= started <= 550, started
    per_second = await db.fetch(
        "SELECT floor(extract(epoch FROM claimed_at - $1))::int AS s, count(*) AS n FROM durable_task_queue "
        "WHERE claimed_at >= $1 AND claimed_at < $1 + interval '10 s' GROUP BY 1 ORDER BY 1", first
    )
    assert all(r["n"] <= 50 + 5 for r in per_second), [dict(r) for r in per_second]  # at most the burst over
