"""An asyncio client for the control plane's ClientService."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, TypeVar

import grpc
from google.protobuf.message import Message

from durable.common.errors import DurableError, MessageTooLarge
from durable.common.payloads import encode_payload
from durable.common.converter import to_json
from durable.common.security import ClientSecurity, load_client_security, open_channel
from durable.common.status import DATABASE_UNAVAILABLE_DETAILS, error_for, error_for_rpc, raised_by_durable
from durable.client.bulk import (
    Activity,
    BulkResult,
    DeadLetterSelection,
    Enqueued,
    Started,
    WorkflowSelection,
    WorkflowStart,
)
from durable.common.coalescing import Coalescer, chunks
from durable.client.schedules import ScheduleView, schedule_view, unix
from durable.proto.v1 import durable_pb2 as pb
from durable.proto.v1 import durable_pb2_grpc as pb_grpc

DEFAULT_ADDRESS = "127.0.0.1:9001"
# What one EnqueueActivities or StartWorkflows call carries at most: the control plane takes
# 1000 items and 8 MiB; the client keeps its batches at half that many bytes.
MAX_BATCH_ITEMS = 1000
DEFAULT_BATCH_BYTES = 4 * 1024 * 1024
# The control plane's per-item messages start with the item's index in its call.
_ITEM_PREFIX = re.compile(r"^\w+\[\d+\]: ")

M = TypeVar("M", bound=Message)
R = TypeVar("R")


class Unavailable(DurableError):
    """The call could not be served now: the control plane did not answer, or it answered
    that its database is away (`database_down`). Worth retrying later."""

    def __init__(self, message: str, *, database_down: bool = False) -> None:
        super().__init__(message)
        self.database_down = database_down


class Unauthenticated(DurableError):
    """The control plane refused the call's credentials (no token, or a wrong one)."""


class PermissionDenied(DurableError):
    """The credentials are valid but may not do this (a read-only token asking for a change)."""


@dataclass(frozen=True)
class WorkflowView:
    id: str
    workflow_type: str
    status: str
    input: dict[str, Any]
    result: dict[str, Any] | None
    error: dict[str, Any] | None
    created_at: float
    updated_at: float
    started_at: float
    completed_at: float
    last_event_seq: int
    blocked: dict[str, Any] | None = None  # the error of its failing decisions, while blocked
    cancel_requested_at: float = 0.0
    decided_through_seq: int = 0
    pinned: bool = False
    # what replay checks the decisions against: the last event the last decision saw
    replay_through_seq: int = 0
    # "kind:type" its pending tasks wait for that no active worker serves (describe_workflow only)
    unserved_types: tuple[str, ...] = ()
    parent_workflow_id: str = ""  # "" = not a child workflow
    parent_close_policy: str = ""
    run_number: int = 1
    history_bytes: int = 0
    # filled by describe_workflow only
    children: tuple[WorkflowView, ...] = ()
    runs: tuple[RunView, ...] = ()

    @property
    def is_terminal(self) -> bool:
        return self.status in ("completed", "failed", "cancelled")


@dataclass(frozen=True)
class RunView:
    """A closed run of a workflow that continued as new."""

    run_number: int
    status: str
    input: Any
    next_input: Any
    events: int
    started_at: float
    closed_at: float


@dataclass(frozen=True)
class EventView:
    sequence_num: int
    event_type: str
    data: dict[str, Any]
    created_at: float


@dataclass(frozen=True)
class WorkflowPage:
    """One page of ListWorkflows, newest first; next_page_token is "" on the last page."""

    workflows: list[WorkflowView]
    next_page_token: str


@dataclass(frozen=True)
class TaskView:
    """A task of a workflow: an activity, a timer or a workflow (decision) task."""

    id: str
    kind: str
    activity_id: str
    activity_type: str
    status: str
    attempt: int
    max_attempts: int
    priority: int
    visible_at: float
    created_at: float
    claimed_by: str
    claimed_at: float
    heartbeat_at: float
    completed_at: float
    last_error: str
    error_history: list[dict[str, Any]]

    @property
    def is_live(self) -> bool:
        return self.status in ("pending", "claimed")


