"""The batched producer calls of durable.v1.ClientService (a part of ClientService, mixed in):
EnqueueActivities and StartWorkflows.

Each item is checked on its own and answers on its own, in request order: a bad item fails
alone, with a message that starts with its index ("activities[3]: input_json is not valid
JSON: ..."). A call over the count or byte limit is refused whole, in one line naming the
limit, before anything is written. Plain activities go in one INSERT in one transaction; keyed
ones (idempotency_key) take the keyed path one by one, since each waits on its own key, and
so do activities and starts with a concurrency key (the single calls' inserts, which carry it).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import asyncpg
import grpc

from durable.common import tracing
from durable.common.errors import DurableError, InvalidArgument
from durable.common.payloads import Checked
from durable.common.status import code_for
from durable.controlplane.grpc import convert
from durable.controlplane.grpc.errors import required, rpc
from durable.controlplane.store import Store
from durable.controlplane.store.base import check_name
from durable.controlplane.store.batches import BatchStore, NewActivity, NewWorkflow
from durable.controlplane.store.idempotency import IdempotencyStore
from durable.proto.v1 import durable_pb2 as pb

# Items per call, and bytes per call (the request as it came): one transaction's worth.
MAX_BATCH_ITEMS = 1000
MAX_BATCH_BYTES = 8 * 1024 * 1024


def check_batch(call: str, field: str, count: int, size: int) -> None:
    """Refuse a batch over the limits, whole, before anything is written."""
    if count > MAX_BATCH_ITEMS:
        raise InvalidArgument(
            f"{call} takes at most {MAX_BATCH_ITEMS} {field} per call, not {count}; split the batch")
    if size > MAX_BATCH_BYTES:
        raise InvalidArgument(
            f"{call} takes at most {MAX_BATCH_BYTES} bytes per call, not {size}; split the batch")


def _item_error(field: str, index: int, exc: DurableError) -> DurableError:
    """The item's error, of the type the single call raises, its message naming the item."""
    return type(exc)(f"{field}[{index}]: {exc}")


def incoming_traceparent(context: Any) -> str | None:
    for key, value in context.invocation_metadata() or ():
        if key == tracing.TRACEPARENT:
            return str(value)
    return None


