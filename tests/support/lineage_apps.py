"""Child workflows, continue-as-new and history limits, for tests with real worker processes."""

from __future__ import annotations

from typing import Any

from durable.worker import App, ChildWorkflowError, WorkflowContext, WorkflowFailed

app = App("lineage-tests")


@app.activity(name="double")
async def double(ctx: Any, input: dict[str, Any]) -> dict[str, Any]:
    return {"value": input["value"] * 2}


@app.workflow(name="child_double")
async def child_double(ctx: WorkflowContext, input: dict[str, Any]) -> dict[str, Any]:
    doubled: dict[str, Any] = await ctx.activity("double", input)
    return {"child": ctx.workflow_id, **doubled}


@app.workflow(name="child_fails")
async def child_fails(ctx: WorkflowContext, input: Any) -> None:
    raise WorkflowFailed("no stock left", type="OutOfStock")


@app.workflow(name="child_waits")
async def child_waits(ctx: WorkflowContext, input: Any) -> str:
    await ctx.wait_signal("never")
    return "signalled"


@app.workflow(name="parent_ok")
async def parent_ok(ctx: WorkflowContext, input: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = await ctx.child(child_double, {"value": input["value"]}, id=f"{ctx.workflow_id}-kid")
    return result


@app.workflow(name="parent_catches")
async def parent_catches(ctx: WorkflowContext, input: dict[str, Any]) -> dict[str, Any]:
    try:
        await ctx.child("child_fails", None, id=input["child_id"])
    except ChildWorkflowError as exc:
        return {"type": exc.type, "message": exc.message, "child_id": exc.child_id,
                "workflow_type": exc.workflow_type}
    return {"type": None}


@app.workflow(name="parent_of_waiters")
async def parent_of_waiters(ctx: WorkflowContext, input: dict[str, Any]) -> None:
    ctx.start_child("child_waits", None, id=f"{ctx.workflow_id}-abandoned", parent_close_policy="abandon")
    await ctx.child("child_waits", None, id=f"{ctx.workflow_id}-cancelled")


@app.workflow(name="forever")
async def forever(ctx: WorkflowContext, input: dict[str, Any]) -> dict[str, Any]:
    """Continues as new on each "next" signal; "payload" signals are collected across runs."""
    seen: list[Any] = list(input.get("seen", []))
    run = int(input.get("run", 1))
    ctx.set_signal_handler("payload", seen.append)
    if run > input["runs"]:
        await ctx.wait_condition(lambda: len(seen) >= input["runs"])
        return {"seen": seen, "run": run}
    await ctx.wait_signal("next")
    ctx.continue_as_new({**input, "seen": seen, "run": run + 1})


@app.workflow(name="long_loop")
async def long_loop(ctx: WorkflowContext, input: dict[str, Any]) -> int:
    value = 0
    for _ in range(input["rounds"]):
        value = (await ctx.activity("double", {"value": 1}))["value"] + value
    return value
