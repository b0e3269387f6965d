"""/ (the overview), /dead-letters, /workers and /queues."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any
from urllib.parse import urlencode

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from durable.common.errors import InvalidArgument, NotFound, WrongState
from durable.console import sparkline
from durable.console.pages_workflows import COUNT_CAP
from durable.console.web import action, digest, live_url, no_change, render, unchanged, viewer

DEAD_LETTER_PAGE = 50
MAX_REQUEUE = 500


async def index(request: Request) -> Response:
    client = viewer(request).client
    counts, stats, workers, (dead, more_dead) = await asyncio.gather(
        client.count_workflows(at_most=COUNT_CAP), client.queue_stats(), client.list_workers(),
        client.dead_letters_page(limit=DEAD_LETTER_PAGE),
    )
    version = digest(counts, stats, workers, dead)
    if unchanged(request, version):
        return no_change()
    context = {
        "nav": "home",
        "counts": counts,
        "cap": COUNT_CAP,
        "pending": sum(s.pending for s in stats),
        "claimed": sum(s.claimed for s in stats),
        "oldest": max((s.oldest_pending_age for s in stats), default=0.0),
        "workers": workers,
        "active_workers": sum(1 for w in workers if w.status == "active"),
        "dead": len(dead),
        "more_dead": bool(more_dead),
        "live": True,
        "live_url": live_url(request, version),
    }
    return render(request, "_index_live.html" if request.query_params.get("live") == "1" else "index.html", context)


def _errors(entry: Any) -> list[dict[str, Any]]:
    try:
        return list(json.loads(entry.error_history_json or "{}").get("errors", []))
    except ValueError:
        return []


async def dead_letters(request: Request) -> Response:
    q = request.query_params
    activity_type = q.get("type", "").strip()
    error_text = q.get("error", "").strip()
    page = q.get("page", "")
    entries, next_token = await viewer(request).client.dead_letters_page(
        activity_type=activity_type or None, error_contains=error_text or None, page_token=page,
        limit=DEAD_LETTER_PAGE,
    )
    version = digest(entries)
    if unchanged(request, version):
        return no_change()
    base_query = [(k, v) for k, v in (("type", activity_type), ("error", error_text)) if v]
    context = {
        "nav": "dead-letters",
        "entries": [(e, _errors(e)) for e in entries],
        "filters": {"type": activity_type, "error": error_text, "page": page},
        "next_token": next_token,
        "base_query": base_query,
        "done": q.get("done", ""),
        "deleted": q.get("deleted", ""),
        "failed": q.get("failed", ""),
        "live": not page,
        "live_url": live_url(request, version),
        "back": "/dead-letters" + (f"?{urlencode(base_query)}" if base_query else ""),
    }
    name = "_dead_letter_list.html" if q.get("live") == "1" else "dead_letters.html"
    return render(request, name, context)


def _chosen(form: FormData, verb: str) -> list[str]:
    """The entry of the row's own button (`one`), else every ticked one (`ids`)."""
    one = str(form.get("one") or "")
    ids = [one] if one else [str(v) for v in form.getlist("ids")]
    if not ids:
        raise InvalidArgument(f"Tick at least one dead letter to {verb}.")
    if len(ids) > MAX_REQUEUE:
        raise InvalidArgument(f"{verb.capitalize()} at most {MAX_REQUEUE} entries at once.")
    return list(dict.fromkeys(ids))


def _safe_back(form: FormData) -> str:
    back = str(form.get("back") or "/dead-letters")
    return back if back.startswith("/dead-letters") else "/dead-letters"


def _back(form: FormData, outcome: str) -> Response:
    back = _safe_back(form)
    sep = "&" if "?" in back else "?"
    return RedirectResponse(f"{back}{sep}{outcome}", status_code=303)


@action
async def requeue(request: Request, form: FormData) -> Response:
    """Requeue the entry of the row's own button (`one`), else every ticked one (`ids`)."""
    ids = _chosen(form, "requeue")
    client = viewer(request).client
    requeued, failed = 0, 0
    for dead_letter_id in ids:
        try:
            await client.requeue_dead_letter(dead_letter_id)
            requeued += 1
        except (NotFound, WrongState, InvalidArgument):
            failed += 1
    return _back(form, f"done={requeued}&failed={failed}")


@action
async def delete(request: Request, form: FormData) -> Response:
    """Delete the chosen entries, after a confirmation page (a second POST with `confirm=yes`):
    a plain form, so it asks the same way without JavaScript."""
    ids = _chosen(form, "delete")
    if form.get("confirm") != "yes":
        context = {"nav": "dead-letters", "ids": ids, "back": _safe_back(form)}
        return render(request, "dead_letters_delete.html", context)
    client = viewer(request).client
    deleted, failed = 0, 0
    for dead_letter_id in ids:
        try:
            await client.delete_dead_letter(dead_letter_id)
            deleted += 1
        except (NotFound, InvalidArgument):
            failed += 1
    return _back(form, f"deleted={deleted}&failed={failed}")


async def workers(request: Request) -> Response:
    include_stopped = request.query_params.get("all") == "1"
    rows = await viewer(request).client.list_workers(include_stopped=include_stopped)
    now = time.time()
    version = digest(rows)
    if unchanged(request, version):
        return no_change()
    context = {
        "nav": "workers",
        "workers": rows,
        "include_stopped": include_stopped,
        "now": now,
        "live": True,
        "live_url": live_url(request, version),
    }
    return render(request, "_worker_list.html" if request.query_params.get("live") == "1" else "workers.html", context)


async def queues(request: Request) -> Response:
    client = viewer(request).client
    stats, breakers, (done, _) = await asyncio.gather(
        client.queue_stats(), client.circuit_breakers(),
        client.throughput(since=sparkline.hour_start(), bucket_seconds=sparkline.BUCKET_SECONDS),
    )
    version = digest(stats, breakers, done)
    if unchanged(request, version):
        return no_change()
    # every type with work queued or completed in the last hour, in kind and type order
    per_minute = {(t.kind, t.type): list(t.completed) for t in done}
    keys = sorted({(s.kind, s.type) for s in stats} | per_minute.keys())
    by_key = {(s.kind, s.type): s for s in stats}
    idle = [0] * sparkline.BUCKETS
    rows = [(kind, type_, by_key.get((kind, type_)), sparkline.build(per_minute.get((kind, type_), idle), type_))
            for kind, type_ in keys]
    context = {
        "nav": "queues",
        "rows": rows,
        "breakers": breakers,
        "live": True,
        "live_url": live_url(request, version),
    }
    return render(request, "_queue_list.html" if request.query_params.get("live") == "1" else "queues.html", context)
