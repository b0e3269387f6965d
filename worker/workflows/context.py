"""WorkflowContext: what workflow code calls (`ctx`), each call a command or a read of the
history. Everything here is deterministic (see durable.worker.workflows.rules)."""

from __future__ import annotations

import asyncio
import inspect
import logging
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, NoReturn

from durable.common import RetryPolicy
from durable.common.converter import NO_CONVERSION, from_json, input_type, return_type, to_json
from durable.worker.workflows.commands import (
    PARENT_CLOSE_POLICIES,
    ActivityOptions,
    ScheduleActivity,
    Seconds,
    StartChildWorkflow,
    retry_policy_of,
    to_seconds,
)
from durable.worker.workflows.errors import ContinuedAsNew
from durable.worker.workflows.history import is_patch_marker
from durable.worker.workflows.local import DEFAULT_SCHEDULE_TO_CLOSE, MAX_SCHEDULE_TO_CLOSE, LocalActivity
from durable.worker.workflows.rules import engine_code

if TYPE_CHECKING:
    from durable.worker.workflows.instance import WorkflowInfo, WorkflowInstance


class _ReplaySafeLogger(logging.LoggerAdapter):  # type: ignore[type-arg]
    """ctx.logger: lines are written the first time the code passes, not when replaying."""

    def __init__(self, instance: WorkflowInstance) -> None:
        super().__init__(logging.getLogger("durable.workflow"), {})
        self._instance = instance

    def isEnabledFor(self, level: int) -> bool:  # noqa: N802 - logging's name
        instance = self._instance
        if instance.replaying or instance.torn_down:
            return False
        return self.logger.isEnabledFor(level)

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        if self.isEnabledFor(level):
            with engine_code():
                info = self._instance.info
                self.logger.log(level, "[%s %s] " + str(msg), info.workflow_type, info.workflow_id,
                                *args, **kwargs)


