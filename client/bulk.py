"""What the client's bulk actions, batches and keyed enqueues take and answer."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

from durable.common.converter import to_json
from durable.common.payloads import encode_payload

from durable.proto.v1 import durable_pb2 as pb


@dataclass(frozen=True, slots=True)
class Enqueued:
    """An enqueued activity task; `duplicate` when an earlier enqueue with the same
    idempotency key made it (within the control plane's DURABLE_IDEMPOTENCY_WINDOW)."""

    task_id: str
    duplicate: bool = False


class Started(NamedTuple):
    """A started workflow's id, and whether this start made it (False: the id existed)."""

    workflow_id: str
    created: bool


@dataclass(frozen=True, slots=True)
class Activity:
    """One standalone activity of `Client.enqueue_activities`, with enqueue_activity's arguments."""

    activity_type: str
    input: dict[str, Any] | None = None
    priority: int = 0
    max_attempts: int = 0
    idempotency_key: str | None = None
    concurrency_key: str | None = None
    concurrency_limit: int | None = None

    def message(self) -> pb.EnqueueActivityRequest:
        return pb.EnqueueActivityRequest(
            activity_type=self.activity_type,
            input_json=encode_payload(self.input or {}),
            options=pb.ActivityOptions(
                priority=self.priority, retry_policy=pb.RetryPolicy(max_attempts=self.max_attempts),
                concurrency_key=self.concurrency_key or "", concurrency_limit=self.concurrency_limit or 0,
            ),
            idempotency_key=self.idempotency_key or "",
        )


@dataclass(frozen=True, slots=True)
class WorkflowStart:
    """One start of `Client.start_workflows`, with start_workflow's arguments."""

    workflow_type: str
    input: Any = None
    workflow_id: str | None = None
    concurrency_key: str | None = None
    concurrency_limit: int | None = None

    def message(self) -> pb.StartWorkflowRequest:
        return pb.StartWorkflowRequest(
            workflow_type=self.workflow_type, workflow_id=self.workflow_id or "",
            input_json=encode_payload(to_json(self.input) if self.input is not None else {}),
            concurrency_key=self.concurrency_key or "", concurrency_limit=self.concurrency_limit or 0,
        )


@dataclass(frozen=True, slots=True)
class WorkflowSelection:
    """Which workflows a bulk action takes; every field optional. Times are Unix seconds (0 = no bound)."""

    workflow_type: str | None = None
    status: str | None = None
    created_after: float = 0.0
    created_before: float = 0.0
    error_contains: str | None = None
    id_prefix: str | None = None

    def message(self) -> pb.BulkWorkflowFilter:
        return pb.BulkWorkflowFilter(
            workflow_type=self.workflow_type or "", status=self.status or "", created_after=self.created_after,
            created_before=self.created_before, error_contains=self.error_contains or "",
            id_prefix=self.id_prefix or "",
        )


@dataclass(frozen=True, slots=True)
class DeadLetterSelection:
    """Which dead-letter entries a bulk action takes; every field optional. Times are Unix seconds (0 = no bound)."""

    activity_type: str | None = None
    dead_after: float = 0.0
    dead_before: float = 0.0
    error_contains: str | None = None
    workflow_id: str | None = None

    def message(self) -> pb.BulkDeadLetterFilter:
        return pb.BulkDeadLetterFilter(
            activity_type=self.activity_type or "", dead_after=self.dead_after, dead_before=self.dead_before,
            error_contains=self.error_contains or "", workflow_id=self.workflow_id or "",
        )


@dataclass(frozen=True, slots=True)
class BulkResult:
    """One bulk call's answer: a dry run's count (`matched`), or one batch's work and the
    token of the next batch ("" when nothing is left)."""

    matched: int
    affected: int = 0
    skipped: int = 0
    errors: list[str] = field(default_factory=list)
    next_page_token: str = ""

    @classmethod
    def of(cls, msg: pb.BulkResponse) -> BulkResult:
        return cls(msg.matched, msg.affected, msg.skipped, list(msg.errors), msg.next_page_token)
