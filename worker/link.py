"""The worker's link to the control plane: one channel, call deadlines, error mapping,
connection state and the reconnect backoff."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from durable.common import DurableError
from durable.common.security import ClientSecurity, open_channel
from durable.common.status import DATABASE_UNAVAILABLE_DETAILS, error_for_rpc, overloaded
from durable.proto.v1 import durable_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)

# Codes after which the same call may succeed later: the control plane is restarting, is
# unreachable, or did not answer in time. A completion call retried after a lost answer is
# safe: a repeat gets FAILED_PRECONDITION and changed nothing.
TRANSIENT_CODES = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})


class ControlPlaneUnreachable(DurableError):
    """The control plane did not answer (UNAVAILABLE, deadline exceeded): try again later."""


_SHARED_RNG = random.Random()


class Backoff:
    """Doubling delays with full jitter, capped: 'decorrelated' enough for a fleet."""

    def __init__(self, initial: float, cap: float, rng: random.Random | None = None) -> None:
        self.initial = initial
        self.cap = cap
        self.failures = 0
        # The module's shared generator unless one is given: seeding a Random() per backoff
        # costs an os.urandom call, and one is made for every task's report.
        self._rng = rng or _SHARED_RNG

    def next_delay(self) -> float:
        ceiling = min(self.cap, self.initial * 2 ** min(self.failures, 30))
        self.failures += 1
        return self._rng.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        self.failures = 0


class ControlPlaneLink:
    """Calls WorkerService and tracks whether the control plane is reachable.

    `call` raises ControlPlaneUnreachable for transient failures (and marks the link down)
    and the durable error of `durable.common.status` for every other status. Whoever owns
    registration waits on `wait_down()` and calls `mark_up()` after registering again.
    """

    def __init__(
        self,
        address: str,
        *,
        rpc_timeout: float,
        on_change: Callable[[bool], Awaitable[None]] | None = None,
        security: ClientSecurity | None = None,
    ) -> None:
        self.address = address
        self.rpc_timeout = rpc_timeout
        self._on_change = on_change
        self._channel = open_channel(
            address,
            security,
            options=[
                ("grpc.keepalive_time_ms", 20_000),
                ("grpc.keepalive_timeout_ms", 10_000),
                ("grpc.keepalive_permit_without_calls", 1),
                ("grpc.initial_reconnect_backoff_ms", 200),
                ("grpc.max_reconnect_backoff_ms", 5_000),
                ("grpc.max_receive_message_length", 64 * 1024 * 1024),
                ("grpc.max_send_message_length", 64 * 1024 * 1024),
            ],
        )
        self.stub = pb_grpc.WorkerServiceStub(self._channel)
        self._connected = False
        self._up = asyncio.Event()
        self._down = asyncio.Event()
        self._down.set()

    @property
    def connected(self) -> bool:
        return self._connected

    async def call(self, method: str, request: Any, *, timeout: float | None = None) -> Any:
        """Call WorkerService.`method`; see the class docstring for the errors."""
        rpc = getattr(self.stub, method)
        try:
            return await rpc(request, timeout=timeout or self.rpc_timeout)
        except grpc.aio.AioRpcError as exc:
            code = exc.code()
            details = exc.details() or code.name
            if code in TRANSIENT_CODES:
                await self.mark_down(f"{method}: {code.name}: {details}")
                raise ControlPlaneUnreachable(f"{method}: {code.name}: {details}") from None
            if overloaded(exc):  # it answered, busy: the caller backs off; the link stays up
                raise ControlPlaneUnreachable(f"{method}: {details}") from None
            raise error_for_rpc(exc, f"{method}: {details}") from None

    async def mark_down(self, reason: str) -> None:
        if self._connected:
            if DATABASE_UNAVAILABLE_DETAILS in reason:  # it answered: its database is what is away
                log.warning("the control plane at %s cannot reach its database (%s); reconnecting",
                            self.address, reason)
            else:
                log.warning("control plane at %s unreachable (%s); reconnecting", self.address, reason)
        await self._set(False)

    async def mark_up(self) -> None:
        if not self._connected:
            log.info("connected to the control plane at %s", self.address)
        await self._set(True)

    async def _set(self, connected: bool) -> None:
        changed = connected != self._connected
        self._connected = connected
        if connected:
            self._down.clear()
            self._up.set()
        else:
            self._up.clear()
            self._down.set()
        if changed and self._on_change is not None:
            await self._on_change(connected)

    async def wait_up(self) -> None:
        await self._up.wait()

    async def wait_down(self) -> None:
        await self._down.wait()

    async def close(self) -> None:
        await self._channel.close(grace=None)
