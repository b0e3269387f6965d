"""Reaper: passes over `stale` claimed tasks whose heartbeats stopped, and whether they block
claims.

A fresh database; a control-plane process (its own reaper parked: REAPER_INTERVAL_SECONDS=3600,
started before the stale rows exist) serving one simulated worker that claims `probe` tasks in
a tight loop (ClaimTasks wait 0 + CompleteTask, tests.bench.simworkers --mode busy), recording
every ClaimTasks call's duration. The stale rows are written with SQL (claimed 1 h ago by
100 dead workers). Then, in this process, `durable.controlplane.reaper.Reaper.run_once()`:

- phase A: the default settings (batch_size 1000): the first pass's time, then passes
  repeated until nothing is stale (how long the default reaper needs to recover them all:
  passes x REAPER_INTERVAL_SECONDS + the time measured);
- phase B: the same rows made stale again, one pass with batch_size = 10,000, then (stale
  again) one pass with batch_size = all of them. Each of these passes runs in a child process
  with a deadline (`big_timeout`): a pass that does not finish in time is killed (its
  transaction rolls back) and reported as such, so a slow reaper cannot hang the benchmark.

Claim latency is reported for the calls that started before phase A (baseline), during the
first pass, during all of phase A and during phase B.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import asyncpg
from durable.controlplane.reaper import Reaper
from durable.controlplane.settings import ReaperSettings
from durable.controlplane.store import Store

from tests.bench.harness import (
    Server,
    control_plane,
    fresh_database,
    latency_summary,
    log,
    settle,
)
from tests.bench.simworkers import SimProcess

FILL_STALE = """
INSERT INTO durable_task_queue (kind, activity_type, input, status, attempt, claimed_by, claimed_at,
                                heartbeat_at, visible_at, created_at)
SELECT 'activity', 'reap_me', jsonb_build_object('i', g), 'claimed', 1, 'dead-worker-' || (g % 100),
       now() - interval '1 hour', now() - interval '1 hour', now() - interval '1 hour', now() - interval '1 hour'
FROM generate_series(1, $1) AS g
"""
FILL_PROBES = """
INSERT INTO durable_task_queue (kind, activity_type, input)
SELECT 'activity', 'probe', jsonb_build_object('i', g) FROM generate_series(1, $1) AS g
"""
RESTALE = """
UPDATE durable_task_queue SET status = 'claimed', claimed_by = 'dead-worker-again', attempt = attempt + 1,
       reclaim_count = 0,
       claimed_at = now() - interval '1 hour', heartbeat_at = now() - interval '1 hour'
