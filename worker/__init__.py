"""The durable worker: the SDK to write workflows and activities, and the process that runs
them against the control plane.

    from durable.worker import App, Workflow, schedule_activity, complete

    app = App()

    @app.activity(name="greet", start_to_close_timeout=30)
    async def greet(ctx, input):
        return {"text": f"hello {input['name']}"}

    @app.workflow(name="hello")
    class Hello(Workflow):
        def on_start(self, input):
            return [schedule_activity("greet", input)]

        def on_activity_completed(self, activity_id, result):
            return [complete(result)]

Run it with `durable worker --app module:app`, or `await Worker.from_env(app).run()`.
"""

from __future__ import annotations

from durable.common import ActivityCancelled, NonRetryableError, RetryableError, RetryPolicy
from durable.worker.actions import (
    Action,
    ActivityOptions,
    CompleteWorkflow,
    FailWorkflow,
    ScheduleActivity,
    StartTimer,
    complete,
    fail,
    schedule_activity,
    start_timer,
)
from durable.worker.app import ActivityDefinition, App, WorkflowDefinition
from durable.worker.context import ActivityContext
from durable.worker.replay import Decision, HistoryEvent, WorkflowCodeError, replay
from durable.worker.runtime import Worker
from durable.worker.settings import WorkerSettings
from durable.worker.supervisor import CriticalTaskFailed
from durable.worker.workflow import Workflow

__all__ = [
    "Action",
    "ActivityCancelled",
    "ActivityContext",
    "ActivityDefinition",
    "ActivityOptions",
    "App",
    "CompleteWorkflow",
    "CriticalTaskFailed",
    "Decision",
    "FailWorkflow",
    "HistoryEvent",
    "NonRetryableError",
    "RetryPolicy",
    "RetryableError",
    "ScheduleActivity",
    "StartTimer",
    "Worker",
    "WorkerSettings",
    "Workflow",
    "WorkflowCodeError",
    "WorkflowDefinition",
    "complete",
    "fail",
    "replay",
    "schedule_activity",
    "start_timer",
]
