"""Running a decision's local activities in the worker process.

The workflow instance lists the local activities its code waits on (Decision.local_activities);
this runs them, outside the deterministic loop, each with its retries bounded by its
schedule-to-close timeout, and hands the outcomes back to the instance until its code waits
on nothing local (the rules: durable.worker.workflows.local). The worker's TaskRunner and
durable.testing both drive decisions through it.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import Executor
from datetime import timedelta
from typing import Any, Protocol

from durable.common import DurableError, NonRetryableError, RetryableError, RetryPolicy
from durable.common.converter import NO_CONVERSION, from_json, to_json
from durable.common.payloads import encode_payload
from durable.worker.app import ActivityDefinition
from durable.worker.context import ActivityContext
from durable.worker.workflows.errors import WorkflowCodeError
from durable.worker.workflows.instance import Decision, WorkflowInstance
from durable.worker.workflows.local import EXHAUSTED, NON_RETRYABLE, OUT_OF_TIME, LocalActivity, LocalOutcome

log = logging.getLogger(__name__)

MAX_MESSAGE_CHARS = 4000


class Journaller(Protocol):
    """Writes a decision's commands so far before its next step (durable.worker.journals)."""

    unseen: bool  # the last journal's answer: events came that the decision has not seen

    async def __call__(self, decision: Decision) -> Decision: ...


# Told how each local activity or step went: (its request, "completed", "failed" or "deferred",
# the seconds it took, None when deferred).
Observer = Callable[[LocalActivity, str, "float | None"], None]