WHERE activity_type = 'reap_me'
"""
STALE = "SELECT count(*) FROM durable_task_queue WHERE activity_type = 'reap_me' AND status = 'claimed'"


def _pass_in_child(url: str, batch: int, out: multiprocessing.Queue[tuple[float, int]]) -> None:
    async def one() -> tuple[float, int]:
        pool = await asyncpg.create_pool(url, min_size=1, max_size=4)
        try:
            t0 = time.time()
            report = await Reaper(Store(pool), ReaperSettings(stale_after=30, batch_size=batch)).run_once()
            return time.time() - t0, report.reclaimed
        finally:
            await pool.close()

    out.put(asyncio.run(one()))


async def _timed_pass(url: str, batch: int, timeout: float) -> dict[str, Any]:
    """One Reaper.run_once with `batch_size` in a child process; killed after `timeout` s."""
    ctx = multiprocessing.get_context("spawn")
    out: multiprocessing.Queue[tuple[float, int]] = ctx.Queue()
    child = ctx.Process(target=_pass_in_child, args=(url, batch, out), name=f"reaper-pass-{batch}")
    t0 = time.time()
    child.start()
    deadline = time.monotonic() + timeout
    while child.is_alive() and time.monotonic() < deadline and out.empty():
        await asyncio.sleep(0.05)
    t1 = time.time()
    if out.empty():
        child.kill()
        child.join()
        return {"batch": batch, "start": t0, "end": t1, "seconds": None, "reclaimed": 0, "finished": False,
                "timeout_s": timeout}
    seconds, reclaimed = out.get()
    child.join()
    return {"batch": batch, "start": t1 - seconds, "end": t1, "seconds": seconds, "reclaimed": reclaimed,
            "finished": True, "timeout_s": timeout}


def _window(calls: list[list[float]], start: float, end: float) -> dict[str, float]:
    return latency_summary([c[1] for c in calls if start <= c[0] < end])


async def run_reaper(
    server: Server, *, stale: int, probes: int = 50_000, baseline_s: float = 3.0, big_timeout: float = 120.0,
    log_dir: Path | None = None,
) -> dict[str, Any]:
    log_dir = log_dir or Path(tempfile.mkdtemp(prefix="durable-bench-logs-"))
    async with fresh_database(server.admin_url) as url:
        conn = await asyncpg.connect(url)
        pool = await asyncpg.create_pool(url, min_size=2, max_size=10)
        sim: SimProcess | None = None
        try:
            async with control_plane(url, log_dir, REAPER_INTERVAL_SECONDS="3600") as cp:
                await conn.execute(FILL_PROBES, probes)
                await conn.execute(FILL_STALE, stale)
                await settle(conn)
                sim = await SimProcess.start(cp.address, 1, "reaper-probe", mode="busy", types="probe",
                                             log_path=str(log_dir / "reaper-probe.log"))
                await sim.wait_ready(60)
                await asyncio.sleep(baseline_s)
                store = Store(pool)
                # phase A: default settings, passes until nothing is stale
                reaper = Reaper(store, ReaperSettings(stale_after=30))
                t_a = time.time()
                first = await reaper.run_once()
                t_first = time.time()
                passes, reclaimed = 1, first.reclaimed
                while await conn.fetchval(STALE):
                    report = await reaper.run_once()
                    passes += 1
                    reclaimed += report.reclaimed
                t_a_end = time.time()
                # phase B: everything stale again, one pass over 10,000 of them, then over all
                big_passes = []
                for batch in sorted({min(10_000, stale), stale}):
                    await conn.execute(RESTALE)
                    await settle(conn)
                    big_passes.append(await _timed_pass(url, batch, big_timeout))
                left_b = await conn.fetchval(STALE)
                await asyncio.sleep(min(baseline_s, 1.0))
                final = await sim.stop()
                sim = None
                probe_rows = await conn.fetchrow(
                    "SELECT count(*) FILTER (WHERE status = 'completed') AS completed, "
                    "count(*) FILTER (WHERE attempt > 1) AS twice FROM durable_task_queue "
                    "WHERE activity_type = 'probe'")
        finally:
            if sim is not None:
                await sim.stop(timeout=5)
            await pool.close()
            await conn.close()
    calls = final["calls"]
    got = Counter(r[0] for r in final["received"])
    result = {
        "stale": stale,
        "first_pass_s": t_first - t_a, "first_pass_reclaimed": first.reclaimed,
        "default_passes": passes, "default_total_s": t_a_end - t_a, "default_reclaimed": reclaimed,
        "big_passes": [{**p, "claims": _window(calls, p["start"], p["end"])} for p in big_passes],
        "stale_left_at_end": int(left_b),
        "claims_baseline": _window(calls, 0, t_a),
        "claims_first_pass": _window(calls, t_a, t_first),
        "claims_default_passes": _window(calls, t_a, t_a_end),
        "probe_claims": len(final["received"]), "probe_completed": int(probe_rows["completed"]),
        "probe_handed_out_twice": sum(1 for c in got.values() if c > 1) + int(probe_rows["twice"]),
        "sim_errors": int(final.get("errors", 0)),
    }
    big_text = ", ".join(
        f"batch {p['batch']}: " + (f"{p['seconds']:.1f}s ({p['reclaimed']})" if p["finished"]
                                   else f"not finished in {p['timeout_s']:.0f}s")
        + f", claim p99 {p['claims']['p99_ms']:.1f}ms max {p['claims']['max_ms']:.1f}ms"
        for p in result["big_passes"])
    log(
        f"reaper {stale} stale: first pass {result['first_pass_s']:.2f}s ({first.reclaimed}), "
        f"default {passes} passes {result['default_total_s']:.1f}s ({reclaimed}); {big_text}; "
        f"claim p99 baseline {result['claims_baseline']['p99_ms']:.1f}ms"
    )
    return result
