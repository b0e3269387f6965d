"""How the client commands print: tables, timestamps, event summaries and the history JSON.

The JSON of `durable workflows show --json` is a contract: `durable replay --history FILE`
reads it. One object:

    {"workflow": {"id", "workflow_type", "status", "input", "result", "error", "created_at",
                  "updated_at", "started_at", "completed_at", "last_event_seq",
                  "decided_through_seq", "replay_through_seq"},
     "events": [{"sequence_num", "event_type", "data", "created_at"}, ...]}

with the full history, payloads decoded, and timestamps in ISO 8601 with milliseconds and a
time zone (null when unset).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from durable.client.client import EventView, TaskView, WorkflowView


def iso(ts: float) -> str | None:
    """ISO 8601 with milliseconds and time zone (UTC), or None for an unset (0) time."""
    if not ts:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")


def when(ts: float) -> str:
    return iso(ts) or "-"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain aligned table, readable in any terminal and easy to grep."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def short(data: Any, limit: int | None = 100) -> str:
    """The JSON of `data`, cut to `limit` characters (None: whole)."""
    text = compact(data)
    return text if limit is None or len(text) <= limit else text[: limit - 3] + "..."


def step(event: EventView, activity_types: dict[str, str] | None = None) -> str:
    """Which step an event is about: the activity type and id, the timer, the signal, the
    marker. An event that names only an activity id gets the type from `activity_types`."""
    data = event.data if isinstance(event.data, dict) else {}
    if "activity_id" in data:
        kind = data.get("activity_type") or (activity_types or {}).get(str(data["activity_id"]), "activity")
        return f"{kind}[{data['activity_id']}]"
    if "timer_id" in data:
        return f"timer[{data['timer_id']}]"
    if "signal_type" in data:
        return f"signal[{data['signal_type']}]"
    if "child_id" in data:
        return f"child:{data.get('workflow_type') or 'workflow'}[{data['child_id']}]"
    if "marker_id" in data:
        return f"{data.get('kind') or 'marker'}[{data['marker_id']}]"
    return "-"


def activity_types(events: Sequence[EventView]) -> dict[str, str]:
    """activity id -> activity type, from the events that name both."""
    return {
        str(e.data["activity_id"]): str(e.data["activity_type"])
        for e in events
        if isinstance(e.data, dict) and "activity_id" in e.data and "activity_type" in e.data
    }


def attempts(event: EventView) -> str:
    """Attempts of an activity step, as its completion or failure records them."""
    data = event.data if isinstance(event.data, dict) else {}
    if "attempt" in data:  # completed on this attempt
        n = int(data["attempt"])
        return f"{n}" + (f" ({n - 1} {'retry' if n == 2 else 'retries'})" if n > 1 else "")
    if "attempts" in data:  # failed for good after these attempts
        n = int(data["attempts"])
        reason = f", {data['reason']}" if data.get("reason") else ""
        return f"{n} (failed{reason})"
    return ""


def history_table(events: Sequence[EventView], *, full: bool) -> str:
    limit = None if full else 100
    types = activity_types(events)
    return table(
        ["seq", "event", "at", "step", "attempts", "data"],
        [(e.sequence_num, e.event_type, when(e.created_at), step(e, types), attempts(e) or "-", short(e.data, limit))
         for e in events],
    )


def steps_table(tasks: Sequence[TaskView], *, full: bool) -> str:
    """The workflow's activity and timer tasks, oldest first: each step's status, attempts of
    its maximum, when a waiting retry is due, and its errors (how many, the last one)."""
    rows = []
    for t in tasks:
        if t.kind not in ("activity", "timer"):
            continue  # decision tasks are the engine's, not the workflow's steps
        name = f"timer[{t.activity_id}]" if t.kind == "timer" else f"{t.activity_type}[{t.activity_id}]"
        status = t.status
        if t.status == "pending" and t.attempt > 0:
            status = f"pending (retry at {when(t.visible_at)})"
        elif t.status == "claimed":
            status = f"running on {t.claimed_by}"
        last = t.last_error or ""
        if not full and len(last) > 80:
            last = last[:77] + "..."
        errors = f"{len(t.error_history)}: {last}" if t.error_history else (last or "-")
        tries = "-" if t.kind == "timer" else f"{t.attempt} of {t.max_attempts}"
        rows.append((name, status, tries, errors))
    return table(["step", "status", "attempts", "errors (count: last)"], rows)


def workflow_header(view: WorkflowView, *, full: bool) -> str:
    limit = None if full else 200
    lines = [
        f"id:       {view.id}",
        f"type:     {view.workflow_type}",
        f"status:   {view.status}",
        f"created:  {when(view.created_at)}",
        f"started:  {when(view.started_at)}",
        f"updated:  {when(view.updated_at)}",
        f"ended:    {when(view.completed_at)}",
        f"input:    {short(view.input, limit)}",
    ]
    if view.result is not None:
        lines.append(f"result:   {short(view.result, limit)}")
    if view.error is not None:
        lines.append(f"error:    {short(view.error, limit)}")
    if view.parent_workflow_id:
        lines.append(f"parent:   {view.parent_workflow_id} (when it ends: {view.parent_close_policy or 'cancel'})")
    if view.run_number > 1:
        lines.append(f"run:      {view.run_number} (continued as new {view.run_number - 1} time(s))")
    if view.cancel_requested_at and not view.is_terminal:
        lines.append(f"cancel:   requested {when(view.cancel_requested_at)}; its code is stopping")
    if view.blocked:
        lines.append(blocked_text(view.blocked))
    if view.children:
        lines += ["", "children:", table(["id", "type", "status", "when parent ends"],
                                          [(c.id, c.workflow_type, c.status, c.parent_close_policy) for c in view.children])]
    if view.runs:
        lines += ["", "earlier runs:", table(["run", "status", "events", "started", "closed", "input"],
                                              [(r.run_number, r.status, r.events, when(r.started_at), when(r.closed_at),
                                                short(r.input, limit)) for r in view.runs])]
    return "\n".join(lines)


def blocked_text(blocked: dict[str, Any]) -> str:
    """The `blocked:` lines of a workflow whose decisions fail."""
    lines = [f"blocked:  {blocked.get('type', 'Error')}: {blocked.get('message', '')}",
             f"          {blocked.get('failures', 1)} failed decision(s) since {blocked.get('since', '?')}; "
             "retried with backoff until fixed code is deployed"]
    traceback = str(blocked.get("traceback") or "").strip()
    if traceback:
        lines += ["          " + line for line in traceback.splitlines()[-12:]]
    return "\n".join(lines)


def workflow_json(view: WorkflowView) -> dict[str, Any]:
    return {
        "id": view.id,
        "workflow_type": view.workflow_type,
        "status": view.status,
        "input": view.input,
        "result": view.result,
        "error": view.error,
        "created_at": iso(view.created_at),
        "updated_at": iso(view.updated_at),
        "started_at": iso(view.started_at),
        "completed_at": iso(view.completed_at),
        "last_event_seq": view.last_event_seq,
        "decided_through_seq": view.decided_through_seq,
        # what `durable replay` checks the decisions against (the events the last decision saw)
        "replay_through_seq": view.replay_through_seq,
        "parent_workflow_id": view.parent_workflow_id or None,
        "run_number": view.run_number,
        "history_bytes": view.history_bytes,
        "children": [{"id": c.id, "workflow_type": c.workflow_type, "status": c.status,
                      "parent_close_policy": c.parent_close_policy} for c in view.children],
        "runs": [{"run_number": r.run_number, "status": r.status, "events": r.events, "input": r.input,
                  "next_input": r.next_input, "started_at": iso(r.started_at), "closed_at": iso(r.closed_at)}
                 for r in view.runs],
    }


def history_json(view: WorkflowView, events: Sequence[EventView]) -> dict[str, Any]:
    """The object `durable replay --history` reads (see the module docstring)."""
    return {
        "workflow": workflow_json(view),
        "events": [
            {"sequence_num": e.sequence_num, "event_type": e.event_type, "data": e.data, "created_at": iso(e.created_at)}
            for e in events
        ],
    }
