"""Client for the durable control plane: start, signal and inspect workflows over gRPC."""

from __future__ import annotations

from durable.client.client import (
    DEFAULT_ADDRESS,
    Client,
    EventView,
    PermissionDenied,
    TaskView,
    Unauthenticated,
    Unavailable,
    WorkflowPage,
    WorkflowView,
)
from durable.client.bulk import (
    Activity,
    BulkResult,
    DeadLetterSelection,
    Enqueued,
    Started,
    WorkflowSelection,
    WorkflowStart,
)
from durable.client.schedules import ScheduleView

__all__ = [
    "DEFAULT_ADDRESS",
    "Activity",
    "BulkResult",
    "Client",
    "DeadLetterSelection",
    "Enqueued",
    "EventView",
    "PermissionDenied",
    "ScheduleView",
    "Started",
    "TaskView",
    "Unauthenticated",
    "Unavailable",
    "WorkflowPage",
    "WorkflowSelection",
    "WorkflowStart",
    "WorkflowView",
]
