"""Scale: many registered, long-polling workers on one control plane.

For each worker count (10, 100, 1000 by default), on a fresh database and a fresh control-plane
process: start simulated workers (tests.bench.simworkers: one gRPC channel each, 250 per
process) that register, heartbeat every 10 s and long-poll ClaimTasks (max_tasks=1, 10 s);
wait until all are registered; measure the control plane idle for `idle_s` (CPU and RSS);
then enqueue `tasks` no-op tasks one at a time at `rate` per second through the store's
insert statement (input carries `ts`) and measure enqueue-to-claim latency as seen by the
simulated worker that got the task (p50/p99), control-plane CPU and RSS. Checks: every task
completed, no task handed out twice (per task id across all simulated workers, and attempt = 1).
"""

from __future__ import annotations

import asyncio
import math
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import asyncpg

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
)
from tests.bench.simworkers import SimProcess


async def _commits(conn: asyncpg.Connection) -> int:
    await asyncio.sleep(0.6)  # backends flush their statistics at most once a second
    await conn.execute("SELECT pg_stat_clear_snapshot()")
    return int(await conn.fetchval(
        "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"))


async def run_scale_once(
    server: Server,
    *,
    workers: int,
    tasks: int,
    rate: float,
    per_process: int = 250,
    idle_s: float = 5.0,
    settle_s: float = 2.0,
    log_dir: Path | None = None,
) -> dict[str, Any]:
    log_dir = log_dir or Path(tempfile.mkdtemp(prefix="durable-bench-logs-"))
    nproc = max(1, math.ceil(workers / per_process))
    async with fresh_database(server.admin_url) as url:
        conn = await asyncpg.connect(url)
        sims: list[SimProcess] = []
        try:
            async with control_plane(url, log_dir) as cp:
                cpu_cp = ProcessCpu([cp.pid])
                rss_start = cpu_cp.rss()
                for k in range(nproc):
                    count = workers // nproc + (1 if k < workers % nproc else 0)
                    sims.append(await SimProcess.start(
                        cp.address, count, f"sim{workers}-p{k}", log_path=str(log_dir / f"sim{workers}-p{k}.log")))
                await asyncio.gather(*(s.wait_ready(180) for s in sims))
                await wait_registered(conn, workers, timeout=120)
                await asyncio.sleep(settle_s)  # every long-poll in place
                x0 = await _commits(conn)
                c0 = (cpu_cp.total(), server.cpu())
                t0 = time.perf_counter()
                await asyncio.sleep(idle_s)
                idle_wall = time.perf_counter() - t0
                c1 = (cpu_cp.total(), server.cpu())
                x1 = await _commits(conn)
                rss_idle = cpu_cp.rss()
                # load: one task per transaction on a steady schedule
                t0 = time.monotonic()
                for i in range(tasks):
                    delay = t0 + i / rate - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    await insert_activities(conn, "noop", [{"i": i, "ts": time.time()}])

                async def drained() -> bool:
                    return not await any_left(conn, ["noop"])

                await wait_until(drained, 120, "every task of the scale run")
                load_wall = time.monotonic() - t0
                c2 = (cpu_cp.total(), server.cpu())
                x2 = await _commits(conn)
                rss_load = cpu_cp.rss()
                finals = [await s.stop() for s in sims]
                sims = []
                outcome = await task_outcome(conn, ["noop"])
        finally:
            for s in sims:
                await s.stop(timeout=5)
            await conn.close()
    received = [r for f in finals for r in f["received"]]
    per_task = Counter(r[0] for r in received)
    lat = [r[2] for r in received if r[2] is not None]
    pg_idle = (c1[1] - c0[1]) / idle_wall if c0[1] is not None and c1[1] is not None else None
    pg_load = (c2[1] - c1[1]) / load_wall if c1[1] is not None and c2[1] is not None else None
    result = {
        "workers": workers, "processes": nproc, "tasks": tasks, "rate": rate,
        **{f"claim_{k}": v for k, v in latency_summary(lat).items()},
        "received": len(received), "distinct_received": len(per_task),
        "handed_out_twice": sum(1 for c in per_task.values() if c > 1),
        "lost": tasks - outcome["completed"], **outcome,
        "sim_errors": sum(int(f.get("errors", 0)) for f in finals),
        "cp_cpu_idle_cores": (c1[0] - c0[0]) / idle_wall,
        "cp_cpu_load_cores": (c2[0] - c1[0]) / load_wall,
        "pg_cpu_idle_cores": pg_idle, "pg_cpu_load_cores": pg_load,
        "cp_rss_start_mb": rss_start / 2**20, "cp_rss_idle_mb": rss_idle / 2**20,
        "cp_rss_load_mb": rss_load / 2**20,
        # transactions committed in the database (pg_stat_database.xact_commit): idle polling
        # cost, and claim attempts per task handed out (1 = no wasted wake-ups)
        "db_commits_idle_per_s": (x1 - x0) / idle_wall, "db_commits_per_task": (x2 - x1) / max(tasks, 1),
    }
    log(
        f"scale {workers} workers: claim p50={result['claim_p50_ms']:.1f}ms p99={result['claim_p99_ms']:.1f}ms "
        f"cp idle={result['cp_cpu_idle_cores']:.2f} cores load={result['cp_cpu_load_cores']:.2f} cores "
        f"rss idle={result['cp_rss_idle_mb']:.0f}MB load={result['cp_rss_load_mb']:.0f}MB "
        f"commits idle={result['db_commits_idle_per_s']:.0f}/s per task={result['db_commits_per_task']:.1f} "
        f"received={len(received)}/{tasks} twice={result['handed_out_twice']} lost={result['lost']} "
        f"errors={result['sim_errors']}"
    )
    return result
