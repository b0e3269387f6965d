"""Retention, statistics on a full table, and heartbeats as HOT updates.

Two fresh databases: one migrated only to 0002 (the seed's schema, with the seed's statistics
SQL, copied below as the baseline) and one migrated to the latest. Each is filled the same
way with SQL: `tasks` completed standalone tasks and `workflows` finished workflows (3 events
and a decision task each) that ended 10 days ago, plus a little live work (pending and
claimed tasks, running workflows, active workers, stopped workers).

- statistics: each frequent query (queue_stats, queue_stats_all, worker_counts,
  dead_letter_counts, list_workflows unfiltered and by status) timed as a prepared statement,
  median and max of `stat_reps` runs; on the seed schema, on the latest before the retention
  pass, and after it;
- retention: one `Retention.run_once()` with the default settings (7 days for completed
  workflows and standalone tasks: everything filled is due), its time, rows deleted and rows
  per second, while one claimer loops ClaimTasks-equivalent store claims of `probe` tasks
  (claim 10, hand back) in the same process: claim p50/p99/max during the pass;
- HOT: in another pair of fresh databases (0002 and latest), `hot_tasks` claimed tasks get
  `hot_rounds` heartbeat rounds (the store's heartbeat statement, one per round, as the
  control plane runs them): updates, HOT updates, HOT ratio, heap size before and after.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from datetime import UTC, datetime
from typing import Any

import asyncpg
from durable.controlplane.migrator import load_migrations, migrate
from durable.controlplane.retention import Retention
from durable.controlplane.settings import RetentionSettings
from durable.controlplane.store import Store
from durable.controlplane.store.queries import Q

from tests.bench.harness import Server, latency_summary, log, settle
from tests.support.postgres import create_database, drop_database, with_database

# The seed's statistics queries (controlplane/store/queries.sql before 0006), the baseline.
SEED_QUERIES: dict[str, tuple[str, ...]] = {
    "queue_stats": ("""
SELECT kind, activity_type AS type,
       count(*) FILTER (WHERE status = 'pending' AND visible_at <= $3) AS pending,
       count(*) FILTER (WHERE status = 'pending' AND visible_at > $3) AS delayed,
       count(*) FILTER (WHERE status = 'claimed') AS claimed,
       min(visible_at) FILTER (WHERE status = 'pending' AND visible_at <= $3) AS oldest_visible_at
FROM durable_task_queue
WHERE status IN ('pending', 'claimed')
  AND ((kind = 'activity' AND activity_type = ANY($1::text[]))
    OR (kind = 'workflow' AND activity_type = ANY($2::text[])))
GROUP BY kind, activity_type
ORDER BY kind, activity_type""",),
    "queue_stats_all": ("""
SELECT kind, activity_type AS type,
       count(*) FILTER (WHERE status = 'pending' AND visible_at <= $1) AS pending,
       count(*) FILTER (WHERE status = 'pending' AND visible_at > $1) AS delayed,
       count(*) FILTER (WHERE status = 'claimed') AS claimed,
       min(visible_at) FILTER (WHERE status = 'pending' AND visible_at <= $1) AS oldest_visible_at
FROM durable_task_queue
WHERE status IN ('pending', 'claimed') AND kind IN ('activity', 'workflow')
GROUP BY kind, activity_type
ORDER BY kind, activity_type""",),
    "worker_counts": ("SELECT status, count(*) AS n FROM durable_workers GROUP BY status",),
    "dead_letter_counts": ("SELECT activity_type, count(*) AS n FROM durable_dead_letter_queue "
                           "WHERE requeued_at IS NULL GROUP BY activity_type",),
    "list_workflows": ("""
