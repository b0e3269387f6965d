"""The App: the registry of a worker's activities and workflows."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, TypeVar, overload

from durable.common import CircuitBreakerPolicy, InvalidArgument, RetryPolicy
from durable.common.converter import input_type, return_type
from durable.worker.workflows.commands import ActivityOptions, Seconds
from durable.worker.workflows.definitions import WorkflowDefinition, define

ActivityFn = Callable[..., Any]
F = TypeVar("F", bound=ActivityFn)
W = TypeVar("W")

@dataclass(frozen=True)
class ActivityDefinition:
    """A registered activity: `fn(ctx, input) -> result`, async or sync (run in a thread).
    `input_type`/`result_type`: the annotations payloads are converted by."""

    name: str
    fn: ActivityFn
    is_async: bool
    options: ActivityOptions
    input_type: Any = None
    result_type: Any = None
    # The circuit breaker its workers ask the control plane for: the numbers given (the rest
    # take the control plane's DURABLE_CIRCUIT_BREAKER_* defaults); None = none asked for.
    circuit_breaker: Mapping[str, float] | None = None


def _as_workflow_activity(func: F, definition: ActivityDefinition) -> F:
    """The registered function, marked so that calling it inside a workflow with one
    argument (the input) runs it as an activity: ``await reason(turn)`` is
    ``await ctx.activity("reason", turn)``. Outside a workflow it is the function itself."""
    from durable.worker.workflows.context import current_context

    def in_workflow(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if len(args) > 1:
            raise TypeError(f"inside a workflow, call activity {definition.name} with its input "
                            f"only: {definition.name}(input, **options)")
        ctx = current_context()
        assert ctx is not None
        return ctx.activity(definition.name, args[0] if args else None, **kwargs)

    call: Any
    if inspect.iscoroutinefunction(func):
        @functools.wraps(func)
        async def call(*args: Any, **kwargs: Any) -> Any:
            if current_context() is None:
                return await func(*args, **kwargs)
            return await in_workflow(args, kwargs)
    else:
        @functools.wraps(func)
        def call(*args: Any, **kwargs: Any) -> Any:
            if current_context() is None:
                return func(*args, **kwargs)
            return in_workflow(args, kwargs)

    call.__durable_activity__ = definition
    return call  # type: ignore[no-any-return]


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
        circuit_breaker: CircuitBreakerPolicy | Mapping[str, Any] | bool | None = None,
        concurrency_key: str | None = None,
        concurrency_limit: int | None = None,
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
        circuit_breaker: CircuitBreakerPolicy | Mapping[str, Any] | bool | None = None,
        concurrency_key: str | None = None,
        concurrency_limit: int | None = None,
    ) -> F | Callable[[F], F]:
        """Register `fn(ctx, input: dict) -> dict` as an activity (name: the function's name).

        The options are the defaults used when a workflow of this App schedules the activity
        without giving them; `start_to_close_timeout` is also enforced by the worker when the
        task carries none.

        `circuit_breaker` asks the control plane for a breaker of this activity type when the
        worker registers: True for the control plane's defaults, or a CircuitBreakerPolicy (or
        a mapping of its fields: failure_threshold, window, reset_timeout,
        half_open_max_trials, success_threshold); fields left out take the defaults.
        """
        breaker = _breaker_numbers(circuit_breaker)
        options = ActivityOptions.of(
            retry_policy=retry_policy, priority=priority, schedule_to_start_timeout=schedule_to_start_timeout,
            start_to_close_timeout=start_to_close_timeout, heartbeat_timeout=heartbeat_timeout,
            start_delay=start_delay, concurrency_key=concurrency_key, concurrency_limit=concurrency_limit,
        )

        def register(func: F) -> F:
            if not callable(func):
                raise InvalidArgument(f"activity {func!r} is not callable")
            activity_name: str = name or str(getattr(func, "__name__", ""))
            _check_name(activity_name, "activity")
            if activity_name in self._activities:
                raise InvalidArgument(f"activity {activity_name!r} is registered twice")
            _check_arity(func, activity_name)
            definition = ActivityDefinition(
                name=activity_name,
                fn=func,
                is_async=inspect.iscoroutinefunction(func),
                options=options,
                input_type=input_type(func),
                result_type=return_type(func),
                circuit_breaker=breaker,
            )
            self._activities[activity_name] = definition
            return _as_workflow_activity(func, definition)

        return register(fn) if fn is not None else register

    @overload
    def workflow(self, target: W) -> W: ...

    @overload
    def workflow(
        self,
        target: None = None,
        *,
        name: str | None = None,
        failure_exceptions: tuple[type[BaseException], ...] = (),
    ) -> Callable[[W], W]: ...

    def workflow(
        self,
        target: W | None = None,
        *,
        name: str | None = None,
        failure_exceptions: tuple[type[BaseException], ...] = (),
    ) -> W | Callable[[W], W]:
        """Register a workflow: an ``async def wf(ctx, input)`` function, a class with
        ``async def run(self, ctx, input)`` (and @signal methods), or a callback class
        (durable.worker.Workflow). Name: the function's or class's name.

        A workflow fails only by ``raise WorkflowFailed(...)``, an uncaught ActivityError,
        or an exception of `failure_exceptions`; any other exception is a bug: the decision
        is retried and the workflow stays running, blocked, until fixed code is deployed.
        """

        def register(item: W) -> W:
            workflow_name = str(name or getattr(item, "__name__", ""))
            _check_name(workflow_name, "workflow")
            if workflow_name in self._workflows:
                raise InvalidArgument(f"workflow {workflow_name!r} is registered twice")
            try:
                definition = define(item, workflow_name, failure_exceptions)
            except (TypeError, ValueError) as exc:
                raise InvalidArgument(str(exc)) from None
            self._workflows[workflow_name] = definition
            try:  # what ctx.child(fn) reads to name the child's type
                setattr(item, "__durable_workflow__", workflow_name)  # noqa: B010
            except (AttributeError, TypeError):
                pass
            return item

        return register(target) if target is not None else register

    def activity_options(self, activity_type: str) -> ActivityOptions:
        """The registered defaults of `activity_type` (empty options when unknown here)."""
        definition = self._activities.get(activity_type)
        return definition.options if definition else ActivityOptions()


def _breaker_numbers(value: CircuitBreakerPolicy | Mapping[str, Any] | bool | None) -> Mapping[str, float] | None:
    """The fields of a breaker the caller set (True: none, all defaults); None for no breaker."""
    if value is None or value is False:
        return None
    if value is True:
        return MappingProxyType({})
    if isinstance(value, CircuitBreakerPolicy):
        policy = value
    elif isinstance(value, Mapping):
        policy = CircuitBreakerPolicy.parse(dict(value), field="circuit_breaker")
    else:
        raise InvalidArgument(
            f"circuit_breaker must be True, a CircuitBreakerPolicy or a mapping of its fields, not {value!r}")
    return MappingProxyType({k: float(getattr(policy, k)) for k in sorted(policy.model_fields_set)})


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
