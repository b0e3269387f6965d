"""The console's way to the control plane: durable.client over gRPC, timed per request.

The console holds no database credentials; every page is a few ClientService calls.
"""

from __future__ import annotations

import contextvars
import time
from dataclasses import dataclass
from typing import Any

from durable.client import Client
from durable.common.security import ClientSecurity


@dataclass
class RpcTimer:
    """Seconds one HTTP request spent waiting on the control plane, and how many calls."""

    seconds: float = 0.0
    calls: int = 0


current_timer: contextvars.ContextVar[RpcTimer | None] = contextvars.ContextVar("durable_console_rpc", default=None)


class TimedClient(Client):
    """A Client that adds each call's time to the request's RpcTimer (for Server-Timing)."""

    async def _call(self, method: str, request: Any, timeout: float | None = None) -> Any:
        started = time.perf_counter()
        try:
            return await super()._call(method, request, timeout)
        finally:
            timer = current_timer.get()
            if timer is not None:
                timer.seconds += time.perf_counter() - started
                timer.calls += 1


def with_token(security: ClientSecurity, token: str) -> ClientSecurity:
    """The console's TLS settings with a user's token in place of its own."""
    return security.model_copy(update={"auth_token": token, "auth_token_file": None})


def open_client(address: str, security: ClientSecurity, timeout: float) -> TimedClient:
    return TimedClient(address, security=security, timeout=timeout)
