"""Workflow throughput: agent-turn-shaped workflows per second, end to end.

Four apps:
- `four_steps` (tests.bench.apps): four sequential no-op activities, so 4 activity tasks and
  5 decisions per workflow (the decisions after the first ride on the activities' completions
  where the keeper's worker ran them, and are no task of their own);
- `one_step` (tests.bench.apps): one no-op activity, so 1 activity and 2 decisions (the
  1-step side of peer-bench W3);
- `four_local_steps` (tests.bench.apps): the same four steps as local activities, so 1
  decision task (with 4 markers) and no activity tasks per workflow;
- `agent_turn` (durable.examples.agent_turn with its LocalModel, no network): process_input,
  reason, one calculator `act`, reason: 4 activities and 5 decisions as well.

A run: control plane + W workers registered; the control plane paused (SIGSTOP); N workflows
started through the store's `start_workflow` (instance + WorkflowStarted + first decision
task, one transaction each, 16 at a time); ANALYZE; resume = go; the clock stops when a SQL
count shows every workflow ended. Checks: all completed, no activity task claimed twice.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg
from durable.controlplane.store import Store

from tests.bench.harness import (
    ProcessCpu,
    Server,
    control_plane,
    fresh_database,
    log,
    profiled,
    run_clock,
    settle,
    wait_registered,
    worker_processes,
)

APPS = {
    "four_steps": ("tests.bench.apps:app", "four_steps", lambda i: {"i": i}),
    "one_step": ("tests.bench.apps:app", "one_step", lambda i: {"i": i}),
    "four_local_steps": ("tests.bench.apps:app", "four_local_steps", lambda i: {"i": i}),
    "four_journalled_steps": ("tests.bench.apps:app", "four_journalled_steps", lambda i: {"i": i}),
    "one_journalled_step": ("tests.bench.apps:app", "one_journalled_step", lambda i: {"i": i}),
    "agent_turn": ("durable.examples.agent_turn:app", "agent_turn", lambda i: {"message": f"what is {i}+3*4?"}),
}


async def _start_all(url: str, workflow_type: str, make_input: Any, n: int, concurrency: int = 16) -> None:
    pool = await asyncpg.create_pool(url, min_size=concurrency, max_size=concurrency)
    try:
        store = Store(pool)
        next_i = 0

        async def starter() -> None:
            nonlocal next_i
            while next_i < n:
                i = next_i
                next_i += 1
                await store.start_workflow(workflow_type, make_input(i), workflow_id=f"bench-{i}")

        await asyncio.gather(*(starter() for _ in range(concurrency)))
    finally:
        await pool.close()


async def run_workflows_once(
    server: Server,
    *,
    app: str,
    n: int,
    workers: int,
    concurrency: int,
    limit_s: float = 300.0,
    log_dir: Path | None = None,
    profile_dir: str | None = None,
) -> dict[str, Any]:
    app_ref, workflow_type, make_input = APPS[app]
    log_dir = log_dir or Path(tempfile.mkdtemp(prefix="durable-bench-logs-"))
    async with fresh_database(server.admin_url) as url:
        conn = await asyncpg.connect(url)
        try:
            async with control_plane(url, log_dir) as cp, worker_processes(
                cp.address, workers, app=app_ref, concurrency=concurrency, log_dir=log_dir, prefix=f"wf-{app}",
            ) as procs:
                await wait_registered(conn, workers, procs)
                cp.pause()
                try:
                    t0 = time.perf_counter()
                    await _start_all(url, workflow_type, make_input, n)
                    start_s = time.perf_counter() - t0
                    await settle(conn)
                    cpu_cp, cpu_w = ProcessCpu([cp.pid]), ProcessCpu([p.pid for p in procs])
                    c0 = (cpu_cp.total(), cpu_w.total(), server.cpu())
                    t_go = time.perf_counter()
                finally:
                    cp.resume()
                tag = f"workflows-{app}"

                async def running() -> bool:
                    return bool(await conn.fetchval(
                        "SELECT EXISTS (SELECT 1 FROM durable_workflow_instances WHERE status IN ('pending', 'running'))"))

                with profiled({f"{tag}-controlplane": cp.pid, f"{tag}-worker0": procs[0].pid}, profile_dir):
                    timed_out = await run_clock(running, [cp.proc, *procs], since=t_go, limit_s=limit_s, log_dir=log_dir)
                wall = time.perf_counter() - t_go
                c1 = (cpu_cp.total(), cpu_w.total(), server.cpu())
                status = {r["status"]: r["count"] for r in await conn.fetch(
                    "SELECT status, count(*) FROM durable_workflow_instances GROUP BY status")}
                tasks = await conn.fetchrow(
                    "SELECT count(*) FILTER (WHERE kind = 'activity') AS activities, "
                    "count(*) FILTER (WHERE kind = 'workflow') AS decisions, "
                    "count(*) FILTER (WHERE kind = 'activity' AND attempt > 1) AS activities_twice, "
                    "count(*) FILTER (WHERE kind = 'workflow' AND attempt > 1) AS decisions_twice "
                    "FROM durable_task_queue")
                markers = await conn.fetchrow(
                    "SELECT count(*) AS markers, "
                    "count(*) FILTER (WHERE (event_data->'value'->>'attempts')::int > 1) AS retried "
                    "FROM durable_workflow_events WHERE event_type = 'MarkerRecorded'")
        finally:
            await conn.close()
    completed = int(status.get("completed", 0))
    pg = (c1[2] - c0[2]) if c0[2] is not None and c1[2] is not None else None
    result = {
        "app": app, "n": n, "workers": workers, "concurrency": concurrency, "wall_s": wall,
        "workflows_per_s": completed / wall, "timed_out": timed_out, "completed": completed,
        "not_completed": n - completed, "statuses": status,
        "activity_tasks": int(tasks["activities"]), "decision_tasks": int(tasks["decisions"]),
        "activities_claimed_twice": int(tasks["activities_twice"]),
        "decisions_retried": int(tasks["decisions_twice"]),
        "markers": int(markers["markers"]), "markers_retried": int(markers["retried"]),
        "tasks_per_s": (int(tasks["activities"]) + int(tasks["decisions"])) / wall,
        "cp_cpu_s": c1[0] - c0[0], "worker_cpu_s": c1[1] - c0[1], "pg_cpu_s": pg, "start_s": start_s,
    }
    log(
        f"workflows {app} W={workers} C={concurrency}: {result['workflows_per_s']:.1f} wf/s "
        f"({result['tasks_per_s']:.0f} tasks/s) wall={wall:.2f}s completed={completed}/{n} statuses={status}"
    )
    return result
