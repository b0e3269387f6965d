"""Pickup latency: enqueue to the activity starting, idle and under background load.

Idle: W worker processes (default one, C=16, as peer-bench W2) long-polling; after a warm-up
task, `n` probe tasks are enqueued one at a time on a fixed schedule (`rate` per second)
through the client's EnqueueActivity. Each input carries `ts = time.time()` taken just before
the call; the `probe` activity returns `time.time() - ts` as its first action. So latency =
enqueue RPC + commit + NOTIFY + wake-up + claim + ClaimTasks answer + dispatch in the worker.

Under load: the same probes while a background loader adds `noop` tasks at `load_rate` per
second for the workers to drain: one connection, a batch every 20 ms on a fixed schedule, in
one statement, the one EnqueueActivities runs (what a stream of single enqueues through the
client costs the store once coalesced), or with `per_row` one insert statement per task (the
store's single insert, as before). The sweep (`run_latency_sweep`) runs that at several
fractions of a drain rate measured for the same configuration.

Besides the percentiles, each run says what the loader sent (and how late it ran), the
backlog of background tasks when the probes stopped (did the workers keep up), CPU per
process over the probe window, the claims' batch sizes, and where the probes' time went:
enqueue call start -> row written (created_at), row -> claim (claimed_at: the claim's start),
claim -> activity start.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import psutil
from durable.client import Client

from tests.bench.harness import (
    ProcessCpu,
    Server,
    any_left,
    control_plane,
    fresh_database,
    insert_activities,
    insert_activities_batched,
    latency_summary,
    log,
    pct,
    task_outcome,
    wait_registered,
    wait_until,
    worker_processes,
)

PAD = "x" * 60
# Background load at these fractions of the same configuration's drain rate (issue 16).
FRACTIONS = (0.0, 0.25, 0.5, 0.65, 0.8)
# A background backlog at the end of the probe window above this many seconds of load (plus a
# few batches) means the workers did not keep up.
KEPT_UP_S = 0.1
# The load goes on after the last probe was sent until the probes are through, at most this long.
TAIL_S = 1.0


class BackgroundLoad:
    """Inserts `noop` tasks at `rate` per second: a batch at every `tick` on a fixed schedule
    (a late batch carries what fell due meanwhile and the next one starts at once)."""

    def __init__(self, conn: asyncpg.Connection, rate: float, *, tick: float = 0.02, per_row: bool = False) -> None:
        self.conn = conn
        self.rate = rate
        self.tick = tick
        self.per_row = per_row
        self.sent = 0
        self.batches = 0
        self.insert_s: list[float] = []
        self.late_s = 0.0  # the furthest behind its schedule a batch started
        self.run_s = 0.0  # how long it ran

    async def run(self, stop: asyncio.Event) -> None:
        insert = insert_activities if self.per_row else insert_activities_batched
        t0 = time.monotonic()
        try:
            await self._run(stop, insert, t0)
        finally:
            self.run_s = time.monotonic() - t0

    async def _run(self, stop: asyncio.Event, insert: Any, t0: float) -> None:
        k = 0
        while not stop.is_set():
            now = time.monotonic()
            self.late_s = max(self.late_s, now - (t0 + k * self.tick))
            due = int((now - t0) * self.rate) - self.sent
            if due > 0:
                t = time.perf_counter()
                await insert(self.conn, "noop", [{"i": self.sent + j, "pad": PAD} for j in range(due)])
                self.insert_s.append(time.perf_counter() - t)
                self.sent += due
                self.batches += 1
            k = max(k + 1, int((time.monotonic() - t0) / self.tick))
            delay = t0 + k * self.tick - time.monotonic()
            if delay > 0:
                try:
                    await asyncio.wait_for(stop.wait(), delay)
                except TimeoutError:
                    pass

    def stats(self) -> dict[str, Any]:
        return {
            "sent": self.sent, "batches": self.batches, "per_row": self.per_row,
            "insert_p50_ms": statistics.median(self.insert_s) * 1e3 if self.insert_s else float("nan"),
            "insert_max_ms": max(self.insert_s) * 1e3 if self.insert_s else float("nan"),
            "late_max_ms": self.late_s * 1e3, "run_s": self.run_s,
        }


def _own_cpu(proc: psutil.Process) -> float:
    t = proc.cpu_times()
    return t.user + t.system


async def _pending(conn: asyncpg.Connection, activity_type: str) -> int:
    return int(await conn.fetchval(
        "SELECT count(*) FROM durable_task_queue WHERE status = 'pending' AND kind = 'activity' "
        "AND concurrency_key IS NULL AND activity_type = $1", activity_type))


async def _backlog_sampler(conn: asyncpg.Connection, stop: asyncio.Event, every: float = 0.5) -> int:
    """The largest background backlog seen, sampled every `every` seconds."""
    most = 0
    while not stop.is_set():
        most = max(most, await _pending(conn, "noop"))
        try:
            await asyncio.wait_for(stop.wait(), every)
        except TimeoutError:
            pass
    return most


def _segments(rows: Sequence[asyncpg.Record], batches: dict[tuple[str, datetime], int],
              calls: Sequence[float]) -> dict[str, Any]:
    """Where the probes' time went (ms): p50 / p99 of each segment, over the same probes."""
    seg: dict[str, list[float]] = {"enqueue_to_row": [], "row_to_claim": [], "claim_to_start": [], "enqueue_call": []}
    claim_sizes = []
    for r in rows:
        start = r["ts"] + r["lat"]
        seg["enqueue_call"].append(calls[r["i"]])
        seg["enqueue_to_row"].append(r["created"] - r["ts"])
        seg["row_to_claim"].append(r["claimed"] - r["created"])
        seg["claim_to_start"].append(start - r["claimed"])
        claim_sizes.append(batches.get((r["claimed_by"], r["claimed_at"]), 0))
    out: dict[str, Any] = {k: {"p50_ms": pct(v, 50) * 1e3, "p99_ms": pct(v, 99) * 1e3} for k, v in seg.items()}
    out["probe_claim_size_p50"] = pct(claim_sizes, 50)
    # the slowest 1% of probes: which segment made them slow
    slow = sorted(range(len(rows)), key=lambda i: -rows[i]["lat"])[:max(1, len(rows) // 100)]
    out["slowest"] = [{k: seg[k][i] * 1e3 for k in seg} | {"claim_size": claim_sizes[i]} for i in slow]
    return out


async def run_latency_once(
    server: Server,
    *,
    n: int,
    rate: float,
    workers: int = 1,
    concurrency: int = 16,
    load_rate: float = 0.0,
    per_row: bool = False,
    load_tick: float = 0.02,
    idle_s: float = 2.0,
    log_dir: Path | None = None,
    worker_env: dict[str, str] | None = None,
) -> dict[str, Any]:
    log_dir = log_dir or Path(tempfile.mkdtemp(prefix="durable-bench-logs-"))
    async with fresh_database(server.admin_url) as url:
        conn = await asyncpg.connect(url)
        load_conn = await asyncpg.connect(url)
        sample_conn = await asyncpg.connect(url)
        # the loader and the sampler stop with the run, however it ends
        stop_load, stop_sampling = asyncio.Event(), asyncio.Event()
        try:
            async with control_plane(url, log_dir) as cp, worker_processes(
                cp.address, workers, app="tests.bench.apps:app", concurrency=concurrency,
                log_dir=log_dir, prefix="lat", **(worker_env or {}),
            ) as procs, Client(cp.address) as client:
                await wait_registered(conn, workers, procs)
                await asyncio.sleep(idle_s)  # the scenario: workers that have gone idle
                await client.enqueue_activity("probe", {"ts": time.time()})  # warm-up, not counted

                async def drained() -> bool:
                    return not await any_left(conn, ["probe"])

                await wait_until(drained, 30, "the warm-up task")
                load = BackgroundLoad(load_conn, load_rate, tick=load_tick, per_row=per_row)
                loader = asyncio.create_task(load.run(stop_load), name="bench-load") if load_rate > 0 else None
                if loader is not None:
                    await asyncio.sleep(1.0)  # let the load reach its steady state
                sampler = asyncio.create_task(_backlog_sampler(sample_conn, stop_sampling), name="bench-backlog")
                cpu_cp, cpu_w = ProcessCpu([cp.pid]), ProcessCpu([p.pid for p in procs])
                bench = psutil.Process()  # this process alone: its children are the control plane and workers
                c0 = (cpu_cp.total(), cpu_w.total(), server.cpu(), _own_cpu(bench), time.monotonic())
                calls: list[float] = []
                sent0 = load.sent
                w0 = datetime.now(UTC)
                t0 = time.monotonic()
                for i in range(n):
                    delay = t0 + i / rate - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    ts = time.time()
                    await client.enqueue_activity("probe", {"i": i, "ts": ts, "pad": PAD})
                    calls.append(time.time() - ts)
                window = time.monotonic() - t0
                sent_in_window = load.sent - sent0
                backlog_end = await _pending(sample_conn, "noop")
                # the load goes on while the last probes wait, for at most TAIL_S (a run that
                # fell behind would otherwise grow its backlog until the probes got through it)
                probes = asyncio.create_task(wait_until(drained, 300, "the probe tasks"), name="bench-probes")
                await asyncio.wait({probes}, timeout=TAIL_S)
                stop_load.set()
                if loader is not None:
                    await loader
                t_stop = time.monotonic()
                await probes
                w1 = datetime.now(UTC)
                c1 = (cpu_cp.total(), cpu_w.total(), server.cpu(), _own_cpu(bench), time.monotonic())
                stop_sampling.set()
                backlog_max = max(await sampler, backlog_end)

                async def load_drained() -> bool:
                    return not await any_left(conn, ["noop"])

                await wait_until(load_drained, 300, "the background load", interval=0.02)
                drain_after_s = time.monotonic() - t_stop if loader is not None else 0.0
                rows = await conn.fetch(
                    "SELECT (input->>'ts')::float8 AS ts, (result->>'lat')::float8 AS lat, "
                    "extract(epoch FROM created_at)::float8 AS created, extract(epoch FROM claimed_at)::float8 AS claimed, "
                    "claimed_by, claimed_at, (input->>'i')::int AS i, id::text AS id FROM durable_task_queue "
                    "WHERE activity_type = 'probe' AND status = 'completed' AND input ? 'i'"
                )
                # every claim in the window, by its tasks' shared (claimed_by, claimed_at)
                claims = {(r["claimed_by"], r["claimed_at"]): r["n"] for r in await conn.fetch(
                    "SELECT claimed_by, claimed_at, count(*) AS n FROM durable_task_queue "
                    "WHERE claimed_at BETWEEN $1 AND $2 GROUP BY 1, 2", w0, w1)}
                outcome = await task_outcome(conn, ["probe", "noop"])
        finally:
            stop_load.set()
            stop_sampling.set()
            await conn.close()
            await load_conn.close()
            await sample_conn.close()
    lat = [r["lat"] for r in rows]
    pg = (c1[2] - c0[2]) if c0[2] is not None and c1[2] is not None else None
    cpu_window = c1[4] - c0[4]
    sizes = list(claims.values())
    result = {
        "n": n, "rate": rate, "workers": workers, "concurrency": concurrency, "load_rate": load_rate,
        "load_sent": load.sent, "load_sent_per_s": sent_in_window / window if load_rate > 0 else 0.0,
        "load": load.stats(), "got": len(lat), **latency_summary(lat),
        "enqueue_call_p50_ms": statistics.median(calls) * 1e3,
        "cp_cpu_s": c1[0] - c0[0], "worker_cpu_s": c1[1] - c0[1], "pg_cpu_s": pg, "bench_cpu_s": c1[3] - c0[3],
        "window_s": window, "cpu_window_s": cpu_window,
        "backlog_end": backlog_end, "backlog_max": backlog_max, "drain_after_s": drain_after_s,
        "kept_up": backlog_end <= KEPT_UP_S * load_rate + 64,
        "claims": {"n": len(sizes), "per_s": len(sizes) / cpu_window, "size_p50": pct(sizes, 50),
                   "size_mean": statistics.mean(sizes) if sizes else float("nan")},
        "segments": _segments(rows, claims, calls),
        **outcome,
    }
    log(
        f"latency load={load_rate:.0f}/s (sent {result['load_sent_per_s']:.0f}/s): got={len(lat)}/{n} "
        f"p50={result['p50_ms']:.1f}ms p95={result['p95_ms']:.1f}ms p99={result['p99_ms']:.1f}ms "
        f"max={result['max_ms']:.1f}ms enq_p50={result['enqueue_call_p50_ms']:.2f}ms backlog end={backlog_end} "
        f"max={backlog_max} claims/s={result['claims']['per_s']:.0f} size p50={result['claims']['size_p50']:.0f} "
        f"twice={outcome['claimed_twice']}"
    )
    return result


async def run_latency_sweep(
    server: Server,
    *,
    n: int,
    rate: float,
    drain_rate: float,
    drain_source: str,
    fractions: Sequence[float] = FRACTIONS,
    workers: int = 2,
    concurrency: int = 32,
    **kwargs: Any,
) -> dict[str, Any]:
    """Latency under background load at each fraction of `drain_rate` (what the same
    configuration drained from a standing backlog), one fresh database each."""
    rows = []
    for fraction in fractions:
        row = await run_latency_once(server, n=n, rate=rate, workers=workers, concurrency=concurrency,
                                     load_rate=round(fraction * drain_rate), **kwargs)
        rows.append({"fraction": fraction, **row})
    return {"drain_rate": drain_rate, "drain_source": drain_source, "workers": workers, "concurrency": concurrency,
            "rows": rows}


def at_fraction(sweep: dict[str, Any] | None, fraction: float) -> dict[str, Any] | None:
    """The sweep's row at `fraction`, if it ran one."""
    for row in (sweep or {}).get("rows") or []:
        if abs(row["fraction"] - fraction) < 1e-9:
            return row  # type: ignore[no-any-return]
    return None
