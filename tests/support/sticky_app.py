"""Workflows for the sticky-decision tests (tests/integration/test_sticky_decisions.py)."""

from __future__ import annotations

from typing import Any

from durable.worker import App, WorkflowContext, signal

app = App()


@app.activity(name="step")
async def step(ctx: Any, input: int) -> int:
    return input + 1


@app.workflow(name="steps")
async def steps(ctx: WorkflowContext, input: dict[str, Any]) -> int:
    """`n` sequential steps."""
    value = 0
    for _ in range(input["n"]):
        value = await ctx.activity("step", value)
    return value


@app.workflow(name="step_wait_step")
async def step_wait_step(ctx: WorkflowContext, input: None) -> list[Any]:
    """A step, a signal, a step: the instance is kept (sticky) while it waits."""
    first = await ctx.activity("step", 0)
    go = await ctx.wait_signal("go")
    second = await ctx.activity("step", first)
    return [first, go, second]


@app.workflow(name="busy")
class Busy:
    """Keeps running sequential steps while signals pour in; ends when `expected` signals
    have arrived, returning every payload in the order received and the steps done."""

    def __init__(self) -> None:
        self.received: list[Any] = []

    @signal(name="item")
    def item(self, payload: Any) -> None:
        self.received.append(payload)

    async def run(self, ctx: WorkflowContext, input: dict[str, Any]) -> dict[str, Any]:
        done = 0
        while len(self.received) < input["expected"]:
            done = await ctx.activity("step", done)
        return {"received": self.received, "steps": done}


@app.activity(name="keys")
async def keys(ctx: Any, input: None) -> dict[str, int]:
    return {"bbb": 1, "a": 2, "cc": 3}


@app.workflow(name="clock_and_keys")
async def clock_and_keys(ctx: WorkflowContext, input: dict[str, Any]) -> dict[str, Any]:
    """What the code saw after each step: the workflow's clock, and the keys of a result in
    their order (the decisions ride on the completions: the code must see what a replay of
    the stored history sees)."""
    times = []
    for _ in range(input["n"]):
        await ctx.activity("step", 0)
        times.append(ctx.now().isoformat())
    order = list((await ctx.activity("keys", None)).keys())
    return {"times": times, "keys": order}
