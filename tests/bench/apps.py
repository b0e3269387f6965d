"""The worker app the benchmarks run (`durable worker --app tests.bench.apps:app`).

- `noop`: the no-op activity. It returns `time.time() - input["ts"]` measured as its first
  action when the input carries `ts` (enqueue-to-start latency); nothing else.
- `probe`: the same, as a separate type (latency probes next to `noop` load).
- `long_steps`: `n` sequential `noop` activities (the cost of decision 300 against decision 10).
- `four_steps`: a no-op workflow of four sequential `noop` activities (an agent turn's shape:
  process_input -> reason -> act -> reason), then complete: plain async code on the
  workflow runtime.
- `one_step`: the same with one `noop` activity (peer-bench W3's 1-step workflows).
- `four_local_steps`: the same four `noop` steps as local activities: one decision task, four
  markers, no activity tasks.
- `four_journalled_steps`: the same four `noop` steps as steps (`ctx.step`): local
  activities whose marker is written before the next step runs (three journals and the
  decision), like DBOS's steps and Restate's ctx.run in peer-bench W3; `one_journalled_step`
  the same with one.
"""

from __future__ import annotations

import time
from typing import Any

from durable.worker import ActivityContext, App, WorkflowContext

app = App("bench")

STEPS = 4


def _started(input: dict[str, Any]) -> dict[str, Any]:
    ts = input.get("ts")
    return {"lat": time.time() - ts} if isinstance(ts, (int, float)) else {}


@app.activity(name="noop")
async def noop(ctx: ActivityContext, input: dict[str, Any]) -> dict[str, Any]:
    return _started(input)


@app.activity(name="probe")
async def probe(ctx: ActivityContext, input: dict[str, Any]) -> dict[str, Any]:
    return _started(input)


@app.workflow(name="four_steps")
async def four_steps(ctx: WorkflowContext, input: dict[str, Any]) -> dict[str, Any]:
    for step in range(1, STEPS + 1):
        await ctx.activity("noop", {"step": step}, activity_id=f"step-{step}")
    return {"steps": STEPS}


@app.workflow(name="one_step")
async def one_step(ctx: WorkflowContext, input: dict[str, Any]) -> dict[str, Any]:
    await ctx.activity("noop", {"step": 1}, activity_id="step-1")
    return {"steps": 1}


@app.workflow(name="long_steps")
async def long_steps(ctx: WorkflowContext, input: dict[str, Any]) -> dict[str, Any]:
    """`n` sequential no-op steps: what a decision costs as the history grows."""
    for step in range(1, input["n"] + 1):
        await ctx.activity("noop", {"step": step})
    return {"steps": input["n"]}


@app.workflow(name="four_local_steps")
async def four_local_steps(ctx: WorkflowContext, input: dict[str, Any]) -> dict[str, Any]:
    """`four_steps` with local activities: run by the worker within the first decision."""
    for step in range(1, STEPS + 1):
        await ctx.local_activity(noop, {"step": step}, activity_id=f"step-{step}")
    return {"steps": STEPS}


@app.workflow(name="one_journalled_step")
async def one_journalled_step(ctx: WorkflowContext, input: dict[str, Any]) -> dict[str, Any]:
    await ctx.step(noop, {"step": 1}, activity_id="step-1")
    return {"steps": 1}


@app.workflow(name="four_journalled_steps")
async def four_journalled_steps(ctx: WorkflowContext, input: dict[str, Any]) -> dict[str, Any]:
    """`four_steps` as steps: each one's outcome written before the next runs."""
    for step in range(1, STEPS + 1):
        await ctx.step(noop, {"step": step}, activity_id=f"step-{step}")
    return {"steps": STEPS}
