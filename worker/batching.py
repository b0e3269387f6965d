"""Coalesces activity completions into CompleteTasks calls, and decisions into
CompleteWorkflowTasks calls, within a byte budget.

Many small tasks finish at nearly the same moment; one round trip for all of them costs the
control plane and PostgreSQL one statement instead of one transaction each. A completion waits
at most `linger` seconds (default 2 ms) for company, and a batch holds at most `max_batch`
completions and at most `budget` bytes: below the control plane's receive limit
(`max_request_bytes`, told at registration), so large results never make a batch that gRPC
refuses. Should gRPC refuse one anyway (the limit changed under us), the batch is split in
halves and sent again; only a completion too large to travel alone fails, with a message
naming the field and the limit. Each caller gets its own outcome, raised the way the single
CompleteTask call would raise it.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar

import grpc

from durable.common.errors import MessageTooLarge, PayloadTooLarge, Unimplemented
from durable.common.status import error_for
from durable.proto.v1 import durable_pb2 as pb
from durable.worker.link import ControlPlaneLink, ControlPlaneUnreachable

log = logging.getLogger(__name__)

CompletionOutcome = pb.CompletionOutcome
E = TypeVar("E")

# What an older control plane (that does not say its limit) receives: 2 x 1 MiB + 1 MiB.
DEFAULT_MAX_REQUEST_BYTES = 3 * 1024 * 1024
# Room kept in every request for its other fields and gRPC's framing.
ENVELOPE_BYTES = 64 * 1024
# The tag and length prefix of one entry of a repeated field, at most.
_ENTRY_OVERHEAD = 6


def request_budget(max_request_bytes: int) -> int:
    """Bytes of batched entries a request may carry under the control plane's receive limit."""
    return max(max_request_bytes - ENVELOPE_BYTES, max_request_bytes // 2)


def entry_size(message: pb.TaskCompletion | pb.TaskRef) -> int:
    return message.ByteSize() + _ENTRY_OVERHEAD


def chunks(items: list[pb.TaskRef], budget: int) -> list[list[pb.TaskRef]]:
    """Consecutive runs of `items` of at most `budget` bytes each (an item larger than the
    budget travels alone)."""
    out: list[list[pb.TaskRef]] = []
    current: list[pb.TaskRef] = []
    used = 0
    for item in items:
        size = entry_size(item)
        if current and used + size > budget:
            out.append(current)
            current, used = [], 0
        current.append(item)
        used += size
    if current:
        out.append(current)
    return out


@dataclass
class _Pending(Generic[E]):
    entry: E
    size: int
    done: asyncio.Future[CompletionOutcome] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future())


class _Coalescer(Generic[E]):
    """Reports of one kind, coalesced into calls of `method` within a byte budget; each
    caller gets its own entry's outcome."""

    method: ClassVar[str]

    def __init__(
        self,
        link: ControlPlaneLink,
        worker_id: str,
        *,
        linger: float = 0.002,
        max_batch: int = 256,
        max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
    ) -> None:
        self.link = link
        self.worker_id = worker_id
        self.linger = linger
        self.max_batch = max_batch
        # The control plane's receive limit; the worker sets it from RegisterWorker's answer.
        self.max_request_bytes = max_request_bytes
        self._queue: list[_Pending[E]] = []
        self._queued_bytes = 0
        self._flusher: asyncio.Task[None] | None = None
        self.batches = 0
        self.completions = 0
        self.splits = 0

    @property
    def budget(self) -> int:
        return request_budget(self.max_request_bytes)

    def _request(self, entries: list[E]) -> Any:
        raise NotImplementedError

    def _too_large(self, entry: E) -> Exception:
        raise NotImplementedError

    async def _submit(self, entry: E) -> CompletionOutcome:
        size = entry.ByteSize() + _ENTRY_OVERHEAD  # type: ignore[attr-defined]
        if size + 1024 > self.max_request_bytes:
            raise self._too_large(entry)
        if self._queue and self._queued_bytes + size > self.budget:
            self._flush_now()
        pending = _Pending(entry, size)
        self._queue.append(pending)
        self._queued_bytes += size
        if len(self._queue) >= self.max_batch or self._queued_bytes >= self.budget:
            self._flush_now()
        elif self._flusher is None:
            self._flusher = asyncio.create_task(self._flush_later(), name=f"durable-worker-{self.method}-batch")
        return await pending.done

    async def _flush_later(self) -> None:
        await asyncio.sleep(self.linger)
        self._flusher = None
        self._flush_now()

    def _flush_now(self) -> None:
        batch, self._queue, self._queued_bytes = self._queue, [], 0
        if batch:
            asyncio.create_task(self._send(batch), name=f"durable-worker-{self.method}-send")

    async def _send(self, batch: list[_Pending[E]]) -> None:
        request = self._request([p.entry for p in batch])
        try:
            response = await self.link.call(self.method, request)
        except MessageTooLarge as exc:
            # gRPC refused the message, not the control plane a payload: smaller batches.
            if len(batch) == 1:
                self._settle(batch[0], self._too_large(batch[0].entry))
                return
            self.splits += 1
            log.info("%s of %d entries refused by gRPC (%s); splitting", self.method, len(batch), exc)
            half = len(batch) // 2
            await asyncio.gather(self._send(batch[:half]), self._send(batch[half:]))
            return
        except BaseException as exc:  # every waiter sees the call's failure and retries itself
            for p in batch:
                self._settle(p, exc if isinstance(exc, Exception) else ControlPlaneUnreachable(str(exc)))
            if not isinstance(exc, Exception):
                raise
            return
        self.batches += 1
        self.completions += len(batch)
        for p, outcome in zip(batch, response.outcomes, strict=False):
            if outcome.accepted:
                self._settle(p, outcome)
            else:
                # per-item outcomes are the control plane's own rules (from_durable)
                code = grpc.StatusCode[outcome.code] if outcome.code in grpc.StatusCode.__members__ else grpc.StatusCode.UNKNOWN
                self._settle(p, error_for(code, f"{self.method}: {outcome.message}"))
        for p in batch[len(response.outcomes):]:
            self._settle(p, ControlPlaneUnreachable(f"{self.method} answered fewer outcomes than asked"))

    @staticmethod
    def _settle(p: _Pending[E], result: BaseException | CompletionOutcome) -> None:
        if p.done.done():
            return
        if isinstance(result, BaseException):
            p.done.set_exception(result)
        else:
            p.done.set_result(result)


