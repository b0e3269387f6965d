"""A workflow instance: the workflow's code on its deterministic loop, fed its history.

`WorkflowInstance.replay(events, decided_through_seq)` walks the history in order (see
durable.worker.workflows.history for the rules): WorkflowStarted starts the workflow's
code; every other non-command event is delivered and the code runs until it waits again;
every command event must match the command the code issued at that position. What the code
issued beyond the history is the Decision. The process side (durable.worker.execution)
feeds histories in and sends decisions out; it never reaches into the instance. A decision
may list local activities the code waits on: the process runs them and hands their outcomes
to `resolve_local()`, which gives the decision that follows (durable.worker.workflows.local).
"""

from __future__ import annotations

import asyncio
import logging
import random
import traceback
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from durable.common.converter import NO_CONVERSION, from_json, to_json
from durable.worker.workflows.commands import (
    ActivityOptions,
    CancelActivity,
    CancelTimer,
    CancelWorkflow,
    Command,
    CompleteWorkflow,
    ContinueAsNew,
    FailWorkflow,
    RecordMarker,
    ScheduleActivity,
    StartChildWorkflow,
    StartTimer,
)
from durable.worker.workflows.errors import (
    ActivityError,
    ChildWorkflowError,
    ContinuedAsNew,
    DeterminismViolation,
    NonDeterminismError,
    WorkflowCodeError,
    WorkflowFailed,
)
from durable.worker.workflows.history import (
    ACTIVITY_COMPLETED,
    ACTIVITY_FAILED,
    CHILD_WORKFLOW_CANCELLED,
    CHILD_WORKFLOW_COMPLETED,
    CHILD_WORKFLOW_FAILED,
    ENDING_EVENTS,
    SIGNAL_RECEIVED,
    TIMER_FIRED,
    WORKFLOW_CANCEL_REQUESTED,
    WORKFLOW_STARTED,
    CommandMatcher,
    HistoryEvent,
    is_deferral_marker,
    is_patch_marker,
    matches,
    sorted_history,
)
from durable.worker.workflows.local import (
    LOCAL_ACTIVITY,
    LOCAL_DEFERRED,
    LocalActivity,
    LocalOutcome,
    PendingLocal,
    deferral_value,
    recorded,
    settle,
    unresolved,
)
from durable.worker.workflows.loop import DeterministicLoop, DurableTimerHandle
from durable.worker.workflows.rules import engine_code, take_violation, workflow_code

log = logging.getLogger("durable.workflow")

OptionsLookup = Callable[[str], ActivityOptions]
# How many frames of a failing workflow's traceback a blocked workflow shows.
TRACEBACK_FRAMES = 8


@dataclass(frozen=True)
class Decision:
    """What one replay decided.

    `actions`: the new commands, in order (ids assigned, options completed).
    `seen_through_seq`: the last sequence_num of the history replayed.
    `ended`: the workflow has reached (or already had) its end.
    `local_activities`: what the code waits on that the worker runs before it sends the
    decision (in call order); their outcomes go to the instance's resolve_local(), which
    needs it kept open (replay(..., keep_open=True)).
    """

    actions: list[Command]
    seen_through_seq: int
    ended: bool
    local_activities: tuple[LocalActivity, ...] = ()


@dataclass(frozen=True)
class WorkflowInfo:
    """Who the workflow is (what `ctx.info` tells its code)."""

    workflow_id: str
    workflow_type: str


