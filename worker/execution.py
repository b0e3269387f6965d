"""Running one claimed task: an activity's code or a workflow decision, then its report.

A task's report (CompleteTask, FailTask, CompleteWorkflowTask) is retried while the control
plane is unreachable; a FAILED_PRECONDITION or NOT_FOUND answer means the worker no longer
owns the attempt, and the result is dropped. A task cancelled locally (lost, cancelled by its
workflow, handed back on drain) is never reported.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Collection
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, Protocol

from durable.common import DurableError, InvalidArgument, NotFound, WrongState
from durable.common.errors import MessageTooLarge
from durable.common import tracing
from durable.common.logs import bind
from durable.common.payloads import decode_payload, encode_payload
from durable.proto.v1 import durable_pb2 as pb
from durable.worker.app import ActivityDefinition, App
from durable.worker.batching import CompletionBatcher, DecisionBatcher
from durable.worker.context import ActivityContext
from durable.worker.following import Following, decide_on_completion
from durable.worker.journals import DecisionDropped, Journal
from durable.worker.link import Backoff, ControlPlaneLink, ControlPlaneUnreachable
from durable.worker.local_activities import LocalActivityRunner
from durable.worker.metrics import WorkerMetrics
from durable.worker.protocol import (
    actions_to_proto,
    value_json,
    failure_from_exception,
    failure_to_proto,
    history_from_proto,
)
from durable.common.converter import from_json, to_json
from durable.worker.workflows import NonDeterminismError, WorkflowCodeError
from durable.worker.workflows.cache import InstanceCache
from durable.worker.workflows.instance import WorkflowInstance, format_frames

log = logging.getLogger(__name__)

# Other errors of a report call (INTERNAL, UNKNOWN, ...) are retried this many times.
MAX_REPORT_ERRORS = 5


@dataclass
class RunningTask:
    """A claimed task while this worker holds it."""

    task: pb.Task
    ctx: ActivityContext | None = None
    handle: asyncio.Task[Any] | None = None
    phase: str = "running"  # running -> reporting
    cancel_reason: str | None = None
    kept: WorkflowInstance | None = None  # a decision's instance, kept after it (sticky)
    applied: bool = False  # a decision's report was answered: applied
    reserved: int = 0  # slots a decision holds for the activities it asked for eagerly
    following: Following | None = None  # an activity's: the decision that rides on its completion

    @property
    def ref(self) -> pb.TaskRef:
        details = self.ctx.heartbeat_details_json if self.ctx is not None else ""
        return pb.TaskRef(task_id=self.task.id, attempt=self.task.attempt, details_json=details)

    def cancel(self, reason: str, *, hard_after: float | None) -> None:
        """Stop the task locally; it will not be reported. `hard_after` seconds later (None:
        never) an async activity still running is interrupted with CancelledError."""
        if self.cancel_reason is None:
            self.cancel_reason = reason
            log.info("task %s (%s) cancelled: %s", self.task.id, self.task.activity_type, reason)
        if self.ctx is not None:
            self.ctx._cancel(reason)
        handle = self.handle
        if hard_after is None or handle is None or handle.done():
            return
        if hard_after <= 0:
            if self.phase == "running" or self.phase == "reporting":
                handle.cancel()
            return
        loop = asyncio.get_running_loop()
        loop.call_later(hard_after, lambda: None if handle.done() else handle.cancel())


class EagerSlots(Protocol):
    """The worker's slots as eager dispatch sees them: a decision reserves slots for the
    activities it schedules (the claim loop does not hand them out meanwhile), the activities
    handed back in the decision's answer start in them, and the reservation then ends."""

    def reserve(self, wanted: int) -> int: ...

    def release(self, count: int) -> None: ...

    def start_task(self, task: pb.Task) -> Any: ...


