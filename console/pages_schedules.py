"""/schedules (the list) and /schedules/{id} (spec, next fire times, recent runs), with pause,
resume and trigger for viewers who may act (hidden for read-only ones, refused if sent)."""

from __future__ import annotations

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from durable.client import ScheduleView
from durable.console.web import action, digest, live_url, no_change, render, unchanged, viewer

UPCOMING = 5
# the order of a recent fire's details (as `durable schedules show` prints them; the run has its column)
DETAILS = ("previous_run_id", "count", "from", "to", "started", "existing", "reason", "error")


def state(s: ScheduleView) -> str:
    if s.paused:
        return "paused"
    return "active" if s.next_tick else "ended"


async def schedule_list(request: Request) -> Response:
    prefix = request.query_params.get("prefix", "").strip()
    rows = await viewer(request).client.list_schedules(id_prefix=prefix or None)
    version = digest(rows)
    if unchanged(request, version):
        return no_change()
    context = {
        "nav": "schedules",
        "schedules": [(s, state(s)) for s in rows],
        "prefix": prefix,
        "live": True,
        "live_url": live_url(request, version),
    }
    name = "_schedule_list.html" if request.query_params.get("live") == "1" else "schedules.html"
    return render(request, name, context)


async def schedule_detail(request: Request) -> Response:
    schedule_id = request.path_params["schedule_id"]
    s, ticks = await viewer(request).client.describe_schedule(schedule_id, upcoming=UPCOMING)
    version = digest(s, ticks)
    if unchanged(request, version):
        return no_change()
    fires = [
        (fire, " ".join(f"{k}={fire[k]}" for k in DETAILS if k in fire)) for fire in reversed(s.recent_fires)
    ]
    context = {
        "nav": "schedules",
        "s": s,
        "state": state(s),
        "ticks": ticks,
        "fires": fires,
        "done": request.query_params.get("done", ""),
        "live": True,
        "live_url": live_url(request, version),
    }
    name = "_schedule_live.html" if request.query_params.get("live") == "1" else "schedule.html"
    return render(request, name, context)


def _back(schedule_id: str, done: str) -> Response:
    from urllib.parse import quote

    return RedirectResponse(f"/schedules/{quote(schedule_id, safe='')}?done={done}", status_code=303)


@action
async def pause(request: Request, form: FormData) -> Response:
    schedule_id = request.path_params["schedule_id"]
    await viewer(request).client.pause_schedule(schedule_id, str(form.get("note") or "paused in the console"))
    return _back(schedule_id, "paused")


@action
async def resume(request: Request, form: FormData) -> Response:
    schedule_id = request.path_params["schedule_id"]
    await viewer(request).client.resume_schedule(schedule_id)
    return _back(schedule_id, "resumed")


@action
async def trigger(request: Request, form: FormData) -> Response:
    schedule_id = request.path_params["schedule_id"]
    outcome, _ = await viewer(request).client.trigger_schedule(schedule_id)
    return _back(schedule_id, f"triggered-{outcome}")
