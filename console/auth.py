"""Who is looking: sessions, the CSRF token of forms, and what a credential may do.

Three ways in (ConsoleSettings.auth):
- open: no sign-in; calls carry whatever token the console itself has (usually none).
- proxy: no sign-in; an authenticating proxy in front decides who gets here, and every call
  carries the console's own token.
- signin: a form takes a token, the control plane is asked whether it accepts it, and the
  session's calls carry that token from then on, so the control plane enforces its scope.
  Sessions live in this process's memory (run one replica, or sticky sessions).
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from durable.client import Client
from durable.common.security import granted_scope

Scope = Literal["client", "read"]

SESSION_COOKIE = "durable_console_session"
CSRF_COOKIE = "durable_console_csrf"
CSRF_FIELD = "csrf"


async def scope_of(client: Client) -> Scope:
    """What the credential `client` carries may do: `client` (read and act) or `read`.

    The one place the console decides whether to show action buttons; it is asked once per
    sign-in (and once for the console's own credential in the open and proxy modes), after
    the control plane accepted the credential: the scope the control plane grants it.
    """
    granted = await granted_scope(client.channel)
    return "client" if granted in ("client", "admin") else "read"


@dataclass
class Session:
    """A signed-in user: the token they gave, its scope and a client that sends it."""

    id: str
    token: str
    scope: Scope
    client: Client
    expires_at: float


@dataclass
class Viewer:
    """What a request may see and do."""

    scope: Scope
    client: Client
    session: Session | None = None
    signed_in: bool = False

    @property
    def can_act(self) -> bool:
        return self.scope == "client"


@dataclass
class Sessions:
    """Sessions by their random id, each valid `lifetime` seconds after its last use."""

    lifetime: float
    clock: Callable[[], float] = time.monotonic
    _by_id: dict[str, Session] = field(default_factory=dict)

    def create(self, token: str, scope: Scope, client: Client) -> Session:
        session = Session(secrets.token_urlsafe(32), token, scope, client, self.clock() + self.lifetime)
        self._by_id[session.id] = session
        return session

    async def get(self, session_id: str | None) -> Session | None:
        """The live session with this id (its lifetime renewed), or None."""
        await self._expire()
        session = self._by_id.get(session_id or "")
        if session is None:
            return None
        session.expires_at = self.clock() + self.lifetime
        return session

    async def drop(self, session_id: str | None) -> None:
        session = self._by_id.pop(session_id or "", None)
        if session is not None:
            await session.client.close()

    async def close(self) -> None:
        for session_id in list(self._by_id):
            await self.drop(session_id)

    async def _expire(self) -> None:
        now = self.clock()
        for session_id in [s.id for s in self._by_id.values() if s.expires_at <= now]:
            await self.drop(session_id)

    def __len__(self) -> int:
        return len(self._by_id)


def new_csrf_token() -> str:
    return secrets.token_urlsafe(32)


def csrf_matches(cookie: str | None, submitted: str | None) -> bool:
    """Double-submit check: the form's hidden field equals the cookie (constant time)."""
    if not cookie or not submitted:
        return False
    return hmac.compare_digest(cookie.encode(), submitted.encode())
