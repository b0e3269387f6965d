"""The durable worker: the SDK to write workflows and activities, and the process that runs
them against the control plane.

    import asyncio
    from durable.worker import App, WorkflowContext, WorkflowFailed

    app = App()

    @app.activity(name="greet", start_to_close_timeout=30)
    async def greet(ctx, input: dict) -> dict:
        return {"text": f"hello {input['name']}"}

    @app.workflow(name="hello")
    async def hello(ctx: WorkflowContext, input: dict) -> dict:
        first = await greet(input)                       # an activity, by its function
        others = await asyncio.gather(*(ctx.activity("greet", {"name": n}) for n in input["friends"]))
        return {"texts": [first["text"], *(o["text"] for o in others)]}

Run it with `durable worker --app module:app`, or `await Worker.from_env(app).run()`. The
workflow runtime and its determinism rules: durable.worker.workflows (rules in
durable.worker.workflows.rules). The callback classes (Workflow, schedule_activity, ...) are
its lower layer.
"""

from __future__ import annotations

from durable.common import ActivityCancelled, NonRetryableError, RetryableError, RetryPolicy
from durable.worker.workflows.commands import (
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
from durable.worker.app import ActivityDefinition, App
from durable.worker.context import ActivityContext
from durable.worker.workflows import (
    ActivityError,
    ChildWorkflowError,
    Decision,
    DeterminismViolation,
    HistoryEvent,
    NonDeterminismError,
    WorkflowCodeError,
    WorkflowContext,
    WorkflowDefinition,
    WorkflowFailed,
    query,
    replay,
    signal,
)
from durable.worker.runtime import Worker
from durable.worker.settings import WorkerSettings
from durable.worker.supervisor import CriticalTaskFailed
from durable.worker.workflow import Workflow

__all__ = [
    "Action",
    "ActivityCancelled",
    "ActivityError",
    "ActivityContext",
    "ActivityDefinition",
    "ActivityOptions",
    "App",
    "ChildWorkflowError",
    "CompleteWorkflow",
    "CriticalTaskFailed",
    "Decision",
    "DeterminismViolation",
    "FailWorkflow",
    "HistoryEvent",
    "NonDeterminismError",
    "NonRetryableError",
    "RetryPolicy",
    "RetryableError",
    "ScheduleActivity",
    "StartTimer",
    "Worker",
    "WorkerSettings",
    "Workflow",
    "WorkflowCodeError",
    "WorkflowContext",
    "WorkflowDefinition",
    "WorkflowFailed",
    "complete",
    "fail",
    "query",
    "replay",
    "schedule_activity",
    "signal",
    "start_timer",
]
