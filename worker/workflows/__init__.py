"""The workflow runtime: workflow code as plain async Python on a deterministic event loop.

Rooms: `loop` (the deterministic asyncio loop), `rules` (the determinism rules and their
guards), `context` (what `ctx` offers), `commands` (what code asks for), `history` (events,
and matching commands against them), `instance` (one workflow's code fed its history),
`definitions` (function, class and callback workflows), `callbacks` (the callback layer),
`local` (local activities: their rules and markers), `replay` (replaying histories against
code). The worker process (durable.worker.execution)
feeds histories in and takes decisions out.
"""

from __future__ import annotations

from durable.worker.workflows.context import WorkflowContext, current_context
from durable.worker.workflows.definitions import WorkflowDefinition, define, query, signal
from durable.worker.workflows.errors import (
    ActivityError,
    ChildWorkflowError,
    DeterminismViolation,
    NonDeterminismError,
    WorkflowCodeError,
    WorkflowFailed,
)
from durable.worker.workflows.history import HistoryEvent
from durable.worker.workflows.instance import Decision, QueryNotFound, WorkflowInfo, WorkflowInstance
from durable.worker.workflows.replay import ReplayOutcome, check_history, history_from_json, replay

__all__ = [
    "ActivityError",
    "ChildWorkflowError",
    "Decision",
    "DeterminismViolation",
    "HistoryEvent",
    "NonDeterminismError",
    "QueryNotFound",
    "ReplayOutcome",
    "WorkflowCodeError",
    "WorkflowContext",
    "WorkflowDefinition",
    "WorkflowFailed",
    "WorkflowInfo",
    "WorkflowInstance",
    "check_history",
    "current_context",
    "define",
    "history_from_json",
    "query",
    "replay",
    "signal",
]
