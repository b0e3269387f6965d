"""Sticky decisions and decisions on a prefix of the history, end to end: a real PostgreSQL, a
control-plane process and `durable worker` processes running tests.support.sticky_app.

A worker keeps a workflow's instance after its decision; the next decision is routed back to
it with only the new events. When that worker dies, the decision goes to another worker
after DURABLE_STICKY_FALLBACK_SECONDS, with the whole history. A decision made while new
events arrive is applied; those events start the next one.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import urllib.request
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import asyncpg
import pytest

from durable.client import Client
from tests.support.controlplane import control_plane_process, free_port, wait_serving
from tests.support.postgres import create_database, drop_database, with_database
from tests.support.processes import wait_for, worker_process

APP = "tests.support.sticky_app:app"
FALLBACK = 1.0
# The reaper would notice a killed worker only after minutes: what moves its decision on is the
# sticky fallback.
CONTROL_PLANE = {"DURABLE_STICKY_FALLBACK_SECONDS": str(FALLBACK), "REAPER_STALE_AFTER_SECONDS": "300",
                 "REAPER_WORKER_LOST_AFTER_SECONDS": "600"}


def cache_counts(port: int) -> dict[str, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    found = re.findall(r'^durable_worker_workflow_cache_total\{result="(\w+)"\} ([0-9.e+]+)$', text, re.M)
    return {result: float(value) for result, value in found}


class Deployment:
    def __init__(self, address: str, url: str, logs: Path) -> None:
        self.address, self.url, self.logs = address, url, logs
        self.workers: dict[str, tuple[object, int]] = {}  # id -> (process, metrics port)
        self.stack = ExitStack()

    def start_worker(self, worker_id: str, **env: str) -> None:
        port = free_port()
        proc = self.stack.enter_context(worker_process(
            self.address, worker_id, APP, log_dir=self.logs, WORKER_METRICS_PORT=str(port),
            MAX_CONCURRENT_TASKS="8", **env))
        self.workers[worker_id] = (proc, port)


@contextmanager
def _stack(d: Deployment) -> Iterator[Deployment]:
    with d.stack:
        yield d


@pytest.fixture
async def deployment(pg_admin_url: str, template_database: str, tmp_path: Path) -> AsyncIterator[Deployment]:
    name = await create_database(pg_admin_url, template=template_database)
    url = with_database(pg_admin_url, name)
    try:
        with control_plane_process(url, **CONTROL_PLANE) as (_, address):
            await wait_serving(address)
            d = Deployment(address, url, tmp_path)
            with _stack(d):
                yield d
    finally:
        await drop_database(pg_admin_url, name)


async def wait_registered(conn: asyncpg.Connection, n: int) -> None:
    await wait_for(lambda: _count(conn, "SELECT count(*) FROM durable_workers WHERE status = 'active'", n),
                   30, f"{n} active workers")


async def _count(conn: asyncpg.Connection, sql: str, n: int) -> bool:
    return int(await conn.fetchval(sql)) >= n


async def test_decisions_stick_to_the_worker_that_keeps_the_instance(deployment: Deployment) -> None:
    # decision tasks only: none rides on an activity's completion (test_following_decisions.py)
    deployment.start_worker("sticky-a", DURABLE_FOLLOWING_DECISIONS="false")
    deployment.start_worker("sticky-b", DURABLE_FOLLOWING_DECISIONS="false")
    conn = await asyncpg.connect(deployment.url)
    try:
        await wait_registered(conn, 2)
        async with Client(deployment.address) as client:
            ids = [(await client.start_workflow("steps", {"n": 20}))[0] for _ in range(4)]
            for workflow_id in ids:
                view = await client.wait_workflow(workflow_id, timeout=60)
                assert (view.status, view.result) == ("completed", 20), view.error
        # each workflow's decisions after its first went to the worker that decided before
        for workflow_id in ids:
            rows = await conn.fetch(
                "SELECT claimed_by FROM durable_task_queue WHERE workflow_id = $1 AND kind = 'workflow' "
                "ORDER BY created_at", workflow_id)
            deciders = [r["claimed_by"] for r in rows]
            assert len(deciders) == 21
            assert len(set(deciders[1:])) == 1, deciders
        counts = [cache_counts(port) for _, port in deployment.workers.values()]
        hits = sum(c.get("hit", 0) for c in counts)
        misses = sum(c.get("miss", 0) for c in counts)
        assert hits == 4 * 20, counts  # every decision after the first went on from the kept instance
        assert misses == 4, counts  # the first decision of each: nothing was kept yet
    finally:
        await conn.close()


async def test_a_killed_workers_decision_falls_back_to_another_and_replays(deployment: Deployment) -> None:
    deployment.start_worker("fall-a")
    deployment.start_worker("fall-b")
    conn = await asyncpg.connect(deployment.url)
    try:
        await wait_registered(conn, 2)
        async with Client(deployment.address) as client:
            workflow_id, _ = await client.start_workflow("step_wait_step", None)

            async def kept_by() -> str | None:
                # waiting for the signal: started, scheduled, completed, and the second decision
                # applied (it saw event 3) with no decision task left open. Killing the holder
                # while it still held that decision claimed would leave it to the reaper.
                row = await conn.fetchrow(
                    "SELECT sticky_worker_id, decision_seen_seq, NOT EXISTS ("
                    "  SELECT 1 FROM durable_task_queue t WHERE t.workflow_id = i.id AND t.kind = 'workflow'"
                    "  AND t.status IN ('pending', 'claimed')) AS settled "
                    "FROM durable_workflow_instances i WHERE id = $1", workflow_id)
                done = row["sticky_worker_id"] and (row["decision_seen_seq"] or 0) >= 3 and row["settled"]
                return row["sticky_worker_id"] if done else None

            holder = await wait_for(kept_by, 30, "the workflow waiting for its signal, kept by a worker")
            proc, _ = deployment.workers[holder]
            os.kill(proc.pid, signal.SIGKILL)  # type: ignore[attr-defined]
            proc.wait()  # type: ignore[attr-defined]
            signalled_at = await conn.fetchval("SELECT now()")
            await client.signal_workflow(workflow_id, "go", "now")
            view = await client.wait_workflow(workflow_id, timeout=30)
            assert (view.status, view.result) == ("completed", [1, "now", 2])
        other = ({"fall-a", "fall-b"} - {holder}).pop()
        rows = await conn.fetch(
            "SELECT claimed_by, attempt, created_at >= $2 AS after_signal FROM durable_task_queue "
            "WHERE workflow_id = $1 AND kind = 'workflow' ORDER BY created_at", workflow_id, signalled_at)
        # the decision after the signal (and the one after the second step, unless that rode on
        # the step's completion) went to the living worker on its first attempt: the fallback
        # moved it (the reaper, which takes a task back, would have made it attempt 2)
        after = [r["claimed_by"] for r in rows if r["after_signal"]]
        assert after and set(after) == {other}, rows
        assert all(r["attempt"] == 1 for r in rows), rows
        counts = cache_counts(deployment.workers[other][1])
        assert counts.get("miss", 0) >= 1, counts  # it replayed the whole history
        assert await conn.fetchval("SELECT status FROM durable_workers WHERE id = $1", holder) == "active"
    finally:
        await conn.close()


async def test_a_workflow_under_200_signals_a_second_keeps_stepping_and_gets_each_once(
    deployment: Deployment,
) -> None:
    deployment.start_worker("busy-a")
    conn = await asyncpg.connect(deployment.url)
    try:
        await wait_registered(conn, 1)
        rate, seconds = 200, 10
        expected = rate * seconds
        async with Client(deployment.address) as client:
            workflow_id, _ = await client.start_workflow("busy", {"expected": expected})
            loop = asyncio.get_running_loop()
            start = loop.time()
            steps_during: list[int] = []
            for i in range(expected):
                # paced: signal i goes at start + i / rate
                delay = start + i / rate - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                await client.signal_workflow(workflow_id, "item", i)
                if i % rate == rate - 1:
                    steps_during.append(int(await conn.fetchval(
                        "SELECT count(*) FROM durable_workflow_events WHERE workflow_id = $1 "
                        "AND event_type = 'ActivityCompleted'", workflow_id)))
            view = await client.wait_workflow(workflow_id, timeout=60)
        assert view.status == "completed", view.error
        assert view.result["received"] == list(range(expected))  # each signal once, in order
        # the steps went on while the signals poured in, second after second
        assert all(b > a for a, b in zip(steps_during, steps_during[1:], strict=False)), steps_during
        decisions = await conn.fetch(
            "SELECT result->>'applied' AS applied, count(*) AS n FROM durable_task_queue "
            "WHERE workflow_id = $1 AND kind = 'workflow' AND status = 'completed' GROUP BY 1", workflow_id)
        by = {r["applied"]: int(r["n"]) for r in decisions}
        print(f"decisions applied {by.get('true', 0)}, dropped {by.get('false', 0)}; steps {view.result['steps']}")
        assert by.get("true", 0) > 10 * by.get("false", 0), by  # today's main dropped 613 of 619
    finally:
        await conn.close()


async def test_eager_activities_run_on_the_deciding_worker_without_a_claim(deployment: Deployment) -> None:
    deployment.start_worker("eager-a", DURABLE_EAGER_ACTIVITIES="true")
    conn = await asyncpg.connect(deployment.url)
    try:
        await wait_registered(conn, 1)
        async with Client(deployment.address) as client:
            ids = [(await client.start_workflow("steps", {"n": 5}))[0] for _ in range(3)]
            for workflow_id in ids:
                view = await client.wait_workflow(workflow_id, timeout=60)
                assert (view.status, view.result) == ("completed", 5), view.error
        rows = await conn.fetch(
            "SELECT claimed_by, attempt, claimed_at = created_at AS handed FROM durable_task_queue "
            "WHERE kind = 'activity' AND workflow_id = ANY($1::text[])", ids)
        assert len(rows) == 15
        # inserted claimed by the decision that scheduled it (no claim came between), once each
        assert all(r["handed"] and r["attempt"] == 1 and r["claimed_by"] == "eager-a" for r in rows), rows
    finally:
        await conn.close()
