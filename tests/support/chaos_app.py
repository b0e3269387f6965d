"""The worker app of the chaos run (tests/integration/test_chaos.py).

A `chaos_flow` workflow runs the stages of its input in order; a stage is a list of steps
scheduled together (in parallel when there are several), and the next stage starts when all
of them completed. A step is an activity (`chaos_async`, or `chaos_sync` that runs in a
thread) that works for `work_ms`, raises a retryable error on its first `fail_times`
attempts, or a non-retryable one when `fatal` (its workflow then fails with it).

Every run of an activity appends a "start" line before the work and an "end" line after it
(with its outcome) to the JSON-lines file named by DURABLE_CHAOS_RECORD: workflow,
activity_id, attempt, worker, pid. One `write` of a short line to a file opened with O_APPEND
keeps lines whole across processes.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from datetime import timedelta
from typing import Any

from durable.worker import (
    ActivityContext,
    App,
    NonRetryableError,
    RetryableError,
    Workflow,
    complete,
    schedule_activity,
)

app = App("chaos")

# Chaos makes attempts cheap: a killed worker's task comes back with a new attempt number.
RETRY_POLICY = {"max_attempts": 50, "initial_interval": 0.05, "backoff_coefficient": 2.0, "max_interval": 0.25}


def record(phase: str, ctx: ActivityContext, **extra: Any) -> None:
    path = os.environ.get("DURABLE_CHAOS_RECORD")
    if not path:
        return
    line = {
        "phase": phase,
        "workflow": ctx.workflow_id,
        "activity_id": ctx.activity_id,
        "attempt": ctx.attempt,
        "worker": os.environ.get("WORKER_ID"),
        "pid": os.getpid(),
        **extra,
    }
    data = (json.dumps(line, separators=(",", ":")) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def outcome(ctx: ActivityContext, step: dict[str, Any]) -> dict[str, Any]:
    """What the step does on this attempt, after its work: fail or return its value."""
    if step.get("fatal"):
        record("end", ctx, outcome="fatal")
        raise NonRetryableError(f"chaos: step {ctx.activity_id} is fatal", type="ChaosFatal")
    if ctx.attempt <= int(step.get("fail_times", 0)):
        record("end", ctx, outcome="retryable")
        raise RetryableError(
            f"chaos: transient failure of {ctx.activity_id} on attempt {ctx.attempt}",
            type="ChaosTransient",
            next_retry_delay=timedelta(seconds=0.05) if ctx.attempt % 2 else None,
        )
    record("end", ctx, outcome="ok")
    return {"value": step["value"], "attempt": ctx.attempt, "worker": os.environ.get("WORKER_ID"), "pid": os.getpid()}


@app.activity(name="chaos_async", retry_policy=RETRY_POLICY)
async def chaos_async(ctx: ActivityContext, step: dict[str, Any]) -> dict[str, Any]:
    record("start", ctx)
    await asyncio.sleep(step.get("work_ms", 0) / 1000)
    return outcome(ctx, step)


@app.activity(name="chaos_sync", retry_policy=RETRY_POLICY)
def chaos_sync(ctx: ActivityContext, step: dict[str, Any]) -> dict[str, Any]:
    record("start", ctx)
    time.sleep(step.get("work_ms", 0) / 1000)
    return outcome(ctx, step)


@app.workflow(name="chaos_flow")
class ChaosFlow(Workflow):
    """Input: {"stages": [[step, ...], ...]}, a step being {"id", "type", "value", "work_ms",
    "fail_times", "fatal"}. Result: {"total": sum of the values, "steps": count}."""

    def __init__(self) -> None:
        self.stages: list[list[dict[str, Any]]] = []
        self.stage = -1
        self.waiting: set[str] = set()
        self.values: dict[str, int] = {}

    def on_start(self, input: dict[str, Any]) -> list[Any]:
        self.stages = input["stages"]
        return self._next_stage()

    def on_activity_completed(self, activity_id: str, result: dict[str, Any]) -> list[Any]:
        if activity_id not in self.waiting:
            # A completion nobody waits for would mean a step was delivered twice.
            raise RuntimeError(f"unexpected completion of {activity_id} in stage {self.stage}")
        self.waiting.discard(activity_id)
        self.values[activity_id] = int(result["value"])
        if self.waiting:
            return []
        if self.stage + 1 < len(self.stages):
            return self._next_stage()
        return [complete({"total": sum(self.values.values()), "steps": len(self.values)})]

    def _next_stage(self) -> list[Any]:
        self.stage += 1
        steps = self.stages[self.stage]
        self.waiting = {s["id"] for s in steps}
        return [schedule_activity(s["type"], s, activity_id=s["id"]) for s in steps]