class LocalActivityRunner:
    """Runs local activities: `activities` are the App's registrations (what a name runs),
    `fakes` replace them by name (durable.testing). Sync functions run on `executor` (None:
    inline). `clock` and `sleep` are the time the budget is counted in (injectable).
    `observe` is told how each one went (the worker's metrics)."""

    def __init__(
        self,
        activities: Mapping[str, ActivityDefinition],
        *,
        executor: Executor | None = None,
        fakes: Mapping[str, Callable[..., Any]] | None = None,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
        rng: random.Random | None = None,
        observe: Observer | None = None,
    ) -> None:
        self.activities = activities
        self.observe = observe
        self.executor = executor
        self.fakes = fakes or {}
        self._clock = clock or time.monotonic
        self._sleep = sleep or asyncio.sleep
        self._rng = rng or random.Random()

    async def settle(
        self,
        instance: WorkflowInstance,
        decision: Decision,
        workflow_id: str,
        journal: Journaller | None = None,
    ) -> Decision:
        """Run what `decision` waits on, hand it to `instance`, again until the code waits on
        no local activity; the decision to send. Raises WorkflowCodeError for a name no
        activity of the App (or fake) has. `journal` writes the decision's commands so far
        before a step runs (ctx.step; None: they go with the decision) and returns the
        decision that then stands; when it says events came that the decision has not seen,
        a decision that ran a step already ends there, what it waits on deferred (rule 7)."""
        ran = False
        while decision.local_activities and not decision.ended:
            requests = decision.local_activities
            for request in requests:  # a name nothing runs fails the decision before anything runs
                self._function(request)
            if journal is not None and decision.actions and any(r.journalled for r in requests):
                decision = await journal(decision)
                if journal.unseen and ran:
                    if self.observe is not None:
                        for request in requests:
                            self.observe(request, "deferred", None)
                    return instance.defer_local()
                requests = decision.local_activities
            if len(requests) == 1:
                outcomes = [await self.run(requests[0], workflow_id)]
            else:
                async with asyncio.TaskGroup() as group:
                    running = [group.create_task(self.run(r, workflow_id),
                                                 name=f"local-activity:{workflow_id}/{r.marker_id}")
                               for r in requests]
                outcomes = [task.result() for task in running]
            ran = True
            decision = instance.resolve_local(outcomes)
        return decision

    def _function(self, request: LocalActivity) -> tuple[Callable[..., Any], bool, Any]:
        """(function, takes ctx, input type) of a request."""
        registered = request.fn is None or hasattr(request.fn, "__durable_activity__")
        if registered and request.activity_type in self.fakes:
            return self.fakes[request.activity_type], True, NO_CONVERSION
        if request.fn is not None:
            return request.fn, request.takes_ctx, request.input_type
        definition = self.activities.get(request.activity_type)
        if definition is None:
            raise WorkflowCodeError(f"local activity {request.activity_type!r} ({request.marker_id}) is not "
                                    "an activity of this worker's App; pass the function, or register it")
        return definition.fn, True, definition.input_type

    async def run(self, request: LocalActivity, workflow_id: str) -> LocalOutcome:
        """Run one local activity to its outcome, retrying within its budget."""
        if self.observe is None:
            return await self._run(request, workflow_id)
        started = time.perf_counter()
        outcome = await self._run(request, workflow_id)
        self.observe(request, "completed" if outcome.error is None else "failed", time.perf_counter() - started)
        return outcome

    async def _run(self, request: LocalActivity, workflow_id: str) -> LocalOutcome:
        fn, takes_ctx, input_type = self._function(request)
        policy = request.retry_policy or RetryPolicy()
        budget = request.schedule_to_close_timeout
        started = self._clock()

        def ended(attempts: int, error: dict[str, str], reason: str) -> LocalOutcome:
            return LocalOutcome(request.marker_id, request.activity_type, attempts, error=error, reason=reason)

        try:
            data = from_json(request.input, input_type, field=f"input of {request.marker_id}")
        except DurableError as exc:  # no retry fixes its input
            return ended(1, _error(exc), NON_RETRYABLE)
        attempt = 0
        while True:
            attempt += 1
            left = budget - (self._clock() - started)
            limit = min(left, request.start_to_close_timeout or left)
            ctx = ActivityContext(task_id="", attempt=attempt, activity_type=request.activity_type,
                                  activity_id=request.marker_id, workflow_id=workflow_id or None,
                                  max_attempts=policy.max_attempts)
            retry_after: float | None = None
            deadline = asyncio.timeout(max(limit, 0.0))
            try:
                async with deadline:
                    result = await self._call(fn, takes_ctx, ctx, data)
            except TimeoutError as exc:
                if not deadline.expired():  # the function's own
                    error = _error(exc)
                elif limit < left:
                    error = {"type": "StartToCloseTimeout", "message": (
                        f"local activity {request.activity_type} exceeded its start_to_close_timeout of "
                        f"{request.start_to_close_timeout:g} s")}
                else:
                    return ended(attempt, {"type": "ScheduleToCloseTimeout", "message": (
                        f"local activity {request.activity_type} exceeded its schedule_to_close_timeout "
                        f"of {budget:g} s")}, OUT_OF_TIME)
            except Exception as exc:  # noqa: BLE001 - user code may raise anything
                error = _error(exc)
                if isinstance(exc, NonRetryableError) or error["type"] in policy.non_retryable_error_types:
                    return ended(attempt, error, NON_RETRYABLE)
                if isinstance(exc, RetryableError):
                    retry_after = _seconds(exc.next_retry_delay)
            else:
                try:
                    value = to_json(result)
                    encode_payload(value, field=f"result of {request.marker_id}", allow_none=True)
                except DurableError as exc:  # its result is no payload: no retry fixes that
                    return ended(attempt, _error(exc), NON_RETRYABLE)
                return LocalOutcome(request.marker_id, request.activity_type, attempt, result=value)
            log.info("local activity %s (%s, workflow %s, attempt %d) failed: %s: %s", request.activity_type,
                     request.marker_id, workflow_id, attempt, error["type"], error["message"])
            if attempt >= policy.max_attempts:
                return ended(attempt, error, EXHAUSTED)
            delay = retry_after if retry_after is not None else policy.delay(attempt, self._rng).total_seconds()
            if self._clock() - started + delay >= budget:  # the retry would start past the budget
                return ended(attempt, error, OUT_OF_TIME)
            await self._sleep(delay)

    async def _call(self, fn: Callable[..., Any], takes_ctx: bool, ctx: ActivityContext, data: Any) -> Any:
        args = (ctx, data) if takes_ctx else (data,)
        if inspect.iscoroutinefunction(fn) or self.executor is None:
            result = fn(*args)
        else:
            result = await asyncio.get_running_loop().run_in_executor(self.executor, lambda: fn(*args))
        if inspect.isawaitable(result):
            result = await result
        return result


def _error(exc: BaseException) -> dict[str, str]:
    """An exception as a marker records it (the error type an activity would report)."""
    kind = exc.type if isinstance(exc, (RetryableError, NonRetryableError)) else type(exc).__name__
    return {"type": kind, "message": (str(exc) or kind)[:MAX_MESSAGE_CHARS]}


def _seconds(delay: timedelta | float | None) -> float | None:
    if delay is None:
        return None
    return max(delay.total_seconds() if isinstance(delay, timedelta) else float(delay), 0.0)
