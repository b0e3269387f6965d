"""`durable schedules ...` run as a user would, in subprocesses, against a real control plane."""

from __future__ import annotations

import asyncpg
import pytest

from durable.client import Client
from durable.controlplane.settings import MetricsSettings
from tests.integration.test_cli import durable
from tests.integration.test_metrics import scrape
from tests.support.controlplane import free_port, running_control_plane
from tests.support.processes import wait_for


async def test_schedule_commands(database_url: str, db: asyncpg.Connection) -> None:
    async with running_control_plane(database_url) as address:
        code, out = await durable(
            address, "schedules", "create", "nightly", "--workflow", "report", "--cron", "30 2 * * *",
            "--tz", "Europe/Berlin", "--input", '{"kind": "daily"}', "--overlap", "buffer_one", "--jitter", "5m")
        assert code == 0, out
        assert "created schedule nightly: workflow report, cron 30 2 * * * (Europe/Berlin), overlap buffer_one" in out
        code, out = await durable(address, "schedules", "create", "tick", "--activity", "cleanup", "--every", "1h",
                                  "--paused", "--note", "not yet")
        assert code == 0 and "created schedule tick: activity cleanup, every 3600 s" in out and "paused" in out

        code, out = await durable(address, "schedules", "list")
        lines = out.splitlines()
        assert code == 0 and lines[0].split()[:3] == ["ID", "TARGET", "WHEN"]
        assert lines[2].startswith("nightly") and "buffer_one" in lines[2] and "active" in lines[2]
        assert lines[3].startswith("tick") and "paused" in lines[3]

        code, out = await durable(address, "schedules", "show", "nightly", "--upcoming", "3")
        assert code == 0 and "input:     {\"kind\": \"daily\"}" in out and "jitter up to 300 s" in out
        upcoming = out.split("next ticks:")[1].split("recent fires:")[0].split()
        assert len(upcoming) == 3 and {t[10:19] for t in upcoming} <= {"T01:30:00", "T00:30:00"}  # 02:30 Berlin

        code, out = await durable(address, "schedules", "trigger", "nightly")
        assert code == 0 and out.startswith("started nightly-trigger-")
        code, out = await durable(address, "schedules", "trigger", "nightly")
        assert code == 0 and out.startswith("buffered: the last run of nightly is still going")
        code, out = await durable(address, "schedules", "trigger", "nightly", "--overlap", "allow_all")
        assert code == 0 and out.startswith("started nightly-trigger-")

        code, out = await durable(address, "schedules", "backfill", "nightly",
                                  "--from", "2026-01-01T00:00:00Z", "--to", "2026-01-03T23:59:59Z")
        assert code == 0 and "started 3, already existing 0" in out, out
        code, out = await durable(address, "schedules", "backfill", "nightly",
                                  "--from", "2026-01-02T00:00:00Z", "--to", "2026-01-04T23:59:59Z")
        assert code == 0 and "started 1, already existing 2" in out, out
        ids = {r["id"] for r in await db.fetch("SELECT id FROM durable_workflow_instances")}
        assert {"nightly-20260101T013000Z", "nightly-20260104T013000Z"} <= ids and len(ids) == 2 + 4

        code, out = await durable(address, "schedules", "show", "nightly")
        assert "backfilled" in out and "started:   6, skipped 0" in out  # 2 triggered, 4 backfilled

        code, out = await durable(address, "schedules", "resume", "tick")
        assert code == 0 and "resumed tick; next tick" in out
        code, out = await durable(address, "schedules", "pause", "tick", "--note", "again")
        assert code == 0 and "paused tick" in out
        assert await db.fetchval("SELECT note FROM durable_schedules WHERE id = 'tick'") == "again"
        code, out = await durable(address, "schedules", "show", "tick", "--json")
        assert code == 0 and '"activity_type": "cleanup"' in out

        code, out = await durable(address, "schedules", "delete", "tick")
        assert code == 0 and "deleted tick" in out
        code, out = await durable(address, "schedules", "show", "tick")
        assert code == 1 and out.strip() == "Error: schedule 'tick' does not exist"


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["--cron", "61 * * * *"], "cron '61 * * * *' is not a valid cron expression (Bad minute"),
        (["--cron", "0 * * *"], "cron '0 * * *' is not a valid cron expression (Wrong number of fields"),
        (["--cron", "0 * * * *", "--tz", "Mars/Olympus_Mons"], "time_zone 'Mars/Olympus_Mons' is not a known time zone"),
        (["--every", "10s", "--overlap", "sometimes"], "overlap_policy 'sometimes' is not one of skip, buffer_one"),
        (["--every", "10 parsecs"], "--every '10 parsecs' is not a duration"),
        (["--every", "10s", "--start-at", "tomorrow"], "--start-at 'tomorrow' is not a time"),
    ],
)
async def test_bad_input_is_one_clear_line_naming_the_field(
    database_url: str, db: asyncpg.Connection, args: list[str], field: str
) -> None:
    async with running_control_plane(database_url) as address:
        code, out = await durable(address, "schedules", "create", "bad", "--workflow", "w", *args)
    assert code == 1
    assert len(out.strip().splitlines()) == 1, out
    assert out.startswith("Error: " + field), out
    assert await db.fetchval("SELECT count(*) FROM durable_schedules") == 0


async def test_a_schedule_fires_in_a_running_control_plane(database_url: str) -> None:
    """The loop the control plane starts fires a per-second schedule on its own, and counts it."""
    port = free_port()
    async with running_control_plane(database_url, metrics=MetricsSettings(port=port)) as address, \
            Client(address) as client:
        await client.create_schedule("live", workflow_type="w", interval_seconds=1, overlap_policy="allow_all")

        async def fired() -> bool:
            view, _ = await client.describe_schedule("live")
            return view.started_count >= 2

        await wait_for(fired, 15, "two ticks of a per-second schedule")
        view, upcoming = await client.describe_schedule("live", upcoming=3)
        assert view.last_run_id.startswith("live-") and len(upcoming) == 3
        assert [b - a for a, b in zip(upcoming, upcoming[1:])] == [1.0, 1.0]
        runs = await client.list_workflows_page(id_prefix="live-")
        assert len(runs.workflows) >= 2 and all(w.workflow_type == "w" for w in runs.workflows)
        assert scrape(port)['durable_schedule_fires_total{outcome="started"}'] >= 2
