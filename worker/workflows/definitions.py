"""The three shapes a registered workflow may take, and how each starts on the runtime.

- a function: ``async def wf(ctx, input) -> result``;
- a class with ``async def run(self, ctx, input)`` and optional ``@signal`` methods (state
  shared by the handlers lives on `self`; a fresh object per replay);
- a callback class (durable.worker.Workflow: ``on_start``, ``on_activity_completed``, ...),
  the lower layer, run by durable.worker.workflows.callbacks on the same runtime.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from durable.common.converter import NO_CONVERSION, input_type
from durable.worker.workflows.errors import WorkflowCodeError
from durable.worker.workflows.history import HistoryEvent
from durable.worker.workflows.instance import Decision, OptionsLookup, WorkflowInfo, WorkflowInstance

F = TypeVar("F", bound=Callable[..., Any])

CALLBACK_HANDLERS = (
    "on_start",
    "on_activity_completed",
    "on_activity_failed",
    "on_timer_fired",
    "on_signal",
)


def signal(fn: F | None = None, *, name: str | None = None) -> Any:
    """Mark a method of a workflow class as the handler of signal `name` (default: the
    method's name). It is called with the payload, in arrival order; it may be async."""

    def mark(method: F) -> F:
        method.__durable_signal__ = name or method.__name__  # type: ignore[attr-defined]
        return method

    return mark(fn) if fn is not None else mark


@dataclass(frozen=True)
class WorkflowDefinition:
    """A registered workflow: `target` is the function or class given to @app.workflow;
    `kind` is "function", "class" or "callbacks"."""

    name: str
    target: Any
    kind: str
    failure_exceptions: tuple[type[BaseException], ...] = ()
    signals: dict[str, str] = field(default_factory=dict)  # signal name -> method name

    @property
    def cls(self) -> Any:
        return self.target

    def instance(self, workflow_id: str, *, activity_defaults: OptionsLookup | None = None) -> WorkflowInstance:
        """A fresh instance of this workflow's code, ready to replay."""
        info = WorkflowInfo(workflow_id=workflow_id, workflow_type=self.name)
        if self.kind == "function":
            fn = self.target
            takes_input = len(inspect.signature(fn).parameters) >= 2
            return WorkflowInstance(
                (lambda ctx, value: fn(ctx, value)) if takes_input else (lambda ctx, value: fn(ctx)),
                info, input_type=input_type(fn) if takes_input else NO_CONVERSION,
                failure_exceptions=self.failure_exceptions, activity_defaults=activity_defaults,
            )
        if self.kind == "class":
            try:
                obj = self.target()
            except Exception as exc:
                raise WorkflowCodeError(f"{self.target.__name__}() raised {exc!r}") from exc
            for attr, value in (("workflow_id", workflow_id), ("workflow_type", self.name)):
                _try_set(obj, attr, value)
            handlers = {signal_name: getattr(obj, method) for signal_name, method in self.signals.items()}
            run = obj.run
            return WorkflowInstance(
                lambda ctx, value: run(ctx, value), info,
                input_type=input_type(type(obj).run, position=2),
                failure_exceptions=self.failure_exceptions, activity_defaults=activity_defaults,
                signal_handlers=handlers,
            )
        from durable.worker.workflows.callbacks import run_callbacks

        target = self.target
        return WorkflowInstance(
            lambda ctx, value: run_callbacks(ctx, target, value), info,
            failure_exceptions=self.failure_exceptions, activity_defaults=activity_defaults,
        )

    def decide(
        self,
        history: Iterable[HistoryEvent],
        decided_through_seq: int,
        *,
        workflow_id: str = "",
        activity_defaults: OptionsLookup | None = None,
    ) -> Decision:
        """Replay `history` on a fresh instance; the new decision."""
        instance = self.instance(workflow_id, activity_defaults=activity_defaults)
        return instance.replay(history, decided_through_seq)


def define(target: Any, name: str, failure_exceptions: Iterable[type[BaseException]] = ()) -> WorkflowDefinition:
    """The definition of `target` (raises TypeError/ValueError naming what is wrong)."""
    failures = tuple(failure_exceptions)
    if inspect.isclass(target):
        run = getattr(target, "run", None)
        if run is not None:
            if not inspect.iscoroutinefunction(run):
                raise TypeError(f"workflow {name!r}: {target.__name__}.run must be `async def run(self, ctx, input)`")
            signals = {}
            for attr in dir(target):
                method = getattr(target, attr, None)
                signal_name = getattr(method, "__durable_signal__", None)
                if isinstance(signal_name, str) and signal_name:
                    signals[signal_name] = attr
            return WorkflowDefinition(name, target, "class", failures, signals)
        for handler in CALLBACK_HANDLERS:
            method = getattr(target, handler, None)
            if method is not None and not callable(method):
                raise TypeError(f"workflow {name!r}: {handler} is not callable")
            if method is not None and inspect.iscoroutinefunction(method):
                raise TypeError(
                    f"workflow {name!r}: {handler} must be a plain (not async) method; a "
                    "callback workflow returns commands. Write `async def run(self, ctx, input)` "
                    "for async code"
                )
        return WorkflowDefinition(name, target, "callbacks", failures)
    if inspect.iscoroutinefunction(target):
        parameters = list(inspect.signature(target).parameters.values())
        if not 1 <= len(parameters) <= 2:
            raise TypeError(f"workflow {name!r} must be `async def {target.__name__}(ctx, input)`")
        return WorkflowDefinition(name, target, "function", failures)
    raise TypeError(f"workflow {name!r} must be an async function `(ctx, input)` or a class, "
                    f"got {target!r}")


def _try_set(obj: Any, attr: str, value: Any) -> None:
    try:
        setattr(obj, attr, value)
    except (AttributeError, TypeError):
        pass
