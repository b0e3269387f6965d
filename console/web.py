"""What every page shares: templates and their filters, rendering, live fragments, forms."""

from __future__ import annotations

import hashlib
import html
import json
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from importlib import resources
from typing import Any
from urllib.parse import urlencode, urlsplit

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.templating import Jinja2Templates

from durable.console.auth import CSRF_COOKIE, CSRF_FIELD, Viewer, csrf_matches


def when(ts: float | None) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S") if ts else "–"


def iso(ts: float | None) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat() if ts else ""


def age(ts: float | None, now: float | None = None) -> str:
    if not ts:
        return "–"
    seconds = max((now or time.time()) - ts, 0.0)
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def pretty(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)


def templates() -> Jinja2Templates:
    folder = resources.files("durable.console").joinpath("templates")
    t = Jinja2Templates(directory=str(folder))
    t.env.filters.update(when=when, iso=iso, age=age, pretty=pretty)
    t.env.globals.update(urlencode=urlencode)
    return t


def viewer(request: Request) -> Viewer:
    return request.state.viewer  # type: ignore[no-any-return]


def render(request: Request, name: str, context: dict[str, Any], status: int = 200) -> Response:
    """A page or fragment, with what every template needs (viewer, CSRF token, settings)."""
    base = {
        "viewer": viewer(request),
        "csrf_token": request.state.csrf,
        "csrf_field": CSRF_FIELD,
        "settings": request.app.state.settings,
        "auth_mode": request.app.state.auth_mode,
        "now": time.time(),
    }
    t: Jinja2Templates = request.app.state.templates
    return t.TemplateResponse(request, name, {**base, **context}, status_code=status)


def digest(*parts: Any) -> str:
    """A short fingerprint of what a live fragment shows: the same data, the same digest."""
    return hashlib.sha1(repr(parts).encode()).hexdigest()[:16]


def is_live_poll(request: Request) -> bool:
    return request.query_params.get("live") == "1"


def unchanged(request: Request, version: str) -> bool:
    """Conditional polling: the fragment the browser holds is already this version."""
    return is_live_poll(request) and request.query_params.get("v") == version


def no_change() -> Response:
    # htmx leaves the page alone on 204
    return Response(status_code=204)


def live_url(request: Request, version: str, path: str | None = None) -> str:
    """This page's URL (or `path`, with this page's query) as a live fragment of `version`."""
    query = [(k, v) for k, v in request.query_params.multi_items() if k not in ("live", "v", "done", "deleted", "failed")]
    query += [("live", "1"), ("v", version)]
    return f"{path or request.url.path}?{urlencode(query)}"


class Refused(Exception):
    """A request the console turns away itself (a bad form, a read-only session)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


Action = Callable[[Request, FormData], Awaitable[Response]]


def action(handler: Action) -> Callable[[Request], Awaitable[Response]]:
    """A POST that changes something: needs a `client`-scoped viewer, a matching CSRF token
    and, when the browser names one, a same-origin Origin."""

    async def endpoint(request: Request) -> Response:
        if not viewer(request).can_act:
            raise Refused(403, "This sign-in may only read: actions need a client-scoped token.")
        # host only: behind a TLS-terminating proxy the scheme seen here may differ
        origin = request.headers.get("origin")
        if origin and origin != "null" and urlsplit(origin).netloc != request.headers.get("host", ""):
            raise Refused(403, "This form was sent from another site.")
        form = await request.form()
        if not csrf_matches(request.cookies.get(CSRF_COOKIE), str(form.get(CSRF_FIELD) or "")):
            raise Refused(403, "The form expired (its CSRF token does not match): reload the page and try again.")
        return await handler(request, form)

    return endpoint


def html_error(request: Request, status: int, title: str, message: str) -> Response:
    if not hasattr(request.state, "viewer"):
        text = html.escape(f"{title}: {message}")
        return HTMLResponse(f"<!doctype html><title>{status}</title><p>{text}</p>", status_code=status)
    return render(request, "error.html", {"title": title, "message": message, "nav": ""}, status)
