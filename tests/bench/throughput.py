"""Throughput: N no-op activities drained by real worker processes through the real gRPC path.

One run (a fresh database each time, like peer-bench W1):

1. start the control plane (child process) and W `durable worker` processes with
   MAX_CONCURRENT_TASKS=C; wait until all W are registered and long-polling;
2. pause the control plane (SIGSTOP), enqueue the N tasks in one transaction with the store's
   own `insert_task` statement (what EnqueueActivity runs; see README for why not N RPCs),
   ANALYZE, CHECKPOINT;
3. snapshot CPU, resume the control plane (SIGCONT) = "go"; it reads the NOTIFY and wakes the
   waiting claims;
4. stop the clock when a SQL count shows no pending or claimed task left;
5. check: every task completed, none claimed twice (attempt = 1 for all);
6. stop the workers, then time the API's enqueue paths against a fresh control plane, round
   by round (interleaved): single EnqueueActivity calls with K in flight, the same calls
   coalesced by the client into EnqueueActivities, and enqueue_activities in lists of 500
   (4 in flight); M tasks each, the median of the rounds.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg
from durable.common.policies import ActivityOptions
from durable.client import Activity, Client, Enqueued

from tests.bench.harness import (
    ProcessCpu,
    Server,
    any_left,
    control_plane,
    fresh_database,
    insert_activities,
    log,
    profiled,
    run_clock,
    settle,
    task_outcome,
    wait_registered,
    worker_processes,
)

PAD = "x" * 60  # ~100-byte payloads, as peer-bench's


async def grpc_enqueue_rate(
    address: str, count: int, concurrency: int, *, coalesce: bool = False, batch: int = 0
) -> dict[str, float]:
    """Tasks/s through the client: `concurrency` callers in flight, each making single
    enqueue_activity calls (coalesced or not), or with `batch`, enqueue_activities of that many."""
    if count <= 0:
        return {"n": 0, "tasks_per_s": float("nan"), "call_p50_ms": float("nan")}
    durations: list[float] = []
    next_i = 0
    async with Client(address, coalesce=coalesce) as client:
        await client.enqueue_activity("noop_enqueue_only", {"i": -1})  # warm the channel

        async def caller() -> None:
            nonlocal next_i
            while next_i < count:
                i = next_i
                take = max(1, min(batch, count - i))
                next_i += take
                t = time.perf_counter()
                if batch:
                    out = await client.enqueue_activities(
                        [Activity("noop_enqueue_only", {"i": j, "pad": PAD}) for j in range(i, i + take)])
                    if any(not isinstance(o, Enqueued) for o in out):
                        raise RuntimeError(f"enqueue_activities failed: {next(o for o in out if not isinstance(o, Enqueued))}")
                else:
                    await client.enqueue_activity("noop_enqueue_only", {"i": i, "pad": PAD})
                durations.append(time.perf_counter() - t)

        t0 = time.perf_counter()
        await asyncio.gather(*(caller() for _ in range(concurrency)))
        wall = time.perf_counter() - t0
    return {"n": count, "tasks_per_s": count / wall, "call_p50_ms": statistics.median(durations) * 1e3,
            "concurrency": concurrency, "batch": batch}


# The API's enqueue paths, measured interleaved (round by round) against one control plane.
ENQUEUE_PATHS: dict[str, dict[str, Any]] = {
    "single": {"coalesce": False},
    "coalesced": {"coalesce": True},
    "batched": {"batch": 500},
}


async def enqueue_paths(
    address: str, count: int, concurrency: int, rounds: int, *, batch_concurrency: int = 4
) -> dict[str, dict[str, Any]]:
    """Each path `rounds` times, interleaved (noise hits them alike); the median run of each."""
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in ENQUEUE_PATHS}
    for _ in range(rounds):
        for name, how in ENQUEUE_PATHS.items():
            runs[name].append(await grpc_enqueue_rate(
                address, count, batch_concurrency if how.get("batch") else concurrency, **how))
    out: dict[str, dict[str, Any]] = {}
    for name, rs in runs.items():
        ordered = sorted(rs, key=lambda r: r["tasks_per_s"])
        out[name] = {**ordered[len(ordered) // 2], "runs_tasks_per_s": [r["tasks_per_s"] for r in rs]}
    return out


async def run_throughput_once(
    server: Server,
    *,
    n: int,
    workers: int,
    concurrency: int,
    enqueue_rpc_n: int = 6000,
    enqueue_rpc_concurrency: int = 32,
    enqueue_rounds: int = 3,
    limit_s: float = 300.0,
    log_dir: Path | None = None,
    worker_env: dict[str, str] | None = None,
    profile_dir: str | None = None,
    keys: int = 0,
    key_limit: int = 2,
) -> dict[str, Any]:
    log_dir = log_dir or Path(tempfile.mkdtemp(prefix="durable-bench-logs-"))
    async with fresh_database(server.admin_url) as url:
        conn = await asyncpg.connect(url)
        try:
            async with control_plane(url, log_dir) as cp, worker_processes(
                cp.address, workers, app="tests.bench.apps:app", concurrency=concurrency,
                log_dir=log_dir, prefix=f"tp-c{concurrency}", **(worker_env or {}),
            ) as procs:
                await wait_registered(conn, workers, procs)
                cp.pause()
                try:
                    t0 = time.perf_counter()
                    keyed = (lambda i: ActivityOptions(concurrency_key=f"customer-{i % keys}",
                                                       concurrency_limit=key_limit)) if keys else None
                    await insert_activities(conn, "noop", [{"i": i, "pad": PAD} for i in range(n)], keyed)
                    enqueue_s = time.perf_counter() - t0
                    await settle(conn)
                    cpu_cp, cpu_w = ProcessCpu([cp.pid]), ProcessCpu([p.pid for p in procs])
                except BaseException:
                    cp.resume()
                    raise
                tag = f"throughput-{workers}x{concurrency}{f'-keys{keys}' if keys else ''}"
                with profiled({f"{tag}-controlplane": cp.pid, f"{tag}-worker0": procs[0].pid}, profile_dir):
                    c0 = (cpu_cp.total(), cpu_w.total(), server.cpu())
                    t_go = time.perf_counter()
                    cp.resume()
                    timed_out = await run_clock(lambda: any_left(conn, ["noop"]), [cp.proc, *procs],
                                                since=t_go, limit_s=limit_s, log_dir=log_dir)
                    wall = time.perf_counter() - t_go
                    c1 = (cpu_cp.total(), cpu_w.total(), server.cpu())
                cp_rss = ProcessCpu([cp.pid]).rss()
                outcome = await task_outcome(conn, ["noop"])
            # workers stopped (drained); the enqueue path through the API, on its own
            if enqueue_rpc_n > 0:
                async with control_plane(url, log_dir) as cp2:
                    with profiled({f"{tag}-enqueue-controlplane": cp2.pid}, profile_dir):
                        paths = await enqueue_paths(cp2.address, enqueue_rpc_n, enqueue_rpc_concurrency, enqueue_rounds)
            else:  # the drain alone (the latency sweep's drain rate)
                paths = {name: {"n": 0, "tasks_per_s": float("nan"), "call_p50_ms": float("nan")} for name in ENQUEUE_PATHS}
            grpc_enqueue = paths["single"]
        finally:
            await conn.close()
    pg_cpu = (c1[2] - c0[2]) if c0[2] is not None and c1[2] is not None else None
    done = outcome["completed"]
    result: dict[str, Any] = {
        "n": n, "workers": workers, "concurrency": concurrency, "keys": keys, "wall_s": wall,
        "tasks_per_s": done / wall, "timed_out": timed_out, **outcome,
        "cp_cpu_s": c1[0] - c0[0], "worker_cpu_s": c1[1] - c0[1], "pg_cpu_s": pg_cpu,
        "cp_rss_mb": cp_rss / 2**20, "enqueue_store_s": enqueue_s,
        "grpc_enqueue": grpc_enqueue, "enqueue_paths": paths,
    }
    per_k = 1000 / max(done, 1)
    per_1k: dict[str, float | None] = {
        "controlplane": (c1[0] - c0[0]) * per_k,
        "workers": (c1[1] - c0[1]) * per_k,
        "postgres": (pg_cpu * per_k) if pg_cpu is not None else None,
    }
    per_1k["total"] = sum(v for v in per_1k.values() if v is not None)
    result["cpu_s_per_1k"] = per_1k
    log(
        f"throughput W={workers} C={concurrency}{f' keys={keys} (limit {key_limit})' if keys else ''}: "
        f"{result['tasks_per_s']:.0f} tasks/s wall={wall:.2f}s "
        f"cpu cp={result['cp_cpu_s']:.1f}s w={result['worker_cpu_s']:.1f}s pg={pg_cpu if pg_cpu is None else round(pg_cpu, 1)}s "
        f"completed={done}/{n} twice={outcome['claimed_twice']} enqueue/s store={n / enqueue_s:.0f} "
        + " ".join(f"{k}={v['tasks_per_s']:.0f}" for k, v in paths.items())
    )
    return result


async def run_throughput(
    server: Server, *, n: int, configs: list[tuple[int, int]], reps: int, keys: int = 0, **kwargs: Any
) -> list[dict[str, Any]]:
    """Every (workers, concurrency) config `reps` times; one row per config with the median.
    With `keys`, each rep also drains the same tasks spread over that many concurrency keys
    (limit 2 each), right after the plain run: row["keyed"], and its ratio to the plain median."""
    rows = []
    for workers, concurrency in configs:
        runs, keyed_runs = [], []
        for _ in range(reps):
            runs.append(await run_throughput_once(server, n=n, workers=workers, concurrency=concurrency, **kwargs))
            if keys:
                keyed_runs.append(await run_throughput_once(
                    server, n=n, workers=workers, concurrency=concurrency, keys=keys, **kwargs))
        median = _median(runs)
        row = {**median, "runs_tasks_per_s": [r["tasks_per_s"] for r in runs], "runs": runs}
        if keyed_runs:
            keyed = _median(keyed_runs)
            row["keyed"] = {**keyed, "runs_tasks_per_s": [r["tasks_per_s"] for r in keyed_runs],
                            "over_plain": keyed["tasks_per_s"] / median["tasks_per_s"]}
            log(f"throughput W={workers} C={concurrency}: {keys} concurrency keys {keyed['tasks_per_s']:.0f} tasks/s "
                f"/ plain {median['tasks_per_s']:.0f} tasks/s = {row['keyed']['over_plain']:.2f}")
        rows.append(row)
    return rows


def _median(runs: list[dict[str, Any]]) -> dict[str, Any]:
    ordered = sorted(runs, key=lambda r: r["tasks_per_s"])
    return ordered[len(ordered) // 2]