class BatchCalls:
    store: Store
    batches: BatchStore
    idempotency: IdempotencyStore
    limit: int

    def _activity(self, a: pb.EnqueueActivityRequest, trace: tuple[str, str] | None) -> NewActivity:
        activity_type = check_name(required(a.activity_type, "activity_type"), "activity_type")
        text = convert.checked(a.input_json, "input_json", self.limit).text
        return NewActivity(activity_type, text, convert.parsed_options(a.options), trace)

    @rpc
    async def EnqueueActivities(
        self, request: pb.EnqueueActivitiesRequest, context: Any
    ) -> pb.EnqueueActivitiesResponse:
        check_batch("EnqueueActivities", "activities", len(request.activities), request.ByteSize())
        outcomes: list[pb.EnqueueOutcome | DurableError | None] = [None] * len(request.activities)
        with tracing.span("durable.activity.enqueue", incoming_traceparent(context), **{
            "durable.batch.size": len(request.activities),
        }) as traceparent:
            trace = tracing.parse_traceparent(traceparent)
            plain: list[tuple[int, NewActivity]] = []
            keyed: list[tuple[int, NewActivity, str]] = []
            gated: list[tuple[int, NewActivity]] = []  # with a concurrency key: the single path's insert
            for index, a in enumerate(request.activities):
                try:
                    item = self._activity(a, trace)
                    if a.idempotency_key:
                        check_name(a.idempotency_key, "idempotency_key")
                        keyed.append((index, item, a.idempotency_key))
                    elif item.options.concurrency_key is not None:
                        gated.append((index, item))
                    else:
                        plain.append((index, item))
                except DurableError as exc:
                    outcomes[index] = _item_error("activities", index, exc)
            for index, task_id in await self._enqueue_plain(plain):
                outcomes[index] = task_id
            for index, item in gated:
                try:
                    gated_id = await self.store.enqueue_activity(
                        item.activity_type, Checked(item.input_json, None), options=item.options, trace=item.trace)
                    outcomes[index] = pb.EnqueueOutcome(task_id=str(gated_id))
                except DurableError as exc:
                    outcomes[index] = _item_error("activities", index, exc)
            for index, item, key in keyed:
                try:
                    done = await self.idempotency.enqueue_activity_once(
                        item.activity_type, Checked(item.input_json, None), key,
                        options=item.options, trace=item.trace)
                    outcomes[index] = pb.EnqueueOutcome(task_id=str(done.task_id), duplicate=done.duplicate)
                except DurableError as exc:
                    outcomes[index] = _item_error("activities", index, exc)
        return pb.EnqueueActivitiesResponse(outcomes=[_enqueue_outcome(o) for o in outcomes])

    async def _enqueue_plain(
        self, plain: Sequence[tuple[int, NewActivity]]
    ) -> list[tuple[int, pb.EnqueueOutcome | DurableError]]:
        """One INSERT for all; should the database refuse it whole (a value no check caught),
        each item alone, so only the bad one fails."""
        if not plain:
            return []
        try:
            ids = await self.batches.enqueue_activities([item for _, item in plain])
            return [(index, pb.EnqueueOutcome(task_id=str(task_id))) for (index, _), task_id in zip(plain, ids, strict=True)]
        except (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError):
            if len(plain) == 1:
                raise
        out: list[tuple[int, pb.EnqueueOutcome | DurableError]] = []
        for index, item in plain:
            try:
                [task_id] = await self.batches.enqueue_activities([item])
                out.append((index, pb.EnqueueOutcome(task_id=str(task_id))))
            except (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError) as exc:
                out.append((index, InvalidArgument(f"activities[{index}]: refused by the database: {exc}")))
        return out

    @rpc
    async def StartWorkflows(self, request: pb.StartWorkflowsRequest, context: Any) -> pb.StartWorkflowsResponse:
        check_batch("StartWorkflows", "starts", len(request.starts), request.ByteSize())
        outcomes: list[pb.StartOutcome | DurableError | None] = [None] * len(request.starts)
        with tracing.span("durable.workflow.start", incoming_traceparent(context), **{
            "durable.batch.size": len(request.starts),
        }) as traceparent:
            trace = tracing.parse_traceparent(traceparent)
            items: list[tuple[int, NewWorkflow]] = []
            for index, s in enumerate(request.starts):
                try:
                    workflow_type = check_name(required(s.workflow_type, "workflow_type"), "workflow_type")
                    workflow_id = check_name(s.workflow_id, "workflow_id") if s.workflow_id else str(uuid.uuid4())
                    text = convert.checked(s.input_json, "input_json", self.limit).text
                    if s.concurrency_key or s.concurrency_limit:  # the single path's start, with its key
                        wf, created = await self.store.start_workflow(
                            workflow_type, Checked(text, None), workflow_id, trace=trace,  # type: ignore[arg-type]
                            concurrency_key=s.concurrency_key or None, concurrency_limit=s.concurrency_limit or None)
                        outcomes[index] = pb.StartOutcome(workflow_id=wf.id, created=created)
                        continue
                    items.append((index, NewWorkflow(workflow_id, workflow_type, text, trace)))
                except DurableError as exc:
                    outcomes[index] = _item_error("starts", index, exc)
            started = await self.batches.start_workflows([item for _, item in items])
            for (index, _), done in zip(items, started, strict=True):
                if isinstance(done, DurableError):
                    outcomes[index] = _item_error("starts", index, done)
                else:
                    outcomes[index] = pb.StartOutcome(workflow_id=done[0], created=done[1])
        return pb.StartWorkflowsResponse(outcomes=[_start_outcome(o) for o in outcomes])


def _failure(exc: DurableError) -> tuple[str, str]:
    return (code_for(exc) or grpc.StatusCode.INTERNAL).name, str(exc)


def _enqueue_outcome(o: pb.EnqueueOutcome | DurableError | None) -> pb.EnqueueOutcome:
    if isinstance(o, pb.EnqueueOutcome):
        return o
    code, message = _failure(o if o is not None else DurableError("not handled"))
    return pb.EnqueueOutcome(code=code, message=message)


def _start_outcome(o: pb.StartOutcome | DurableError | None) -> pb.StartOutcome:
    if isinstance(o, pb.StartOutcome):
        return o
    code, message = _failure(o if o is not None else DurableError("not handled"))
    return pb.StartOutcome(code=code, message=message)
