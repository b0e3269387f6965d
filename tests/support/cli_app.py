"""A worker app for the CLI tests: a workflow that completes, one whose step succeeds on its
second attempt, one whose step waits an hour for its retry, and one that fails."""

from __future__ import annotations

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

app = App()


@app.activity(name="echo")
async def echo(ctx: ActivityContext, input: dict[str, Any]) -> dict[str, Any]:
    return {"echo": input}


@app.activity(name="flaky")
async def flaky(ctx: ActivityContext, input: dict[str, Any]) -> dict[str, Any]:
    if ctx.attempt < 2:
        raise RetryableError("not yet", type="NotYet", next_retry_delay=timedelta(0))
    return {"attempt": ctx.attempt}


@app.activity(name="stubborn")
async def stubborn(ctx: ActivityContext, input: dict[str, Any]) -> dict[str, Any]:
    raise RetryableError("try again in an hour", type="Later", next_retry_delay=timedelta(hours=1))


@app.activity(name="doomed")
async def doomed(ctx: ActivityContext, input: dict[str, Any]) -> dict[str, Any]:
    raise NonRetryableError("this never works", type="Doomed")


class OneStep(Workflow):
    activity = ""

    def on_start(self, input: dict[str, Any]) -> list[Any]:
        return [schedule_activity(self.activity, input, activity_id="step")]

    def on_activity_completed(self, activity_id: str, result: dict[str, Any]) -> list[Any]:
        return [complete(result)]


@app.workflow(name="echo_flow")
class EchoFlow(OneStep):
    activity = "echo"


@app.workflow(name="flaky_flow")
class FlakyFlow(OneStep):
    activity = "flaky"


@app.workflow(name="doomed_flow")
class DoomedFlow(OneStep):
    activity = "doomed"


@app.workflow(name="stubborn_flow")
class StubbornFlow(OneStep):
    activity = "stubborn"


@app.workflow(name="broken_flow")
class BrokenFlow(Workflow):
    def on_start(self, input: dict[str, Any]) -> list[Any]:
        raise RuntimeError("a bug in the workflow code")