class CompletionBatcher(_Coalescer[pb.TaskCompletion]):
    """Activity completions, coalesced into CompleteTasks calls."""

    method = "CompleteTasks"

    async def complete(
        self, request: pb.CompleteTaskRequest, decision: pb.FollowingDecision | None = None, *,
        of_workflow: bool = False,
    ) -> CompletionOutcome:
        """Complete one task as part of a batch, with the decision that follows it if any;
        raises like WorkerService.CompleteTask. The outcome says whether the decision was
        applied (and what it handed back)."""
        return await self._submit(pb.TaskCompletion(
            task_id=request.task_id, attempt=request.attempt, result_json=request.result_json, decision=decision,
            of_workflow=of_workflow))

    def _request(self, entries: list[pb.TaskCompletion]) -> pb.CompleteTasksRequest:
        return pb.CompleteTasksRequest(worker_id=self.worker_id, completions=entries)

    def _too_large(self, entry: pb.TaskCompletion) -> Exception:
        return PayloadTooLarge(
            f"result_json is {len(entry.result_json.encode())} bytes: with its task it is over "
            f"the control plane's message limit of {self.max_request_bytes} bytes "
            "(DURABLE_MAX_MESSAGE_BYTES); store large data elsewhere and pass a reference"
        )


class DecisionBatcher(_Coalescer[pb.CompleteWorkflowTaskRequest]):
    """Workflow decisions, coalesced into CompleteWorkflowTasks calls (one transaction on the
    control plane for the batch)."""

    method = "CompleteWorkflowTasks"
    # False once a control plane (an older one) answered that it does not know the call:
    # decisions then go one call each.
    batched = True

    async def decide(self, request: pb.CompleteWorkflowTaskRequest) -> pb.CompleteWorkflowTaskResponse:
        """Report one decision as part of a batch; raises like WorkerService.CompleteWorkflowTask."""
        if self.batched:
            try:
                outcome = await self._submit(request)
                return pb.CompleteWorkflowTaskResponse(applied=outcome.applied, tasks=outcome.tasks, events=outcome.events)
            except Unimplemented:
                if self.batched:
                    log.info("the control plane does not know CompleteWorkflowTasks (an older version); "
                             "decisions go one call each")
                self.batched = False
        return await self.link.call("CompleteWorkflowTask", request)  # type: ignore[no-any-return]

    def _request(self, entries: list[pb.CompleteWorkflowTaskRequest]) -> pb.CompleteWorkflowTasksRequest:
        return pb.CompleteWorkflowTasksRequest(worker_id=self.worker_id, decisions=entries)

    def _too_large(self, entry: pb.CompleteWorkflowTaskRequest) -> Exception:
        return MessageTooLarge(
            f"the decision is {entry.ByteSize()} bytes, over the control plane's message limit of "
            f"{self.max_request_bytes} bytes")
