"""Unit tests of workflow code: run a workflow in-process, on the real runtime, with a
time-skipping clock and real or fake activities. No control plane, no database.

    from durable.testing import WorkflowEnvironment

    async def test_order_is_refunded_when_rejected():
        env = WorkflowEnvironment(app, activities={"charge": fake_charge})
        handle = await env.start("order", {"order_id": "o-1", "amount": 5})
        await handle.signal("approval", {"approved": False})
        assert (await handle.result())["status"] == "rejected"
        assert env.now() - env.start_time < timedelta(hours=1)   # no waiting for real

Every decision replays the whole history on a fresh instance, as a worker without the
instance in memory would, so a test also proves the code replays. Durable timers fire at
once when nothing else can happen: activities that complete without waiting on the outside
complete first, then the clock jumps to the next timer (an activity still waiting loses to
it). A failing decision (a bug, a non-determinism) raises from `result()` instead of
blocking.

Local activities (`ctx.local_activity`) run within the decision, as on a worker, with fakes
replacing them by name too; the waits between their retries move the clock instead of
waiting. Steps (`ctx.step`) too, with their journals: what the decision issued before a step
is in the history before it runs, and a signal or cancellation sent while steps run reaches
the code before the next step (the step deferred to the next decision), as on the engine.

Child workflows run in the same environment (`env.handles[child_id]`), with the engine's
rules: a taken id fails the start, a parent's end cancels its children of policy "cancel".
Continue-as-new starts the next run on the same handle; its earlier runs' histories are in
`handle.runs`.
"""

from __future__ import annotations