class WorkflowContext:
    """Passed as the first argument of every workflow function (and `run` method).

    Activities: ``await ctx.activity("name", input, **options)`` (or call a registered
    activity function); short steps run in the decision: ``await ctx.local_activity(fn,
    input)``. Time: ``await asyncio.sleep(s)`` or ``await ctx.sleep(s)`` (durable
    timers), ``ctx.now()``. Signals: ``await ctx.wait_signal(name, timeout=None)``.
    Conditions: ``await ctx.wait_condition(lambda: ..., timeout=None)``. Deterministic
    values: ``ctx.random()``, ``ctx.uuid4()``, ``ctx.side_effect(fn)``. Versioning:
    ``ctx.patched("change-id")``. Logging: ``ctx.logger``. Child workflows:
    ``await ctx.child("type", input, id=...)``. Running for ever: ``ctx.continue_as_new(input)``.
    """

    def __init__(self, instance: WorkflowInstance) -> None:
        self._instance = instance
        self._logger: logging.LoggerAdapter | None = None  # type: ignore[type-arg]

    @property
    def logger(self) -> logging.LoggerAdapter:  # type: ignore[type-arg]
        """A logger whose lines are written the first time the code passes, not on replay."""
        if self._logger is None:
            self._logger = _ReplaySafeLogger(self._instance)
        return self._logger

    # -- identity -----------------------------------------------------------------------

    @property
    def info(self) -> WorkflowInfo:
        return self._instance.info

    @property
    def workflow_id(self) -> str:
        return self._instance.info.workflow_id

    @property
    def workflow_type(self) -> str:
        return self._instance.info.workflow_type

    @property
    def is_replaying(self) -> bool:
        """True while the code passes again through events it handled before."""
        return self._instance.replaying

    @property
    def cancel_requested(self) -> bool:
        """True once the workflow was asked to cancel (its code saw a CancelledError)."""
        return self._instance.cancel_requested

    # -- activities ---------------------------------------------------------------------

    def start_activity(
        self,
        activity: str | Callable[..., Any],
        input: Any = None,
        *,
        activity_id: str | None = None,
        result_type: Any = NO_CONVERSION,
        retry_policy: RetryPolicy | dict[str, Any] | None = None,
        start_to_close_timeout: Seconds | None = None,
        schedule_to_start_timeout: Seconds | None = None,
        heartbeat_timeout: Seconds | None = None,
        priority: int | None = None,
        start_delay: Seconds | None = None,
        concurrency_key: str | None = None,
        concurrency_limit: int | None = None,
    ) -> asyncio.Future[Any]:
        """Schedule an activity now and return the future of its result (cancel the future
        to cancel the activity). Most code awaits ``ctx.activity(...)`` instead."""
        name, default_result_type = _activity_name(activity)
        options = ActivityOptions.of(
            retry_policy=retry_policy, priority=priority, schedule_to_start_timeout=schedule_to_start_timeout,
            start_to_close_timeout=start_to_close_timeout, heartbeat_timeout=heartbeat_timeout,
            start_delay=start_delay, concurrency_key=concurrency_key, concurrency_limit=concurrency_limit,
        )
        payload = to_json(input)  # pydantic's dump reads no clock: no guard to lift
        command = ScheduleActivity(activity_type=name, input=payload, activity_id=activity_id,
                                   options=options)
        if result_type is NO_CONVERSION:
            result_type = default_result_type
        return self._instance.schedule_activity(command, result_type)

    async def activity(
        self,
        activity: str | Callable[..., Any],
        input: Any = None,
        **options: Any,
    ) -> Any:
        """Run an activity (by name, or a registered activity function) and return its
        result; raises ActivityError when it failed for good. Options: activity_id,
        result_type, retry_policy, start_to_close_timeout, schedule_to_start_timeout,
        heartbeat_timeout, priority, start_delay, concurrency_key with concurrency_limit (they
        override the activity's registered defaults)."""
        return await self.start_activity(activity, input, **options)

    # -- local activities ---------------------------------------------------------------

    def start_local_activity(
        self,
        activity: str | Callable[..., Any],
        input: Any = None,
        *,
        activity_id: str | None = None,
        result_type: Any = NO_CONVERSION,
        retry_policy: RetryPolicy | dict[str, Any] | None = None,
        start_to_close_timeout: Seconds | None = None,
        schedule_to_close_timeout: Seconds | None = None,
        journal: bool = False,
    ) -> asyncio.Future[Any]:
        """Call a local activity now and return the future of its result. Most code awaits
        ``ctx.local_activity(...)`` or ``ctx.step(...)`` (`journal`) instead."""
        name, fn, takes_ctx, in_type, default_result_type = _local_function(activity)
        if activity_id is not None and (not isinstance(activity_id, str) or not 1 <= len(activity_id) <= 255):
            raise ValueError(f"a local activity id must be 1..255 characters, got {activity_id!r}")
        budget = to_seconds(schedule_to_close_timeout, field="schedule_to_close_timeout")
        if budget is None:
            budget = DEFAULT_SCHEDULE_TO_CLOSE
        if not 0 < budget <= MAX_SCHEDULE_TO_CLOSE:
            raise ValueError(f"a local activity's schedule_to_close_timeout is more than 0 and at most "
                             f"{MAX_SCHEDULE_TO_CLOSE:g} s (it keeps its decision busy), got {budget:g}; "
                             "a longer step is an activity")
        request = LocalActivity(
            marker_id=activity_id or "", activity_type=name, input=to_json(input), fn=fn,
            takes_ctx=takes_ctx, input_type=in_type,
            retry_policy=retry_policy_of(retry_policy, field="retry_policy"),
            start_to_close_timeout=to_seconds(start_to_close_timeout, field="start_to_close_timeout") or None,
            schedule_to_close_timeout=budget,
            journalled=journal,
        )
        if result_type is NO_CONVERSION:
            result_type = default_result_type
        return self._instance.local_activity(request, result_type)

    async def local_activity(
        self,
        activity: str | Callable[..., Any],
        input: Any = None,
        **options: Any,
    ) -> Any:
        """Run a short step in the worker, as part of this decision, and return its result:
        no task, no extra decision; its outcome is recorded in the history as a marker
        (kind "local_activity"), and replay returns the recorded outcome without running it
        again. `activity`: an activity's name or registered function (called ``fn(ctx,
        input)``), or any function ``fn(ctx, input)`` or ``fn(input)``, async or not. Raises
        ActivityError when it failed for good. Options: activity_id, result_type,
        retry_policy, start_to_close_timeout (one attempt), schedule_to_close_timeout (all
        attempts and the waits between them; default 5 s, at most 60 s: a retry that would
        end past it is not made). The rules: durable.worker.workflows.local."""
        return await self.start_local_activity(activity, input, **options)

    async def step(
        self,
        activity: str | Callable[..., Any],
        input: Any = None,
        **options: Any,
    ) -> Any:
        """Run a step in the worker and return its result, its outcome written to the
        history before the workflow's next step runs (DBOS's steps, Restate's ctx.run): a
        step that returned is never run again, even if the worker dies later in the same
        decision. A local activity otherwise (the same function shapes, options and
        ActivityError); each but a decision's last costs a write (a journal), where local
        activities are written together with their decision. The rules:
        durable.worker.workflows.local (rule 6)."""
        return await self.start_local_activity(activity, input, journal=True, **options)

    # -- child workflows ----------------------------------------------------------------

    def start_child(
        self,
        workflow: str | Callable[..., Any] | type,
        input: Any = None,
        *,
        id: str | None = None,
        parent_close_policy: str = "cancel",
        result_type: Any = NO_CONVERSION,
    ) -> asyncio.Future[Any]:
        """Start a child workflow now and return the future of its result. Most code awaits
        ``ctx.child(...)`` instead."""
        name = _workflow_name(workflow)
        if parent_close_policy not in PARENT_CLOSE_POLICIES:
            raise ValueError(f"parent_close_policy must be one of {', '.join(PARENT_CLOSE_POLICIES)}, "
                             f"got {parent_close_policy!r}")
        if id is not None and (not isinstance(id, str) or not id or len(id) > 255):
            raise ValueError(f"a child workflow id must be 1..255 characters, got {id!r}")
        payload = to_json(input)
        command = StartChildWorkflow(workflow_type=name, input=payload, child_id=id,
                                     parent_close_policy=parent_close_policy)
        return self._instance.start_child(command, result_type)

    async def child(
        self,
        workflow: str | Callable[..., Any] | type,
        input: Any = None,
        *,
        id: str | None = None,
        parent_close_policy: str = "cancel",
        result_type: Any = NO_CONVERSION,
    ) -> Any:
        """Run a child workflow (by type name, or a workflow registered with @app.workflow)
        and return its result; raises ChildWorkflowError when it failed, was cancelled or
        could not start (`id` already taken). `id`: the child's workflow id (default
        f"{this workflow's id}/{type}-{n}"). `parent_close_policy`: "cancel" (default; this
        workflow's end cancels the child) or "abandon" (the child runs on)."""
        return await self.start_child(workflow, input, id=id, parent_close_policy=parent_close_policy,
                                      result_type=result_type)

    def continue_as_new(self, input: Any = None) -> NoReturn:
        """End this run and start the workflow again, same id, with `input` and an empty
        history: the way a workflow runs for ever within its history limits. Signals that
        arrive while the run switches reach the new run. Signals this run's code had
        received but not taken (buffered) stay with this run: drain them first."""
        raise ContinuedAsNew(input)

    # -- time ---------------------------------------------------------------------------

    def now(self) -> datetime:
        """The workflow's clock: the time of the event the code is reacting to (UTC)."""
        return self._instance.now

    async def sleep(self, seconds: Seconds) -> None:
        """A durable timer (the same as ``await asyncio.sleep(seconds)``)."""
        await asyncio.sleep(to_seconds(seconds, field="seconds") or 0.0)

    # -- signals and conditions ---------------------------------------------------------

    async def wait_signal(self, name: str, timeout: Seconds | None = None, *, type: Any = NO_CONVERSION) -> Any:
        """The payload of the next signal `name` (the oldest buffered one first, each
        delivered once), or None when `timeout` seconds pass first (a durable timer).
        `type` rebuilds the payload (a pydantic model, a dataclass, ...)."""
        instance = self._instance
        buffered = instance.signal_buffer.get(name)
        if buffered:
            return from_json(buffered.popleft(), type, field=f"signal {name}")
        waiter: asyncio.Future[Any] = instance.loop.create_future()
        instance.signal_waiters[name].append(waiter)
        try:
            if timeout is None:
                payload = await waiter
            else:
                try:
                    payload = await asyncio.wait_for(waiter, to_seconds(timeout, field="timeout"))
                except TimeoutError:
                    return None
        finally:
            waiters = instance.signal_waiters.get(name)
            if waiters and waiter in waiters:
                waiters.remove(waiter)
        return from_json(payload, type, field=f"signal {name}")

    def set_signal_handler(self, name: str, handler: Callable[[Any], Any]) -> None:
        """Call `handler(payload)` (a function or coroutine function) for every signal
        `name` from now on; signals buffered before are handed to it first."""
        instance = self._instance
        instance.signal_handlers[name] = handler
        buffered = instance.signal_buffer.pop(name, None)
        for payload in buffered or ():
            instance._signal(name, payload)

    def set_query_handler(self, name: str, handler: Callable[..., Any]) -> None:
        """Answer query `name` with `handler()` (or `handler(arg)`): a plain function that
        reads the workflow's state (the function form's way; classes use @query)."""
        self._instance.query_handlers[name] = handler

    async def wait_condition(self, predicate: Callable[[], bool], timeout: Seconds | None = None) -> bool:
        """Wait until `predicate()` is true (checked after every event the workflow handles);
        False when `timeout` seconds pass first (a durable timer)."""
        if predicate():
            return True
        instance = self._instance
        future: asyncio.Future[bool] = instance.loop.create_future()
        entry = (predicate, future)
        instance.conditions.append(entry)
        try:
            if timeout is None:
                return await future
            try:
                return await asyncio.wait_for(future, to_seconds(timeout, field="timeout"))
            except TimeoutError:
                return False
        finally:
            if entry in instance.conditions:
                instance.conditions.remove(entry)

    # -- deterministic values -----------------------------------------------------------

    @property
    def rng(self) -> Any:
        """The workflow's random.Random, seeded from its history: the same on replay."""
        return self._instance.rng

    def random(self) -> float:
        """A float in [0, 1), the same on replay."""
        return float(self._instance.rng.random())

    def uuid4(self) -> uuid.UUID:
        """A version-4 UUID, the same on replay."""
        return uuid.UUID(int=self._instance.rng.getrandbits(128), version=4)

    def side_effect(self, fn: Callable[[], Any], *, type: Any = NO_CONVERSION) -> Any:
        """Run `fn()` once and record its (JSON) result in the history; on replay the
        recorded result is returned and `fn` is not called."""
        instance = self._instance
        marker_id = f"side_effect-{instance.next_id('side_effect')}"
        recorded = instance.peek_recorded()
        if (recorded is not None and recorded.data.get("kind") == "side_effect"
                and recorded.data.get("marker_id") == marker_id):
            value = recorded.data.get("value")
        else:
            with engine_code():
                value = to_json(fn())
        instance.record_marker("side_effect", marker_id, value)
        return from_json(value, type, field=marker_id)

    def patched(self, patch_id: str) -> bool:
        """Versioning: True for runs that reach this point with the new code, False when
        replaying a history recorded before the change.

            if ctx.patched("add-fraud-check"):
                await ctx.activity("fraud_check", order)
            await ctx.activity("charge", order)

        To retire the old branch later: once no workflow recorded before the patch is
        running (``durable replay --types ...`` over the running ones passes without the
        old branch), delete the old branch and the `patched` call together; histories that
        hold the patch marker replay fine without it.
        """
        instance = self._instance
        recorded = instance.peek_recorded()
        if recorded is not None and is_patch_marker(recorded, patch_id):
            instance.record_marker("patch", patch_id, None)
            return True
        if recorded is not None or instance.replaying:
            return False
        instance.record_marker("patch", patch_id, None)
        return True


