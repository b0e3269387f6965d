"""An asyncio client for the control plane's ClientService."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import grpc

from durable.common.errors import DurableError
from durable.common.payloads import encode_payload
from durable.common.security import ClientSecurity, load_client_security, open_channel
from durable.common.status import error_for_rpc
from durable.proto.v1 import durable_pb2 as pb
from durable.proto.v1 import durable_pb2_grpc as pb_grpc

DEFAULT_ADDRESS = "127.0.0.1:9001"


class Unavailable(DurableError):
    """The control plane could not be reached."""


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
    pinned: bool = False

    @property
    def is_terminal(self) -> bool:
        return self.status in ("completed", "failed", "cancelled")


@dataclass(frozen=True)
class EventView:
    sequence_num: int
    event_type: str
    data: dict[str, Any]
    created_at: float


def _json(text: str) -> Any:
    return json.loads(text) if text else None


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
        pinned=msg.pinned,
    )


class Client:
    """Start, signal, cancel and inspect workflows; manage the DLQ; read queue statistics.

    Use as `async with Client("host:9001") as client: ...`.
    """

    def __init__(
        self, address: str = DEFAULT_ADDRESS, *, timeout: float = 30.0, security: ClientSecurity | None = None
    ) -> None:
        self.address = address
        self.timeout = timeout
        # Token and TLS from DURABLE_AUTH_TOKEN(_FILE) and DURABLE_TLS_* unless given.
        self._channel = open_channel(address, security or load_client_security())
        self._stub = pb_grpc.ClientServiceStub(self._channel)

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._channel.close()

    async def _call(self, method: str, request: Any, timeout: float | None = None) -> Any:
        try:
            return await getattr(self._stub, method)(request, timeout=timeout or self.timeout)
        except grpc.aio.AioRpcError as exc:
            if exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                raise Unavailable(
                    f"control plane at {self.address} did not answer ({exc.code().name}): {exc.details()}"
                ) from None
            raise error_for_rpc(exc, exc.details() or exc.code().name) from None

    async def start_workflow(
        self, workflow_type: str, input: dict[str, Any] | None = None, *, workflow_id: str | None = None
    ) -> tuple[str, bool]:
        """Returns (workflow id, created). An existing id returns that workflow, created=False."""
        reply = await self._call(
            "StartWorkflow",
            pb.StartWorkflowRequest(
                workflow_type=workflow_type, workflow_id=workflow_id or "", input_json=encode_payload(input or {})
            ),
        )
        return reply.workflow_id, reply.created

    async def signal_workflow(self, workflow_id: str, signal_type: str, payload: dict[str, Any] | None = None) -> int:
        reply = await self._call(
            "SignalWorkflow",
            pb.SignalWorkflowRequest(
                workflow_id=workflow_id, signal_type=signal_type, payload_json=encode_payload(payload or {})
            ),
        )
        return int(reply.sequence_num)

    async def cancel_workflow(self, workflow_id: str, reason: str = "") -> int:
        reply = await self._call("CancelWorkflow", pb.CancelWorkflowRequest(workflow_id=workflow_id, reason=reason))
        return int(reply.cancelled_tasks)

    async def describe_workflow(self, workflow_id: str) -> WorkflowView:
        reply = await self._call("DescribeWorkflow", pb.DescribeWorkflowRequest(workflow_id=workflow_id))
        return _workflow(reply.workflow)

    async def list_workflows(
        self, *, status: str | None = None, workflow_type: str | None = None, limit: int = 50
    ) -> list[WorkflowView]:
        reply = await self._call(
            "ListWorkflows",
            pb.ListWorkflowsRequest(status=status or "", workflow_type=workflow_type or "", limit=limit),
        )
        return [_workflow(w) for w in reply.workflows]

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

    async def wait_workflow(self, workflow_id: str, timeout: float = 60.0) -> WorkflowView:
        """Wait until the workflow ends or `timeout` passes; returns its latest state."""
        reply = await self._call(
            "WaitWorkflow",
            pb.WaitWorkflowRequest(workflow_id=workflow_id, wait_seconds=min(timeout, 300.0)),
            timeout=min(timeout, 300.0) + self.timeout,
        )
        return _workflow(reply.workflow)

    async def enqueue_activity(
        self, activity_type: str, input: dict[str, Any] | None = None, *, priority: int = 0, max_attempts: int = 0
    ) -> str:
        """Queue a standalone activity task (one outside any workflow)."""
        reply = await self._call(
            "EnqueueActivity",
            pb.EnqueueActivityRequest(
                activity_type=activity_type,
                input_json=encode_payload(input or {}),
                options=pb.ActivityOptions(priority=priority, retry_policy=pb.RetryPolicy(max_attempts=max_attempts)),
            ),
        )
        return str(reply.task_id)

    async def list_dead_letters(self, activity_type: str | None = None, limit: int = 100) -> list[pb.DeadLetter]:
        reply = await self._call("ListDeadLetters", pb.ListDeadLettersRequest(activity_type=activity_type or "", limit=limit))
        return list(reply.entries)

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

    async def list_workers(self, worker_group: str | None = None, include_stopped: bool = False) -> list[pb.WorkerInfo]:
        reply = await self._call(
            "ListWorkers", pb.ListWorkersRequest(worker_group=worker_group or "", include_stopped=include_stopped)
        )
        return list(reply.workers)