import asyncio
import heapq
import inspect
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from durable.common import NonRetryableError, RetryPolicy
from durable.worker import App, ActivityContext
from durable.worker.local_activities import LocalActivityRunner
from durable.common.converter import from_json, to_json
from durable.worker.workflows import HistoryEvent, WorkflowDefinition, define
from durable.worker.workflows.commands import (
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

__all__ = ["WorkflowEnvironment", "WorkflowHandle", "WorkflowEnded"]

# Event-loop turns given to running activities before the clock jumps to the next timer.
_SETTLE_TURNS = 20


class _Journal:
    """A decision's journals (ctx.step), as the control plane writes them: the commands so
    far appended to the history at once; `unseen` when events came that the decision has not
    seen (its steps then wait for the next decision: durable.worker.workflows.local, rule 7).
    `seen`: the last event the decision saw."""

    def __init__(self, handle: WorkflowHandle, instance: Any) -> None:
        self.handle = handle
        self.instance = instance
        self.seen = handle.history[-1].sequence_num
        self.unseen = False

    async def __call__(self, decision: Any) -> Any:
        history = self.handle.history
        self.unseen = history[-1].sequence_num > self.seen
        first = len(history)
        for command in decision.actions:
            self.handle._apply(command)
        told = [] if self.unseen else history[first:]
        if not self.unseen:
            self.seen = history[-1].sequence_num
        return self.instance.journalled(len(decision.actions), told)


class WorkflowEnded(Exception):
    """`result()` of a workflow that failed or was cancelled: `status` and `error`."""

    def __init__(self, status: str, error: dict[str, Any] | None) -> None:
        message = (error or {}).get("message", "")
        super().__init__(f"the workflow ended {status}" + (f": {message}" if message else ""))
        self.status = status
        self.error = error or {}


class WorkflowEnvironment:
    """Runs workflows of `app` (or single workflow functions) in this process.

    `activities` maps activity names to fakes `fn(ctx, input)` (async or not) that replace
    or add to the app's. The clock starts at `start_time` and moves only when the workflow
    waits on a timer and nothing else is running.
    """

    def __init__(
        self,
        app: App | None = None,
        *,
        activities: Mapping[str, Callable[..., Any]] | None = None,
        start_time: datetime | None = None,
    ) -> None:
        self.app = app or App()
        self.fakes = dict(activities or {})
        self.start_time = start_time or datetime(2026, 1, 1, tzinfo=UTC)
        self._now = self.start_time
        self._counter = 0
        self.handles: dict[str, WorkflowHandle] = {}  # every workflow started here, children too
        self.local_activities = LocalActivityRunner(self.app.activities, fakes=self.fakes,
                                                    clock=lambda: self._now.timestamp(), sleep=self._skip)

    def now(self) -> datetime:
        """The environment's (skipping) clock."""
        return self._now

    async def _skip(self, seconds: float) -> None:
        self._now += timedelta(seconds=seconds)
        await asyncio.sleep(0)

    def _definition(self, workflow: Any) -> WorkflowDefinition:
        if isinstance(workflow, str):
            return self.app.workflows[workflow]
        for definition in self.app.workflows.values():
            if definition.target is workflow:
                return definition
        return define(workflow, getattr(workflow, "__name__", "workflow"))

    async def start(self, workflow: Any, input: Any = None, *, workflow_id: str | None = None) -> WorkflowHandle:
        """Start a workflow (a registered name, function or class) and return its handle."""
        return self._start(self._definition(workflow), to_json(input), workflow_id)

    def _start(self, definition: WorkflowDefinition, input: Any, workflow_id: str | None,
               parent: tuple[WorkflowHandle, str] | None = None) -> WorkflowHandle:
        self._counter += 1
        handle = WorkflowHandle(self, definition, workflow_id or f"test-{self._counter}", input)
        handle.parent = parent
        self.handles[handle.workflow_id] = handle
        handle._task = asyncio.create_task(handle._drive(), name=f"durable.testing:{handle.workflow_id}")
        return handle

    async def run(self, workflow: Any, input: Any = None, *, workflow_id: str | None = None) -> Any:
        """Start a workflow and return its result (WorkflowEnded when it failed or was cancelled)."""
        return await (await self.start(workflow, input, workflow_id=workflow_id)).result()

    def _activity(self, name: str) -> tuple[Callable[..., Any], Any, RetryPolicy | None]:
        if name in self.fakes:
            fake = self.fakes[name]
            return fake, None, None
        definition = self.app.activities.get(name)
        if definition is None:
            raise KeyError(f"activity {name!r} is neither registered in the app nor faked")
        return definition.fn, definition.input_type, definition.options.retry_policy


class WorkflowHandle:
    """A workflow running in a WorkflowEnvironment."""

    def __init__(self, env: WorkflowEnvironment, definition: WorkflowDefinition, workflow_id: str, input: Any) -> None:
        self.env = env
        self.definition = definition
        self.workflow_id = workflow_id
        self.history: list[HistoryEvent] = []
        self.status = "running"
        self.result_value: Any = None
        self.error: dict[str, Any] | None = None
        self.decided_through = 0
        self._wake = asyncio.Event()
        self._changed = asyncio.Event()
        self._running: dict[str, asyncio.Task[Any]] = {}
        self._timers: list[tuple[datetime, int, str]] = []
        self._cancelled_timers: set[str] = set()
        self._task: asyncio.Task[None] | None = None
        self.parent: tuple[WorkflowHandle, str] | None = None  # (parent, parent_close_policy)
        self.children: list[WorkflowHandle] = []
        self.runs: list[list[HistoryEvent]] = []  # closed runs (continue-as-new), oldest first
        self._after: list[tuple[str, dict[str, Any]]] = []
        self._continued: ContinueAsNew | None = None
        self._append("WorkflowStarted", {"workflow_type": definition.name, "input": input,
                                         "random_seed": hash(workflow_id) & (2**63 - 1)})

    # -- what a test does ---------------------------------------------------------------

    async def signal(self, name: str, payload: Any = None) -> None:
        """Send a signal (recorded now, delivered with the next decision)."""
        self._append("SignalReceived", {"signal_type": name, "payload": to_json(payload)})
        await asyncio.sleep(0)

    async def cancel(self, reason: str = "cancelled by the test") -> None:
        """Ask the workflow to cancel (its code runs its finally blocks)."""
        self._append("WorkflowCancelRequested", {"reason": reason})
        await asyncio.sleep(0)

    async def result(self, type: Any = None) -> Any:
        """Wait for the end: the result, or WorkflowEnded; a failing decision raises here."""
        assert self._task is not None
        await self._task
        if self.status == "completed":
            return from_json(self.result_value, type) if type is not None else self.result_value
        raise WorkflowEnded(self.status, self.error)

    async def wait_for_event(self, event_type: str, timeout: float = 10.0) -> HistoryEvent:
        """Wait (in real time, at most `timeout` s) until the history holds an `event_type`
        event; the first one. Use it to act at a point of the workflow (e.g. once it waits)."""
        async with asyncio.timeout(timeout):
            while True:
                found = self.events(event_type)
                if found:
                    return found[0]
                if self._task is not None and self._task.done():
                    self._task.result()
                    raise AssertionError(f"the workflow ended {self.status} without a {event_type} event")
                await self._progress()

    async def _progress(self) -> None:
        self._changed.clear()
        await self._changed.wait()

    def query(self, name: str, arg: Any = None) -> Any:
        """Answer query `name` from the workflow's history as it stands (read-only)."""
        return self.definition.query(list(self.history), name, arg, workflow_id=self.workflow_id,
                                     decided_through_seq=self.decided_through)

    def events(self, event_type: str | None = None) -> list[HistoryEvent]:
        return [e for e in self.history if event_type is None or e.event_type == event_type]

    # -- the engine, in memory ----------------------------------------------------------

    def _append(self, event_type: str, data: dict[str, Any]) -> None:
        self.history.append(HistoryEvent(len(self.history) + 1, event_type, data, self.env._now))
        self._wake.set()
        self._changed.set()

    async def _drive(self) -> None:
        while self.status == "running":
            if self.history[-1].sequence_num > self.decided_through:
                await self._decide()
                continue
            live = [t for t in self._timers if t[2] not in self._cancelled_timers]
            if live:
                # Activities that finish without waiting on the outside finish first; then the
                # clock jumps to the next timer (an activity still running loses to it).
                for _ in range(_SETTLE_TURNS):
                    await asyncio.sleep(0)
                    if self.history[-1].sequence_num > self.decided_through:
                        break
                else:
                    heapq.heapify(live)
                    self._timers = live
                    fire_at, _, timer_id = heapq.heappop(self._timers)
                    self.env._now = max(self.env._now, fire_at)
                    self._append("TimerFired", {"timer_id": timer_id})
                continue
            self._wake.clear()
            if self._running:
                waiter = asyncio.create_task(self._wake.wait(), name="durable.testing:wake")
                await asyncio.wait([*self._running.values(), waiter], return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
                await asyncio.sleep(0)
                continue
            await self._wake.wait()  # nothing can happen until the test signals or cancels

    async def _decide(self) -> None:
        instance = self.definition.instance(self.workflow_id, activity_defaults=self.env.app.activity_options)
        journal = _Journal(self, instance)
        self._after, self._continued = [], None
        try:
            decision = instance.replay(list(self.history), self.decided_through, keep_open=True)
            if decision.local_activities:
                decision = await self.env.local_activities.settle(instance, decision, self.workflow_id, journal)
        finally:
            instance.close()
        seen = journal.seen
        unseen = self.history[-1].sequence_num > seen  # arrived while its local activities ran
        if unseen and decision.ended:
            return  # dropped, as the engine drops it: the code sees those events first
        for command in decision.actions:
            self._apply(command)
        # what the decision saw and the events of its own commands (no await in between),
        # or only what it saw when events arrived meanwhile (they start the next decision)
        self.decided_through = seen if unseen else self.history[-1].sequence_num
        for event_type, data in self._after:  # what the engine appends after a decision
            self._append(event_type, data)
        if self._continued is not None:
            self._next_run(self._continued)
        if self.status != "running":
            self._ended()

    def _next_run(self, command: ContinueAsNew) -> None:
        for task in self._running.values():
            task.cancel()
        self._running.clear()
        self._timers, self._cancelled_timers = [], set()
        carried = [e for e in self.history if e.sequence_num > command.handled_through_seq
                   and e.event_type in ("SignalReceived", "WorkflowCancelRequested")]
        self.runs.append(self.history)
        self.history, self.decided_through = [], 0
        self._append("WorkflowStarted", {"workflow_type": self.definition.name, "input": command.input,
                                         "random_seed": hash((self.workflow_id, len(self.runs))) & (2**63 - 1),
                                         "run_number": len(self.runs) + 1, "continued_from_run": len(self.runs)})
        for event in carried:
            self._append(event.event_type, event.data)
        for child in self.children:
            child._parent_ended()

    def _ended(self) -> None:
        if self.parent is not None:
            parent, _ = self.parent
            data: dict[str, Any] = {"child_id": self.workflow_id, "workflow_type": self.definition.name}
            if self.status == "completed":
                parent._child_event("ChildWorkflowCompleted", {**data, "result": self.result_value})
            elif self.status == "failed":
                parent._child_event("ChildWorkflowFailed", {**data, "error": self.error})
            else:
                parent._child_event("ChildWorkflowCancelled", {**data, "reason": "cancelled"})
        for child in self.children:
            child._parent_ended()

    def _child_event(self, event_type: str, data: dict[str, Any]) -> None:
        if self.status == "running":
            self._append(event_type, data)

    def _parent_ended(self) -> None:
        if self.status == "running" and self.parent is not None and self.parent[1] == "cancel" \
                and not any(e.event_type == "WorkflowCancelRequested" for e in self.history):
            self._append("WorkflowCancelRequested", {"reason": "its parent ended"})

    def _apply(self, command: Command) -> None:
        if isinstance(command, ScheduleActivity):
            self._append("ActivityScheduled", {"activity_id": command.activity_id,
                                               "activity_type": command.activity_type, "input": command.input})
            assert command.activity_id is not None
            self._running[command.activity_id] = asyncio.create_task(
                self._run_activity(command), name=f"durable.testing:{command.activity_id}")
        elif isinstance(command, StartTimer):
            assert command.timer_id is not None
            self._append("TimerStarted", {"timer_id": command.timer_id})
            fire_at = self.env._now + timedelta(seconds=command.fire_after)
            heapq.heappush(self._timers, (fire_at, len(self.history), command.timer_id))
        elif isinstance(command, CancelTimer):
            self._append("TimerCancelled", {"timer_id": command.timer_id})
            self._cancelled_timers.add(command.timer_id)
        elif isinstance(command, CancelActivity):
            self._append("ActivityCancelRequested", {"activity_id": command.activity_id})
            task = self._running.pop(command.activity_id, None)
            if task is not None:
                task.cancel()
        elif isinstance(command, RecordMarker):
            self._append("MarkerRecorded", {"kind": command.kind, "marker_id": command.marker_id,
                                            "value": command.value})
        elif isinstance(command, CompleteWorkflow):
            self._append("WorkflowCompleted", {"result": command.result})
            self.status, self.result_value = "completed", command.result
        elif isinstance(command, FailWorkflow):
            self.error = {"message": command.message, "type": command.type, "details": command.details}
            self._append("WorkflowFailed", {"error": self.error})
            self.status = "failed"
        elif isinstance(command, CancelWorkflow):
            self._append("WorkflowCancelled", {"reason": command.reason})
            self.status = "cancelled"
        elif isinstance(command, StartChildWorkflow):
            self._start_child(command)
        elif isinstance(command, ContinueAsNew):
            self._append("WorkflowContinuedAsNew", {"input": command.input,
                                                    "handled_through_seq": command.handled_through_seq})
            self._continued = command
        if self.status != "running":
            for task in self._running.values():
                task.cancel()

    def _start_child(self, command: StartChildWorkflow) -> None:
        child_id = command.child_id or ""
        data = {"child_id": child_id, "workflow_type": command.workflow_type, "input": command.input,
                "parent_close_policy": command.parent_close_policy}
        if child_id in self.env.handles:
            self._append("ChildWorkflowStarted", {**data, "started": False})
            self._after.append(("ChildWorkflowFailed", {
                "child_id": child_id, "workflow_type": command.workflow_type,
                "error": {"type": "ChildWorkflowAlreadyExists",
                          "message": f"a workflow with id {child_id!r} exists already; start the child with another id"}}))
            return
        self._append("ChildWorkflowStarted", {**data, "started": True})
        child = self.env._start(self.env._definition(command.workflow_type), command.input, child_id,
                                parent=(self, command.parent_close_policy))
        self.children.append(child)

    async def _run_activity(self, command: ScheduleActivity) -> None:
        activity_id = command.activity_id or ""
        fn, input_type, registered = self.env._activity(command.activity_type)
        policy = command.options.retry_policy or registered or RetryPolicy()
        attempt = 0
        error: dict[str, Any] = {}
        try:
            while attempt < policy.max_attempts:
                attempt += 1
                ctx = ActivityContext(task_id=f"{self.workflow_id}/{activity_id}", attempt=attempt,
                                      activity_type=command.activity_type, activity_id=activity_id,
                                      workflow_id=self.workflow_id, max_attempts=policy.max_attempts)
                try:
                    value = from_json(command.input, input_type, field="activity input")
                    result = fn(ctx, value)
                    if inspect.isawaitable(result):
                        result = await result
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001 - the activity's failure
                    kind = getattr(exc, "type", None) or type(exc).__name__
                    error = {"message": str(exc) or kind, "type": kind}
                    if isinstance(exc, NonRetryableError) or kind in policy.non_retryable_error_types:
                        break
                    continue
                self._append("ActivityCompleted", {"activity_id": activity_id, "activity_type": command.activity_type,
                                                   "result": to_json(result), "attempt": attempt})
                return
            self._append("ActivityFailed", {"activity_id": activity_id, "activity_type": command.activity_type,
                                            "error": error, "attempts": attempt,
                                            "reason": "non_retryable" if attempt < policy.max_attempts else "exhausted"})
        finally:
            self._running.pop(activity_id, None)