class WorkflowInstance:
    """One workflow's code, its loop, and what it waits on."""

    def __init__(
        self,
        entry: Callable[[Any, Any], Any],
        info: WorkflowInfo,
        *,
        input_type: Any = NO_CONVERSION,
        failure_exceptions: tuple[type[BaseException], ...] = (),
        activity_defaults: OptionsLookup | None = None,
        signal_handlers: dict[str, Callable[..., Any]] | None = None,
        query_handlers: dict[str, Callable[..., Any]] | None = None,
    ) -> None:
        # `entry(ctx, input)` returns the coroutine of the workflow's code.
        from durable.worker.workflows.context import WorkflowContext

        self.entry = entry
        self.info = info
        self.input_type = input_type
        self.failure_exceptions = failure_exceptions
        self.activity_defaults = activity_defaults
        self.loop = DeterministicLoop(self)  # type: ignore[abstract]
        self.matcher = CommandMatcher(f"{info.workflow_id} ({info.workflow_type})")
        self.ctx = WorkflowContext(self)
        self.signal_handlers: dict[str, Callable[..., Any]] = dict(signal_handlers or {})
        self.query_handlers: dict[str, Callable[..., Any]] = dict(query_handlers or {})
        self.signal_buffer: dict[str, deque[Any]] = defaultdict(deque)
        self.signal_waiters: dict[str, deque[asyncio.Future[Any]]] = defaultdict(deque)
        self.any_signal_listener: Callable[[str, Any], None] | None = None
        self.conditions: list[tuple[Callable[[], bool], asyncio.Future[bool]]] = []
        self.activities: dict[str, tuple[asyncio.Future[Any], Any]] = {}
        self.children: dict[str, tuple[asyncio.Future[Any], Any]] = {}
        self.timer_handles: dict[str, DurableTimerHandle] = {}
        self.timer_futures: dict[str, asyncio.Future[None]] = {}
        self.local_pending: dict[str, PendingLocal] = {}  # marker id -> waiting, in call order
        self.counters: dict[str, int] = defaultdict(int)
        self.main: asyncio.Task[Any] | None = None
        self.ended = False
        self.torn_down = False
        self.cancel_requested = False
        self._rng: random.Random | None = None  # made when first asked for
        self._seed: Any = info.workflow_id
        self.now = datetime.fromtimestamp(0, UTC)
        self.current: HistoryEvent | None = None
        self.decided_through_seq = 0
        self._events: list[HistoryEvent] = []
        self._index = 0

    @property
    def rng(self) -> random.Random:
        """The workflow's seeded random source (the seed recorded in WorkflowStarted)."""
        if self._rng is None:
            self._rng = random.Random(self._seed)
        return self._rng

    # -- driving ------------------------------------------------------------------------

    def replay(self, history: Iterable[HistoryEvent], decided_through_seq: int, *, keep_open: bool = False) -> Decision:
        """Walk `history` from the start; return the commands beyond it. Raises
        WorkflowCodeError (NonDeterminismError, DeterminismViolation) when the code broke.
        `keep_open`: leave the instance standing (to answer a query, or to be fed the events
        that follow with advance(); close() after)."""
        self._events = []
        return self.advance(history, decided_through_seq, keep_open=keep_open)

    def advance(self, events: Iterable[HistoryEvent], decided_through_seq: int, *, keep_open: bool = True) -> Decision:
        """Go on from where the instance stands with the `events` after it (a kept instance,
        sticky decisions): the same walk as replay(), as if the history had been fed whole.
        Events it was fed already (the command events of its own decision, told in the
        decision's answer) are passed over."""
        new = sorted_history(events)
        if new and self._events:
            last = self._events[-1].sequence_num
            new = [e for e in new if e.sequence_num > last]
        if new and self._events and new[0].sequence_num != self._events[-1].sequence_num + 1:
            raise ValueError(f"events after {self._events[-1].sequence_num} must follow it; got "
                             f"{new[0].sequence_num}")
        start = len(self._events)
        self._events.extend(new)
        self.decided_through_seq = decided_through_seq
        try:
            after_end: list[HistoryEvent] = []
            for index in range(start, len(self._events)):
                event = self._events[index]
                if self.ended:
                    after_end = self._events[index:]
                    break
                self._index = index
                if event.is_command:
                    if is_deferral_marker(event):  # local rule 7
                        deferred = self.local_pending.get(str(event.data.get("marker_id", "")))
                        if deferred is not None:
                            deferred.deferred = True
                    self._record(event)
                    if event.event_type in ENDING_EVENTS:
                        self.ended = True
                    continue
                if event.event_type in ENDING_EVENTS:  # ended by the engine (terminated)
                    self.ended = True
                    break
                self._deliver(event)
                if self.local_pending:  # what the decision that saw through here ran
                    for pending, value in recorded(self.local_pending, self._events[index + 1:],
                                                   event.sequence_num, self.matcher.workflow):
                        self._resolve_local(pending, value)
            for event in after_end:  # the recorded end of what the code ended (the rest: ignored)
                if event.is_command:
                    self.matcher.record(event)
            if not self.ended:
                unresolved(self.local_pending, decided_through_seq, self.matcher.workflow)
            self.matcher.end_of_decided(decided_through_seq)
            return self._decision()
        except BaseException:
            self._close()
            raise
        finally:
            if not keep_open:
                self._close()

    def resolve_local(self, outcomes: Iterable[LocalOutcome]) -> Decision:
        """Hand the outcomes of the decision's local activities to the code, in order: each
        recorded as its marker, the code running on after each; the decision that follows
        (which may list more local activities). Raises WorkflowCodeError as replay() does."""
        try:
            seen = self.current.sequence_num if self.current is not None else 0
            for outcome in outcomes:
                pending = self.local_pending.pop(outcome.marker_id, None)
                if pending is None or pending.future.done() or self.ended:
                    continue  # cancelled meanwhile, or the workflow ended: no marker
                self._resolve_local(pending, outcome.marker_value(seen))
            return self._decision()
        except BaseException:
            self._close()
            raise

    def defer_local(self) -> Decision:
        """End the decision before the local activities the code waits on run (events it has
        not seen came meanwhile; durable.worker.workflows.local, rule 7): each is recorded as
        deferred, to run in a later decision. The decision that stands now."""
        try:
            seen = self.current.sequence_num if self.current is not None else 0
            for pending in self.local_pending.values():
                if not pending.future.done() and not pending.deferred:
                    self.issue(RecordMarker(kind=LOCAL_DEFERRED, marker_id=pending.request.marker_id,
                                            value=deferral_value(pending, seen)))
                    pending.deferred = True
            return self._decision()
        except BaseException:
            self._close()
            raise

    def journalled(self, count: int, told: Sequence[HistoryEvent] = ()) -> Decision:
        """The decision's first `count` new commands were written by a journal (ctx.step;
        durable.worker.workflows.local, rule 6): they are not sent again. `told`: their
        events, when they end the history; the instance then stands there, matched as replay
        would match them. The decision that stands now."""
        try:
            self.matcher.sent += count
            told = sorted_history(told)
            last = self._events[-1].sequence_num if self._events else 0
            if len(told) == count and told and told[0].sequence_num == last + 1:
                for event in told:
                    self._events.append(event)
                    self._record(event)
            return self._decision()
        except BaseException:
            self._close()
            raise

    def _decision(self) -> Decision:
        waiting = () if self.ended else tuple(
            p.request for p in self.local_pending.values() if not p.future.done())
        return Decision(
            actions=self.matcher.new_commands(),
            seen_through_seq=self._events[-1].sequence_num if self._events else 0,
            ended=self.ended,
            local_activities=waiting,
        )

    def _record(self, event: HistoryEvent) -> None:
        try:
            self.matcher.record(event)
        except NonDeterminismError as exc:
            if not self.local_pending:
                raise
            waiting = ", ".join(f"{p.request.activity_type} ({p.request.marker_id})"
                                for p in self.local_pending.values())
            raise NonDeterminismError(f"{exc}; the code waits on local activity {waiting}, which the "
                                      "history does not resolve there") from None

    def _resolve_local(self, pending: PendingLocal, value: dict[str, Any]) -> None:
        self.issue(RecordMarker(kind=LOCAL_ACTIVITY, marker_id=pending.request.marker_id, value=value))
        settle(pending, value)
        self._run()

    def query(self, name: str, arg: Any = None) -> Any:
        """Answer query `name` from the state the replay left (JSON-ready). A query reads; a
        handler that issues a command raises WorkflowCodeError, and nothing is recorded."""
        handler = self.query_handlers.get(name)
        if handler is None:
            known = ", ".join(sorted(self.query_handlers)) or "none"
            raise QueryNotFound(f"workflow {self.info.workflow_type} has no query {name!r} (queries: {known})")
        before = len(self.matcher.issued)
        waiting = len(self.local_pending)
        ended, self.ended = self.ended, False  # so that a command would be seen, not dropped
        try:
            result = self._in_code(lambda: handler() if arg is None and _takes_no_arg(handler) else handler(arg))
            self.loop.run_until_idle()  # what the handler set going shows up as commands
            if asyncio.iscoroutine(result):
                result.close()
                raise WorkflowCodeError(f"query {name!r} must be a plain function: a query reads, it does not wait")
        finally:
            issued = len(self.matcher.issued) - before + len(self.local_pending) - waiting
            self.ended = ended
        if issued or take_violation() is not None:
            raise WorkflowCodeError(f"query {name!r} of workflow {self.info.workflow_type} tried to change "
                                    "the workflow (a query only reads its state)")
        with engine_code():
            return to_json(result)

    def close(self) -> None:
        self._close()

    def _deliver(self, event: HistoryEvent) -> None:
        self.current = event
        if event.created_at is not None:
            self.now = max(self.now, event.created_at)
            self.loop.set_time(self.now.timestamp())
        data = event.data
        kind = event.event_type
        if kind == WORKFLOW_STARTED:
            seed = data.get("random_seed")
            if seed is not None:
                self._seed = seed
            self._start(data.get("input"))
        elif kind == ACTIVITY_COMPLETED:
            entry = self.activities.pop(str(data.get("activity_id", "")), None)
            if entry is not None and not entry[0].done():
                future, result_type = entry
                try:
                    future.set_result(from_json(data.get("result"), result_type,
                                                field=f"result of {data.get('activity_id')}"))
                except Exception as exc:  # noqa: BLE001 - a conversion failure is the await's
                    future.set_exception(exc)
        elif kind == ACTIVITY_FAILED:
            entry = self.activities.pop(str(data.get("activity_id", "")), None)
            if entry is not None and not entry[0].done():
                error = data.get("error") or {}
                entry[0].set_exception(ActivityError(
                    str(error.get("message", "")), type=str(error.get("type") or "ActivityFailed"),
                    activity_type=str(data.get("activity_type", "")),
                    activity_id=str(data.get("activity_id", "")),
                    attempts=int(data.get("attempts") or 0), reason=str(data.get("reason", "")),
                ))
        elif kind == TIMER_FIRED:
            timer_id = str(data.get("timer_id", ""))
            handle = self.timer_handles.pop(timer_id, None)
            if handle is not None:
                self.loop.fire(handle)
            timer = self.timer_futures.pop(timer_id, None)
            if timer is not None and not timer.done():
                timer.set_result(None)
        elif kind in (CHILD_WORKFLOW_COMPLETED, CHILD_WORKFLOW_FAILED, CHILD_WORKFLOW_CANCELLED):
            self._child_ended(event)
        elif kind == SIGNAL_RECEIVED:
            self._signal(str(data.get("signal_type", "")), data.get("payload"))
        elif kind == WORKFLOW_CANCEL_REQUESTED:
            self.cancel_requested = True
            if self.main is not None and not self.main.done():
                self.main.cancel(str(data.get("reason") or "the workflow was cancelled"))
        self._run()

    def _child_ended(self, event: HistoryEvent) -> None:
        data = event.data
        child_id = str(data.get("child_id", ""))
        entry = self.children.pop(child_id, None)
        if entry is None or entry[0].done():
            return
        future, result_type = entry
        if event.event_type == CHILD_WORKFLOW_COMPLETED:
            try:
                future.set_result(from_json(data.get("result"), result_type, field=f"result of child {child_id}"))
            except Exception as exc:  # noqa: BLE001 - a conversion failure is the await's
                future.set_exception(exc)
            return
        error = data.get("error") or {}
        if event.event_type == CHILD_WORKFLOW_CANCELLED:
            error = {"type": "ChildWorkflowCancelled",
                     "message": str(data.get("reason") or "the child workflow was cancelled")}
        future.set_exception(ChildWorkflowError(
            str(error.get("message", "")), type=str(error.get("type") or "ChildWorkflowFailed"),
            child_id=child_id, workflow_type=str(data.get("workflow_type", "")), details=error.get("details"),
        ))

    def _start(self, raw_input: Any) -> None:
        try:
            value = from_json(raw_input, self.input_type, field="workflow input")
        except Exception as exc:  # noqa: BLE001
            value = None
            failure: BaseException = WorkflowFailed(str(exc), type="PayloadConversionError")
            self.main = self.loop.create_task(_raise(failure), name="workflow")
            return
        coroutine = self.entry(self.ctx, value)
        self.main = self.loop.create_task(coroutine, name=f"workflow:{self.info.workflow_type}")

    def _run(self) -> None:
        """Run the code until it waits on the history again; then settle conditions."""
        while True:
            self.loop.run_until_idle()
            violation = take_violation()  # raised anywhere in the code, even if caught there
            if violation is not None:
                raise violation
            if not self._settle_conditions():
                break
        if self.main is not None and self.main.done() and not self.ended:
            self._finish(self.main)

    def _settle_conditions(self) -> bool:
        settled = False
        for predicate, future in list(self.conditions):
            if future.done():
                self.conditions.remove((predicate, future))
                continue
            try:
                met = self._in_code(predicate)
            except BaseException as exc:  # noqa: BLE001 - the waiter raises it
                future.set_exception(exc)
                settled = True
                continue
            if met:
                future.set_result(True)
                settled = True
        return settled

    def _in_code(self, fn: Callable[[], Any]) -> Any:
        previous = asyncio.events._get_running_loop()
        asyncio.events._set_running_loop(self.loop)
        try:
            with workflow_code():
                return fn()
        finally:
            asyncio.events._set_running_loop(previous)

    def _finish(self, main: asyncio.Task[Any]) -> None:
        if main.cancelled():
            self.issue(CancelWorkflow(reason="the workflow was cancelled"))
            self.ended = True
            return
        exc = main.exception()
        if exc is None:
            try:
                with engine_code():
                    result = to_json(main.result())
            except Exception as error:  # noqa: BLE001
                raise WorkflowCodeError(
                    f"workflow {self.info.workflow_type} returned a value that is not JSON: {error}"
                ) from error
            self.issue(CompleteWorkflow(result=result))
        elif isinstance(exc, WorkflowFailed):
            self.issue(FailWorkflow(message=exc.message, type=exc.type,
                                    details=_details(to_json(exc.details))))
        elif isinstance(exc, ActivityError):
            self.issue(FailWorkflow(message=str(exc), type=exc.type, details={
                "activity_id": exc.activity_id, "activity_type": exc.activity_type,
                "attempts": exc.attempts, "error": {"message": exc.message, "type": exc.type},
            }))
        elif isinstance(exc, ChildWorkflowError):
            self.issue(FailWorkflow(message=str(exc), type=exc.type, details={
                "child_id": exc.child_id, "workflow_type": exc.workflow_type,
                "error": {"message": exc.message, "type": exc.type},
            }))
        elif isinstance(exc, ContinuedAsNew):
            try:
                with engine_code():
                    next_input = to_json(exc.input)
            except Exception as error:  # noqa: BLE001
                raise WorkflowCodeError(
                    f"workflow {self.info.workflow_type} continued as new with an input that is not JSON: {error}"
                ) from error
            handled = self.current.sequence_num if self.current is not None else 0
            self.issue(ContinueAsNew(input=next_input, handled_through_seq=handled))
        elif isinstance(exc, asyncio.CancelledError):
            self.issue(CancelWorkflow(reason="the workflow was cancelled"))
        elif self.failure_exceptions and isinstance(exc, self.failure_exceptions):
            self.issue(FailWorkflow(message=str(exc) or type(exc).__name__, type=type(exc).__name__))
        elif isinstance(exc, WorkflowCodeError):
            raise exc
        else:
            raise WorkflowCodeError(
                f"workflow {self.info.workflow_type} raised {type(exc).__name__}: {exc}\n"
                + format_frames(exc)
            ) from exc
        self.ended = True

    def _close(self) -> None:
        """Tear down what still waits: its coroutines are closed here, on the loop, with
        commands ignored and logging quiet (not later, by the garbage collector)."""
        self.ended = True
        self.torn_down = True
        pending = [t for t in self.loop.tasks if not t.done()]
        if pending:
            def close_all() -> None:
                for task in pending:
                    _close_task(task)

            self._in_code(close_all)
            take_violation()
        self.loop.close()

    # -- commands the context issues ----------------------------------------------------

    def issue(self, command: Command) -> None:
        if self.ended:
            return
        self.matcher.issue(command, self.current)

    def next_id(self, kind: str) -> int:
        self.counters[kind] += 1
        return self.counters[kind]

    def schedule_activity(self, command: ScheduleActivity, result_type: Any) -> asyncio.Future[Any]:
        return self.schedule(command, result_type)[0]

    def schedule(self, command: ScheduleActivity, result_type: Any) -> tuple[asyncio.Future[Any], str]:
        """Issue ScheduleActivity (id and defaults filled in); its result's future and id."""
        n = self.next_id("activity")
        if command.activity_id is None:
            command = command.with_id(f"{command.activity_type}-{n}")
        if self.activity_defaults is not None:
            command = replace(command, options=command.options.merged_over(
                self.activity_defaults(command.activity_type)))
        assert command.activity_id is not None
        future: asyncio.Future[Any] = self.loop.create_future()
        activity_id = command.activity_id
        self.activities[activity_id] = (future, result_type)
        self.issue(command)

        def cancelled(f: asyncio.Future[Any]) -> None:
            if f.cancelled() and self.activities.pop(activity_id, None) is not None:
                self.issue(CancelActivity(activity_id=activity_id))

        future.add_done_callback(cancelled)
        return future, activity_id

    def local_activity(self, request: LocalActivity, result_type: Any) -> asyncio.Future[Any]:
        """Wait on a local activity (id and registered defaults filled in); its future. No
        command: the worker runs it once the code waits (resolve_local), or replay resolves it
        from its marker."""
        n = self.next_id("local_activity")
        if not request.marker_id:
            request = replace(request, marker_id=f"{request.activity_type}-{n}")
        if self.activity_defaults is not None and (request.retry_policy is None
                                                   or request.start_to_close_timeout is None):
            defaults = self.activity_defaults(request.activity_type)
            request = replace(request, retry_policy=request.retry_policy or defaults.retry_policy,
                              start_to_close_timeout=request.start_to_close_timeout or defaults.start_to_close_timeout)
        marker_id = request.marker_id
        if marker_id in self.local_pending:
            raise WorkflowCodeError(f"workflow {self.info.workflow_type} waits on local activity "
                                    f"{marker_id!r} twice at once; give each call its own activity_id")
        future: asyncio.Future[Any] = self.loop.create_future()
        called_at = self.current.sequence_num if self.current is not None else 0
        self.local_pending[marker_id] = PendingLocal(request, future, result_type, called_at)

        def cancelled(f: asyncio.Future[Any]) -> None:
            entry = self.local_pending.get(marker_id)
            if f.cancelled() and entry is not None and entry.future is f:
                del self.local_pending[marker_id]

        future.add_done_callback(cancelled)
        return future

    def start_child(self, command: StartChildWorkflow, result_type: Any) -> asyncio.Future[Any]:
        """Issue StartChildWorkflow (id filled in); the future of the child's result. Cancelling
        the future stops waiting; the child goes on (its parent's end applies its policy)."""
        n = self.next_id("child")
        if command.child_id is None:
            command = command.with_id(f"{self.info.workflow_id}/{command.workflow_type}-{n}")
        assert command.child_id is not None
        if command.child_id in self.children:
            raise WorkflowCodeError(f"workflow {self.info.workflow_type} started child {command.child_id!r} twice")
        future: asyncio.Future[Any] = self.loop.create_future()
        child_id = command.child_id
        self.children[child_id] = (future, result_type)
        self.issue(command)
        future.add_done_callback(lambda f: self.children.pop(child_id, None) if f.cancelled() else None)
        return future

    def start_timer(self, delay: float, timer_id: str | None = None) -> str:
        n = self.next_id("timer")
        timer_id = timer_id or f"timer-{n}"
        self.issue(StartTimer(fire_after=float(delay), timer_id=timer_id))
        return timer_id

    def timer_future(self, delay: float, timer_id: str | None = None) -> tuple[asyncio.Future[None], str]:
        """A timer as a future (the callback layer's StartTimer), and its id."""
        timer_id = self.start_timer(delay, timer_id)
        future: asyncio.Future[None] = self.loop.create_future()
        self.timer_futures[timer_id] = future
        return future, timer_id

    def cancel_timer(self, timer_id: str) -> None:
        if self.timer_handles.pop(timer_id, None) is not None or timer_id in self.timer_futures:
            self.timer_futures.pop(timer_id, None)
            self.issue(CancelTimer(timer_id=timer_id))

    def peek_recorded(self) -> HistoryEvent | None:
        """The recorded command event the next issued command will be matched with (None in
        new territory): used by markers, whose outcome depends on what is recorded."""
        pending = list(self.matcher.issued)
        at = 0
        for event in self._events[self._index + 1:]:
            if not event.is_command:
                continue
            if at < len(pending):
                if matches(pending[at], event) or not is_patch_marker(event):
                    at += 1
                continue
            return event
        return None

    @property
    def replaying(self) -> bool:
        current = self.current
        return current is not None and current.sequence_num <= self.decided_through_seq

    def record_marker(self, kind: str, marker_id: str, value: Any) -> None:
        self.issue(RecordMarker(kind=kind, marker_id=marker_id, value=value))

    # -- signals ------------------------------------------------------------------------

    def _signal(self, name: str, payload: Any) -> None:
        if self.any_signal_listener is not None:
            self.any_signal_listener(name, payload)
            return
        handler = self.signal_handlers.get(name)
        if handler is not None:
            result = handler(payload)
            if asyncio.iscoroutine(result):
                self.loop.create_task(result, name=f"signal:{name}")
            return
        waiters = self.signal_waiters.get(name)
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(payload)
                return
        self.signal_buffer[name].append(payload)

    def unhandled(self, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        if not self.replaying and not isinstance(exc, DeterminismViolation):  # those fail the decision
            log.warning("workflow %s: %s", self.info.workflow_id, context.get("message"),
                        exc_info=exc)


def _close_task(task: asyncio.Task[Any]) -> None:
    task._log_destroy_pending = False  # type: ignore[attr-defined]
    try:
        task.get_coro().close()  # type: ignore[union-attr]
    except BaseException:  # noqa: BLE001 - a finally that awaits while torn down
        pass


class QueryNotFound(WorkflowCodeError):
    """The workflow has no query handler of that name."""


def _takes_no_arg(fn: Callable[..., Any]) -> bool:
    import inspect

    try:
        return not inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


async def _raise(exc: BaseException) -> None:
    raise exc


def _details(value: Any) -> Any:
    if value is None or isinstance(value, dict):
        return value
    return {"value": value}


def format_frames(exc: BaseException, frames: int = TRACEBACK_FRAMES) -> str:
    """The last frames of `exc`'s traceback, as a blocked workflow shows them."""
    lines = traceback.format_exception(type(exc), exc, exc.__traceback__, limit=-frames)
    return "".join(lines).rstrip()
