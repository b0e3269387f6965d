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
from typing import Any, ClassVar, Generic, TypeVar

import grpc

from durable.common.coalescing import Coalescer, chunks, entry_size
from durable.common.errors import MessageTooLarge, PayloadTooLarge, Unimplemented
from durable.common.status import error_for
from durable.proto.v1 import durable_pb2 as pb
from durable.worker.link import ControlPlaneLink, ControlPlaneUnreachable

log = logging.getLogger(__name__)

__all__ = ["DEFAULT_MAX_REQUEST_BYTES", "ENVELOPE_BYTES", "CompletionBatcher", "DecisionBatcher", "chunks",
           "entry_size", "request_budget"]

CompletionOutcome = pb.CompletionOutcome
E = TypeVar("E")

# What an older control plane (that does not say its limit) receives: 2 x 1 MiB + 1 MiB.
DEFAULT_MAX_REQUEST_BYTES = 3 * 1024 * 1024
# Room kept in every request for its other fields and gRPC's framing.
ENVELOPE_BYTES = 64 * 1024


def request_budget(max_request_bytes: int) -> int:
    """Bytes of batched entries a request may carry under the control plane's receive limit."""
    return max(max_request_bytes - ENVELOPE_BYTES, max_request_bytes // 2)


class _Batcher(Generic[E]):
    """Reports of one kind, coalesced (durable.common.coalescing) into calls of `method`
    within the control plane's receive limit; each caller gets its own entry's outcome."""

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
        self._queue: Coalescer[Any, CompletionOutcome] = Coalescer(
            self._send, name=self.method, linger=linger, max_batch=max_batch,
            budget=request_budget(max_request_bytes), idle_flush=False,
            # a report whose call was cancelled is retried by its caller, as when unreachable
            aborted=lambda exc: ControlPlaneUnreachable(f"{self.method}: {exc!r}"))
        self._max_request_bytes = max_request_bytes
        self.splits = 0

    @property
    def max_request_bytes(self) -> int:
        """The control plane's receive limit; the worker sets it from RegisterWorker's answer."""
        return self._max_request_bytes

    @max_request_bytes.setter
    def max_request_bytes(self, value: int) -> None:
        self._max_request_bytes = value
        self._queue.budget = request_budget(value)

    @property
    def budget(self) -> int:
        return self._queue.budget

    @property
    def batches(self) -> int:
        return self._queue.batches

    @property
    def completions(self) -> int:
        return self._queue.items

    def _request(self, entries: list[E]) -> Any:
        raise NotImplementedError

    def _too_large(self, entry: E) -> Exception:
        raise NotImplementedError

    async def _submit(self, entry: E) -> CompletionOutcome:
        if entry_size(entry) + 1024 > self.max_request_bytes:  # type: ignore[arg-type]
            raise self._too_large(entry)
        return await self._queue.submit(entry)

    async def _send(self, entries: list[E]) -> list[CompletionOutcome | BaseException]:
        """One call for `entries`: per entry, its outcome or the error its own call would
        raise. A message gRPC refuses is split in halves and sent again."""
        try:
            response = await self.link.call(self.method, self._request(entries))
        except MessageTooLarge as exc:
            # gRPC refused the message, not the control plane a payload: smaller batches.
            if len(entries) == 1:
                return [self._too_large(entries[0])]
            self.splits += 1
            log.info("%s of %d entries refused by gRPC (%s); splitting", self.method, len(entries), exc)
            half = len(entries) // 2
            out: list[CompletionOutcome | BaseException] = []
            for part, got in zip((entries[:half], entries[half:]), await asyncio.gather(
                    self._send(entries[:half]), self._send(entries[half:]), return_exceptions=True), strict=True):
                out += [got] * len(part) if isinstance(got, BaseException) else got
            return out
        out = []
        for outcome in response.outcomes[:len(entries)]:
            if outcome.accepted:
                out.append(outcome)
            else:
                # per-item outcomes are the control plane's own rules (from_durable)
                code = grpc.StatusCode[outcome.code] if outcome.code in grpc.StatusCode.__members__ else grpc.StatusCode.UNKNOWN
                out.append(error_for(code, f"{self.method}: {outcome.message}"))
        out += [ControlPlaneUnreachable(f"{self.method} answered fewer outcomes than asked")] * (len(entries) - len(out))
        return out


class CompletionBatcher(_Batcher[pb.TaskCompletion]):
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


class DecisionBatcher(_Batcher[pb.CompleteWorkflowTaskRequest]):
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
                return pb.CompleteWorkflowTaskResponse(applied=outcome.applied, tasks=outcome.tasks, events=outcome.events,
                                                       unseen=outcome.unseen)
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