SELECT * FROM durable_workflow_instances
WHERE ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR workflow_type = $2)
ORDER BY created_at DESC, id
LIMIT $3""",),
}


def _seed_calls(now: datetime) -> dict[str, tuple[str, tuple[Any, ...]]]:
    q = {k: v[0] for k, v in SEED_QUERIES.items()}
    return {
        "queue_stats": (q["queue_stats"], (["t0", "t1", "probe"], ["wf"], now)),
        "queue_stats_all": (q["queue_stats_all"], (now,)),
        "worker_counts": (q["worker_counts"], ()),
        "dead_letter_counts": (q["dead_letter_counts"], ()),
        "list_workflows": (q["list_workflows"], (None, None, 50)),
        "list_workflows_by_status": (q["list_workflows"], ("running", None, 50)),
    }


def _current_calls(now: datetime) -> dict[str, tuple[str, tuple[Any, ...]]]:
    return {
        "queue_stats": (Q.queue_stats, (["t0", "t1", "probe"], ["wf"], now)),
        "queue_stats_all": (Q.queue_stats_all, (now,)),
        "worker_counts": (Q.worker_counts, ()),
        "dead_letter_counts": (Q.dead_letter_counts, ()),
        "list_workflows": (Q.list_workflows, (50,)),
        "list_workflows_by_status": (Q.list_workflows_by_status, ("running", 50)),
    }


FILL = """
INSERT INTO durable_task_queue (activity_type, input, status, attempt, result, created_at, visible_at, claimed_at,
                                claimed_by, completed_at)
SELECT 't' || (g % 4), '{"i": 1}', 'completed', 1, '{"ok": true}', now() - interval '11 days',
       now() - interval '11 days', now() - interval '11 days', 'old-worker', now() - interval '10 days'
FROM generate_series(1, $1) AS g;
"""
FILL_WORKFLOWS = """
WITH w AS (
    INSERT INTO durable_workflow_instances (id, workflow_type, status, input, result, last_event_seq,
                                            decided_through_seq, created_at, updated_at, started_at, completed_at)
    SELECT 'old-' || g, 'wf', 'completed', '{"n": 1}', '{"ok": true}', 3, 3, now() - interval '11 days',
           now() - interval '10 days', now() - interval '11 days', now() - interval '10 days'
    FROM generate_series(1, $1) AS g
    RETURNING id
), e AS (
    INSERT INTO durable_workflow_events (workflow_id, sequence_num, event_type, event_data, created_at)
    SELECT id, s, (ARRAY['WorkflowStarted', 'ActivityCompleted', 'WorkflowCompleted'])[s], '{"n": 1}',
           now() - interval '10 days'
    FROM w, generate_series(1, 3) AS s
)
INSERT INTO durable_task_queue (kind, workflow_id, activity_type, status, attempt, claimed_by, claimed_at, completed_at)
SELECT 'workflow', id, 'wf', 'completed', 1, 'old-worker', now() - interval '10 days', now() - interval '10 days' FROM w;
"""
FILL_LIVE = """
INSERT INTO durable_workers (id, activity_types) SELECT 'live-' || g, '{probe,t0}' FROM generate_series(1, 10) AS g;
INSERT INTO durable_workers (id, status, stopped_at, last_heartbeat_at)
SELECT 'stopped-' || g, 'stopped', now(), now() FROM generate_series(1, 2000) AS g;
INSERT INTO durable_workflow_instances (id, workflow_type, status) SELECT 'live-' || g, 'wf', 'running'
FROM generate_series(1, 500) AS g;
INSERT INTO durable_task_queue (activity_type, status, visible_at)
SELECT 't' || (g % 4), 'pending', now() + (g % 3 - 1) * interval '1 minute' FROM generate_series(1, 2000) AS g;
INSERT INTO durable_task_queue (activity_type, status, attempt, claimed_by, claimed_at, heartbeat_at)
SELECT 't' || (g % 4), 'claimed', 1, 'live-1', now(), now() FROM generate_series(1, 500) AS g;
INSERT INTO durable_task_queue (activity_type) SELECT 'probe' FROM generate_series(1, 2000);
"""


async def _database(server: Server, versions: int | None) -> str:
    """A fresh database migrated to `versions` migrations (None: all)."""
    name = await create_database(server.admin_url, prefix="durable_bench_retention")
    url = with_database(server.admin_url, name)
    conn = await asyncpg.connect(url)
    try:
        migrations = load_migrations()
        await migrate(conn, migrations if versions is None else migrations[:versions])
    finally:
        await conn.close()
    return url


async def _drop(server: Server, url: str) -> None:
    await drop_database(server.admin_url, url.rsplit("/", 1)[1].split("?")[0])


async def _fill(conn: asyncpg.Connection, tasks: int, workflows: int) -> float:
    t0 = time.perf_counter()
    await conn.execute(FILL.replace("$1", str(int(tasks))))
    await conn.execute(FILL_WORKFLOWS.replace("$1", str(int(workflows))))
    await conn.execute(FILL_LIVE)
    await settle(conn)
    return time.perf_counter() - t0


async def _time_queries(conn: asyncpg.Connection, calls: dict[str, tuple[str, tuple[Any, ...]]],
                        reps: int) -> dict[str, dict[str, float]]:
    out = {}
    for name, (sql, args) in calls.items():
        statement = await conn.prepare(sql)
        times = []
        for _ in range(reps):  # past the 5 custom plans: the generic plan, if chosen, is in the numbers
            t0 = time.perf_counter()
            await statement.fetch(*args)
            times.append((time.perf_counter() - t0) * 1000)
        out[name] = {"median_ms": statistics.median(times), "max_ms": max(times)}
    return out


async def _hot(server: Server, versions: int | None, tasks: int, rounds: int) -> dict[str, Any]:
    url = await _database(server, versions)
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("INSERT INTO durable_workers (id, activity_types) VALUES ('w1', '{a}')")
        await conn.execute(f"INSERT INTO durable_task_queue (activity_type, input) "
                           f"SELECT 'a', jsonb_build_object('i', g) FROM generate_series(1, {int(tasks)}) AS g")
        ids = [r["id"] for r in await conn.fetch(
            "UPDATE durable_task_queue SET status = 'claimed', claimed_by = 'w1', claimed_at = now(), "
            "heartbeat_at = now(), attempt = 1 RETURNING id")]
        heap0 = await conn.fetchval("SELECT pg_relation_size('durable_task_queue')")
        await conn.execute("SELECT pg_stat_force_next_flush()")
        await conn.execute("SELECT pg_stat_clear_snapshot()")
        stat = "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE relname = 'durable_task_queue'"
        before = await conn.fetchrow(stat)
        for _ in range(rounds):
            await conn.execute(Q.heartbeat_tasks, "w1", datetime.now(UTC), ids, [1] * len(ids), [None] * len(ids))
        await conn.execute("SELECT pg_stat_force_next_flush()")
        await conn.execute("SELECT pg_stat_clear_snapshot()")
        after = await conn.fetchrow(stat)
        heap1 = await conn.fetchval("SELECT pg_relation_size('durable_task_queue')")
        updates = after["n_tup_upd"] - before["n_tup_upd"]
        hot = after["n_tup_hot_upd"] - before["n_tup_hot_upd"]
        return {"updates": updates, "hot": hot, "hot_ratio": hot / updates if updates else 0.0,
                "heap_mb_before": heap0 / 2**20, "heap_mb_after": heap1 / 2**20}
    finally:
        await conn.close()
        await _drop(server, url)


async def _claim_probe(url: str, stop: asyncio.Event, durations: list[float], max_claims: int = 0,
                       started: asyncio.Event | None = None) -> int:
    """Claims 10 `probe` tasks and hands them back, in a loop until `stop` (or `max_claims`
    claims), recording each claim's time."""
    pool = await asyncpg.create_pool(url, min_size=1, max_size=2)
    store = Store(pool)
    claimed = 0
    try:
        while not stop.is_set() and not (max_claims and len(durations) >= max_claims):
            t0 = time.perf_counter()
            activities, _ = await store.claim("live-1", ["probe"], [], 10, known_active=True)
            durations.append(time.perf_counter() - t0)
            if started is not None:
                started.set()
            claimed += len(activities)
            if activities:
                await store.release_tasks("live-1", [(t.id, t.attempt) for t in activities])
    finally:
        await pool.close()
    return claimed