def _json(text: str) -> Any:
    return json.loads(text) if text else None


def _payload(value: Any) -> str:
    """A payload (any JSON value, a pydantic model, a dataclass) as JSON text; None is {}."""
    return encode_payload(to_json(value) if value is not None else {})


def _workflow(msg: pb.WorkflowInfo) -> WorkflowView:
    return WorkflowView(
        id=msg.id,
        workflow_type=msg.workflow_type,
        status=msg.status,
        input=_json(msg.input_json) or {},
        result=_json(msg.result_json),
        error=_json(msg.error_json),
        created_at=msg.created_at,
        updated_at=msg.updated_at,
        started_at=msg.started_at,
        completed_at=msg.completed_at,
        last_event_seq=msg.last_event_seq,
        blocked=_json(msg.blocked_json),
        cancel_requested_at=msg.cancel_requested_at,
        decided_through_seq=msg.decided_through_seq,
        pinned=msg.pinned,
        replay_through_seq=msg.replay_through_seq or msg.decided_through_seq,
        parent_workflow_id=msg.parent_workflow_id,
        parent_close_policy=msg.parent_close_policy,
        run_number=msg.run_number or 1,
        history_bytes=msg.history_bytes,
    )


class Client:
    """Start, signal, cancel and inspect workflows; manage the DLQ; read queue statistics.

    Use as `async with Client("host:9001") as client: ...`.
    """

    def __init__(
        self, address: str = DEFAULT_ADDRESS, *, timeout: float = 30.0, security: ClientSecurity | None = None,
        coalesce: bool = True, linger: float = 0.001, max_batch: int = MAX_BATCH_ITEMS,
        batch_bytes: int = DEFAULT_BATCH_BYTES,
    ) -> None:
        """`coalesce` (default on): concurrent enqueue_activity and start_workflow calls go out
        together as EnqueueActivities and StartWorkflows calls (see durable.common.coalescing):
        at once when none is in flight, else after `linger` seconds, at most `max_batch` items
        (up to 1000) and `batch_bytes` bytes a call. Each call still answers or raises its own."""
        self.address = address
        self.timeout = timeout
        self.batch_bytes = batch_bytes
        # Token and TLS from DURABLE_AUTH_TOKEN(_FILE) and DURABLE_TLS_* unless given.
        self._channel = open_channel(address, security or load_client_security())
        self._stub = pb_grpc.ClientServiceStub(self._channel)
        size = {"linger": linger, "max_batch": min(max_batch, MAX_BATCH_ITEMS), "budget": batch_bytes}
        self._enqueues: Coalescer[pb.EnqueueActivityRequest, Enqueued] | None = (
            Coalescer(self._enqueue_batch, name="enqueue", **size) if coalesce else None)  # type: ignore[arg-type]
        self._starts: Coalescer[pb.StartWorkflowRequest, Started] | None = (
            Coalescer(self._start_batch, name="start", **size) if coalesce else None)  # type: ignore[arg-type]
        # the queues of coalesced single calls (empty with coalesce=False), for their counts;
        # kept for close() even when an older control plane turns coalescing off
        self.coalescers: list[Coalescer[Any, Any]] = [c for c in (self._enqueues, self._starts) if c is not None]

    @property
    def channel(self) -> grpc.aio.Channel:
        """The gRPC channel, for calls beyond ClientService (health, granted scope)."""
        return self._channel

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Send the coalesced calls still queued, wait for their answers, close the channel."""
        for coalescer in self.coalescers:
            await coalescer.drain()
        await self._channel.close()

    async def _call(self, method: str, request: Any, timeout: float | None = None) -> Any:
        try:
            return await getattr(self._stub, method)(request, timeout=timeout or self.timeout)
        except grpc.aio.AioRpcError as exc:
            raise self._error(exc) from None

    def _error(self, exc: grpc.aio.AioRpcError) -> DurableError:
        """The client's error for a failed call. UNAVAILABLE says which side failed: the control
        plane itself, or (it answered) its database."""
        details = exc.details() or ""
        if exc.code() == grpc.StatusCode.UNAVAILABLE and details.startswith(DATABASE_UNAVAILABLE_DETAILS):
            return Unavailable(
                f"the control plane at {self.address} answered, but it cannot reach its database; "
                "check the database and the control plane's log", database_down=True,
            )
        if exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED and raised_by_durable(exc):
            return error_for(exc.code(), details)  # the control plane's own TimedOut
        if exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
            return Unavailable(f"cannot reach the control plane at {self.address} ({exc.code().name}: {details})")
        if exc.code() == grpc.StatusCode.UNAUTHENTICATED:
            return Unauthenticated(details or "UNAUTHENTICATED")
        if exc.code() == grpc.StatusCode.PERMISSION_DENIED:
            return PermissionDenied(details or "PERMISSION_DENIED")
        return error_for_rpc(exc, details or exc.code().name)

    async def start_workflow(
        self, workflow_type: str, input: Any = None, *, workflow_id: str | None = None,
        concurrency_key: str | None = None, concurrency_limit: int | None = None,
    ) -> Started:
        """Returns (workflow id, created). An existing id returns that workflow, created=False.
        With `concurrency_key` and `concurrency_limit`, at most that many workflows of the key
        run at once (this one waits, pending, for its turn)."""
        request = WorkflowStart(workflow_type, input, workflow_id, concurrency_key, concurrency_limit).message()
        if self._starts is not None:
            return await self._starts.submit(request)
        return await self._start_one(request)

    async def _start_one(self, request: pb.StartWorkflowRequest) -> Started:
        reply = await self._call("StartWorkflow", request)
        return Started(reply.workflow_id, reply.created)

    async def start_workflows(self, starts: Sequence[WorkflowStart]) -> list[Started | DurableError]:
        """Start many workflows in as few StartWorkflows calls as fit (1000 and `batch_bytes` a
        call). Never raises for an item: each answers, in order, Started or its own error
        (its message names its index); a call that failed whole fails each of its items."""
        return await self._batches(self._start_batch, [s.message() for s in starts])

    async def _start_batch(
        self, requests: list[pb.StartWorkflowRequest], first: int | None = None
    ) -> list[Started | DurableError]:
        return await self._batch(
            "StartWorkflows", pb.StartWorkflowsRequest(starts=requests), requests, "starts", first,
            lambda o: Started(o.workflow_id, o.created), self._start_one, self._start_batch)

    async def signal_workflow(self, workflow_id: str, signal_type: str, payload: Any = None) -> int:
        reply = await self._call(
            "SignalWorkflow",
            pb.SignalWorkflowRequest(
                workflow_id=workflow_id, signal_type=signal_type, payload_json=_payload(payload)
            ),
        )
        return int(reply.sequence_num)

    async def query_workflow(self, workflow_id: str, name: str, arg: Any = None, *, timeout: float = 10.0) -> Any:
        """Ask query `name` of a workflow (answered by a worker from its replayed state; the
        history is not written). Raises TimedOut when no worker of its type answered."""
        request = pb.QueryWorkflowRequest(workflow_id=workflow_id, name=name, timeout=timeout,
                                          arg_json=encode_payload(to_json(arg)) if arg is not None else "")
        # the call's own deadline is later than the server's wait, so "nobody answered" comes
        # back as the control plane's TimedOut, not as this call's deadline
        reply = await self._call("QueryWorkflow", request, timeout=timeout + self.timeout)
        return _json(reply.result_json)

    async def cancel_workflow(self, workflow_id: str, reason: str = "", *, terminate: bool = False) -> int:
        """Ask the workflow to cancel (its code runs its finally blocks and ends it); with
        `terminate`, end it at once without running its code. Returns tasks cancelled at once."""
        reply = await self._call("CancelWorkflow", pb.CancelWorkflowRequest(
            workflow_id=workflow_id, reason=reason, terminate=terminate))
        return int(reply.cancelled_tasks)

    async def describe_workflow(self, workflow_id: str) -> WorkflowView:
        reply = await self._call("DescribeWorkflow", pb.DescribeWorkflowRequest(workflow_id=workflow_id))
        return replace(
            _workflow(reply.workflow),
            unserved_types=tuple(reply.unserved_types),
            children=tuple(_workflow(c) for c in reply.children),
            runs=tuple(RunView(r.run_number, r.status, _json(r.input_json), _json(r.next_input_json), r.events,
                               r.started_at, r.closed_at) for r in reply.runs),
        )

    async def list_workflows(
        self, *, status: str | None = None, workflow_type: str | None = None, limit: int = 50
    ) -> list[WorkflowView]:
        reply = await self._call(
            "ListWorkflows",
            pb.ListWorkflowsRequest(status=status or "", workflow_type=workflow_type or "", limit=limit),
        )
        return [_workflow(w) for w in reply.workflows]

    async def list_workflows_page(
        self,
        *,
        status: str | None = None,
        workflow_type: str | None = None,
        id_prefix: str | None = None,
        created_after: float = 0.0,
        created_before: float = 0.0,
        page_token: str = "",
        limit: int = 50,
    ) -> WorkflowPage:
        """A page of workflows, newest first; pass next_page_token back for the next one.
        Times are Unix seconds (0 = no bound)."""
        reply = await self._call(
            "ListWorkflows",
            pb.ListWorkflowsRequest(
                status=status or "", workflow_type=workflow_type or "", limit=limit, id_prefix=id_prefix or "",
                created_after=created_after, created_before=created_before, page_token=page_token,
            ),
        )
        return WorkflowPage([_workflow(w) for w in reply.workflows], reply.next_page_token)

    async def count_workflows(
        self,
        *,
        workflow_type: str | None = None,
        id_prefix: str | None = None,
        created_after: float = 0.0,
        created_before: float = 0.0,
        at_most: int = 0,
    ) -> dict[str, int]:
        """Workflows per status under the filters: every status, in lifecycle order. With
        `at_most`, each count stops there (a count equal to it means "at least that many")."""
        reply = await self._call(
            "CountWorkflows",
            pb.CountWorkflowsRequest(
                workflow_type=workflow_type or "", id_prefix=id_prefix or "",
                created_after=created_after, created_before=created_before, at_most=at_most,
            ),
        )
        return {c.status: int(c.count) for c in reply.counts}

    async def workflow_tasks(self, workflow_id: str, *, include_finished: bool = False, limit: int = 200) -> list[TaskView]:
        """The workflow's tasks, oldest first: pending and claimed ones, or all with include_finished."""
        reply = await self._call(
            "ListWorkflowTasks",
            pb.ListWorkflowTasksRequest(workflow_id=workflow_id, include_finished=include_finished, limit=limit),
        )
        return [
            TaskView(
                id=t.id, kind=t.kind, activity_id=t.activity_id, activity_type=t.activity_type, status=t.status,
                attempt=t.attempt, max_attempts=t.max_attempts, priority=t.priority, visible_at=t.visible_at,
                created_at=t.created_at, claimed_by=t.claimed_by, claimed_at=t.claimed_at,
                heartbeat_at=t.heartbeat_at, completed_at=t.completed_at, last_error=t.last_error,
                error_history=(_json(t.error_history_json) or {}).get("errors", []),
            )
            for t in reply.tasks
        ]

    async def history(self, workflow_id: str, after_seq: int = 0, *, page_size: int = 0) -> list[EventView]:
        """The whole history after `after_seq`, read page by page (`page_size` events per call,
        0 = the control plane's default; a page also ends at its byte budget)."""
        events: list[EventView] = []
        async for page in self.history_pages(workflow_id, after_seq, page_size=page_size):
            events.extend(page)
        return events

    async def history_pages(
        self, workflow_id: str, after_seq: int = 0, *, page_size: int = 0
    ) -> AsyncIterator[list[EventView]]:
        """The history after `after_seq`, one page (one GetHistory call) at a time."""
        while True:
            reply = await self._call(
                "GetHistory",
                pb.GetHistoryRequest(workflow_id=workflow_id, after_seq=after_seq, page_size=page_size),
            )
            yield [EventView(e.sequence_num, e.event_type, _json(e.event_data_json) or {}, e.created_at)
                   for e in reply.events]
            if not reply.has_more or reply.next_after_seq <= after_seq:
                return
            after_seq = reply.next_after_seq

    async def pin_workflow(self, workflow_id: str, pinned: bool = True) -> bool:
        """Keep a workflow for ever (retention never deletes it), or unpin it with pinned=False."""
        reply = await self._call("PinWorkflow", pb.PinWorkflowRequest(workflow_id=workflow_id, pinned=pinned))
        return bool(reply.pinned)

    async def full_history(self, workflow_id: str) -> list[EventView]:
        """Every event of the workflow (history() reads every page already)."""
        return await self.history(workflow_id)

    async def wait_workflow(self, workflow_id: str, timeout: float = 60.0) -> WorkflowView:
        """Wait until the workflow ends or `timeout` passes; returns its latest state."""
        reply = await self._call(
            "WaitWorkflow",
            pb.WaitWorkflowRequest(workflow_id=workflow_id, wait_seconds=min(timeout, 300.0)),
            timeout=min(timeout, 300.0) + self.timeout,
        )
        return _workflow(reply.workflow)

    async def enqueue_activity(
        self, activity_type: str, input: dict[str, Any] | None = None, *, priority: int = 0, max_attempts: int = 0,
        idempotency_key: str | None = None, concurrency_key: str | None = None, concurrency_limit: int | None = None,
    ) -> str:
        """Queue a standalone activity task (one outside any workflow); returns its id. With
        `idempotency_key`, the same key again within the control plane's window returns the
        first task's id (`enqueue` also says whether it was a duplicate). With
        `concurrency_key` and `concurrency_limit`, at most that many tasks of the key run at
        once, cluster-wide."""
        done = await self.enqueue(
            activity_type, input, priority=priority, max_attempts=max_attempts, idempotency_key=idempotency_key,
            concurrency_key=concurrency_key, concurrency_limit=concurrency_limit)
        return done.task_id

    async def enqueue(
        self, activity_type: str, input: dict[str, Any] | None = None, *, priority: int = 0, max_attempts: int = 0,
        idempotency_key: str | None = None, concurrency_key: str | None = None, concurrency_limit: int | None = None,
    ) -> Enqueued:
        """enqueue_activity, answering the task's id and whether the key made it earlier."""
        request = Activity(activity_type, input, priority, max_attempts, idempotency_key,
                           concurrency_key, concurrency_limit).message()
        if self._enqueues is not None:
            return await self._enqueues.submit(request)
        return await self._enqueue_one(request)

    async def _enqueue_one(self, request: pb.EnqueueActivityRequest) -> Enqueued:
        reply = await self._call("EnqueueActivity", request)
        return Enqueued(str(reply.task_id), bool(reply.duplicate))

    async def enqueue_activities(self, activities: Sequence[Activity]) -> list[Enqueued | DurableError]:
        """Queue many standalone activities in as few EnqueueActivities calls as fit (1000 and
        `batch_bytes` a call). Never raises for an item: each answers, in order, Enqueued or its
        own error (its message names its index); a call that failed whole fails each of its items."""
        return await self._batches(self._enqueue_batch, [a.message() for a in activities])

    async def _enqueue_batch(
        self, requests: list[pb.EnqueueActivityRequest], first: int | None = None
    ) -> list[Enqueued | DurableError]:
        return await self._batch(
            "EnqueueActivities", pb.EnqueueActivitiesRequest(activities=requests), requests, "activities", first,
            lambda o: Enqueued(o.task_id, o.duplicate), self._enqueue_one, self._enqueue_batch)

    # -- batches: one call per chunk, one outcome per item ------------------------------------

    async def _batches(
        self, send: Callable[[list[M], int], Awaitable[list[R | DurableError]]], requests: list[M]
    ) -> list[R | DurableError]:
        out: list[R | DurableError] = []
        for chunk in chunks(requests, self.batch_bytes, MAX_BATCH_ITEMS):
            out += await send(chunk, len(out))
        return out

    async def _batch(
        self, method: str, request: Message, items: list[M], field: str, first: int | None,
        result: Callable[[Any], R], one: Callable[[M], Awaitable[R]],
        again: Callable[[list[M], int | None], Awaitable[list[R | DurableError]]],
    ) -> list[R | DurableError]:
        """One batched call. Item errors keep the control plane's message without its index in
        this call, and with `first`, the item's index in the caller's list instead. A batch
        gRPC refuses as too large goes again in halves; an older control plane without the
        batched call gets single calls (and coalescing stops)."""
        try:
            reply = await getattr(self._stub, method)(request, timeout=self.timeout)
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
                self._enqueues = self._starts = None
                return [await self._settled(one(item)) for item in items]
            error = self._error(exc)
            if isinstance(error, MessageTooLarge) and len(items) > 1:
                half = len(items) // 2
                return [*await again(items[:half], first),
                        *await again(items[half:], None if first is None else first + half)]
            return [error] * len(items)
        out: list[R | DurableError] = []
        for i, o in enumerate(reply.outcomes):
            if not o.code:
                out.append(result(o))
                continue
            message = _ITEM_PREFIX.sub("", o.message)
            code = grpc.StatusCode[o.code] if o.code in grpc.StatusCode.__members__ else grpc.StatusCode.UNKNOWN
            out.append(error_for(code, message if first is None else f"{field}[{first + i}]: {message}"))
        missing = len(items) - len(out)
        return out + [DurableError(f"{method} answered {len(out)} outcomes for {len(items)} items")] * missing

    @staticmethod
    async def _settled(call: Awaitable[R]) -> R | DurableError:
        try:
            return await call
        except DurableError as exc:
            return exc

    # -- bulk actions: one batch a call; call again with next_page_token until it is "" ---------

    async def bulk_cancel_workflows(
        self, selection: WorkflowSelection, *, reason: str = "", terminate: bool = False, dry_run: bool = False,
        page_token: str = "", batch_size: int = 0,
    ) -> BulkResult:
        """Cancel the next batch of pending and running workflows of `selection` (a dry run
        counts them all and changes nothing)."""
        return BulkResult.of(await self._call("BulkCancelWorkflows", pb.BulkWorkflowsRequest(
            filter=selection.message(), reason=reason, terminate=terminate, dry_run=dry_run,
            page_token=page_token, batch_size=batch_size)))

    async def bulk_delete_workflows(
        self, selection: WorkflowSelection, *, dry_run: bool = False, page_token: str = "", batch_size: int = 0,
    ) -> BulkResult:
        """Delete the next batch of ended, unpinned workflows of `selection` (admin scope)."""
        return BulkResult.of(await self._call("BulkDeleteWorkflows", pb.BulkWorkflowsRequest(
            filter=selection.message(), dry_run=dry_run, page_token=page_token, batch_size=batch_size)))

    async def bulk_requeue_dead_letters(
        self, selection: DeadLetterSelection, *, dry_run: bool = False, page_token: str = "", batch_size: int = 0,
    ) -> BulkResult:
        """Requeue the next batch of unresolved dead letters of `selection`."""
        return BulkResult.of(await self._call("BulkRequeueDeadLetters", pb.BulkDeadLettersRequest(
            filter=selection.message(), dry_run=dry_run, page_token=page_token, batch_size=batch_size)))

    async def bulk_delete_dead_letters(
        self, selection: DeadLetterSelection, *, dry_run: bool = False, page_token: str = "", batch_size: int = 0,
    ) -> BulkResult:
        """Delete the next batch of dead letters of `selection` (admin scope)."""
        return BulkResult.of(await self._call("BulkDeleteDeadLetters", pb.BulkDeadLettersRequest(
            filter=selection.message(), dry_run=dry_run, page_token=page_token, batch_size=batch_size)))

    async def set_rate_limit(self, activity_type: str, rate: float, *, burst: float = 0.0) -> pb.RateLimitInfo:
        """At most `rate` starts per second of `activity_type` across the cluster (`burst` at once
        after a quiet spell; 0: a tenth of a second's starts, at least 1). Setting it again
        retunes it."""
        return await self._call(  # type: ignore[no-any-return]
            "SetRateLimit", pb.SetRateLimitRequest(activity_type=activity_type, rate=rate, burst=burst)
        )

    async def delete_rate_limit(self, activity_type: str) -> None:
        await self._call("DeleteRateLimit", pb.DeleteRateLimitRequest(activity_type=activity_type))

    async def rate_limits(self) -> tuple[list[pb.RateLimitInfo], list[pb.ConcurrencyKeyInfo]]:
        """The rate limits (with tokens, waiting and running tasks) and the busiest concurrency keys."""
        reply = await self._call("ListRateLimits", pb.ListRateLimitsRequest())
        return list(reply.rate_limits), list(reply.busiest_keys)

    async def list_dead_letters(self, activity_type: str | None = None, limit: int = 100) -> list[pb.DeadLetter]:
        reply = await self._call("ListDeadLetters", pb.ListDeadLettersRequest(activity_type=activity_type or "", limit=limit))
        return list(reply.entries)

    async def dead_letters_page(
        self, *, activity_type: str | None = None, error_contains: str | None = None, page_token: str = "",
        limit: int = 100,
    ) -> tuple[list[pb.DeadLetter], str]:
        """A page of dead letters, newest first, and the next page's token ("" at the end)."""
        reply = await self._call(
            "ListDeadLetters",
            pb.ListDeadLettersRequest(
                activity_type=activity_type or "", error_contains=error_contains or "", page_token=page_token,
                limit=limit,
            ),
        )
        return list(reply.entries), reply.next_page_token

    async def delete_dead_letter(self, dead_letter_id: str) -> None:
        """Delete a dead-letter entry (and a standalone activity's dead task with it)."""
        await self._call("DeleteDeadLetter", pb.DeleteDeadLetterRequest(id=dead_letter_id))

    async def requeue_dead_letter(self, dead_letter_id: str) -> str:
        reply = await self._call("RequeueDeadLetter", pb.RequeueDeadLetterRequest(id=dead_letter_id))
        return str(reply.task_id)

    async def queue_stats(
        self, activity_types: list[str] | None = None, workflow_types: list[str] | None = None
    ) -> list[pb.TypeStats]:
        reply = await self._call(
            "GetQueueStats",
            pb.GetQueueStatsRequest(activity_types=activity_types or [], workflow_types=workflow_types or []),
        )
        return list(reply.types)

    async def throughput(
        self, activity_types: list[str] | None = None, workflow_types: list[str] | None = None, *,
        since: float = 0.0, bucket_seconds: int = 60,
    ) -> tuple[list[pb.TypeThroughput], float]:
        """Tasks completed per type in buckets of `bucket_seconds` from `since` (Unix seconds; 0 =
        an hour ago) to now, oldest bucket first, and the first bucket's start. With no types
        named, every type that completed tasks then."""
        reply = await self._call(
            "GetThroughput",
            pb.GetThroughputRequest(
                activity_types=activity_types or [], workflow_types=workflow_types or [], since=since,
                bucket_seconds=bucket_seconds,
            ),
        )
        return list(reply.types), reply.since

    async def list_workers(self, worker_group: str | None = None, include_stopped: bool = False) -> list[pb.WorkerInfo]:
        reply = await self._call(
            "ListWorkers", pb.ListWorkersRequest(worker_group=worker_group or "", include_stopped=include_stopped)
        )
        return list(reply.workers)

    async def circuit_breakers(self) -> list[pb.CircuitBreakerInfo]:
        """Every configured circuit breaker (keyed by activity type) and its state."""
        reply = await self._call("ListCircuitBreakers", pb.ListCircuitBreakersRequest())
        return list(reply.breakers)

    # -- schedules -------------------------------------------------------------------------

    async def create_schedule(
        self,
        schedule_id: str,
        *,
        workflow_type: str | None = None,
        activity_type: str | None = None,
        input: Any = None,
        cron: str | None = None,
        interval_seconds: float | None = None,
        time_zone: str = "UTC",
        overlap_policy: str = "skip",
        catchup_window_seconds: float = 60.0,
        jitter_seconds: float = 0.0,
        start_at: datetime | float | None = None,
        end_at: datetime | float | None = None,
        paused: bool = False,
        note: str = "",
    ) -> ScheduleView:
        """A schedule that starts a workflow (or enqueues an activity) with `input` on every tick
        of `cron` (five fields, or six with seconds first, in `time_zone`) or every
        `interval_seconds`. Each tick's workflow is named "<schedule_id>-<tick %Y%m%dT%H%M%SZ>".
        `overlap_policy` (skip, buffer_one, allow_all, cancel_previous, terminate_previous)
        decides a tick that comes while the last run goes on; a tick later than
        `catchup_window_seconds` (downtime) is missed; `jitter_seconds` delays each tick by up
        to that much."""
        reply = await self._call("CreateSchedule", pb.CreateScheduleRequest(schedule=pb.Schedule(
            id=schedule_id, workflow_type=workflow_type or "", activity_type=activity_type or "",
            input_json=_payload(input), cron=cron or "", interval_seconds=interval_seconds or 0.0,
            time_zone=time_zone, overlap_policy=overlap_policy, catchup_window_seconds=catchup_window_seconds,
            jitter_seconds=jitter_seconds, start_at=unix(start_at), end_at=unix(end_at), paused=paused, note=note,
        )))
        return schedule_view(reply.schedule)

    async def list_schedules(self, *, id_prefix: str | None = None, limit: int = 1000) -> list[ScheduleView]:
        """Every schedule (or those whose id starts with `id_prefix`), in id order, page by page."""
        out: list[ScheduleView] = []
        token = ""
        while True:
            reply = await self._call("ListSchedules", pb.ListSchedulesRequest(
                id_prefix=id_prefix or "", limit=min(limit - len(out), 1000), page_token=token))
            out += [schedule_view(s) for s in reply.schedules]
            token = reply.next_page_token
            if not token or len(out) >= limit:
                return out

    async def describe_schedule(self, schedule_id: str, *, upcoming: int = 0) -> tuple[ScheduleView, list[float]]:
        """The schedule, and its next `upcoming` ticks (Unix seconds)."""
        reply = await self._call("DescribeSchedule", pb.DescribeScheduleRequest(id=schedule_id, upcoming=upcoming))
        return schedule_view(reply.schedule), list(reply.upcoming_ticks)

    async def pause_schedule(self, schedule_id: str, note: str = "") -> ScheduleView:
        reply = await self._call("PauseSchedule", pb.PauseScheduleRequest(id=schedule_id, note=note))
        return schedule_view(reply.schedule)

    async def resume_schedule(self, schedule_id: str, note: str = "") -> ScheduleView:
        """Run again from the next tick after now (ticks that fell while paused do not fire)."""
        reply = await self._call("ResumeSchedule", pb.ResumeScheduleRequest(id=schedule_id, note=note))
        return schedule_view(reply.schedule)

    async def trigger_schedule(self, schedule_id: str, *, overlap_policy: str | None = None) -> tuple[str, str]:
        """Run it now by its overlap policy (or the one given). Returns (outcome, run id):
        started, exists, skipped, buffered or cancel_requested; the id is "" unless one started."""
        reply = await self._call("TriggerSchedule", pb.TriggerScheduleRequest(
            id=schedule_id, overlap_policy=overlap_policy or ""))
        return reply.outcome, reply.run_id

    async def backfill_schedule(
        self, schedule_id: str, start: datetime | float, end: datetime | float
    ) -> tuple[int, int]:
        """Start the run of every tick in [start, end] (at most 1000); returns (started, already
        existing)."""
        reply = await self._call("BackfillSchedule", pb.BackfillScheduleRequest(
            id=schedule_id, start_time=unix(start), end_time=unix(end)), timeout=max(self.timeout, 120.0))
        return int(reply.started), int(reply.existing)

    async def delete_schedule(self, schedule_id: str) -> None:
        """Delete the schedule; the runs it started go on."""
        await self._call("DeleteSchedule", pb.DeleteScheduleRequest(id=schedule_id))
