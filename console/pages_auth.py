"""Sign-in and sign-out (only in the `signin` mode)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from durable.client import Unauthenticated, Unavailable
from durable.console.auth import CSRF_COOKIE, CSRF_FIELD, SESSION_COOKIE, csrf_matches, scope_of
from durable.console.backend import open_client, with_token
from durable.console.web import Refused, render


def _safe_next(target: str | None) -> str:
    """Only a path on this site (never `//host` or a full URL) is followed after sign-in."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


async def sign_in_form(request: Request) -> Response:
    if request.app.state.auth_mode != "signin":
        return RedirectResponse("/", status_code=303)
    return render(request, "sign_in.html", {"nav": "", "next": _safe_next(request.query_params.get("next"))})


async def sign_in(request: Request) -> Response:
    state = request.app.state
    if state.auth_mode != "signin":
        return RedirectResponse("/", status_code=303)
    form = await request.form()
    target = _safe_next(str(form.get("next") or ""))
    if not csrf_matches(request.cookies.get(CSRF_COOKIE), str(form.get(CSRF_FIELD) or "")):
        raise Refused(403, "The form expired (its CSRF token does not match): reload the page and try again.")
    token = str(form.get("token") or "").strip()
    if not token:
        return render(request, "sign_in.html", {"nav": "", "next": target, "error": "Enter a token."}, 400)
    client = open_client(state.settings.grpc_address, with_token(state.security, token), state.settings.rpc_timeout)
    try:
        await client.list_workers()  # the control plane decides whether the token is good
    except Unauthenticated:
        await client.close()
        return render(
            request, "sign_in.html", {"nav": "", "next": target, "error": "The control plane refused this token."}, 401
        )
    except Unavailable:
        await client.close()
        raise
    await state.sessions.drop(request.cookies.get(SESSION_COOKIE))
    session = state.sessions.create(token, await scope_of(client), client)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        SESSION_COOKIE, session.id, httponly=True, samesite="lax", secure=state.settings.secure_cookies,
        path="/", max_age=int(state.settings.session_seconds),
    )
    return response


async def sign_out(request: Request) -> Response:
    form = await request.form()
    if not csrf_matches(request.cookies.get(CSRF_COOKIE), str(form.get(CSRF_FIELD) or "")):
        raise Refused(403, "The form expired (its CSRF token does not match): reload the page and try again.")
    await request.app.state.sessions.drop(request.cookies.get(SESSION_COOKIE))
    response = RedirectResponse("/sign-in", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
