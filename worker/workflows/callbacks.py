"""The callback layer on the runtime: a durable.worker.Workflow class (handlers that return
commands) run as one coroutine of the deterministic loop.

Its handlers are called as the events they react to are delivered, in history order; the
commands they return are issued as they are; CompleteWorkflow and FailWorkflow end the
coroutine. Ids left out are assigned as the runtime assigns them (f"{type}-{n}",
"timer-{n}"), so histories recorded by the earlier engine replay unchanged.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Callable, Sequence
from typing import Any

from durable.worker.workflows.commands import (
    COMMAND_TYPES,
    CompleteWorkflow,
    FailWorkflow,
    ScheduleActivity,
    StartTimer,
)
from durable.worker.workflows.context import WorkflowContext
from durable.worker.workflows.errors import ActivityError, WorkflowCodeError, WorkflowFailed


async def run_callbacks(ctx: WorkflowContext, cls: type, input: Any) -> Any:
    instance = ctx._instance
    try:
        workflow = cls()
    except Exception as exc:
        raise WorkflowCodeError(f"{cls.__name__}() raised {exc!r}") from exc
    for name, value in (("workflow_id", ctx.workflow_id), ("workflow_type", ctx.workflow_type)):
        try:
            setattr(workflow, name, value)
        except (AttributeError, TypeError):
            pass
    done: asyncio.Future[Any] = instance.loop.create_future()

    def call(handler: str, *args: Any, **extra: Any) -> None:
        if done.done():
            return
        method = getattr(workflow, handler, None)
        try:
            if method is None:
                returned: Any = _default(handler, args)
            else:
                kwargs = {k: v for k, v in extra.items() if _accepts(getattr(method, "__func__", method), k)}
                returned = method(*args, **kwargs)
            commands = _as_commands(returned, f"{cls.__name__}.{handler}")
        except WorkflowCodeError as exc:
            done.set_exception(exc)
            return
        except Exception as exc:
            event = instance.current
            where = f" (event {event.sequence_num} {event.event_type})" if event is not None else ""
            error = WorkflowCodeError(f"{cls.__name__}.{handler} raised {type(exc).__name__}: {exc}{where}")
            error.__cause__ = exc
            done.set_exception(error)
            return
        for command in commands:
            if done.done():
                return
            issue(command)

    def issue(command: Any) -> None:
        if isinstance(command, ScheduleActivity):
            future, activity_id = instance.schedule(command, Any)
            activity_type = command.activity_type
            future.add_done_callback(lambda f: on_activity(f, activity_id, activity_type))
        elif isinstance(command, StartTimer):
            timer, timer_id = instance.timer_future(command.fire_after, command.timer_id)
            timer.add_done_callback(lambda f: None if f.cancelled() else call("on_timer_fired", timer_id))
        elif isinstance(command, CompleteWorkflow):
            done.set_result(command.result)
        elif isinstance(command, FailWorkflow):
            done.set_exception(WorkflowFailed(command.message, type=command.type, details=command.details))
        else:
            instance.issue(command)

    def on_activity(future: asyncio.Future[Any], activity_id: str, activity_type: str) -> None:
        if future.cancelled():
            return
        exc = future.exception()
        if exc is None:
            call("on_activity_completed", activity_id, future.result() or {}, activity_type=activity_type)
        elif isinstance(exc, ActivityError):
            error = {"message": exc.message, "type": exc.type}
            call("on_activity_failed", exc.activity_id, error, activity_type=activity_type)
        else:
            done.set_exception(exc)

    instance.any_signal_listener = lambda name, payload: call("on_signal", name, payload or {})
    call("on_start", input or {})
    return await done


def _default(handler: str, args: tuple[Any, ...]) -> Sequence[Any] | None:
    if handler == "on_activity_failed":
        from durable.worker.workflow import default_on_activity_failed

        return default_on_activity_failed(str(args[0]), dict(args[1]))
    return []


def _as_commands(returned: Any, where: str) -> list[Any]:
    if returned is None:
        return []
    if isinstance(returned, COMMAND_TYPES):
        return [returned]
    if isinstance(returned, (list, tuple)):
        for item in returned:
            if not isinstance(item, COMMAND_TYPES):
                raise WorkflowCodeError(
                    f"{where} returned {item!r}; build actions with schedule_activity, "
                    "start_timer, complete or fail"
                )
        return list(returned)
    raise WorkflowCodeError(f"{where} must return a list of actions, got {type(returned).__name__}")


@functools.lru_cache(maxsize=1024)
def _accepts(function: Callable[..., Any], name: str) -> bool:
    try:
        parameters = inspect.signature(function).parameters
    except (TypeError, ValueError):
        return False
    return name in parameters or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
