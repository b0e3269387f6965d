"""What a decision costs as a workflow's history grows: decision ~300 next to decision ~10 of
a 300-step sequential workflow (`long_steps` in tests.bench.apps), with the worker's instance
cache on (sticky decisions: a decision is fed only the new events) and off (every decision
replays the whole history, O(n) per decision).

A run: a control plane and one worker process; W workflows of N steps started together, so
they advance in step. Two windows are measured while they run: from the moment every
workflow has passed decision `lo - 5` until every one has passed `lo + 5`, and the same
around `hi`. In each: CPU seconds of the control plane and of the worker, and the workflow
tasks and their bytes sent (the control plane's durable_workflow_tasks_sent and
durable_workflow_task_bytes_sent counters), per decision.
"""

from __future__ import annotations

import asyncio
import re
import tempfile
import time
import urllib.request
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
    wait_registered,
    worker_processes,
)
from tests.support.controlplane import free_port


def _sent(port: int) -> tuple[float, float]:
    """(workflow tasks sent, their bytes) so far, from the control plane's metrics."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    tasks = sum(float(v) for v in re.findall(r"^durable_workflow_tasks_sent_total\{[^}]*\} (\S+)$", text, re.M))
    size = sum(float(v) for v in re.findall(r"^durable_workflow_task_bytes_sent_total\{[^}]*\} (\S+)$", text, re.M))
    return tasks, size


async def run_long_workflow_once(
    server: Server, *, cache: bool, steps: int = 300, workflows: int = 8, lo: int = 10, hi: int | None = None,
    limit_s: float = 600.0, log_dir: Path | None = None,
) -> dict[str, Any]:
    hi = hi if hi is not None else steps - 5
    log_dir = log_dir or Path(tempfile.mkdtemp(prefix="durable-bench-long-"))
    metrics_port = free_port()
    async with fresh_database(server.admin_url) as url:
        conn = await asyncpg.connect(url)
        try:
            async with control_plane(url, log_dir, METRICS_PORT=str(metrics_port)) as cp, worker_processes(
                cp.address, 1, app="tests.bench.apps:app", concurrency=32, log_dir=log_dir, prefix="long",
                DURABLE_WORKFLOW_CACHE_SIZE="1000" if cache else "0",
                # every decision a task (none rides on a completion), so that each is counted
                # and its bytes measured as the history grows
                DURABLE_FOLLOWING_DECISIONS="false",
            ) as procs:
                await wait_registered(conn, 1, procs)
                pool = await asyncpg.create_pool(url, min_size=1, max_size=4)
                try:
                    store = Store(pool)
                    for i in range(workflows):
                        await store.start_workflow("long_steps", {"n": steps}, workflow_id=f"long-{i}")
                finally:
                    await pool.close()
                cpu_cp, cpu_w = ProcessCpu([cp.pid]), ProcessCpu([p.pid for p in procs])

                async def decided_by_all() -> int:
                    # decision k is made after step k-1 completed: events 1 + 2(k-1) at least
                    seq = await conn.fetchval("SELECT min(last_event_seq) FROM durable_workflow_instances")
                    return (int(seq) - 1) // 2 + 1

                deadline = time.monotonic() + limit_s

                async def passed(k: int) -> None:
                    while await decided_by_all() < k:
                        if time.monotonic() > deadline:
                            raise TimeoutError(f"the workflows did not reach decision {k} in {limit_s:.0f} s")
                        await asyncio.sleep(0.01)

                windows = {}
                for name, at in (("lo", lo), ("hi", hi)):
                    await passed(at - 5)
                    c0, s0 = (cpu_cp.total(), cpu_w.total()), _sent(metrics_port)
                    await passed(at + 5)
                    c1, s1 = (cpu_cp.total(), cpu_w.total()), _sent(metrics_port)
                    decisions = max(s1[0] - s0[0], 1.0)
                    windows[name] = {
                        "decision": at, "decisions": decisions,
                        "cp_ms": 1000 * (c1[0] - c0[0]) / decisions, "worker_ms": 1000 * (c1[1] - c0[1]) / decisions,
                        "bytes": (s1[1] - s0[1]) / decisions,
                    }
                await passed(steps + 1)
        finally:
            await conn.close()
    lo_w, hi_w = windows["lo"], windows["hi"]
    cost = {name: w["cp_ms"] + w["worker_ms"] for name, w in windows.items()}
    result = {
        "cache": cache, "steps": steps, "workflows": workflows, "windows": windows,
        "cpu_ratio": cost["hi"] / cost["lo"] if cost["lo"] else None,
        "bytes_ratio": hi_w["bytes"] / lo_w["bytes"] if lo_w["bytes"] else None,
    }
    log(
        f"long workflow cache={'on' if cache else 'off'}: decision {lo_w['decision']} "
        f"{lo_w['cp_ms']:.2f}+{lo_w['worker_ms']:.2f} ms CPU {lo_w['bytes']:.0f} B; decision {hi_w['decision']} "
        f"{hi_w['cp_ms']:.2f}+{hi_w['worker_ms']:.2f} ms CPU {hi_w['bytes']:.0f} B; "
        f"x{result['cpu_ratio']:.2f} CPU, x{result['bytes_ratio']:.1f} bytes"
    )
    return result


def long_workflow_table(results: list[dict[str, Any]]) -> str:
    lines = [
        "| cache | decision | CPU ms per decision: control plane + worker | bytes sent per decision | "
        "decision hi / lo: CPU, bytes |",
        "|---|---|---|---|---|",
    ]
    for r in results:
        for name in ("lo", "hi"):
            w = r["windows"][name]
            ratio = f"x{r['cpu_ratio']:.2f}, x{r['bytes_ratio']:.1f}" if name == "hi" else ""
            lines.append(f"| {'on' if r['cache'] else 'off'} | ~{w['decision']} | {w['cp_ms']:.2f} + {w['worker_ms']:.2f} "
                         f"| {w['bytes']:.0f} | {ratio} |")
    return "\n".join(lines)
