"""Server time per console page with many workflows in the database.

    python -m tests.bench.console                     # 100,000 workflows
    python -m tests.bench.console --workflows 1000000 --runs 10

Fills a fresh database in SQL (workflows of five types in every status over 30 days, a
history of 30 events on one, 2,000 dead letters, 20 workers, a breaker), starts a control
plane and the console on loopback, and requests each page. Per page it prints the console's
own Server-Timing: `app` (the whole request in the console, rendering included) and `rpc`
(summed gRPC calls; several run concurrently), median and p95 over the runs, and the
ratio of the median to a baseline measured in the same run: the same ListWorkflows call
made directly through durable.client (what any client pays for the data).
A program, not a test: nothing is asserted about speed.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import time
import urllib.request
from typing import Any

import asyncpg

from durable.client import Client
from durable.common.security import ClientSecurity
from durable.console.server import build_server
from durable.console.settings import ConsoleSettings
from durable.controlplane.migrator import migrate_url
from tests.support.controlplane import free_port, running_control_plane
from tests.support.postgres import create_database, drop_database, postgres_server, with_database

FILL = """
INSERT INTO durable_workflow_instances (id, workflow_type, status, input, result, error, last_event_seq,
    decided_through_seq, created_at, updated_at, started_at, completed_at)
SELECT md5(i::text)::uuid::text, 'type_' || (i % 5),
       s.status, jsonb_build_object('n', i), CASE WHEN s.status = 'completed' THEN '{"ok": true}'::jsonb END,
       CASE WHEN s.status = 'failed' THEN '{"message": "boom"}'::jsonb END, 3, 3, t.at, t.at, t.at,
       CASE WHEN s.status IN ('completed', 'failed', 'cancelled') THEN t.at + interval '5 seconds' END
FROM generate_series(1, $1) AS i,
LATERAL (SELECT CASE WHEN i % 100 < 70 THEN 'completed' WHEN i % 100 < 80 THEN 'failed'
                     WHEN i % 100 < 85 THEN 'cancelled' WHEN i % 100 < 95 THEN 'running' ELSE 'pending' END
                AS status) AS s,
LATERAL (SELECT now() - (i::double precision / $1) * interval '30 days' AS at) AS t
"""
EVENTS = """
INSERT INTO durable_workflow_events (workflow_id, sequence_num, event_type, event_data, created_at)
SELECT $1, n, CASE WHEN n = 1 THEN 'WorkflowStarted' WHEN n % 2 = 0 THEN 'ActivityScheduled' ELSE 'ActivityCompleted' END,
       jsonb_build_object('activity_id', 'step-' || (n / 2), 'activity_type', 'work', 'result', jsonb_build_object('n', n)),
       now() - interval '1 minute' + n * interval '1 second'
FROM generate_series(1, 30) AS n
"""
DEAD = """
WITH t AS (
    INSERT INTO durable_task_queue (kind, activity_type, status, attempt, last_error, error_history, completed_at)
    SELECT 'activity', 'act_' || (i % 4), 'dead', 5, 'error number ' || i,
           jsonb_build_array(jsonb_build_object('attempt', 5, 'type', 'Boom', 'message', 'error number ' || i)), now()
    FROM generate_series(1, $1) AS i RETURNING id, activity_type, last_error, error_history
)
INSERT INTO durable_dead_letter_queue (original_task_id, activity_type, input, attempts, last_error, error_history,
    reason, dead_at)
