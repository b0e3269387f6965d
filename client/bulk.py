"""What the client's bulk actions and keyed enqueues take and answer."""

from __future__ import annotations

from dataclasses import dataclass, field

from durable.proto.v1 import durable_pb2 as pb


@dataclass(frozen=True, slots=True)
class Enqueued:
    """An enqueued activity task; `duplicate` when an earlier enqueue with the same
    idempotency key made it (within the control plane's DURABLE_IDEMPOTENCY_WINDOW)."""

    task_id: str
    duplicate: bool = False


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
