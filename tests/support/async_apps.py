"""Workflows in the async model, for tests with real worker processes.

`app` serves every scenario; `app_v1`, `app_v2` and `app_v3` are three deployments of the
same `versioned` and `buggy` workflows: v2 inserts a step without a patch (a
non-determinism for runs that started on v1) and keeps the bug; v3 guards the step with
`ctx.patched` and fixes the bug.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from durable.worker import ActivityError, App, WorkflowContext, query


def _record(kind: str, **data: Any) -> None:
    """Append a line to $DURABLE_TEST_RECORDS (how tests see what activities did)."""
    path = os.environ.get("DURABLE_TEST_RECORDS")
    if path:
        with Path(path).open("a") as f:
            f.write(json.dumps({"kind": kind, **data}) + "\n")


class Order(BaseModel):
    order_id: str
    amount: float


class Receipt(BaseModel):
    order_id: str
    charged: float
    note: str


def _activities(app: App) -> None:
    @app.activity(name="double")
    async def double(ctx: Any, input: dict[str, Any]) -> dict[str, Any]:
        return {"value": input["value"] * 2}

    @app.activity(name="hang", heartbeat_timeout=30)
    async def hang(ctx: Any, input: Any) -> None:
        _record("hang-started", task=ctx.task_id)
        try:
            await ctx.cancelled.wait()
            _record("hang-cancelled", task=ctx.task_id)
        finally:
            pass

    @app.activity(name="flaky", retry_policy={"max_attempts": 2, "initial_interval": 0.05, "max_interval": 0.05})
    async def flaky(ctx: Any, input: Any) -> None:
        raise RuntimeError(f"attempt {ctx.attempt} failed")

    @app.activity(name="note")
    def note(ctx: Any, input: Any) -> str:
        _record("note", value=input)
        return f"noted {input}"

    @app.activity(name="charge")
    async def charge(ctx: Any, order: Order) -> Receipt:
        return Receipt(order_id=order.order_id, charged=order.amount, note=type(order).__name__)


def _scenarios(app: App) -> None:
    @app.workflow(name="sequential")
    async def sequential(ctx: WorkflowContext, input: dict[str, Any]) -> dict[str, Any]:
        value = input["value"]
        for _ in range(3):
            value = (await ctx.activity("double", {"value": value}))["value"]
        return {"value": value}

    @app.workflow(name="fan_out")
    async def fan_out(ctx: WorkflowContext, input: dict[str, Any]) -> list[int]:
        results = await asyncio.gather(*(ctx.activity("double", {"value": i}) for i in range(10)))
        return [r["value"] for r in results]

    @app.workflow(name="task_group")
    async def task_group(ctx: WorkflowContext, input: None) -> str:
        outcome = "completed"
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(ctx.activity("hang"))
                tg.create_task(ctx.activity("hang"))
                tg.create_task(ctx.activity("flaky"))
        except* ActivityError as group:
            outcome = f"failed: {group.exceptions[0]}"
        return outcome

    @app.workflow(name="compensate")
    async def compensate(ctx: WorkflowContext, input: None) -> dict[str, Any]:
        try:
            await ctx.activity("flaky")
        except ActivityError as error:
            undo = await ctx.activity("note", "compensated")
            return {"error": error.type, "attempts": error.attempts, "undo": undo}
        return {}

    @app.workflow(name="deadline")
    async def deadline(ctx: WorkflowContext, input: None) -> str:
        try:
            await asyncio.wait_for(ctx.activity("hang"), 1)
        except TimeoutError:
            return "the timer won"
        return "the activity won"

    @app.workflow(name="sleeper")
    async def sleeper(ctx: WorkflowContext, input: dict[str, Any]) -> dict[str, Any]:
        started = ctx.now()
        await asyncio.sleep(input["seconds"])
        return {"slept": (ctx.now() - started).total_seconds()}

    @app.workflow(name="waiter")
    async def waiter(ctx: WorkflowContext, input: dict[str, Any]) -> dict[str, Any]:
        got = await ctx.wait_signal("go", timeout=input["timeout"])
        return {"got": got}

    @app.workflow(name="collector")
    async def collector(ctx: WorkflowContext, input: dict[str, Any]) -> list[Any]:
        await ctx.wait_signal("start")
        return [await ctx.wait_signal("item") for _ in range(input["n"])]

    @app.workflow(name="cancellable")
    async def cancellable(ctx: WorkflowContext, input: None) -> str:
        try:
            await ctx.activity("hang")
            return "not cancelled"
        finally:
            await ctx.activity("note", "finally ran")

    @app.workflow(name="values")
    async def values(ctx: WorkflowContext, input: None) -> dict[str, Any]:
        first = {"now": ctx.now().isoformat(), "random": ctx.random(), "uuid": str(ctx.uuid4())}
        await ctx.activity("note", first)
        await ctx.activity("double", {"value": 1})
        return first

    @app.workflow(name="counter")
    class Counter:
        """Counts steps, then sleeps; `progress` answers from the replayed state."""

        def __init__(self) -> None:
            self.steps = 0

        @query
        def progress(self, unit: str | None = None) -> dict[str, Any]:
            return {"steps": self.steps, "unit": unit}

        async def run(self, ctx: WorkflowContext, input: dict[str, Any]) -> int:
            for i in range(input["steps"]):
                await ctx.activity("double", {"value": i})
                self.steps += 1
            await asyncio.sleep(input["sleep"])
            return self.steps

    @app.workflow(name="wide")
    async def wide(ctx: WorkflowContext, input: dict[str, Any]) -> int:
        blob = "x" * input["bytes"]
        await asyncio.gather(*(ctx.activity("note", blob) for _ in range(input["n"])))
        return input["n"]

    @app.workflow(name="long")
    async def long(ctx: WorkflowContext, input: dict[str, Any]) -> int:
        blob = "y" * input["bytes"]
        for _ in range(input["n"]):
            await ctx.activity("note", blob)
        return input["n"]

    @app.workflow(name="typed")
    async def typed(ctx: WorkflowContext, input: Order) -> Receipt:
        receipt: Receipt = await ctx.activity("charge", input, result_type=Receipt)
        return receipt


def _versions(app: App, version: int) -> None:
    @app.workflow(name="versioned")
    async def versioned(ctx: WorkflowContext, input: None) -> dict[str, Any]:
        await ctx.activity("note", "first")
        if version == 2:
            await ctx.activity("note", "inserted")  # no patch: breaks runs that began on v1
        elif version == 3 and ctx.patched("insert-step"):
            await ctx.activity("note", "inserted")
        await ctx.wait_signal("go")
        await ctx.activity("note", "last")
        return {"version": version}

    @app.workflow(name="buggy")
    async def buggy(ctx: WorkflowContext, input: None) -> str:
        await ctx.activity("note", "before the bug")
        if version < 3:
            raise KeyError("missing")  # a bug: the workflow blocks, it does not fail
        return "fixed"


def build(version: int = 1) -> App:
    app = App(f"async-tests-v{version}")
    _activities(app)
    _scenarios(app)
    _versions(app, version)
    return app


app = build(1)
app_v1 = app
app_v2 = build(2)
app_v3 = build(3)