async def run_retention(server: Server, *, tasks: int = 1_000_000, workflows: int = 100_000,
                        hot_tasks: int = 2000, hot_rounds: int = 30, stat_reps: int = 20) -> dict[str, Any]:
    result: dict[str, Any] = {"tasks": tasks, "workflows": workflows}
    now = datetime.now(UTC)

    log(f"retention: seed schema (0002), {tasks} completed tasks and {workflows} finished workflows")
    url = await _database(server, 2)
    try:
        conn = await asyncpg.connect(url)
        try:
            result["fill_s"] = await _fill(conn, tasks, workflows)
            result["stats_seed"] = await _time_queries(conn, _seed_calls(now), stat_reps)
        finally:
            await conn.close()
    finally:
        await _drop(server, url)

    log("retention: latest schema, same fill, statistics, then one retention pass under claims")
    url = await _database(server, None)
    try:
        conn = await asyncpg.connect(url)
        try:
            await _fill(conn, tasks, workflows)
            result["stats_before_pass"] = await _time_queries(conn, _current_calls(now), stat_reps)
            rows_before = await conn.fetchval("SELECT count(*) FROM durable_task_queue")
            pool = await asyncpg.create_pool(url, min_size=1, max_size=4)
            try:
                baseline: list[float] = []
                await _claim_probe(url, asyncio.Event(), baseline, max_claims=300)
                during: list[float] = []
                stop = asyncio.Event()
                claiming = asyncio.Event()
                probe = asyncio.create_task(_claim_probe(url, stop, during, started=claiming), name="bench-retention-probe")
                await claiming.wait()  # the pass starts while claims run
                t0 = time.perf_counter()
                report = await Retention(Store(pool), RetentionSettings()).run_once()
                pass_s = time.perf_counter() - t0
                stop.set()
                probed = await probe
            finally:
                await pool.close()
            rows_after = await conn.fetchval("SELECT count(*) FROM durable_task_queue")
            events_left = await conn.fetchval("SELECT count(*) FROM durable_workflow_events")
            deleted_rows = report.deleted
            result["pass"] = {
                "seconds": pass_s, "workflows_deleted": sum(report.workflows.values()),
                "tasks_deleted": report.tasks, "statements": report.statements,
                "task_rows_before": rows_before, "task_rows_after": rows_after, "events_left": events_left,
                "workflows_per_s": sum(report.workflows.values()) / pass_s if pass_s else 0.0,
                "rows_per_s": (rows_before - rows_after) / pass_s if pass_s else 0.0,
                "deleted": deleted_rows,
            }
            result["claims_idle"] = latency_summary(baseline)
            result["claims_during_pass"] = {**latency_summary(during), "tasks": probed}
            await settle(conn)
            result["stats_after_pass"] = await _time_queries(conn, _current_calls(now), stat_reps)
        finally:
            await conn.close()
    finally:
        await _drop(server, url)

    log(f"retention: HOT ratio of {hot_rounds} heartbeat rounds over {hot_tasks} running tasks")
    result["hot_seed"] = await _hot(server, 2, hot_tasks, hot_rounds)
    result["hot"] = await _hot(server, None, hot_tasks, hot_rounds)
    return result