def _activity_name(activity: str | Callable[..., Any]) -> tuple[str, Any]:
    if isinstance(activity, str):
        if not activity:
            raise ValueError("activity name must not be empty")
        return activity, NO_CONVERSION
    definition = getattr(activity, "__durable_activity__", None)
    if definition is None:
        raise TypeError(f"{activity!r} is not a registered activity; pass its name or a "
                        "function decorated with @app.activity")
    return definition.name, definition.result_type


def _local_function(activity: str | Callable[..., Any]) -> tuple[str, Callable[..., Any] | None, bool, Any, Any]:
    """(activity type, function, takes ctx, input type, result type) of what a workflow passed
    to ctx.local_activity: a name (the worker's App runs it), a registered activity function,
    or a plain function."""
    if isinstance(activity, str):
        if not activity:
            raise ValueError("activity name must not be empty")
        return activity, None, True, NO_CONVERSION, NO_CONVERSION
    if not callable(activity):
        raise TypeError(f"a local activity is a function or an activity's name, not {activity!r}")
    definition = getattr(activity, "__durable_activity__", None)
    if definition is not None:
        return definition.name, activity, True, definition.input_type, definition.result_type
    name = str(getattr(activity, "__name__", "") or type(activity).__name__)[:255]
    takes_ctx = _takes_ctx(activity)
    return name, activity, takes_ctx, input_type(activity, position=1 if takes_ctx else 0), return_type(activity)


def _takes_ctx(fn: Callable[..., Any]) -> bool:
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return True
    for arguments, takes in (((None, None), True), ((None,), False)):
        try:
            signature.bind(*arguments)
        except TypeError:
            continue
        return takes
    raise TypeError(f"local activity {fn!r} must take (ctx, input) or (input); its signature is {signature}")


def _workflow_name(workflow: str | Callable[..., Any] | type) -> str:
    if isinstance(workflow, str):
        if not workflow:
            raise ValueError("workflow type must not be empty")
        return workflow
    name = getattr(workflow, "__durable_workflow__", None)
    if not isinstance(name, str):
        raise TypeError(f"{workflow!r} is not a registered workflow; pass its type name or a "
                        "function or class registered with @app.workflow")
    return name


def current_context() -> WorkflowContext | None:
    """The context of the workflow whose code is running now, if any."""
    from durable.worker.workflows.loop import DeterministicLoop

    loop = asyncio.events._get_running_loop()
    if isinstance(loop, DeterministicLoop):
        return loop._instance.ctx
    return None
