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

__all__ = [
    "DEFAULT_ADDRESS",
    "Client",
    "EventView",
    "PermissionDenied",
    "TaskView",
    "Unauthenticated",
    "Unavailable",
    "WorkflowPage",
    "WorkflowView",
]
