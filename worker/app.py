"""The App: the registry of a worker's activities and workflows."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, TypeVar, overload

from durable.common import InvalidArgument, RetryPolicy
from durable.worker.actions import ActivityOptions, Seconds, retry_policy_of, to_seconds

ActivityFn = Callable[..., Any]
F = TypeVar("F", bound=ActivityFn)
C = TypeVar("C", bound=type)

WORKFLOW_HANDLERS = (
    "on_start",
    "on_activity_completed",
    "on_activity_failed",
    "on_timer_fired",
    "on_signal",
)


@dataclass(frozen=True)
class ActivityDefinition:
    """A registered activity: `fn(ctx, input) -> dict`, async or sync (run in a thread)."""

    name: str
    fn: ActivityFn
    is_async: bool
    options: ActivityOptions


@dataclass(frozen=True)
class WorkflowDefinition:
    """A registered workflow class (see durable.worker.Workflow for the handlers)."""

    name: str
    cls: type


class App:
    """Collects activities and workflows with decorators; a worker serves one App.

    >>> app = App()
    >>> @app.activity(name="greet")
    ... async def greet(ctx, input):
    ...     return {"text": f"hello {input['name']}"}
    """

    def __init__(self, name: str = "durable") -> None:
        self.name = name
        self._activities: dict[str, ActivityDefinition] = {}
        self._workflows: dict[str, WorkflowDefinition] = {}

    @property
    def activities(self) -> Mapping[str, ActivityDefinition]:
        return MappingProxyType(self._activities)

    @property
    def workflows(self) -> Mapping[str, WorkflowDefinition]:
        return MappingProxyType(self._workflows)

    @overload
    def activity(self, fn: F) -> F: ...

    @overload
    def activity(
        self,
        fn: None = None,
        *,
        name: str | None = None,
        retry_policy: RetryPolicy | dict[str, Any] | None = None,
        start_to_close_timeout: Seconds | None = None,
        schedule_to_start_timeout: Seconds | None = None,
        heartbeat_timeout: Seconds | None = None,
        priority: int | None = None,
        start_delay: Seconds | None = None,
    ) -> Callable[[F], F]: ...

    def activity(
        self,
        fn: F | None = None,
        *,
        name: str | None = None,
        retry_policy: RetryPolicy | dict[str, Any] | None = None,
        start_to_close_timeout: Seconds | None = None,
        schedule_to_start_timeout: Seconds | None = None,
        heartbeat_timeout: Seconds | None = None,
        priority: int | None = None,
        start_delay: Seconds | None = None,
    ) -> F | Callable[[F], F]:
        """Register `fn(ctx, input: dict) -> dict` as an activity (name: the function's name).

        The options are the defaults used when a workflow of this App schedules the activity
        without giving them; `start_to_close_timeout` is also enforced by the worker when the
        task carries none.
        """
        options = ActivityOptions(
            retry_policy=retry_policy_of(retry_policy, field="retry_policy"),
            priority=priority,
            schedule_to_start_timeout=to_seconds(
                schedule_to_start_timeout, field="schedule_to_start_timeout"
            ),
            start_to_close_timeout=to_seconds(start_to_close_timeout, field="start_to_close_timeout"),
            heartbeat_timeout=to_seconds(heartbeat_timeout, field="heartbeat_timeout"),
            start_delay=to_seconds(start_delay, field="start_delay"),
        )

        def register(func: F) -> F:
            if not callable(func):
                raise InvalidArgument(f"activity {func!r} is not callable")
            activity_name: str = name or str(getattr(func, "__name__", ""))
            _check_name(activity_name, "activity")
            if activity_name in self._activities:
                raise InvalidArgument(f"activity {activity_name!r} is registered twice")
            _check_arity(func, activity_name)
            self._activities[activity_name] = ActivityDefinition(
                name=activity_name,
                fn=func,
                is_async=inspect.iscoroutinefunction(func),
                options=options,
            )
            return func

        return register(fn) if fn is not None else register

    @overload
    def workflow(self, cls: C) -> C: ...

    @overload
    def workflow(self, cls: None = None, *, name: str | None = None) -> Callable[[C], C]: ...

    def workflow(self, cls: C | None = None, *, name: str | None = None) -> C | Callable[[C], C]:
        """Register a workflow class (name: the class name). It is built with no arguments
        for every decision; handlers it lacks behave as in durable.worker.Workflow."""

        def register(klass: C) -> C:
            if not inspect.isclass(klass):
                raise InvalidArgument(f"workflow {klass!r} must be a class")
            workflow_name = name or klass.__name__
            _check_name(workflow_name, "workflow")
            if workflow_name in self._workflows:
                raise InvalidArgument(f"workflow {workflow_name!r} is registered twice")
            for handler in WORKFLOW_HANDLERS:
                attr = getattr(klass, handler, None)
                if attr is not None and not callable(attr):
                    raise InvalidArgument(f"workflow {workflow_name!r}: {handler} is not callable")
                if attr is not None and inspect.iscoroutinefunction(attr):
                    raise InvalidArgument(
                        f"workflow {workflow_name!r}: {handler} must be a plain (not async) "
                        "method; workflow code is deterministic and does no I/O"
                    )
            self._workflows[workflow_name] = WorkflowDefinition(name=workflow_name, cls=klass)
            return klass

        return register(cls) if cls is not None else register

    def activity_options(self, activity_type: str) -> ActivityOptions:
        """The registered defaults of `activity_type` (empty options when unknown here)."""
        definition = self._activities.get(activity_type)
        return definition.options if definition else ActivityOptions()


def _check_name(name: str, kind: str) -> None:
    if not name or len(name) > 255:
        raise InvalidArgument(f"{kind} name must be 1..255 characters, got {name!r}")


def _check_arity(func: ActivityFn, name: str) -> None:
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError):
        return
    try:
        signature.bind(object(), {})
    except TypeError:
        raise InvalidArgument(
            f"activity {name!r} must accept (ctx, input); its signature is {signature}"
        ) from None
