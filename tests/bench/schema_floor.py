"""The SQL floor of durable's own schema: the store's claim and complete statements, run by
raw asyncpg loops with no gRPC, no control plane and no worker in between.

peer-bench's floor-B100 claims from a five-column table with one partial index. durable's
task rows are the seed's (about thirty columns, a UUID key, the claim, reaper, workflow and
step-once indexes), so PostgreSQL alone spends more per task on them. This baseline measures
that share in the same run: N no-op tasks enqueued as the throughput benchmark does, then
`conns` connections each loop "claim up to `batch` (Q.claim_tasks) in a transaction, complete
them (Q.complete_standalone_tasks) in another" until the queue is empty. What durable's
throughput adds on top of it is the price of the gRPC hop and the Python on both sides.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

import asyncpg
from durable.controlplane.store.queries import Q

from tests.bench.harness import Server, fresh_database, insert_activities, log, settle, task_outcome

PAD = "x" * 60
WORKER = "schema-floor"


async def _drain(conn: asyncpg.Connection, batch: int) -> int:
    done = 0
    while True:
        now = datetime.now(UTC)
        async with conn.transaction():
            rows = await conn.fetch(Q.claim_tasks, WORKER, ["noop"], [], batch, now, [])
        if not rows:
            return done
        async with conn.transaction():
            await conn.fetch(Q.complete_standalone_tasks, WORKER, now, [r["id"] for r in rows],
                             [r["attempt"] for r in rows], ["{}"] * len(rows))
        done += len(rows)


async def run_schema_floor(server: Server, *, n: int, batch: int = 100, conns: int = 2) -> dict[str, Any]:
    async with fresh_database(server.admin_url) as url:
        conn = await asyncpg.connect(url)
        loops = [await asyncpg.connect(url) for _ in range(conns)]
        try:
            await conn.execute(
                "INSERT INTO durable_workers (id, worker_group, activity_types, workflow_types, max_concurrency, status) "
                "VALUES ($1, 'bench', '{noop}', '{}', $2, 'active')", WORKER, batch * conns)
            for start in range(0, n, 5000):
                await insert_activities(conn, "noop", [{"i": i, "pad": PAD} for i in range(start, min(n, start + 5000))])
            await settle(conn)
            pg0, t0 = server.cpu(), time.perf_counter()
            done = sum(await asyncio.gather(*(_drain(c, batch) for c in loops)))
            wall, pg1 = time.perf_counter() - t0, server.cpu()
            outcome = await task_outcome(conn, ["noop"])
        finally:
            for c in loops:
                await c.close()
            await conn.close()
    pg = (pg1 - pg0) if pg0 is not None and pg1 is not None else None
    result = {"n": n, "batch": batch, "conns": conns, "wall_s": wall, "tasks_per_s": done / wall,
              "pg_cpu_s_per_1k": pg * 1000 / max(done, 1) if pg is not None else None, **outcome}
    log(f"schema floor B={batch} x{conns}: {result['tasks_per_s']:.0f} tasks/s, PG "
        f"{result['pg_cpu_s_per_1k'] if pg is None else round(result['pg_cpu_s_per_1k'], 3)} CPU s/1k, "
        f"completed={outcome['completed']}/{n}")
    return result
