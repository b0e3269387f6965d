"""Replaying histories against code: the decision a worker sends, and the check a team runs
before rolling out new code (`durable replay`)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from durable.worker.workflows.definitions import WorkflowDefinition, define
from durable.worker.workflows.errors import WorkflowCodeError
from durable.worker.workflows.history import HistoryEvent, parse_time
from durable.worker.workflows.instance import Decision, OptionsLookup


def replay(
    workflow: Any,
    history: Iterable[HistoryEvent],
    decided_through_seq: int,
    *,
    workflow_id: str = "",
    workflow_type: str = "",
    activity_defaults: OptionsLookup | None = None,
) -> Decision:
    """Replay `history` through `workflow` (a WorkflowDefinition, or the function or class
    registered with @app.workflow) and return the new decision. Raises WorkflowCodeError
    (NonDeterminismError among them) when the code broke."""
    definition = workflow if isinstance(workflow, WorkflowDefinition) else define(
        workflow, workflow_type or getattr(workflow, "__name__", "workflow"))
    return definition.decide(history, decided_through_seq, workflow_id=workflow_id,
                             activity_defaults=activity_defaults)


@dataclass(frozen=True)
class ReplayOutcome:
    """One history checked against code: `error` None when it replayed cleanly."""

    workflow_id: str
    workflow_type: str
    events: int
    error: WorkflowCodeError | None


def check_history(
    definition: WorkflowDefinition, workflow_id: str, history: list[HistoryEvent], decided_through_seq: int | None = None
) -> ReplayOutcome:
    """Replay a recorded history against the code. `decided_through_seq`: how far decisions
    were applied (None: through the last command event, the most that is sure)."""
    if decided_through_seq is None:
        decided_through_seq = max((e.sequence_num for e in history if e.is_command), default=0)
    try:
        definition.decide(history, decided_through_seq, workflow_id=workflow_id)
        error = None
    except WorkflowCodeError as exc:
        error = exc
    return ReplayOutcome(workflow_id, definition.name, len(history), error)


def history_from_json(document: dict[str, Any]) -> tuple[str, str, list[HistoryEvent], int | None]:
    """(workflow id, workflow type, events, decided through) of the JSON `durable workflows
    show ID --json` prints: {"workflow": {"id", "workflow_type", "decided_through_seq", ...},
    "events": [{"sequence_num", "event_type", "data", "created_at"}, ...]}."""
    if not isinstance(document, dict) or not isinstance(document.get("events"), list):
        raise ValueError('a history file is the JSON of `durable workflows show ID --json`: '
                         'an object with "workflow" and "events"')
    workflow = document.get("workflow") or {}
    events = [
        HistoryEvent(
            sequence_num=int(e["sequence_num"]),
            event_type=str(e["event_type"]),
            data=e.get("data") if isinstance(e.get("data"), dict) else {},
            created_at=parse_time(e.get("created_at")),
        )
        for e in document["events"]
    ]
    workflow_type = str(workflow.get("workflow_type") or next(
        (e.data.get("workflow_type", "") for e in events if e.event_type == "WorkflowStarted"), ""))
    decided = workflow.get("replay_through_seq", workflow.get("decided_through_seq"))
    return str(workflow.get("id", "")), workflow_type, events, int(decided) if decided is not None else None
