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


def query(fn: F | None = None, *, name: str | None = None) -> Any:
    """Mark a method of a workflow class as query `name` (default: the method's name): a
    plain method that reads the workflow's state, called with the query's argument (if it
    takes one) and returning JSON-ready data. `durable workflows query ID NAME` asks it."""

    def mark(method: F) -> F:
        if inspect.iscoroutinefunction(method):
            raise TypeError(f"query {name or method.__name__!r} must be a plain method: a query reads state, it does not wait")
        method.__durable_query__ = name or method.__name__  # type: ignore[attr-defined]
        return method

    return mark(fn) if fn is not None else mark


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
    queries: dict[str, str] = field(default_factory=dict)  # query name -> method name
    # read once from the signature: whether the function takes an input, and its type
    takes_input: bool = True
    input_type: Any = NO_CONVERSION

    @property
    def cls(self) -> Any:
        return self.target

    def instance(self, workflow_id: str, *, activity_defaults: OptionsLookup | None = None) -> WorkflowInstance:
        """A fresh instance of this workflow's code, ready to replay."""
        info = WorkflowInfo(workflow_id=workflow_id, workflow_type=self.name)
        if self.kind == "function":
            fn = self.target
            return WorkflowInstance(
                (lambda ctx, value: fn(ctx, value)) if self.takes_input else (lambda ctx, value: fn(ctx)),
                info, input_type=self.input_type,
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
            queries = {query_name: getattr(obj, method) for query_name, method in self.queries.items()}
            run = obj.run
            return WorkflowInstance(
                lambda ctx, value: run(ctx, value), info,
                input_type=self.input_type,
                failure_exceptions=self.failure_exceptions, activity_defaults=activity_defaults,
                signal_handlers=handlers, query_handlers=queries,
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

    def query(
        self,
        history: Iterable[HistoryEvent],
        name: str,
        arg: Any = None,
        *,
        workflow_id: str = "",
        decided_through_seq: int | None = None,
    ) -> Any:
        """Replay `history` (nothing is recorded) and answer query `name` from the state it
        leaves; works on an ended workflow too. `decided_through_seq` None: through the last
        command event (events after it count as not yet decided)."""
        events = list(history)
        if decided_through_seq is None:
            decided_through_seq = max((e.sequence_num for e in events if e.is_command), default=0)
        instance = self.instance(workflow_id)
        try:
            instance.replay(events, decided_through_seq, keep_open=True)
            return instance.query(name, arg)
        finally:
            instance.close()


def define(target: Any, name: str, failure_exceptions: Iterable[type[BaseException]] = ()) -> WorkflowDefinition:
    """The definition of `target` (raises TypeError/ValueError naming what is wrong)."""
    failures = tuple(failure_exceptions)
    if inspect.isclass(target):
        run = getattr(target, "run", None)
        if run is not None:
            if not inspect.iscoroutinefunction(run):
                raise TypeError(f"workflow {name!r}: {target.__name__}.run must be `async def run(self, ctx, input)`")
            signals, queries = {}, {}
            for attr in dir(target):
                method = getattr(target, attr, None)
                signal_name = getattr(method, "__durable_signal__", None)
                if isinstance(signal_name, str) and signal_name:
                    signals[signal_name] = attr
                query_name = getattr(method, "__durable_query__", None)
                if isinstance(query_name, str) and query_name:
                    queries[query_name] = attr
            return WorkflowDefinition(name, target, "class", failures, signals, queries,
                                      input_type=input_type(run, position=2))
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
        takes_input = len(parameters) == 2
        return WorkflowDefinition(name, target, "function", failures, takes_input=takes_input,
                                  input_type=input_type(target) if takes_input else NO_CONVERSION)
    raise TypeError(f"workflow {name!r} must be an async function `(ctx, input)` or a class, "
                    f"got {target!r}")


def _try_set(obj: Any, attr: str, value: Any) -> None:
    try:
        setattr(obj, attr, value)
    except (AttributeError, TypeError):
        pass
