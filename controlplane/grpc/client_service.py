"""durable.v1.ClientService: start, signal and inspect workflows; the DLQ; statistics; schedules
(their calls in schedule_service)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import grpc

from durable.common import tracing
from durable.common.errors import InvalidArgument, TimedOut, WrongState
from durable.controlplane.dispatch import TaskSignals, ended_key
from durable.controlplane.grpc import budget, convert
from durable.controlplane.grpc.batch_calls import BatchCalls, incoming_traceparent
from durable.controlplane.grpc.errors import generic_handler, required, rpc
from durable.controlplane.grpc.schedule_service import ScheduleCalls
from durable.controlplane.store import Store
from durable.controlplane.store.browse import encode_page_token
from durable.controlplane.store.served_types import ServedTypeStore, unserved_of
from durable.controlplane.store.batches import BatchStore
from durable.controlplane.store.bulk import BulkActions, BulkOutcome, DeadLetterFilter, WorkflowFilter
from durable.controlplane.store.idempotency import IdempotencyStore
from durable.controlplane.store import lineage
from durable.controlplane.store.rate_limits import RateLimitStore
from durable.controlplane.store.workflow_queries import WorkflowQueryStore
from durable.proto.v1 import durable_pb2 as pb
from durable.proto.v1 import durable_pb2_grpc as pb_grpc

MAX_WAIT_SECONDS = 300.0
# WaitWorkflow's fallback re-check, for an end whose NOTIFY was lost (listener reconnecting).
WAIT_RECHECK_SECONDS = 10.0
DEFAULT_BUCKET_SECONDS = 60
MAX_BUCKET_SECONDS = 86_400


DEFAULT_QUERY_TIMEOUT = 10.0


class ClientService(ScheduleCalls, BatchCalls, pb_grpc.ClientServiceServicer):
    def __init__(
        self, store: Store, *, max_payload_bytes: int, max_response_bytes: int = 64 * 1024 * 1024,
        queries: WorkflowQueryStore | None = None, signals: TaskSignals | None = None,
        types: ServedTypeStore | None = None,
        idempotency: IdempotencyStore | None = None,
        rate_limits: RateLimitStore | None = None,
    ) -> None:
        self.store = store
        self.types = types
        self.idempotency = idempotency or IdempotencyStore(store.pool, clock=store.clock, max_payload_bytes=max_payload_bytes)
        self.bulk = BulkActions(store)
        self.rate_limits = rate_limits or RateLimitStore(store.pool, clock=store.clock)
        self.batches = BatchStore(
            store.pool, clock=store.clock, max_payload_bytes=max_payload_bytes,
            workflow_task_max_attempts=store.workflow_task_max_attempts, rng=store.rng, observer=store.observer,
        )
        self.limit = max_payload_bytes
        self.max_response_bytes = max_response_bytes
        self.queries = queries
        self.signals = signals or TaskSignals()

    @rpc
    async def StartWorkflow(self, request: pb.StartWorkflowRequest, context: Any) -> pb.StartWorkflowResponse:
        input_value = convert.load(request.input_json, "input_json", self.limit)
        workflow_type = required(request.workflow_type, "workflow_type")
        with tracing.span("durable.workflow.start", incoming_traceparent(context), **{
            "durable.workflow.type": workflow_type, "durable.workflow.id": request.workflow_id,
        }) as traceparent:
            wf, created = await self.store.start_workflow(
                workflow_type, input_value, request.workflow_id or None,
                trace=tracing.parse_traceparent(traceparent),
                concurrency_key=request.concurrency_key or None, concurrency_limit=request.concurrency_limit or None,
            )
        return pb.StartWorkflowResponse(workflow_id=wf.id, created=created)

    @rpc
    async def SignalWorkflow(self, request: pb.SignalWorkflowRequest, context: Any) -> pb.SignalWorkflowResponse:
        payload = convert.load(request.payload_json, "payload_json", self.limit)
        seq = await self.store.signal_workflow(
            required(request.workflow_id, "workflow_id"), required(request.signal_type, "signal_type"), payload
        )
        return pb.SignalWorkflowResponse(sequence_num=seq)

    @rpc
    async def QueryWorkflow(self, request: pb.QueryWorkflowRequest, context: Any) -> pb.QueryWorkflowResponse:
        """Ask, then wait for a worker's answer (woken by its NOTIFY; re-checked every 0.5 s)."""
        workflow_id = required(request.workflow_id, "workflow_id")
        name = required(request.name, "name")
        arg = convert.load(request.arg_json, "arg_json", self.limit) if request.arg_json else None
        timeout = request.timeout or DEFAULT_QUERY_TIMEOUT
        if self.queries is None:
            raise InvalidArgument("this control plane answers no queries")
        query_id = uuid.uuid4()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        with self.signals.waiting([f"answer:{query_id}"]) as answered:
            workflow_type = await self.queries.ask_query(query_id, workflow_id, name, arg, timeout)
            try:
                while True:
                    outcome = await self.queries.query_outcome(query_id)
                    if outcome is not None and outcome[0] == "answered":
                        return pb.QueryWorkflowResponse(result_json=outcome[1] or "null")
                    if outcome is not None and outcome[0] == "failed":
                        error = outcome[2] or {}
                        raise WrongState(f"query {name!r} of workflow {workflow_id!r} failed: "
                                         f"{error.get('type', 'Error')}: {error.get('message', '')}")
                    remaining = deadline - loop.time()
                    if remaining <= 0:
                        raise TimedOut(f"no worker of workflow type {workflow_type!r} answered query {name!r} "
                                       f"within {timeout:g} s; is a worker serving {workflow_type} running?")
                    answered.clear()
                    try:
                        await asyncio.wait_for(answered.wait(), timeout=min(remaining, 0.5))
                    except TimeoutError:
                        pass
            finally:
                await self.queries.drop_query(query_id)

    @rpc
    async def CancelWorkflow(self, request: pb.CancelWorkflowRequest, context: Any) -> pb.CancelWorkflowResponse:
        n = await self.store.cancel_workflow(
            required(request.workflow_id, "workflow_id"), request.reason, terminate=request.terminate)
        return pb.CancelWorkflowResponse(cancelled_tasks=n)

    @rpc
    async def DescribeWorkflow(self, request: pb.DescribeWorkflowRequest, context: Any) -> pb.DescribeWorkflowResponse:
        wf = await self.store.get_workflow(required(request.workflow_id, "workflow_id"))
        unserved = await self.types.unserved_for_workflow(wf.id) if self.types and not wf.is_terminal else []
        children = await lineage.children_of(self.store, wf.id)
        runs = await lineage.runs_of(self.store, wf.id) if wf.run_number > 1 else []
        return pb.DescribeWorkflowResponse(
            workflow=convert.workflow(wf), children=[convert.workflow(c) for c in children],
            runs=[convert.workflow_run(r) for r in runs], unserved_types=unserved)

    @rpc
    async def ListWorkflows(self, request: pb.ListWorkflowsRequest, context: Any) -> pb.ListWorkflowsResponse:
        rows, next_token = await self.store.browse_workflows(
            status=request.status or None,
            workflow_type=request.workflow_type or None,
            id_prefix=request.id_prefix or None,
            created_after=convert.time_bound(request.created_after, "created_after"),
            created_before=convert.time_bound(request.created_before, "created_before"),
            page_token=request.page_token or None,
            limit=request.limit or 50,
        )
        # 1,000 workflows with 1 MiB inputs would be over any message: a page also ends where
        # its byte budget does, and the next page starts after its last row
        kept, rest = budget.pack_at_least_one([convert.workflow(w) for w in rows], self.max_response_bytes)
        if rest:
            last = rows[len(kept) - 1]
            next_token = encode_page_token(last.created_at, last.id)
        return pb.ListWorkflowsResponse(workflows=kept, next_page_token=next_token or "")

    @rpc
    async def CountWorkflows(self, request: pb.CountWorkflowsRequest, context: Any) -> pb.CountWorkflowsResponse:
        counts = await self.store.count_workflows(
            workflow_type=request.workflow_type or None,
            id_prefix=request.id_prefix or None,
            created_after=convert.time_bound(request.created_after, "created_after"),
            created_before=convert.time_bound(request.created_before, "created_before"),
            at_most=request.at_most or None,
        )
        capped = request.at_most or None
        return pb.CountWorkflowsResponse(
            counts=[pb.StatusCount(status=s, count=n, at_least=capped is not None and n >= capped)
                    for s, n in counts.items()]
        )

    @rpc
    async def ListWorkflowTasks(
        self, request: pb.ListWorkflowTasksRequest, context: Any
    ) -> pb.ListWorkflowTasksResponse:
        tasks = await self.store.workflow_tasks(
            required(request.workflow_id, "workflow_id"),
            include_finished=request.include_finished,
            limit=request.limit or 200,
        )
        return pb.ListWorkflowTasksResponse(tasks=[convert.task_info(t) for t in tasks])

    @rpc
    async def ListCircuitBreakers(
        self, request: pb.ListCircuitBreakersRequest, context: Any
    ) -> pb.ListCircuitBreakersResponse:
        rows = await self.store.list_circuit_breakers()
        return pb.ListCircuitBreakersResponse(breakers=[convert.breaker(b) for b in rows])

    @rpc
    async def SetRateLimit(self, request: pb.SetRateLimitRequest, context: Any) -> pb.RateLimitInfo:
        limit = await self.rate_limits.set_rate_limit(
            required(request.activity_type, "activity_type"), request.rate, request.burst or None
        )
        self.store.forget_breaker_keys()  # this replica applies it at once (others within seconds)
        return convert.rate_limit(limit)

    @rpc
    async def DeleteRateLimit(self, request: pb.DeleteRateLimitRequest, context: Any) -> pb.DeleteRateLimitResponse:
        await self.rate_limits.delete_rate_limit(required(request.activity_type, "activity_type"))
        self.store.forget_breaker_keys()
        return pb.DeleteRateLimitResponse()

    @rpc
    async def ListRateLimits(self, request: pb.ListRateLimitsRequest, context: Any) -> pb.ListRateLimitsResponse:
        limits = await self.rate_limits.list_rate_limits()
        keys = await self.rate_limits.busiest_keys()
        return pb.ListRateLimitsResponse(
            rate_limits=[convert.rate_limit(r) for r in limits],
            busiest_keys=[pb.ConcurrencyKeyInfo(key=k.key, running=k.running, limit=k.limit) for k in keys],
        )

    @rpc
    async def GetHistory(self, request: pb.GetHistoryRequest, context: Any) -> pb.GetHistoryResponse:
        if request.after_seq < 0:
            raise InvalidArgument("after_seq must be >= 0")
        size = budget.page_size(request.page_size)
        events = await self.store.load_events(
            required(request.workflow_id, "workflow_id"), request.after_seq, limit=size + 1
        )
        return budget.history_page([convert.event(e) for e in events], size, request.after_seq, self.max_response_bytes)

    @rpc
    async def WaitWorkflow(self, request: pb.WaitWorkflowRequest, context: Any) -> pb.DescribeWorkflowResponse:
        """Read the workflow, then sleep until it ends: the NOTIFY of its end (on the control
        plane's one listening connection) wakes the call, which reads it once more. A re-check
        every WAIT_RECHECK_SECONDS covers a notification lost while the listener reconnected
        (it wakes every waiter when it is back)."""
        workflow_id = required(request.workflow_id, "workflow_id")
        if not 0 <= request.wait_seconds <= MAX_WAIT_SECONDS:
            raise InvalidArgument(f"wait_seconds must be between 0 and {MAX_WAIT_SECONDS:.0f}")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + request.wait_seconds
        with self.signals.waiting([ended_key(workflow_id)]) as ended:
            while True:
                ended.clear()  # before the read: an end committed after it sets it again
                wf = await self.store.get_workflow(workflow_id)
                remaining = deadline - loop.time()
                if wf.is_terminal or remaining <= 0:
                    return pb.DescribeWorkflowResponse(workflow=convert.workflow(wf))
                try:
                    await asyncio.wait_for(ended.wait(), timeout=min(remaining, WAIT_RECHECK_SECONDS))
                except TimeoutError:
                    pass

    @rpc
    async def EnqueueActivity(self, request: pb.EnqueueActivityRequest, context: Any) -> pb.EnqueueActivityResponse:
        # checked once here and passed on as text (not decoded to be encoded again), with
        # options parsed once per distinct encoding: the store only writes
        input_checked = convert.checked(request.input_json, "input_json", self.limit)
        activity_type = required(request.activity_type, "activity_type")
        with tracing.span("durable.activity.enqueue", incoming_traceparent(context), **{
            "durable.activity.type": activity_type,
        }) as traceparent:
            options = convert.parsed_options(request.options)
            trace = tracing.parse_traceparent(traceparent)
            if request.idempotency_key:
                done = await self.idempotency.enqueue_activity_once(
                    activity_type, input_checked, request.idempotency_key, options=options, trace=trace)
                return pb.EnqueueActivityResponse(task_id=str(done.task_id), duplicate=done.duplicate)
            task_id = await self.store.enqueue_activity(activity_type, input_checked, options=options, trace=trace)
        return pb.EnqueueActivityResponse(task_id=str(task_id))

    @rpc
    async def ListDeadLetters(self, request: pb.ListDeadLettersRequest, context: Any) -> pb.ListDeadLettersResponse:
        rows, next_token = await self.store.browse_dead_letters(
            activity_type=request.activity_type or None,
            error_contains=request.error_contains or None,
            page_token=request.page_token or None,
            limit=request.limit or 100,
        )
        kept, rest = budget.pack_at_least_one([convert.dead_letter(d) for d in rows], self.max_response_bytes)
        if rest:
            last = rows[len(kept) - 1]
            next_token = encode_page_token(last.dead_at, last.id)
        return pb.ListDeadLettersResponse(entries=kept, next_page_token=next_token or "")

    @rpc
    async def RequeueDeadLetter(self, request: pb.RequeueDeadLetterRequest, context: Any) -> pb.RequeueDeadLetterResponse:
        task_id = await self.store.requeue_dead_letter(required(request.id, "id"))
        return pb.RequeueDeadLetterResponse(task_id=str(task_id))

    @rpc
    async def DeleteDeadLetter(self, request: pb.DeleteDeadLetterRequest, context: Any) -> pb.DeleteDeadLetterResponse:
        await self.store.delete_dead_letter(required(request.id, "id"))
        return pb.DeleteDeadLetterResponse()

    @rpc
    async def PinWorkflow(self, request: pb.PinWorkflowRequest, context: Any) -> pb.PinWorkflowResponse:
        pinned = await self.store.pin_workflow(required(request.workflow_id, "workflow_id"), request.pinned)
        return pb.PinWorkflowResponse(pinned=pinned)

    @rpc
    async def GetQueueStats(self, request: pb.GetQueueStatsRequest, context: Any) -> pb.GetQueueStatsResponse:
        stats = await self.store.queue_stats(list(request.activity_types), list(request.workflow_types))
        unserved = {(s.kind, s.type) for s in unserved_of(stats, await self.types.served_types())} if self.types else set()
        return pb.GetQueueStatsResponse(
            types=[convert.type_stats(s, unserved=(s.kind, s.type) in unserved) for s in stats],
            as_of=convert.ts(self.store.now()),
        )

    @rpc
    async def GetThroughput(self, request: pb.GetThroughputRequest, context: Any) -> pb.GetThroughputResponse:
        bucket = request.bucket_seconds or DEFAULT_BUCKET_SECONDS
        if not (1 <= bucket <= MAX_BUCKET_SECONDS and bucket == int(bucket)):  # NaN fails too
            raise InvalidArgument(f"bucket_seconds must be whole seconds from 1 to {MAX_BUCKET_SECONDS}, not {bucket}")
        now = self.store.now()
        if not 0 <= request.since < now.timestamp():
            raise InvalidArgument("since must be earlier than now (Unix seconds; 0 = an hour ago)")
        since = convert.time_bound(request.since, "since") or now - timedelta(hours=1)
        rows, as_of = await self.store.throughput(
            since, int(bucket), list(request.activity_types), list(request.workflow_types)
        )
        return pb.GetThroughputResponse(
            types=[convert.type_throughput(t) for t in rows], since=convert.ts(since), bucket_seconds=int(bucket),
            as_of=convert.ts(as_of),
        )

    @rpc
    async def ListWorkers(self, request: pb.ListWorkersRequest, context: Any) -> pb.ListWorkersResponse:
        rows = await self.store.list_workers(request.worker_group or None, request.include_stopped)
        return pb.ListWorkersResponse(workers=[convert.worker(w) for w in rows])

    # -- bulk actions ------------------------------------------------------------------------

    @rpc
    async def BulkCancelWorkflows(self, request: pb.BulkWorkflowsRequest, context: Any) -> pb.BulkResponse:
        out = await self.bulk.cancel_workflows(
            _workflow_filter(request.filter), reason=request.reason or "cancelled in bulk",
            terminate=request.terminate, dry_run=request.dry_run, page_token=request.page_token or None,
            batch_size=request.batch_size,
        )
        return _bulk(out)

    @rpc
    async def BulkDeleteWorkflows(self, request: pb.BulkWorkflowsRequest, context: Any) -> pb.BulkResponse:
        out = await self.bulk.delete_workflows(
            _workflow_filter(request.filter), dry_run=request.dry_run, page_token=request.page_token or None,
            batch_size=request.batch_size,
        )
        return _bulk(out)

    @rpc
    async def BulkRequeueDeadLetters(self, request: pb.BulkDeadLettersRequest, context: Any) -> pb.BulkResponse:
        out = await self.bulk.requeue_dead_letters(
            _dead_letter_filter(request.filter), dry_run=request.dry_run, page_token=request.page_token or None,
            batch_size=request.batch_size,
        )
        return _bulk(out)

    @rpc
    async def BulkDeleteDeadLetters(self, request: pb.BulkDeadLettersRequest, context: Any) -> pb.BulkResponse:
        out = await self.bulk.delete_dead_letters(
            _dead_letter_filter(request.filter), dry_run=request.dry_run, page_token=request.page_token or None,
            batch_size=request.batch_size,
        )
        return _bulk(out)


