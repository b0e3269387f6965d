"""Worker apps for process tests. Activities record every attempt they run in a JSON-lines file
(DURABLE_TEST_RECORD) so the tests can count runs; `slow` blocks until a release file appears."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

from durable.worker import ActivityContext, App, Workflow, complete, schedule_activity

app = App()


def record(kind: str, ctx: ActivityContext, **extra: Any) -> None:
    path = os.environ.get("DURABLE_TEST_RECORD")
    if not path:
        return
    line = {"kind": kind, "task": ctx.task_id, "attempt": ctx.attempt, "workflow": ctx.workflow_id,
            "worker": os.environ.get("WORKER_ID"), "pid": os.getpid(),
            "has_database_url": "DATABASE_URL" in os.environ, **extra}
    with open(path, "a") as f:
        f.write(json.dumps(line) + "\n")


@app.activity(name="slow")
async def slow(ctx: ActivityContext, input: dict[str, Any]) -> dict[str, Any]:
    """Runs until the file named by input['release'] exists (or forever, for kill tests)."""
    record("started", ctx)
    release = Path(input["release"])
    while not release.exists():
        ctx.heartbeat({"waiting": True})
        await asyncio.sleep(0.05)
    record("finished", ctx)
    return {"worker": os.environ.get("WORKER_ID"), "attempt": ctx.attempt}


@app.activity(name="quick")
async def quick(ctx: ActivityContext, input: dict[str, Any]) -> dict[str, Any]:
    record("ran", ctx)
    return {"echo": input}


@app.workflow(name="one_slow_step")
class OneSlowStep(Workflow):
    def on_start(self, input: dict[str, Any]) -> list[Any]:
        return [schedule_activity("slow", input, activity_id="step")]

    def on_activity_completed(self, activity_id: str, result: dict[str, Any]) -> list[Any]:
        return [complete(result)]


@app.activity(name="timed")
async def timed(ctx: ActivityContext, input: dict[str, Any]) -> dict[str, Any]:
    """Runs input['seconds'] (default 5 ms) and returns when it ran, by the wall clock all the
    test's processes share: concurrency-key tests count overlapping runs from these."""
    import time

    start = time.time()
    await asyncio.sleep(float(input.get("seconds", 0.005)))
    return {"start": start, "end": time.time(), "worker": os.environ.get("WORKER_ID")}
