"""`durable activities enqueue`, `durable rate-limits ...`, `durable workflows start` with a key
and `durable stats`, run as a user would, in subprocesses, against a real control plane."""

from __future__ import annotations

import asyncpg

from tests.integration.test_cli import durable
from tests.support.controlplane import running_control_plane


async def test_enqueue_with_a_key_rate_limits_and_stats(database_url: str, db: asyncpg.Connection) -> None:
    async with running_control_plane(database_url) as address:
        code, out = await durable(address, "activities", "enqueue", "sync", "--input", '{"id": 7}',
                                  "--concurrency-key", "customer-42", "--concurrency-limit", "2")
        assert code == 0, out
        row = await db.fetchrow("SELECT id::text, input, concurrency_key, concurrency_limit FROM durable_task_queue")
        assert out.strip() == f"enqueued {row['id']}"
        assert (row["concurrency_key"], row["concurrency_limit"]) == ("customer-42", 2)

        code, out = await durable(address, "workflows", "start", "onboard", "--id", "t7-1",
                                  "--concurrency-key", "tenant-7", "--concurrency-limit", "3")
        assert code == 0 and "started t7-1" in out, out
        wf = await db.fetchrow("SELECT concurrency_key, concurrency_limit FROM durable_workflow_instances")
        assert (wf["concurrency_key"], wf["concurrency_limit"]) == ("tenant-7", 3)

        code, out = await durable(address, "rate-limits", "set", "sync", "--rate", "50")
        assert code == 0 and out.strip() == "rate limit sync: 50/s, burst 5", out
        code, out = await durable(address, "rate-limits", "list")
        assert code == 0 and "sync" in out and "50" in out, out
        code, out = await durable(address, "stats")
        assert code == 0, out
        lines = out.splitlines()
        assert any(line.split()[:3] == ["activity", "sync", "1"] for line in lines), out  # keyed tasks counted
        assert any(line.startswith("sync ") and " 50 " in f" {line} " for line in lines), out  # the bucket
        code, out = await durable(address, "rate-limits", "delete", "sync")
        assert code == 0 and "deleted the rate limit of sync" in out
        code, out = await durable(address, "rate-limits", "delete", "sync")
        assert code != 0 and out.count("\n") <= 1 and "no rate limit is set for 'sync'" in out, out


async def test_bad_input_is_one_line(database_url: str) -> None:
    async with running_control_plane(database_url) as address:
        for args, says in [
            (("activities", "enqueue", "sync", "--concurrency-key", "k"), "go together"),
            (("activities", "enqueue", "sync", "--concurrency-key", "k", "--concurrency-limit", "0"), "--concurrency-limit"),
            (("workflows", "start", "onboard", "--concurrency-limit", "2"), "go together"),
            (("rate-limits", "set", "sync", "--rate", "0"), "--rate"),
            (("rate-limits", "set", "sync", "--rate", "5", "--burst", "0.5"), "--burst"),
        ]:
            code, out = await durable(address, *args)
            assert code != 0, (args, out)
            assert says in out and "Traceback" not in out, (args, out)