class TaskRunner:
    """Executes claimed tasks of one App and reports their outcome."""

    def __init__(
        self,
        app: App,
        link: ControlPlaneLink,
        *,
        worker_id: str,
        executor: Executor,
        backoff: Callable[[], Backoff],
        metrics: WorkerMetrics | None = None,
        on_slot_freed: Callable[[], None] | None = None,
        cache_size: int = 0,
        following_decisions: bool = False,
        slots: EagerSlots | None = None,
        served_activity_types: Collection[str] = (),
    ) -> None:
        self.app = app
        # Eager dispatch: the activities a decision schedules that this worker serves are
        # asked for at once, up to its free slots (None: off).
        self.slots = slots
        self.served_activity_types = frozenset(served_activity_types)
        self.activities = app.activities  # a live view: looked up once per task
        self.link = link
        self.worker_id = worker_id
        self.executor = executor
        self._backoff = backoff
        self.completions = CompletionBatcher(link, worker_id)
        self.decisions = DecisionBatcher(link, worker_id)
        self.local_activities = LocalActivityRunner(
            self.activities, executor=executor,
            observe=(lambda r, outcome, seconds: metrics.local_ran(
                r.activity_type, "step" if r.journalled else "local", outcome, seconds)) if metrics else None)
        self.metrics = metrics
        self.on_slot_freed = on_slot_freed
        self.cache: InstanceCache | None = InstanceCache(
            cache_size, on_event=(lambda result: metrics.cache.labels(result).inc()) if metrics else None,
        ) if cache_size > 0 else None
        # An activity of a workflow whose instance is kept here: its completion carries the
        # decision that follows (durable.worker.following).
        self.following_decisions = following_decisions and self.cache is not None
        # The control plane writes journals (it says so when the worker registers): the
        # commands before each ctx.step are written before it runs (durable.worker.journals).
        self.journals = False

    async def execute(self, running: RunningTask) -> None:
        """Run the task to its end and report it (unless it was cancelled locally).

        Called as the whole body of the task's own asyncio task (Worker.start_task), so the
        log ids are bound for the rest of that task with no context manager to unwind.
        """
        started = time.perf_counter()
        outcome = "cancelled"
        task = running.task
        bind(worker_id=self.worker_id, task_id=task.id, attempt=task.attempt,
             workflow_id=task.workflow_id, activity_type=task.activity_type)
        try:
            if tracing.recording():
                with tracing.span(
                    f"durable.{'decision' if task.kind == 'workflow' else 'activity'} {task.activity_type}",
                    task.traceparent,
                    **{"durable.task.id": task.id, "durable.task.attempt": task.attempt,
                       "durable.workflow.id": task.workflow_id, "durable.worker.id": self.worker_id},
                ):
                    outcome = await self._execute(running)
            else:
                outcome = await self._execute(running)
        finally:
            if self.metrics is not None:
                self.metrics.observe(task.kind, task.activity_type, outcome, time.perf_counter() - started)

    async def _execute(self, running: RunningTask) -> str:
        task = running.task
        kept: WorkflowInstance | None = None
        try:
            if task.kind == "workflow" and task.history_after_seq:
                # routed here with only the new events: go on from the kept instance, or
                # (no longer kept at that point) read the whole history and replay
                kept = self.cache.take(task.workflow_id, task.history_after_seq) if self.cache else None
                if kept is None:
                    del task.history[:]
                    task.history_after_seq = 0
                    task.history_truncated = True
            if task.history_truncated:
                try:
                    await self._read_rest_of_history(task)
                except DurableError as exc:  # the task stays ours until the reaper takes it back
                    log.warning("workflow %s (task %s): the rest of its history could not be read: %s",
                                task.workflow_id, task.id, exc)
                    return "cancelled"
            if task.kind == "workflow":
                taken, kept = kept, None
                method, request = await self._decide(task, running, taken)
                if method is None:  # a journal not applied: nothing to report
                    return "dropped"
            elif task.kind == "query":
                method, request = self._answer_query(task)
            else:
                method, request = await self._run_activity(running)
                if method == "CompleteTask" and task.workflow_id and self.following_decisions:
                    running.following = await self._follow(task, request.result_json)
        except asyncio.CancelledError:
            if running.cancel_reason is None:
                raise
            return "cancelled"
        finally:
            if kept is not None:  # taken out for a decision that did not run
                kept.close()
        if running.cancel_reason is not None:
            log.info("task %s: result dropped (%s)", task.id, running.cancel_reason)
            self._forget(running)
            self._settle_following(running, None)
            return "cancelled"
        running.phase = "reporting"
        # The task's own slot is free now: the activities its decision schedules may take it
        # (asked for before the claim loop hears of the free slot).
        if method == "CompleteWorkflowTask":
            running.reserved = self._ask_eager(request)
        elif running.following is not None:
            running.reserved = self._ask_eager(running.following.request)
        if self.on_slot_freed is not None:
            self.on_slot_freed()
        try:
            await self._report(running, method, request)
        except asyncio.CancelledError:
            if running.cancel_reason is None:
                raise
            return "cancelled"
        finally:
            if not running.applied:
                self._forget(running)
            self._settle_following(running, None)  # no answer came that settled it
            if running.reserved and self.slots is not None:
                self.slots.release(running.reserved)
                running.reserved = 0
        return {"CompleteTask": "completed", "FailTask": "failed", "AnswerQuery": "answered"}.get(method, "decided")

    # -- activities ---------------------------------------------------------------------------

    async def _run_activity(self, running: RunningTask) -> tuple[str, Any]:
        task = running.task
        definition = self.activities.get(task.activity_type)
        if definition is None:
            failure = failure_to_proto(
                f"activity type {task.activity_type!r} is not registered on worker "
                f"{self.worker_id}",
                "ActivityNotRegistered",
            )
            return "FailTask", self._fail_request(task, failure)
        ctx = running.ctx or ActivityContext.for_task(task)
        running.ctx = ctx
        try:
            data = from_json(decode_payload(task.input_json, field="activity input"),
                             definition.input_type, field="activity input")
        except DurableError as exc:
            failure = failure_to_proto(str(exc), type(exc).__name__, non_retryable=True)
            return "FailTask", self._fail_request(task, failure)
        timeout = task.start_to_close_timeout or definition.options.start_to_close_timeout or None
        # the deadline on this task itself (wait_for would run the activity in a task of its own)
        limit = asyncio.timeout(timeout) if timeout is not None else None
        try:
            if limit is None:
                result = await self._call(definition, ctx, data)
            else:
                async with limit:
                    result = await self._call(definition, ctx, data)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - user code may raise anything
            if isinstance(exc, TimeoutError) and limit is not None and limit.expired():
                failure = failure_to_proto(
                    f"activity {task.activity_type} exceeded its start_to_close_timeout of "
                    f"{timeout} s",
                    "StartToCloseTimeout",
                )
                return "FailTask", self._fail_request(task, failure)
            if running.cancel_reason is None:
                log.info(
                    "activity %s (task %s, attempt %d) failed: %s: %s",
                    task.activity_type, task.id, task.attempt, type(exc).__name__, exc,
                )
            return "FailTask", self._fail_request(task, failure_from_exception(exc))
        try:
            result_json = encode_payload(to_json(result), field="activity result", allow_none=True)
        except DurableError as exc:
            failure = failure_to_proto(str(exc), type(exc).__name__, non_retryable=True)
            return "FailTask", self._fail_request(task, failure)
        return "CompleteTask", pb.CompleteTaskRequest(
            worker_id=self.worker_id, task_id=task.id, attempt=task.attempt, result_json=result_json
        )

    async def _call(self, definition: ActivityDefinition, ctx: ActivityContext, data: Any) -> Any:
        if definition.is_async:
            return await definition.fn(ctx, data)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, definition.fn, ctx, data)

    def _fail_request(self, task: pb.Task, failure: pb.Failure) -> pb.FailTaskRequest:
        return pb.FailTaskRequest(
            worker_id=self.worker_id, task_id=task.id, attempt=task.attempt, failure=failure
        )

    # -- workflow decisions -------------------------------------------------------------------

    async def _decide(
        self, task: pb.Task, running: RunningTask | None = None, kept: WorkflowInstance | None = None
    ) -> tuple[str | None, Any]:
        """Replay the history on a fresh instance, or feed the new events to the `kept` one;
        then run the local activities the code waits on, in this decision (its steps'
        journals written on the way: None, nothing to report, when one is not applied). With
        the cache on, the instance is kept after the decision (until its report says whether
        it was applied)."""
        definition = self.app.workflows.get(task.activity_type)
        if definition is None:
            failure = failure_to_proto(
                f"workflow type {task.activity_type!r} is not registered on worker "
                f"{self.worker_id}",
                "WorkflowNotRegistered",
            )
            return "FailTask", self._fail_request(task, failure)
        instance = kept
        try:
            history = history_from_proto(task.history)
            if instance is not None:
                decision = instance.advance(history, task.decided_through_seq)
            else:
                if self.cache is not None:
                    self.cache.missed()
                instance = definition.instance(task.workflow_id, activity_defaults=self.app.activity_options)
                decision = instance.replay(history, task.decided_through_seq, keep_open=True)
            if decision.local_activities:
                journal = Journal(task, instance, self.decisions, self.worker_id, self._backoff) \
                    if self.journals else None
                decision = await self.local_activities.settle(instance, decision, task.workflow_id, journal)
            actions = actions_to_proto(decision.actions)
        except DecisionDropped as exc:
            log.info("%s; the next decision runs on from the history", exc)
            instance.close()  # type: ignore[union-attr]
            return None, None
        except Exception as exc:  # noqa: BLE001 - workflow code may raise anything
            if instance is not None:
                instance.close()
            return "FailTask", self._fail_request(task, self._decision_failure(task, exc))
        except BaseException:  # cancelled while its local activities ran
            if instance is not None:
                instance.close()
            raise
        keeps = self.cache is not None and running is not None and not decision.ended
        if keeps:
            self.cache.put(task.workflow_id, instance, decision.seen_through_seq)  # type: ignore[union-attr]
            running.kept = instance  # type: ignore[union-attr]
        else:
            instance.close()
        return "CompleteWorkflowTask", pb.CompleteWorkflowTaskRequest(
            worker_id=self.worker_id,
            task_id=task.id,
            attempt=task.attempt,
            seen_through_seq=decision.seen_through_seq,
            actions=actions,
            keeps_instance=keeps,
        )

    async def _follow(self, task: pb.Task, result_json: str) -> Following | None:
        """The decision that follows an activity's completion, made on the workflow's kept
        instance (None: none to make here, or its code failed: a decision task then shows
        it, replaying; or it is too large to ride along: its decision task carries it)."""
        workflow_type = self.cache.workflow_type(task.workflow_id) if self.cache is not None else None
        if workflow_type is None:
            return None
        started = time.perf_counter()
        if not tracing.recording():
            following = self._make_following(task, result_json)
        else:
            with tracing.span(f"durable.decision {workflow_type}", task.traceparent, **{
                    "durable.workflow.id": task.workflow_id, "durable.worker.id": self.worker_id,
                    "durable.decision.follows_task": task.id}):
                following = self._make_following(task, result_json)
        if following is not None and self.metrics is not None:  # a decision made, not a task's
            self.metrics.observe("workflow", workflow_type, "followed", time.perf_counter() - started)
        return following

    def _make_following(self, task: pb.Task, result_json: str) -> Following | None:
        try:
            following = decide_on_completion(self.cache, task, result_json)  # type: ignore[arg-type]
        except Exception:  # noqa: BLE001 - the workflow's code (the instance is closed)
            return None
        if following is None:
            return None
        # A decision that waits on local activities does not ride: running them here would
        # hold the activity's completion back (and, were the worker to die meanwhile, its
        # result) for as long as they take. The completion goes now, alone, and the decision
        # task that follows runs them (replaying). One too large to ride (a quarter of the
        # batch budget) goes with its decision task too.
        try:
            rides = not following.decision.local_activities and \
                following.request.ByteSize() + len(result_json) <= self.completions.budget // 4
        except Exception:  # noqa: BLE001 - an action that does not encode: its decision task says so
            rides = False
        if not rides:
            following.instance.close()
            return None
        return following

    def _settle_following(self, running: RunningTask, outcome: pb.CompletionOutcome | None) -> None:
        """The decision riding on the task's completion is done with: applied (`outcome` says
        so) or not (None); see Following.settle."""
        if running.following is not None:
            running.following.settle(self.cache, outcome)  # type: ignore[arg-type]
            running.following = None

    def _ask_eager(self, request: pb.CompleteWorkflowTaskRequest | pb.FollowingDecision) -> int:
        """Mark the decision's new activities this worker serves `eager`, as many as it has
        free slots for (reserved until the answer); returns how many slots it reserved."""
        if self.slots is None:
            return 0
        wanted = [a.schedule_activity for a in request.actions
                  if a.WhichOneof("action") == "schedule_activity"
                  and a.schedule_activity.activity_type in self.served_activity_types
                  and not a.schedule_activity.options.start_delay]
        granted = self.slots.reserve(len(wanted)) if wanted else 0
        for action in wanted[:granted]:
            action.eager = True
        return granted

    def _forget(self, running: RunningTask) -> None:
        """A kept instance whose decision was not applied (dropped, refused, never reported)
        stands where the history does not: out of the cache with it."""
        if running.kept is not None and self.cache is not None:
            self.cache.drop(running.task.workflow_id, running.kept)
        running.kept = None

    async def _read_rest_of_history(self, task: pb.Task) -> None:
        """A history too large for the claim's answer came truncated: read the rest, in pages
        (GetTaskHistory, fenced by this worker and attempt), before replaying."""
        after = task.history[-1].sequence_num if task.history else 0
        while True:
            page = await self.link.call("GetTaskHistory", pb.GetTaskHistoryRequest(
                worker_id=self.worker_id, task_id=task.id, attempt=task.attempt, after_seq=after))
            task.history.extend(page.events)
            if not page.has_more or not page.events:
                break
            after = page.next_after_seq or page.events[-1].sequence_num
        task.history_truncated = False

    def _answer_query(self, task: pb.Task) -> tuple[str, Any]:
        """Replay the workflow and run its query handler; the answer or why there is none."""
        request = pb.AnswerQueryRequest(worker_id=self.worker_id, query_id=task.id)
        definition = self.app.workflows.get(task.activity_type)
        try:
            if definition is None:
                raise WorkflowCodeError(f"workflow type {task.activity_type!r} is not registered on worker {self.worker_id}")
            arg = decode_payload(task.input_json, field="query argument") if task.input_json else None
            result = definition.query(history_from_proto(task.history), task.activity_id, arg,
                                      workflow_id=task.workflow_id, decided_through_seq=task.decided_through_seq)
            request.result_json = value_json(result, f"answer of query {task.activity_id}")
        except Exception as exc:  # noqa: BLE001 - the query's code may raise anything
            request.failure.CopyFrom(failure_to_proto(str(exc).split("\n", 1)[0], type(exc).__name__))
        return "AnswerQuery", request

    def _decision_failure(self, task: pb.Task, exc: Exception) -> pb.Failure:
        """A decision that failed: the workflow stays running, blocked with this error and
        the last frames of its traceback, and the decision is retried."""
        cause = exc.__cause__ if isinstance(exc, WorkflowCodeError) and exc.__cause__ else exc
        if isinstance(exc, NonDeterminismError):
            kind = "NonDeterminismError"
        elif isinstance(exc, WorkflowCodeError) and exc.__cause__ is None:
            kind = type(exc).__name__
        else:
            kind = type(cause).__name__
        message = str(exc).split("\n", 1)[0]
        log.warning("workflow %s (%s, task %s): decision failed, the workflow is blocked: %s: %s",
                    task.workflow_id, task.activity_type, task.id, kind, message)
        if self.metrics is not None:
            self.metrics.decision_failed(task.activity_type, kind)
        return failure_to_proto(message, kind, details={"traceback": format_frames(cause)})

    # -- reports ------------------------------------------------------------------------------

    async def _report(self, running: RunningTask, method: str, request: Any) -> None:
        task = running.task
        backoff: Backoff | None = None  # made on the first retry: most reports need none
        errors = 0
        while running.cancel_reason is None:
            try:
                if method == "CompleteTask":
                    response = await self.completions.complete(
                        request, running.following.request if running.following is not None else None,
                        of_workflow=bool(task.workflow_id))
                elif method == "CompleteWorkflowTask":
                    response = await self.decisions.decide(request)
                else:
                    response = await self.link.call(method, request)
            except ControlPlaneUnreachable:
                backoff = backoff or self._backoff()
                await asyncio.sleep(backoff.next_delay())
                continue
            except (WrongState, NotFound) as exc:
                log.info("task %s: %s refused (%s); dropped", task.id, method, exc)
                return
            except InvalidArgument as exc:
                if running.following is not None:  # the completion goes on alone
                    self._settle_following(running, None)
                    continue
                if method == "FailTask":
                    log.error("task %s: FailTask rejected: %s; dropped", task.id, exc)
                    return
                # The result broke a rule the control plane enforces (size, shape): report
                # it as a non-retryable failure of this attempt instead.
                log.warning("task %s: %s rejected: %s; failing it", task.id, method, exc)
                failure = failure_to_proto(str(exc), type(exc).__name__, non_retryable=True)
                method, request = "FailTask", self._fail_request(task, failure)
                continue
            except MessageTooLarge as exc:
                if method not in ("CompleteWorkflowTask", "AnswerQuery"):
                    raise
                # A decision (or an answer) is the same on every try: too large once is too
                # large always. The decision fails, so the workflow blocks saying why.
                size = request.ByteSize()
                message = (f"{method} of {size} bytes is over the control plane's message limit "
                           f"(DURABLE_MAX_MESSAGE_BYTES): {exc}; schedule fewer or smaller steps at once")
                log.warning("task %s: %s", task.id, message)
                if method == "AnswerQuery":
                    request = pb.AnswerQueryRequest(worker_id=self.worker_id, query_id=task.id,
                                                    failure=failure_to_proto(message, "MessageTooLarge"))
                    continue
                method, request = "FailTask", self._fail_request(task, failure_to_proto(message, "MessageTooLarge"))
                continue
            except DurableError as exc:
                errors += 1
                if errors >= MAX_REPORT_ERRORS:
                    log.error("task %s: %s failed %d times (%s); giving up, the control plane "
                              "will take the task back", task.id, method, errors, exc)
                    return
                backoff = backoff or self._backoff()
                await asyncio.sleep(backoff.next_delay())
                continue
            if method == "CompleteTask" and running.following is not None:
                self._settle_following(running, response)
                if response.tasks and self.slots is not None:
                    for handed in response.tasks:  # eager: in the slots the decision reserved
                        self.slots.start_task(handed)
            if method == "CompleteWorkflowTask":
                running.applied = response.applied
                if response.applied and response.events and running.kept is not None and self.cache is not None:
                    # its command events, told: the instance then stands where the history ends
                    self.cache.confirm(task.workflow_id, running.kept, history_from_proto(response.events),
                                       request.seen_through_seq)
                if response.tasks and self.slots is not None:
                    for handed in response.tasks:  # eager: in the slots this decision reserved
                        self.slots.start_task(handed)
                if not response.applied:
                    log.info("workflow %s: decision not applied (out of date, or taken by a report whose answer "
                             "was lost); the next decision replays",
                             task.workflow_id)
            elif method == "FailTask":
                log.debug("task %s failed: outcome %s", task.id, response.outcome)
            return
