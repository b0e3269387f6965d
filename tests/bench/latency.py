"""Pickup latency: enqueue to the activity starting.

Idle: W worker processes (default one, C=16, as peer-bench W2) long-polling; after a warm-up
task, `n` probe tasks are enqueued one at a time on a fixed schedule (`rate` per second)
through the client's EnqueueActivity. Each input carries `ts = time.time()` taken just before
the call; the `probe` activity returns `time.time() - ts` as its first action. So latency =
enqueue RPC + commit + NOTIFY + wake-up + claim + ClaimTasks answer + dispatch in the worker.

Under load: the same probes while a background enqueuer adds `noop` tasks at `load_rate` per
second (batches every 20 ms through the store's insert statement) for the workers to drain.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg
from durable.client import Client

from tests.bench.harness import (
    ProcessCpu,
    Server,
    any_left,
    control_plane,
    fresh_database,
    insert_activities,
    latency_summary,
    log,
    task_outcome,
    wait_registered,
    wait_until,
    worker_processes,
)

PAD = "x" * 60


async def _background_load(conn: asyncpg.Connection, rate: float, stop: asyncio.Event) -> int:
    """Insert noop tasks at `rate` per second, in batches every 20 ms; returns how many."""
    sent = 0
    t0 = time.monotonic()
    while not stop.is_set():
        due = int((time.monotonic() - t0) * rate) - sent
        if due > 0:
            await insert_activities(conn, "noop", [{"i": sent + k, "pad": PAD} for k in range(due)])
            sent += due
        await asyncio.sleep(0.02)
    return sent


async def run_latency_once(
    server: Server,
    *,
    n: int,
    rate: float,
    workers: int = 1,
    concurrency: int = 16,
    load_rate: float = 0.0,
    idle_s: float = 2.0,
    log_dir: Path | None = None,
) -> dict[str, Any]:
    log_dir = log_dir or Path(tempfile.mkdtemp(prefix="durable-bench-logs-"))
    async with fresh_database(server.admin_url) as url:
        conn = await asyncpg.connect(url)
        load_conn = await asyncpg.connect(url)
        try:
            async with control_plane(url, log_dir) as cp, worker_processes(
                cp.address, workers, app="tests.bench.apps:app", concurrency=concurrency,
                log_dir=log_dir, prefix="lat",
            ) as procs, Client(cp.address) as client:
                await wait_registered(conn, workers, procs)
                await asyncio.sleep(idle_s)  # the scenario: workers that have gone idle
                await client.enqueue_activity("probe", {"ts": time.time()})  # warm-up, not counted

                async def drained() -> bool:
                    return not await any_left(conn, ["probe"])

                await wait_until(drained, 30, "the warm-up task")
                stop_load = asyncio.Event()
                loader = asyncio.create_task(_background_load(load_conn, load_rate, stop_load), name="bench-load") \
                    if load_rate > 0 else None
                if loader is not None:
                    await asyncio.sleep(1.0)  # let the load reach its steady state
                cpu_cp, cpu_w = ProcessCpu([cp.pid]), ProcessCpu([p.pid for p in procs])
                c0 = (cpu_cp.total(), cpu_w.total(), server.cpu())
                calls: list[float] = []
                t0 = time.monotonic()
                for i in range(n):
                    delay = t0 + i / rate - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    ts = time.time()
                    await client.enqueue_activity("probe", {"i": i, "ts": ts, "pad": PAD})
                    calls.append(time.time() - ts)
                window = time.monotonic() - t0
                await wait_until(drained, 60, "the probe tasks")
                c1 = (cpu_cp.total(), cpu_w.total(), server.cpu())
                load_sent = 0
                if loader is not None:
                    stop_load.set()
                    load_sent = await loader

                    async def load_drained() -> bool:
                        return not await any_left(conn, ["noop"])

                    await wait_until(load_drained, 120, "the background load")
                rows = await conn.fetch(
                    "SELECT (result->>'lat')::float8 AS lat FROM durable_task_queue "
                    "WHERE activity_type = 'probe' AND status = 'completed' AND input ? 'i'"
                )
                outcome = await task_outcome(conn, ["probe", "noop"])
        finally:
            await conn.close()
            await load_conn.close()
    lat = [r["lat"] for r in rows]
    pg = (c1[2] - c0[2]) if c0[2] is not None and c1[2] is not None else None
    result = {
        "n": n, "rate": rate, "workers": workers, "concurrency": concurrency, "load_rate": load_rate,
        "load_sent": load_sent, "got": len(lat), **latency_summary(lat),
        "enqueue_call_p50_ms": statistics.median(calls) * 1e3,
        "cp_cpu_s": c1[0] - c0[0], "worker_cpu_s": c1[1] - c0[1], "pg_cpu_s": pg, "window_s": window,
        **outcome,
    }
    log(
        f"latency load={load_rate:.0f}/s: got={len(lat)}/{n} p50={result['p50_ms']:.1f}ms "
        f"p95={result['p95_ms']:.1f}ms p99={result['p99_ms']:.1f}ms max={result['max_ms']:.1f}ms "
        f"enq_p50={result['enqueue_call_p50_ms']:.2f}ms twice={outcome['claimed_twice']}"
    )
    return result
