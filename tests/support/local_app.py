"""Workflows with local activities, for tests/integration/test_local_activities.py.

Every local activity appends a line to $DURABLE_TEST_RECORDS when it runs, so a test counts
the calls (a replay must not add any).
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

from durable.worker import ActivityError, App, WorkflowContext

app = App("local-activity-tests")
QUICK = {"max_attempts": 3, "initial_interval": 0.05, "backoff_coefficient": 1.0, "jitter": 0.0}


def _record(kind: str, **data: Any) -> None:
    path = os.environ.get("DURABLE_TEST_RECORDS")
    if path:
        with Path(path).open("a") as f:
            f.write(json.dumps({"kind": kind, **data}) + "\n")


@app.activity(name="parse")
async def parse(ctx: Any, input: dict[str, Any]) -> dict[str, Any]:
    _record("parse", workflow=ctx.workflow_id, attempt=ctx.attempt)
    return {"n": int(input["text"])}


@app.activity(name="double")
async def double(ctx: Any, input: int) -> int:
    return input * 2


def flaky(ctx: Any, input: dict[str, Any]) -> str:
    """Fails its first `failures` attempts (sync: runs on the worker's threads)."""
    _record("flaky", workflow=ctx.workflow_id, attempt=ctx.attempt)
    if ctx.attempt <= input["failures"]:
        raise RuntimeError(f"attempt {ctx.attempt} failed")
    return f"ok after {ctx.attempt}"


@app.workflow(name="four_local")
async def four_local(ctx: WorkflowContext, input: None) -> int:
    total = 0
    for i in range(1, 5):
        total += (await ctx.local_activity(parse, {"text": str(i)}))["n"]
    return total


@app.workflow(name="flaky_local")
async def flaky_local(ctx: WorkflowContext, input: dict[str, Any]) -> dict[str, Any]:
    try:
        return {"ok": await ctx.local_activity(flaky, input, retry_policy=QUICK)}
    except ActivityError as exc:
        return {"error": exc.type, "attempts": exc.attempts, "reason": exc.reason}


@app.workflow(name="local_then_wait")
async def local_then_wait(ctx: WorkflowContext, input: None) -> list[Any]:
    """A local activity, an activity, a signal, a local activity: the first one's result
    must come from its marker when a fresh worker replays after the signal."""
    parsed = await ctx.local_activity(parse, {"text": "21"})
    doubled = await ctx.activity(double, parsed["n"])
    go = await ctx.wait_signal("go")
    again = await ctx.local_activity("parse", {"text": str(doubled)})
    return [parsed["n"], doubled, go, again["n"]]


@app.activity(name="hold")
async def hold(ctx: Any, input: dict[str, Any]) -> str:
    """Waits for ever in a worker started with DURABLE_TEST_HOLD=1 (the test kills it)."""
    _record("hold", workflow=ctx.workflow_id, attempt=ctx.attempt)
    if os.environ.get("DURABLE_TEST_HOLD") == "1":
        await asyncio.Event().wait()
    return "held"


@app.workflow(name="four_steps")
async def four_steps(ctx: WorkflowContext, input: None) -> int:
    total = 0
    for i in range(1, 5):
        total += (await ctx.step(parse, {"text": str(i)}))["n"]
    return total


@app.workflow(name="steps_then_hold")
async def steps_then_hold(ctx: WorkflowContext, input: None) -> list[Any]:
    """Two steps, an activity between them, then a step that holds in the first worker:
    the first two must be journalled when it runs, and never run again."""
    first = await ctx.step(parse, {"text": "1"})
    doubled = ctx.start_activity(double, first["n"])
    second = await ctx.step(parse, {"text": "2"})
    held = await ctx.step(hold, {})
    return [first["n"], second["n"], await doubled, held]


@app.activity(name="tick")
async def tick(ctx: Any, input: dict[str, Any]) -> None:
    _record("tick", workflow=ctx.workflow_id, attempt=ctx.attempt)
    await asyncio.sleep(0.002)


@app.workflow(name="steps_until_stopped")
async def steps_until_stopped(ctx: WorkflowContext, input: None) -> dict[str, Any]:
    """Steps in a loop that waits on nothing else, until a signal says stop (or 2,000 steps):
    the signal must reach the code between two steps, not once the loop is over."""
    stop: list[Any] = []
    ctx.set_signal_handler("stop", stop.append)
    steps = 0
    while not stop and steps < 2000:
        await ctx.step(tick, {})
        steps += 1
    return {"steps": steps, "stopped": bool(stop)}
