"""Per-second schedules across two `durable controlplane` processes: each tick fires exactly
once while both run, while one is down, and after both were down (catch-up by the window).

The default run holds each phase a few seconds (about 25 s in all); DURABLE_SCHEDULE_SOAK=1
runs the issue's full version: a minute of ticks with one control plane down for 10 s.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta

import asyncpg

from durable.client import Client
from tests.support.controlplane import control_plane_process, free_port, wait_serving
from tests.support.processes import wait_for

SOAK = os.environ.get("DURABLE_SCHEDULE_SOAK", "") not in ("", "0")
# seconds: both up, A down (B alone), both down, both up again
PHASES = (25, 10, 10, 15) if SOAK else (3, 3, 4, 3)


def stop(proc: subprocess.Popen[bytes]) -> str:
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=20)
    assert proc.stdout is not None
    return proc.stdout.read().decode()


def tick_of(run_id: str) -> datetime:
    return datetime.strptime(run_id.rsplit("-", 1)[1], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)


async def test_each_tick_fires_once_across_two_control_planes(database_url: str, db: asyncpg.Connection) -> None:
    ports = [free_port(), free_port()]
    env = {"DURABLE_SCHEDULES_INTERVAL_SECONDS": "1"}
    logs: list[str] = []

    async def runs(prefix: str) -> list[str]:
        rows = await db.fetch("SELECT id FROM durable_workflow_instances WHERE starts_with(id, $1) ORDER BY id",
                              prefix + "-")
        return [r["id"] for r in rows]

    async def hold(seconds: float, what: str) -> None:
        """Let `seconds` of ticks pass (a phase of the test, not a synchronisation): waits on
        the wall clock with a deadline."""
        until = time.time() + seconds
        await wait_for(lambda: time.time() >= until, seconds + 5, what, interval=0.2)

    with ExitStack() as stack:
        a, address_a = stack.enter_context(control_plane_process(database_url, ports[0], **env))
        b, address_b = stack.enter_context(control_plane_process(database_url, ports[1], **env))
        await wait_serving(address_a)
        await wait_serving(address_b)
        async with Client(address_a) as client:
            # five schedules, so both replicas take some; one with a short catch-up window
            for i in range(4):
                await client.create_schedule(f"all{i}", workflow_type="w", interval_seconds=1,
                                             overlap_policy="allow_all", catchup_window_seconds=600)
            await client.create_schedule("short", workflow_type="w", interval_seconds=1,
                                         overlap_policy="allow_all", catchup_window_seconds=1)
        await wait_for(lambda: runs("short"), 10, "the first tick")
        await hold(PHASES[0], "both control planes up")

        logs.append(stop(a))  # A down: B alone fires every tick
        await hold(PHASES[1], "control plane A down")
        logs.append(stop(b))  # both down: nothing fires
        down_after = tick_of((await runs("short"))[-1])
        await hold(PHASES[2], "both control planes down")
        restarted_at = datetime.now(UTC)
        with control_plane_process(database_url, ports[0], **env) as (a2, address):
            await wait_serving(address)
            back_at = datetime.now(UTC)

            async def caught_up() -> bool:
                return bool(await db.fetchval(
                    "SELECT bool_and(next_tick > $1) FROM durable_schedules", back_at))

            await wait_for(caught_up, 20, "the catch-up after both were down")
            with control_plane_process(database_url, ports[1], **env) as (b2, address):
                await wait_serving(address)
                await hold(PHASES[3], "both up again")
                end = await db.fetchval("SELECT min(next_tick) FROM durable_schedules")
                logs.append(stop(a2))
                logs.append(stop(b2))
    # ticks up to the last one that every schedule handled
    last = end - timedelta(seconds=1)
    rows = await db.fetch("SELECT * FROM durable_schedules ORDER BY id")
    for row in rows:
        ticks = [tick_of(r) for r in await runs(row["id"]) if tick_of(r) <= last]
        first = ticks[0]
        assert row["existing_count"] == 0, "a tick was fired twice"
        if row["id"].startswith("all"):
            # a window of 10 minutes: every tick since the first fired once, the downtime's too
            expected = [first + timedelta(seconds=k) for k in range(int((last - first).total_seconds()) + 1)]
            assert ticks == expected, row["id"]
            assert row["missed_count"] == 0
        else:
            # a 1 s window (+1 s grace): the ticks of the downtime older than that were missed,
            # the newer ones fired on the restart; every tick either fired once or was missed
            gap = [t for t in ticks if down_after < t <= back_at]
            assert gap and all(t >= restarted_at - timedelta(seconds=3) for t in gap), gap
            assert row["missed_count"] >= PHASES[2] - 3
            assert len(ticks) == len(set(ticks))
            assert len(ticks) + row["missed_count"] == int((last - first).total_seconds()) + 1
    replicas_that_fired = sum("schedules: started" in log for log in logs)
    assert replicas_that_fired >= 2, "the work was shared"
