"""/workflows (filters, counts, paging) and /workflows/<id> (history, timeline, actions)."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from durable.common.errors import DurableError, InvalidArgument, WrongState
from durable.console import timeline
from durable.console.web import action, digest, live_url, no_change, render, unchanged, viewer

STATUSES = ("pending", "running", "completed", "failed", "cancelled")
PAGE_SIZE = 50
# Counts by status stop here ("10,000+"): a status with millions of rows costs no more.
COUNT_CAP = 10_000


def _time(value: str, field: str) -> float:
    """A datetime-local value (read as UTC) or a full ISO time, as Unix seconds; "" = none."""
    if not value:
        return 0.0
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidArgument(f"{field}: {value!r} is not a date and time like 2026-12-01T09:30") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def list_filters(request: Request) -> dict[str, Any]:
    q = request.query_params
    status = q.get("status", "")
    if status and status not in STATUSES:
        raise InvalidArgument(f"status {status!r} is not one of {', '.join(STATUSES)}")
    return {
        "status": status,
        "type": q.get("type", "").strip(),
        "id_prefix": q.get("id", "").strip(),
        "created_from": q.get("from", ""),
        "created_to": q.get("to", ""),
        "page": q.get("page", ""),
    }


async def workflow_list(request: Request) -> Response:
    f = list_filters(request)
    client = viewer(request).client
    common: dict[str, Any] = {
        "workflow_type": f["type"] or None,
        "id_prefix": f["id_prefix"] or None,
        "created_after": _time(f["created_from"], "from"),
        "created_before": _time(f["created_to"], "to"),
    }
    page, counts = await asyncio.gather(
        client.list_workflows_page(status=f["status"] or None, page_token=f["page"], limit=PAGE_SIZE, **common),
        client.count_workflows(at_most=COUNT_CAP, **common),
    )
    version = digest(page, counts)
    if unchanged(request, version):
        return no_change()
    base_query = [(k, v) for k, v in (("type", f["type"]), ("id", f["id_prefix"]), ("from", f["created_from"]),
                                      ("to", f["created_to"])) if v]
    context = {
        "nav": "workflows",
        "filters": f,
        "statuses": STATUSES,
        "page": page,
        "counts": counts,
        "total": sum(counts.values()),
        "cap": COUNT_CAP,
        "base_query": base_query,
        "live": not f["page"],  # only the first page follows new arrivals
        "live_url": live_url(request, version),
    }
    name = "_workflow_list.html" if request.query_params.get("live") == "1" else "workflows.html"
    return render(request, name, context)


async def _detail(request: Request, workflow_id: str) -> dict[str, Any]:
    client = viewer(request).client
    workflow, tasks = await asyncio.gather(
        client.describe_workflow(workflow_id), client.workflow_tasks(workflow_id, include_finished=True, limit=1000)
    )
    return {"workflow": workflow, "tasks": tasks}


async def workflow_detail(request: Request) -> Response:
    workflow_id = request.path_params["workflow_id"]
    return await _render_detail(request, workflow_id)


async def _render_detail(request: Request, workflow_id: str, *, error: str = "", status: int = 200,
                         form: dict[str, str] | None = None) -> Response:
    part = await _detail(request, workflow_id)
    workflow, tasks = part["workflow"], part["tasks"]
    version = digest(workflow, [(t.id, t.status, t.attempt, t.last_error) for t in tasks])
    if unchanged(request, version):
        return no_change()
    events = await viewer(request).client.history(workflow_id)
    now = time.time()
    live_tasks = [t for t in tasks if t.is_live]
    context = {
        "nav": "workflows",
        "workflow": workflow,
        "events": events,
        "tasks": live_tasks,
        "timeline": timeline.build(workflow, events, tasks, now),
        # The `blocked:` reason: the error of the workflow's failing decisions.
        "blocked": _blocked_text(getattr(workflow, "blocked", None)),
        "query": await _query(request, workflow_id),
        "live": not workflow.is_terminal or bool(live_tasks),
        "live_url": live_url(request, version, f"/workflows/{quote(workflow_id, safe='')}"),
        "done": request.query_params.get("done", ""),
        "error": error,
        "form": form or {},
    }
    name = "_workflow_live.html" if request.query_params.get("live") == "1" else "workflow.html"
    return render(request, name, context, status)


def _blocked_text(blocked: Any) -> str:
    if not blocked:
        return ""
    if isinstance(blocked, dict):
        return f"{blocked.get('type', 'Error')}: {blocked.get('message', '')} ({blocked.get('failures', 1)} failed decisions)"
    return str(blocked)


async def _query(request: Request, workflow_id: str) -> dict[str, Any]:
    """A query asked with the page's query form (a GET: queries only read): its answer or why
    there is none. Any signed-in viewer may ask; read-only ones too."""
    name = request.query_params.get("query", "").strip()
    if not name:
        return {}
    arg_text = request.query_params.get("arg", "").strip()
    asked: dict[str, Any] = {"name": name, "arg": arg_text}
    try:
        arg = json.loads(arg_text) if arg_text else None
    except ValueError as exc:
        return {**asked, "error": f"The argument is not valid JSON: {exc}"}
    try:
        answer = await viewer(request).client.query_workflow(workflow_id, name, arg, timeout=5.0)
    except DurableError as exc:
        return {**asked, "error": str(exc)}
    return {**asked, "answer": json.dumps(answer, indent=2, sort_keys=True)}


def _done(workflow_id: str, what: str) -> Response:
    return RedirectResponse(f"/workflows/{quote(workflow_id, safe='')}?done={what}", status_code=303)


@action
async def signal(request: Request, form: FormData) -> Response:
    workflow_id = request.path_params["workflow_id"]
    signal_type = str(form.get("signal_type") or "").strip()
    payload_text = str(form.get("payload") or "").strip() or "{}"
    kept = {"signal_type": signal_type, "payload": payload_text}
    if not signal_type:
        return await _render_detail(request, workflow_id, error="A signal needs a type.", status=400, form=kept)
    try:
        payload = json.loads(payload_text)
    except ValueError as exc:
        return await _render_detail(request, workflow_id, error=f"The payload is not valid JSON: {exc}", status=400,
                                    form=kept)
    if not isinstance(payload, dict):
        return await _render_detail(request, workflow_id, error="The payload must be a JSON object.", status=400,
                                    form=kept)
    try:
        seq = await viewer(request).client.signal_workflow(workflow_id, signal_type, payload)
    except (InvalidArgument, WrongState) as exc:
        return await _render_detail(request, workflow_id, error=str(exc), status=409, form=kept)
    return _done(workflow_id, f"signal-{seq}")


@action
async def cancel(request: Request, form: FormData) -> Response:
    workflow_id = request.path_params["workflow_id"]
    reason = str(form.get("reason") or "").strip() or "cancelled from the console"
    try:
        n = await viewer(request).client.cancel_workflow(workflow_id, reason)
    except DurableError as exc:
        if not isinstance(exc, (InvalidArgument, WrongState)):
            raise
        return await _render_detail(request, workflow_id, error=str(exc), status=409)
    return _done(workflow_id, f"cancel-{n}")
