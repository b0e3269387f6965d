"""durable.v1.WorkerService: what worker processes call."""

from __future__ import annotations

import asyncio
import json
import random
from typing import Any

import grpc

from durable.common.errors import DurableError, InvalidArgument
from durable.common.payloads import Checked
from durable.common.policies import CircuitBreakerPolicy
from durable.common.status import code_for
from durable.controlplane.dispatch import TaskSignals
from durable.controlplane.grpc import budget, convert
from durable.controlplane.grpc.errors import generic_handler, required, rpc
from durable.controlplane.settings import BreakerSettings
from durable.controlplane.store import Store
from durable.controlplane.store.base import parse_uuid
from durable.controlplane.store.decisions import Applied, Decision
from durable.controlplane.store.workflow_batches import Following, log_dropped
from durable.controlplane.store.workflow_queries import WorkflowQueryStore
from durable.proto.v1 import durable_pb2 as pb
from durable.proto.v1 import durable_pb2_grpc as pb_grpc

MAX_WAIT_SECONDS = 60.0
MAX_BATCH = 1000




class WorkerService(pb_grpc.WorkerServiceServicer):
    def __init__(
        self,
        store: Store,
        signals: TaskSignals,
        *,
        poll_interval: float = 1.0,
        max_payload_bytes: int,
        max_message_bytes: int = 16 * 1024 * 1024,
        max_response_bytes: int = 64 * 1024 * 1024,
        queries: WorkflowQueryStore | None = None,
        breakers: BreakerSettings | None = None,
    ) -> None:
        self.store = store
        self.breakers = breakers or BreakerSettings()
        self.signals = signals
        self.queries = queries
        self.poll_interval = poll_interval
        self.limit = max_payload_bytes
        self.max_message_bytes = max_message_bytes
        self.max_response_bytes = max_response_bytes

    @rpc
    async def RegisterWorker(self, request: pb.RegisterWorkerRequest, context: Any) -> pb.RegisterWorkerResponse:
        if request.max_concurrency < 0:
            raise InvalidArgument("max_concurrency must be >= 1 (0 = default 10)")
        breakers = self._breakers(request)  # every one checked before anything is written
        await self.store.register_worker(
            required(request.worker_id, "worker_id"),
            worker_group=request.worker_group or "default",
            activity_types=list(request.activity_types),
            workflow_types=list(request.workflow_types),
            max_concurrency=request.max_concurrency or 10,
            hostname=request.hostname or None,
            version=request.version or None,
        )
        for activity_type, policy in breakers:
            await self.store.configure_circuit_breaker(activity_type, policy)
        return pb.RegisterWorkerResponse(
            max_request_bytes=self.max_message_bytes, max_payload_bytes=self.limit, journals=True
        )

    def _breakers(self, request: pb.RegisterWorkerRequest) -> list[tuple[str, CircuitBreakerPolicy]]:
        """The breakers a registration asks for, with the control plane's defaults filled in."""
        out: dict[str, CircuitBreakerPolicy] = {}
        for index, b in enumerate(request.circuit_breakers):
            field = f"circuit_breakers[{index}]"
            if b.activity_type not in request.activity_types:
                raise InvalidArgument(
                    f"{field}.activity_type {b.activity_type!r} is not among the worker's activity_types; "
                    "a breaker is asked for by a worker of the type")
            out[b.activity_type] = CircuitBreakerPolicy.parse(self.breakers.policy({
                "failure_threshold": b.failure_threshold, "window": b.window_seconds,
                "reset_timeout": b.reset_timeout_seconds, "half_open_max_trials": b.half_open_max_trials,
                "success_threshold": b.success_threshold,
            }), field=field)
        return sorted(out.items())

    @rpc
    async def WorkerHeartbeat(self, request: pb.WorkerHeartbeatRequest, context: Any) -> pb.WorkerHeartbeatResponse:
        status = await self.store.worker_heartbeat(required(request.worker_id, "worker_id"), request.current_load)
        return pb.WorkerHeartbeatResponse(status=status)

    @rpc
    async def DrainWorker(self, request: pb.DrainWorkerRequest, context: Any) -> pb.DrainWorkerResponse:
        await self.store.drain_worker(required(request.worker_id, "worker_id"))
        return pb.DrainWorkerResponse()

    @rpc
    async def DeregisterWorker(self, request: pb.DeregisterWorkerRequest, context: Any) -> pb.DeregisterWorkerResponse:
        released = await self.store.deregister_worker(required(request.worker_id, "worker_id"))
        return pb.DeregisterWorkerResponse(released_tasks=released)

    @rpc
    async def ClaimTasks(self, request: pb.ClaimTasksRequest, context: Any) -> pb.ClaimTasksResponse:
        worker_id = required(request.worker_id, "worker_id")
        if request.wait_seconds < 0 or request.wait_seconds > MAX_WAIT_SECONDS:
            raise InvalidArgument(f"wait_seconds must be between 0 and {MAX_WAIT_SECONDS:.0f}")
        activity_types = list(request.activity_types)
        workflow_types = list(request.workflow_types)
        limit = request.max_tasks or 1
        keys = [f"activity:{t}" for t in activity_types] + [f"workflow:{t}" for t in workflow_types]
        keys += [f"query:{t}" for t in workflow_types]
        if workflow_types:  # decisions routed to this worker (it keeps their instances)
            keys.append(f"sticky:{worker_id}")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + request.wait_seconds
        checked = False
        look_for_queries = False  # on a hint, and at every fallback re-check
        while True:
            look_for_queries = look_for_queries or self.signals.take_query_hint(workflow_types)
            if look_for_queries and workflow_types and self.queries is not None:
                look_for_queries = False
                queries = await self.queries.claim_queries(worker_id, workflow_types, limit)
                if queries:
                    return pb.ClaimTasksResponse(tasks=[convert.query_task(q) for q in queries])
            with self.signals.waiting(keys) as woken:
                claim = asyncio.ensure_future(
                    self.store.claim(worker_id, activity_types, workflow_types, limit, known_active=checked)
                )
                try:
                    activities, decisions = await asyncio.shield(claim)
                except asyncio.CancelledError:
                    await self._hand_back(worker_id, claim)
                    raise
                checked = True
                if activities or decisions:
                    response = await self._answer(worker_id, activities, decisions, request.pages_history)
                    if response.tasks:
                        return response
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return pb.ClaimTasksResponse()
                # the fallback re-check, jittered so a fleet of idle claims does not march in step
                fallback = self.poll_interval * random.uniform(0.75, 1.25)
                try:
                    await asyncio.wait_for(woken.wait(), timeout=min(remaining, fallback))
                except TimeoutError:
                    look_for_queries = True

    async def _answer(
        self, worker_id: str, activities: list[Any], decisions: list[Any], pages_history: bool = False
    ) -> pb.ClaimTasksResponse:
        """The claimed tasks that fit in the answer's byte budget. The rest goes back to the
        queue at once (no attempt burnt; another claim takes it). A workflow task too large
        to travel alone (its history is over the budget) goes with the first events of its
        history to a worker that pages (`pages_history`: it reads the rest with
        GetTaskHistory); to any other, it can never be delivered: its attempt fails with a
        message saying so (the workflow is blocked with it, and the decision retried with
        backoff), instead of being claimed, lost and taken back by the reaper until the poison
        guard buries it."""
        tasks = [convert.task(t) for t in activities] + [convert.workflow_task(d) for d in decisions]
        kept, rest = budget.pack(tasks, self.max_response_bytes)
        if not kept and rest:
            huge, rest = rest[0], rest[1:]
            if pages_history and huge.kind == "workflow":
                kept = [self._truncated(huge)]
            else:
                await self._refuse_oversized(worker_id, huge)
        if rest:
            await self.store.release_tasks(worker_id, [(t.id, t.attempt) for t in rest])
        for t in kept:
            if t.kind == "workflow":
                self.store.observer.decision_sent(t.history_after_seq > 0, t.ByteSize())
        response = pb.ClaimTasksResponse()
        response.tasks.extend(kept)
        return response

    def _truncated(self, task: pb.Task) -> pb.Task:
        """`task` with the first events of its history that fit in the answer."""
        slim = pb.Task()
        slim.CopyFrom(task)
        del slim.history[:]
        slim.history_truncated = True
        room = self.max_response_bytes - budget.entry_size(slim) - budget.ANSWER_OVERHEAD
        fitting, _ = budget.pack(task.history, room)
        slim.history.extend(fitting)
        return slim

    @rpc
    async def GetTaskHistory(self, request: pb.GetTaskHistoryRequest, context: Any) -> pb.GetHistoryResponse:
        if request.after_seq < 0:
            raise InvalidArgument("after_seq must be >= 0")
        size = budget.page_size(request.page_size)
        events = await self.store.task_history(
            required(request.worker_id, "worker_id"), required(request.task_id, "task_id"), request.attempt,
            request.after_seq, limit=size + 1,
        )
        return budget.history_page([convert.event(e) for e in events], size, request.after_seq, self.max_response_bytes)

    async def _refuse_oversized(self, worker_id: str, task: pb.Task) -> None:
        size = budget.entry_size(task)
        what = (
            f"the history of workflow {task.workflow_id!r} ({len(task.history)} events)"
            if task.kind == "workflow" else f"task {task.id}"
        )
        message = (
            f"{what} is {size} bytes, over the control plane's answer budget of "
            f"{self.max_response_bytes} bytes (DURABLE_MAX_RESPONSE_BYTES); it cannot be sent to a worker"
        )
        try:
            await self.store.fail_task(
                worker_id, task.id, task.attempt, message, error_type="MessageTooLarge", non_retryable=True
            )
        except DurableError:  # taken back or cancelled meanwhile: nothing left to refuse
            pass

    async def _hand_back(self, worker_id: str, claim: asyncio.Future[Any]) -> None:
        """The caller went away (its deadline, its shutdown) while its claim ran: what the claim
        took goes back to the queue now, not when the reaper finds it stale, and burns no
        attempt. (A caller gone after the answer left is the reaper's, as a crashed worker's.)"""
        try:
            activities, decisions = await claim
        except Exception:  # noqa: BLE001 - the claim failed: it took nothing
            return
        refs = [(t.id, t.attempt) for t in activities] + [(d.task.id, d.task.attempt) for d in decisions]
        if refs:
            await self.store.release_tasks(worker_id, refs)

    @rpc
    async def HeartbeatTasks(self, request: pb.HeartbeatTasksRequest, context: Any) -> pb.HeartbeatTasksResponse:
        refs = [
            (
                required(r.task_id, "tasks[].task_id"),
                r.attempt,
                convert.load(r.details_json, "tasks[].details_json", self.limit) if r.details_json else None,
            )
            for r in request.tasks
        ]
        results = await self.store.heartbeat_tasks(required(request.worker_id, "worker_id"), refs)
        return pb.HeartbeatTasksResponse(
            results=[
                pb.TaskHeartbeatResult(task_id=str(tid), accepted=ok, cancel_requested=cancelled)
                for tid, ok, cancelled in results
            ]
        )

    @rpc
    async def CompleteTask(self, request: pb.CompleteTaskRequest, context: Any) -> pb.CompleteTaskResponse:
        result = convert.checked(request.result_json, "result_json", self.limit)
        await self.store.complete_task(
            required(request.worker_id, "worker_id"), required(request.task_id, "task_id"), request.attempt, result
        )
        return pb.CompleteTaskResponse()

    @rpc
    async def CompleteTasks(self, request: pb.CompleteTasksRequest, context: Any) -> pb.CompleteTasksResponse:
        if len(request.completions) > MAX_BATCH:
            raise InvalidArgument(f"at most {MAX_BATCH} completions per call")
        items: list[tuple[str, int, Checked | None]] = []
        early: dict[int, DurableError] = {}
        following: dict[int, Following] = {}
        of_workflows: list[int] = []
        for index, c in enumerate(request.completions):
            try:
                items.append((required(c.task_id, "completions[].task_id"), c.attempt,
                              convert.checked(c.result_json, "result_json", self.limit)))
            except DurableError as exc:
                early[index] = exc
                items.append((c.task_id, c.attempt, None))
                continue
            if c.of_workflow:
                of_workflows.append(len(items) - 1 - len(early))
            if c.HasField("decision"):
                try:
                    following[len(items) - 1 - len(early)] = Following.stamped_us(
                        c.decision.after_seq, c.decision.event_time_us,
                        [convert.action(a, i, self.limit) for i, a in enumerate(c.decision.actions)],
                        c.decision.keeps_instance)
                except (DurableError, OverflowError) as exc:  # the completion goes on; a decision task follows it
                    log_dropped(request.worker_id, c.task_id, exc)
        checked = [item for i, item in enumerate(items) if i not in early]
        results, followed = await self.store.complete_tasks_following(
            required(request.worker_id, "worker_id"), checked, following, of_workflows)
        response = pb.CompleteTasksResponse()
        position = 0
        for index, (task_id, _, _) in enumerate(items):
            error = early.get(index)
            followed_here = None
            if error is None:
                _, error = results[position]
                followed_here = followed.get(position)
                position += 1
            outcome = response.outcomes.add(task_id=str(task_id), accepted=error is None)
            if error is not None:
                outcome.code = (code_for(error) or grpc.StatusCode.INTERNAL).name
                outcome.message = str(error)
            elif followed_here is not None:
                outcome.applied = followed_here.applied
                outcome.tasks.extend(convert.task(t) for t in followed_here.tasks)
                outcome.events.extend(convert.event(e) for e in followed_here.events)
        return response

    @rpc
    async def FailTask(self, request: pb.FailTaskRequest, context: Any) -> pb.FailTaskResponse:
        failure = request.failure
        if not failure.message and not failure.type:
            raise InvalidArgument("failure.message or failure.type is required")
        outcome = await self.store.fail_task(
            required(request.worker_id, "worker_id"),
            required(request.task_id, "task_id"),
            request.attempt,
            failure.message,
            error_type=failure.type or "Error",
            non_retryable=failure.non_retryable,
            next_retry_delay=failure.next_retry_delay or None,
            details=_details(failure.details_json),
        )
        return pb.FailTaskResponse(outcome=outcome.outcome, retry_at=convert.ts(outcome.retry_at))

    @rpc
    async def CompleteWorkflowTask(
        self, request: pb.CompleteWorkflowTaskRequest, context: Any
    ) -> pb.CompleteWorkflowTaskResponse:
        actions = [convert.action(a, i, self.limit) for i, a in enumerate(request.actions)]
        [outcome] = await self.store.complete_workflow_tasks(required(request.worker_id, "worker_id"), [Decision(
            required(request.task_id, "task_id"), request.attempt, request.seen_through_seq, actions,
            request.keeps_instance, request.journal, request.journalled)])
        if isinstance(outcome, DurableError):
            raise outcome
        return pb.CompleteWorkflowTaskResponse(applied=outcome.applied, tasks=[convert.task(t) for t in outcome.tasks],
                                               events=[convert.event(e) for e in outcome.events], unseen=outcome.unseen)

    @rpc
    async def CompleteWorkflowTasks(
        self, request: pb.CompleteWorkflowTasksRequest, context: Any
    ) -> pb.CompleteWorkflowTasksResponse:
        if len(request.decisions) > MAX_BATCH:
            raise InvalidArgument(f"at most {MAX_BATCH} decisions per call")
        worker_id = required(request.worker_id, "worker_id")
        early: dict[int, DurableError] = {}
        decisions: list[Decision] = []
        for index, d in enumerate(request.decisions):
            try:
                actions = [convert.action(a, i, self.limit) for i, a in enumerate(d.actions)]
                decisions.append(Decision(required(d.task_id, "decisions[].task_id"), d.attempt,
                                          d.seen_through_seq, actions, d.keeps_instance, d.journal, d.journalled))
            except DurableError as exc:
                early[index] = exc
        results = iter(await self.store.complete_workflow_tasks(worker_id, decisions))
        response = pb.CompleteWorkflowTasksResponse()
        for index, d in enumerate(request.decisions):
            outcome = early.get(index) or next(results)
            item = response.outcomes.add(task_id=d.task_id, accepted=isinstance(outcome, Applied))
            if isinstance(outcome, Applied):
                item.applied = outcome.applied
                item.unseen = outcome.unseen
                item.tasks.extend(convert.task(t) for t in outcome.tasks)
                item.events.extend(convert.event(e) for e in outcome.events)
            else:
                item.code = (code_for(outcome) or grpc.StatusCode.INTERNAL).name
                item.message = str(outcome)
        return response

    @rpc
    async def ReleaseTasks(self, request: pb.ReleaseTasksRequest, context: Any) -> pb.ReleaseTasksResponse:
        refs = [(required(r.task_id, "tasks[].task_id"), r.attempt) for r in request.tasks]
        released = await self.store.release_tasks(required(request.worker_id, "worker_id"), refs or None)
        return pb.ReleaseTasksResponse(released=released)

    @rpc
    async def AnswerQuery(self, request: pb.AnswerQueryRequest, context: Any) -> pb.AnswerQueryResponse:
        worker_id = required(request.worker_id, "worker_id")
        query_id = parse_uuid(required(request.query_id, "query_id"), "query_id")
        if self.queries is None:
            raise InvalidArgument("this control plane answers no queries")
        error = None
        result_json = None
        if request.HasField("failure"):
            error = {"message": request.failure.message[:4000], "type": request.failure.type or "QueryFailed"}
        else:
            result_json = convert.checked(request.result_json or "null", "result_json", self.limit).text
        accepted = await self.queries.answer_query(worker_id, query_id, result_json, error)
        return pb.AnswerQueryResponse(accepted=accepted)


def add_to_server(service: WorkerService, server: grpc.aio.Server) -> None:
    """Register with request parsing that turns undecodable bytes into INVALID_ARGUMENT."""
    server.add_generic_rpc_handlers((generic_handler(service, pb.DESCRIPTOR.services_by_name["WorkerService"]),))


def _details(text: str) -> dict[str, Any] | None:
    """A failure's details (a blocked decision's traceback), best effort: never a reason to
    refuse the report."""
    if not text:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