def retention_markdown(r: dict[str, Any]) -> list[str]:
    lines = [f"## Retention: {r['tasks']:,} completed tasks, {r['workflows']:,} finished workflows", ""]
    p = r["pass"]
    ci, cd = r["claims_idle"], r["claims_during_pass"]
    lines += [
        f"One pass: {p['seconds']:.1f} s, {p['workflows_deleted']:,} workflows (with events and tasks) and "
        f"{p['tasks_deleted']:,} standalone tasks in {p['statements']} statements: {p['workflows_per_s']:.0f} "
        f"workflows/s, {p['rows_per_s']:.0f} task rows/s. Claims (10 tasks) idle p50 {ci['p50_ms']:.1f} ms / "
        f"p99 {ci['p99_ms']:.1f} ms; during the pass p50 {cd['p50_ms']:.1f} ms / p99 {cd['p99_ms']:.1f} ms / "
        f"max {cd['max_ms']:.1f} ms ({cd.get('n', 0)} claims).", "",
        "| statistics query | seed schema (ms, median / max) | latest, before the pass | latest, after the pass | seed / latest before |",
        "|---|---|---|---|---|",
    ]
    for name, seed in r["stats_seed"].items():
        before, after = r["stats_before_pass"][name], r["stats_after_pass"][name]
        ratio = seed["median_ms"] / before["median_ms"] if before["median_ms"] else 0.0
        lines.append(f"| {name} | {seed['median_ms']:.2f} / {seed['max_ms']:.2f} | {before['median_ms']:.2f} / "
                     f"{before['max_ms']:.2f} | {after['median_ms']:.2f} / {after['max_ms']:.2f} | {ratio:.0f}x |")
    hs, h = r["hot_seed"], r["hot"]
    lines += ["", "| heartbeats | updates | HOT | HOT ratio | heap MB before -> after |", "|---|---|---|---|---|",
              f"| seed schema | {hs['updates']:,} | {hs['hot']:,} | {hs['hot_ratio']:.0%} | "
              f"{hs['heap_mb_before']:.1f} -> {hs['heap_mb_after']:.1f} |",
              f"| latest | {h['updates']:,} | {h['hot']:,} | {h['hot_ratio']:.0%} | "
              f"{h['heap_mb_before']:.1f} -> {h['heap_mb_after']:.1f} |", ""]
    return lines
