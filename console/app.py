"""The console's Starlette application: routes, the sign-in gate, timing and error pages."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from durable.client import PermissionDenied, Unauthenticated, Unavailable
from durable.common.errors import DurableError, InvalidArgument, NotFound, WrongState
from durable.common.security import ClientSecurity, load_client_security
from durable.console import pages_auth, pages_ops, pages_schedules, pages_workflows
from durable.console.auth import CSRF_COOKIE, SESSION_COOKIE, Sessions, Viewer, new_csrf_token, scope_of
from durable.console.backend import RpcTimer, current_timer, open_client
from durable.console.settings import ConsoleSettings
from durable.console.web import Refused, html_error, templates

logger = logging.getLogger(__name__)

OPEN_PATHS = ("/static/", "/healthz", "/sign-in")

SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
}


def resolve_auth_mode(settings: ConsoleSettings, security: ClientSecurity) -> str:
    if settings.auth != "auto":
        return settings.auth
    return "signin" if security.tokens() else "open"


class Gate(BaseHTTPMiddleware):
    """Per request: the CSRF cookie, who is looking (or the way to the sign-in form), and the
    Server-Timing header (`app` = whole request, `rpc` = waiting on the control plane)."""

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        started = time.perf_counter()
        timer = RpcTimer()
        token = current_timer.set(timer)
        try:
            response = await self._gated(request, call_next)
        finally:
            current_timer.reset(token)
        elapsed = (time.perf_counter() - started) * 1000
        response.headers["server-timing"] = (
            f"app;dur={elapsed:.1f}, rpc;dur={timer.seconds * 1000:.1f};desc=\"{timer.calls} calls\""
        )
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    async def _gated(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        state = request.app.state
        csrf = request.cookies.get(CSRF_COOKIE)
        fresh_csrf = not csrf
        request.state.csrf = csrf or new_csrf_token()
        if request.url.path.startswith("/static/") or request.url.path == "/healthz":
            return await call_next(request)
        if state.auth_mode == "signin":
            session = await state.sessions.get(request.cookies.get(SESSION_COOKIE))
            if session is not None:
                request.state.viewer = Viewer(session.scope, session.client, session, signed_in=True)
            elif not request.url.path.startswith(OPEN_PATHS):
                return _to_sign_in(request)
            else:
                request.state.viewer = Viewer("read", state.client)
        else:
            if state.scope is None:  # the console's own credential, asked about once
                try:
                    state.scope = await scope_of(state.client)
                except DurableError:  # not reachable now: the page says so; ask again later
                    request.state.viewer = Viewer("read", state.client)
                    return await call_next(request)
            request.state.viewer = Viewer(state.scope, state.client)
        response = await call_next(request)
        if fresh_csrf:
            response.set_cookie(
                CSRF_COOKIE, request.state.csrf, httponly=True, samesite="lax",
                secure=state.settings.secure_cookies, path="/",
            )
        return response


def _to_sign_in(request: Request) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if request.headers.get("hx-request"):
        return Response(status_code=401, headers={"hx-redirect": "/sign-in"})
    from urllib.parse import urlencode

    return RedirectResponse(f"/sign-in?{urlencode({'next': target})}", status_code=303)


async def _error(request: Request, exc: Exception) -> Response:
    if isinstance(exc, Refused):
        return html_error(request, exc.status, "Refused", exc.message)
    if isinstance(exc, Unavailable):
        return html_error(request, 503, "Control plane unavailable", str(exc))
    if isinstance(exc, Unauthenticated):
        if request.app.state.auth_mode == "signin":
            await request.app.state.sessions.drop(request.cookies.get(SESSION_COOKIE))
            return _to_sign_in(request)
        return html_error(request, 502, "The control plane refused the console's token", str(exc))
    if isinstance(exc, PermissionDenied):
        return html_error(request, 403, "Not allowed", str(exc))
    if isinstance(exc, NotFound):
        return html_error(request, 404, "Not found", str(exc))
    if isinstance(exc, InvalidArgument):
        return html_error(request, 400, "Invalid request", str(exc))
    if isinstance(exc, WrongState):
        return html_error(request, 409, "Not possible now", str(exc))
    if isinstance(exc, DurableError):
        return html_error(request, 502, "The control plane answered with an error", str(exc))
    raise exc


async def healthz(request: Request) -> Response:
    return PlainTextResponse("ok")


def create_app(settings: ConsoleSettings | None = None, security: ClientSecurity | None = None) -> Starlette:
    """The console as an ASGI application. Settings and security are read from the environment
    unless given; nothing connects until the first request."""
    settings = settings or ConsoleSettings()
    security = security or load_client_security()
    auth_mode = resolve_auth_mode(settings, security)
    if auth_mode == "proxy" and not security.tokens():
        logger.warning("DURABLE_CONSOLE_AUTH=proxy without a token: calls carry no credentials")
    # open and proxy: one shared client with the console's own credentials. signin: each
    # session gets a client that carries its user's token; this one is never used for calls.
    base_security = security if auth_mode != "signin" else security.model_copy(
        update={"auth_token": None, "auth_token_file": None}
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        app.state.client = open_client(settings.grpc_address, base_security, settings.rpc_timeout)
        try:
            yield
        finally:
            await app.state.sessions.close()
            await app.state.client.close()

    static = StaticFiles(packages=[("durable.console", "static")])
    routes: list[Any] = [
        Route("/", pages_ops.index),
        Route("/healthz", healthz),
        Route("/workflows", pages_workflows.workflow_list),
        Route("/workflows/{workflow_id:path}/signal", pages_workflows.signal, methods=["POST"]),
        Route("/workflows/{workflow_id:path}/cancel", pages_workflows.cancel, methods=["POST"]),
        Route("/workflows/{workflow_id:path}", pages_workflows.workflow_detail),
        Route("/dead-letters", pages_ops.dead_letters),
        Route("/dead-letters/requeue", pages_ops.requeue, methods=["POST"]),
        Route("/dead-letters/delete", pages_ops.delete, methods=["POST"]),
        Route("/schedules", pages_schedules.schedule_list),
        Route("/schedules/{schedule_id:path}/pause", pages_schedules.pause, methods=["POST"]),
        Route("/schedules/{schedule_id:path}/resume", pages_schedules.resume, methods=["POST"]),
        Route("/schedules/{schedule_id:path}/trigger", pages_schedules.trigger, methods=["POST"]),
        Route("/schedules/{schedule_id:path}", pages_schedules.schedule_detail),
        Route("/workers", pages_ops.workers),
        Route("/queues", pages_ops.queues),
        Route("/sign-in", pages_auth.sign_in_form, methods=["GET"]),
        Route("/sign-in", pages_auth.sign_in, methods=["POST"]),
        Route("/sign-out", pages_auth.sign_out, methods=["POST"]),
        Mount("/static", static, name="static"),
    ]
    errors: dict[Any, Any] = {
        e: _error for e in (Refused, DurableError)
    }
    app = Starlette(routes=routes, middleware=[Middleware(Gate)], exception_handlers=errors, lifespan=lifespan)
    app.state.settings = settings
    app.state.security = security
    app.state.auth_mode = auth_mode
    app.state.sessions = Sessions(settings.session_seconds)
    app.state.scope = None
    app.state.templates = templates()
    return app
