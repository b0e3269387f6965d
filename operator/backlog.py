"""Reads a pool's backlog and its workers' load from the control plane over gRPC.

Every call has a deadline. Any failure (unreachable, timeout, an error status, an answer
that does not add up) becomes `BacklogUnavailable` with a CamelCase reason; the caller
keeps the current replicas and retries after `Backoff`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import grpc

from durable.common.security import ClientSecurity, load_client_security, open_channel
from durable.operator.scaling import BacklogSample
from durable.proto.v1 import durable_pb2, durable_pb2_grpc

__all__ = ["BacklogUnavailable", "Backoff", "ControlPlane", "ControlPlanes"]


class BacklogUnavailable(Exception):
    """The backlog could not be read. `reason`: ControlPlaneUnavailable, ControlPlaneError,
    or InvalidBacklog (the answer did not make sense)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def _rpc_failure(address: str, call: str, exc: grpc.aio.AioRpcError) -> BacklogUnavailable:
    code = exc.code()
    reason = ("ControlPlaneUnavailable"
              if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
              else "ControlPlaneError")
    details = exc.details() or ""
    return BacklogUnavailable(reason, f"{call} to {address} failed: {code.name} {details}".strip())


class ControlPlane:
    """The ClientService of one control plane."""

    def __init__(self, address: str, *, timeout: float, security: ClientSecurity | None = None) -> None:
        self.address = address
        self._timeout = timeout
        # The bearer token and TLS of DURABLE_AUTH_TOKEN(_FILE) and DURABLE_TLS_*, as workers use.
        self._channel = open_channel(address, security or load_client_security())
        self._stub = durable_pb2_grpc.ClientServiceStub(self._channel)

    async def close(self) -> None:
        await self._channel.close()

    async def backlog(
        self, activity_types: Iterable[str], workflow_types: Iterable[str]
    ) -> BacklogSample:
        """Pending, delayed and running tasks and the oldest pending age, summed over the types."""
        wanted = ({("activity", t) for t in activity_types}
                  | {("workflow", t) for t in workflow_types})
        request = durable_pb2.GetQueueStatsRequest(
            activity_types=sorted(t for k, t in wanted if k == "activity"),
            workflow_types=sorted(t for k, t in wanted if k == "workflow"),
        )
        try:
            response = await self._stub.GetQueueStats(request, timeout=self._timeout)
        except grpc.aio.AioRpcError as exc:
            raise _rpc_failure(self.address, "GetQueueStats", exc) from exc
        pending = delayed = running = 0
        oldest = 0.0
        seen: set[tuple[str, str]] = set()
        for stats in response.types:
            key = (stats.kind, stats.type)
            if stats.kind not in ("activity", "workflow"):
                raise BacklogUnavailable("InvalidBacklog", f"unknown task kind {stats.kind!r}")
            if key in seen:
                raise BacklogUnavailable("InvalidBacklog", f"{stats.kind} {stats.type!r} twice")
            seen.add(key)
            if key not in wanted:
                continue  # not this pool's type
            age = stats.oldest_pending_age
            negative = min(stats.pending, stats.delayed, stats.claimed) < 0
            if negative or not math.isfinite(age) or age < 0:
                raise BacklogUnavailable(
                    "InvalidBacklog",
                    f"nonsense counts for {stats.kind} {stats.type!r}: pending={stats.pending} "
                    f"delayed={stats.delayed} claimed={stats.claimed} oldest={age}")
            pending += stats.pending
            delayed += stats.delayed
            running += stats.claimed
            if stats.pending > 0:
                oldest = max(oldest, age)
        return BacklogSample(pending=pending, running=running, delayed=delayed,
                             oldest_pending_age=oldest)

    async def worker_loads(self, worker_group: str) -> dict[str, int]:
        """current_load per worker id of the group (ids are the pods' names)."""
        try:
            response = await self._stub.ListWorkers(
                durable_pb2.ListWorkersRequest(worker_group=worker_group), timeout=self._timeout)
        except grpc.aio.AioRpcError as exc:
            raise _rpc_failure(self.address, "ListWorkers", exc) from exc
        return {w.id: max(0, w.current_load) for w in response.workers
                if w.worker_group in ("", worker_group)}


class ControlPlanes:
    """One `ControlPlane` per address (pools may name their own), created on first use."""

    def __init__(self, *, timeout: float) -> None:
        self._timeout = timeout
        self._planes: dict[str, ControlPlane] = {}

    def get(self, address: str) -> ControlPlane:
        plane = self._planes.get(address)
        if plane is None:
            plane = self._planes[address] = ControlPlane(address, timeout=self._timeout)
        return plane

    async def close(self) -> None:
        planes, self._planes = list(self._planes.values()), {}
        for plane in planes:
            await plane.close()


@dataclass
class Backoff:
    """Doubling delays after consecutive failures: base, 2*base, 4*base, ... up to maximum."""

    maximum: float
    failures: int = field(default=0)

    def failed(self, base: float) -> float:
        """Record a failure; the delay before the next attempt."""
        self.failures += 1
        return min(self.maximum, base * 2 ** (self.failures - 1))

    def succeeded(self) -> None:
        self.failures = 0