def _workflow_filter(f: pb.BulkWorkflowFilter) -> WorkflowFilter:
    return WorkflowFilter(
        workflow_type=f.workflow_type or None, status=f.status or None,
        created_after=convert.time_bound(f.created_after, "filter.created_after"),
        created_before=convert.time_bound(f.created_before, "filter.created_before"),
        error_contains=f.error_contains or None, id_prefix=f.id_prefix or None,
    )


def _dead_letter_filter(f: pb.BulkDeadLetterFilter) -> DeadLetterFilter:
    return DeadLetterFilter(
        activity_type=f.activity_type or None,
        dead_after=convert.time_bound(f.dead_after, "filter.dead_after"),
        dead_before=convert.time_bound(f.dead_before, "filter.dead_before"),
        error_contains=f.error_contains or None, workflow_id=f.workflow_id or None,
    )


def _bulk(out: BulkOutcome) -> pb.BulkResponse:
    return pb.BulkResponse(
        matched=out.matched, affected=out.affected, skipped=out.skipped, errors=out.errors,
        next_page_token=out.next_page_token or "",
    )


def add_to_server(service: ClientService, server: grpc.aio.Server) -> None:
    """Register with request parsing that turns undecodable bytes into INVALID_ARGUMENT."""
    server.add_generic_rpc_handlers((generic_handler(service, pb.DESCRIPTOR.services_by_name["ClientService"]),))
