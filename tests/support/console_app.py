"""The worker app behind the console's browser tests (tests/integration/test_console.py).

- `console_demo`: an activity that fails twice before it succeeds (two retries on the
  timeline), a short timer, then it waits for an `approve` signal and completes with its payload.
- `console_waits`: a timer of an hour, to be cancelled.
- `console_doomed`: an activity that always fails for good (straight to the dead-letter queue).
"""

from __future__ import annotations

from typing import Any

from durable.worker import (
    ActivityContext,
    App,
    NonRetryableError,
    RetryableError,
    Workflow,
    complete,
    schedule_activity,
    start_timer,
)

app = App("console")

FAST_RETRIES = {"max_attempts": 5, "initial_interval": 0.05, "backoff_coefficient": 1.0, "max_interval": 0.05}


@app.activity(name="console_flaky", retry_policy=FAST_RETRIES)
async def flaky(ctx: ActivityContext, input: dict[str, Any]) -> dict[str, Any]:
    if ctx.attempt <= int(input.get("fail_times", 0)):
        raise RetryableError(f"upstream busy on attempt {ctx.attempt}", type="UpstreamBusy")
    return {"attempt": ctx.attempt}


@app.activity(name="console_doomed")
async def doomed(ctx: ActivityContext, input: dict[str, Any]) -> dict[str, Any]:
    raise NonRetryableError("the disk is on fire", type="DiskOnFire")


@app.workflow(name="console_demo")
class Demo(Workflow):
    def on_start(self, input: dict[str, Any]) -> list[Any]:
        return [schedule_activity("console_flaky", {"fail_times": 2}, activity_id="fetch")]

    def on_activity_completed(self, activity_id: str, result: dict[str, Any]) -> list[Any]:
        return [start_timer(0.2, timer_id="cool-down")]

    def on_timer_fired(self, timer_id: str) -> list[Any]:
        return []  # now it waits for the signal

    def on_signal(self, signal_type: str, payload: dict[str, Any]) -> list[Any]:
        if signal_type == "approve":
            return [complete({"approved_by": payload.get("by", "?")})]
        return []


@app.workflow(name="console_waits")
class Waits(Workflow):
    def on_start(self, input: dict[str, Any]) -> list[Any]:
        return [start_timer(3600, timer_id="an-hour")]