SELECT id, activity_type, '{}', 5, last_error, error_history, 'exhausted', now() - random() * interval '1 day' FROM t
"""
WORKERS = """
INSERT INTO durable_workers (id, activity_types, workflow_types, max_concurrency, current_load)
SELECT 'worker-' || i, ARRAY['act_0', 'act_1'], ARRAY['type_0'], 64, i % 64 FROM generate_series(1, 20) AS i
"""


async def fill(url: str, workflows: int, extra_sql: str = "") -> str:
    conn = await asyncpg.connect(url)
    try:
        started = time.perf_counter()
        await conn.execute(FILL, workflows)
        detail = await conn.fetchval("SELECT id FROM durable_workflow_instances WHERE status = 'running' LIMIT 1")
        await conn.execute(EVENTS, detail)
        await conn.execute("UPDATE durable_workflow_instances SET last_event_seq = 30, decided_through_seq = 30 "
                           "WHERE id = $1", detail)
        await conn.execute(DEAD, 2000)
        await conn.execute(WORKERS)
        await conn.execute("INSERT INTO durable_circuit_breaker_state (key, state, opened_at) "
                           "VALUES ('act_0', 'open', now())")
        if extra_sql:  # e.g. indexes under consideration
            await conn.execute(extra_sql)
        await conn.execute("VACUUM ANALYZE")
        print(f"filled {workflows:,} workflows in {time.perf_counter() - started:.1f} s")
        return str(detail)
    finally:
        await conn.close()


def timing(header: str) -> tuple[float, float]:
    found = dict(re.findall(r"(\w+);dur=([\d.]+)", header))
    return float(found["app"]), float(found["rpc"])


def get(url: str) -> tuple[float, float, bytes]:
    with urllib.request.urlopen(url, timeout=60) as reply:
        body = reply.read()
        app, rpc = timing(reply.headers["server-timing"])
        return app, rpc, body


async def measure(base: str, path: str, runs: int) -> dict[str, float]:
    for _ in range(3):
        await asyncio.to_thread(get, base + path)
    apps, rpcs = [], []
    for _ in range(runs):
        app, rpc, _ = await asyncio.to_thread(get, base + path)
        apps.append(app)
        rpcs.append(rpc)
    apps.sort()
    return {"app": statistics.median(apps), "p95": apps[min(len(apps) - 1, int(len(apps) * 0.95))],
            "rpc": statistics.median(rpcs)}


async def baseline(address: str, runs: int) -> float:
    async with Client(address) as client:
        for _ in range(3):
            await client.list_workflows_page(limit=50)
        times = []
        for _ in range(runs):
            t = time.perf_counter()
            await client.list_workflows_page(limit=50)
            times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


async def main(workflows: int, runs: int, extra_sql: str = "") -> None:
    with postgres_server() as admin:
        name = await create_database(admin, prefix="durable_bench_console")
        url = with_database(admin, name)
        try:
            await migrate_url(url)
            detail = await fill(url, workflows, extra_sql)
            async with running_control_plane(url) as address:
                port = free_port()
                server = build_server(ConsoleSettings(host="127.0.0.1", port=port, grpc_address=address),
                                      ClientSecurity())
                task = asyncio.create_task(server.serve(), name="console-bench")
                while not server.started:
                    await asyncio.sleep(0.05)
                base = f"http://127.0.0.1:{port}"
                _, _, body = await asyncio.to_thread(get, base + "/workflows?page=")
                token = re.findall(rb'page=([A-Za-z0-9_-]+)"', body)
                deep = f"/workflows?page={token[-1].decode()}" if token else "/workflows"
                pages = [
                    "/", "/workflows", "/workflows?status=failed", "/workflows?status=pending",
                    "/workflows?type=type_3", "/workflows?id=ab", deep,
                    "/workflows?from=2026-01-01T00:00&to=2099-01-01T00:00",
                    f"/workflows/{detail}", "/dead-letters", "/dead-letters?error=number+19",
                    "/workers", "/queues",
                ]
                base_ms = await baseline(address, runs)
                print(f"\n{workflows:,} workflows, {runs} runs per page; baseline: ListWorkflows(limit=50) "
                      f"through durable.client, median {base_ms:.1f} ms\n")
                print("| page | app median ms | app p95 ms | rpc median ms | app / baseline |")
                print("|---|---:|---:|---:|---:|")
                results: dict[str, Any] = {}
                for path in pages:
                    r = await measure(base, path, runs)
                    results[path] = r
                    shown = path if len(path) < 60 else path[:57] + "..."
                    print(f"| `{shown}` | {r['app']:.1f} | {r['p95']:.1f} | {r['rpc']:.1f} | "
                          f"{r['app'] / base_ms:.1f}x |")
                worst = max(results.items(), key=lambda kv: kv[1]["app"])
                print(f"\nslowest page: {worst[0]} at {worst[1]['app']:.1f} ms median")
                server.should_exit = True
                await task
        finally:
            await drop_database(admin, name)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workflows", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--sql", type=argparse.FileType(), help="SQL to run after the fill (indexes to try)")
    args = parser.parse_args()
    asyncio.run(main(args.workflows, args.runs, args.sql.read() if args.sql else ""))
