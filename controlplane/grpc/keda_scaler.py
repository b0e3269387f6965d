"""KEDA's external scaler, served beside the durable API on the same port.

A ScaledObject with a trigger of type `external` and `scalerAddress: <control plane>:9001`
scales a worker Deployment on the backlog of the types in its metadata:

    metadata:
      scalerAddress: durable-controlplane.durable.svc:9001
      activityTypes: reason,act
      workflowTypes: agent_turn
      targetBacklogPerReplica: "10"   # tasks per replica (pending + running); default 10
      activationBacklog: "0"          # active (scale from zero) above this; default 0

This is an alternative to the durable operator's own autoscaler for clusters that already run
KEDA; do not point both at one Deployment.

StreamIsActive streams share one read: every `stream_interval` seconds (2 s) one queue_stats
over the types of every open stream, from which each stream takes its own backlog; a new
stream gets its first answer from a read made at once (streams opening together share it).
N streams cost one query per interval, not N.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import grpc

from durable.common.errors import InvalidArgument
from durable.controlplane.grpc.errors import rpc
from durable.controlplane.store import Store
from durable.controlplane.store.base import check_names
from durable.proto.keda import externalscaler_pb2 as kpb
from durable.proto.keda import externalscaler_pb2_grpc as kpb_grpc

logger = logging.getLogger(__name__)

METRIC = "durable-backlog"


def _types(metadata: Any, key: str) -> list[str]:
    return [t.strip() for t in metadata.get(key, "").split(",") if t.strip()]


def _number(metadata: Any, key: str, default: float) -> float:
    raw = metadata.get(key)
    if raw in (None, ""):
        return default
    try:
        value = float(raw)
    except ValueError:
        raise InvalidArgument(f"scalerMetadata.{key}={raw!r} is not a number") from None
    if value < 0:
        raise InvalidArgument(f"scalerMetadata.{key} must be >= 0")
    return value


def _wanted(metadata: Any) -> tuple[list[str], list[str]]:
    activity_types = check_names(_types(metadata, "activityTypes"), "scalerMetadata.activityTypes")
    workflow_types = check_names(_types(metadata, "workflowTypes"), "scalerMetadata.workflowTypes")
    if not activity_types and not workflow_types:
        raise InvalidArgument(
            "scalerMetadata needs activityTypes and/or workflowTypes (comma-separated type names)"
        )
    return activity_types, workflow_types


class _Subscription:
    """One stream's place in the shared read: its types and a flag set after each read."""

    def __init__(self, activity_types: list[str], workflow_types: list[str]) -> None:
        self.keys = [("activity", t) for t in activity_types] + [("workflow", t) for t in workflow_types]
        self.activity_types = activity_types
        self.workflow_types = workflow_types
        self.fresh = asyncio.Event()


class SharedBacklog:
    """One periodic queue_stats read for every open stream: its types are the union of theirs.
    The loop runs while a stream is open (a named task, started by the first, ending after the
    last); a read that fails is handed to every stream (each ends with its status)."""

    def __init__(self, store: Store, interval: float) -> None:
        self.store = store
        self.interval = interval
        self.reads = 0
        self._subscriptions: set[_Subscription] = set()
        self._backlog: dict[tuple[str, str], int] = {}
        self._error: Exception | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def streams(self) -> int:
        return len(self._subscriptions)

    @contextmanager
    def subscribe(self, activity_types: list[str], workflow_types: list[str]) -> Iterator[_Subscription]:
        subscription = _Subscription(activity_types, workflow_types)
        self._subscriptions.add(subscription)
        self._wake.set()  # the new stream's first answer comes from a read made now
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="durable-keda-shared-backlog")
            self._task.add_done_callback(self._ended)
        try:
            yield subscription
        finally:
            self._subscriptions.discard(subscription)

    async def next(self, subscription: _Subscription) -> float:
        """The stream's backlog after the next shared read (that read's error if it failed)."""
        await subscription.fresh.wait()
        subscription.fresh.clear()
        if self._error is not None:
            raise self._error
        return float(sum(self._backlog.get(k, 0) for k in subscription.keys))

    async def _run(self) -> None:
        while self._subscriptions:
            self._wake.clear()
            wanted = list(self._subscriptions)
            activity_types = sorted({t for s in wanted for t in s.activity_types})
            workflow_types = sorted({t for s in wanted for t in s.workflow_types})
            try:
                stats = await self.store.queue_stats(activity_types, workflow_types)
                self._backlog = {(s.kind, s.type): s.pending + s.claimed for s in stats}
                self._error = None
            except Exception as exc:  # noqa: BLE001 - handed to the streams, which map it
                self._error = exc
            self.reads += 1
            for subscription in wanted:
                subscription.fresh.set()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=self.interval)
            except TimeoutError:
                pass

    def _ended(self, task: asyncio.Task[None]) -> None:
        """The loop ends when the last stream goes; if it died instead, say so loudly and end
        the open streams with its error (a new stream starts a new loop)."""
        if task.cancelled() or task.exception() is None:
            return
        exc = task.exception()
        logger.error("the KEDA streams' shared read stopped: %r; open streams end with it", exc)
        self._error = exc if isinstance(exc, Exception) else RuntimeError(repr(exc))
        for subscription in self._subscriptions:
            subscription.fresh.set()

    def close(self) -> None:
        """Stop the loop (the server is stopping)."""
        if self._task is not None:
            self._task.cancel()


class KedaScaler(kpb_grpc.ExternalScalerServicer):
    def __init__(self, store: Store, *, stream_interval: float = 2.0) -> None:
        self.store = store
        self.stream_interval = stream_interval
        self.shared = SharedBacklog(store, stream_interval)

    async def _backlog(self, ref: kpb.ScaledObjectRef) -> float:
        activity_types, workflow_types = _wanted(ref.scalerMetadata)
        stats = await self.store.queue_stats(activity_types, workflow_types)
        return float(sum(s.pending + s.claimed for s in stats))

    @rpc
    async def IsActive(self, request: kpb.ScaledObjectRef, context: Any) -> kpb.IsActiveResponse:
        threshold = _number(request.scalerMetadata, "activationBacklog", 0)
        return kpb.IsActiveResponse(result=await self._backlog(request) > threshold)

    @rpc
    async def _stream_settings(self, request: kpb.ScaledObjectRef, context: Any) -> tuple[float, list[str], list[str]]:
        threshold = _number(request.scalerMetadata, "activationBacklog", 0)
        return (threshold, *_wanted(request.scalerMetadata))

    @rpc
    async def _next_backlog(self, subscription: _Subscription, context: Any) -> float:
        return await self.shared.next(subscription)  # its errors mapped like IsActive's

    async def StreamIsActive(self, request: kpb.ScaledObjectRef, context: grpc.aio.ServicerContext) -> AsyncIterator[kpb.IsActiveResponse]:
        threshold, activity_types, workflow_types = await self._stream_settings(request, context)
        last: bool | None = None
        with self.shared.subscribe(activity_types, workflow_types) as subscription:
            while True:
                active = await self._next_backlog(subscription, context) > threshold
                if active != last:
                    yield kpb.IsActiveResponse(result=active)
                    last = active

    @rpc
    async def GetMetricSpec(self, request: kpb.ScaledObjectRef, context: Any) -> kpb.GetMetricSpecResponse:
        target = _number(request.scalerMetadata, "targetBacklogPerReplica", 10)
        if target <= 0:
            raise InvalidArgument("scalerMetadata.targetBacklogPerReplica must be > 0")
        spec = kpb.MetricSpec(metricName=METRIC, targetSize=max(int(target), 1), targetSizeFloat=target)
        return kpb.GetMetricSpecResponse(metricSpecs=[spec])

    @rpc
    async def GetMetrics(self, request: kpb.GetMetricsRequest, context: Any) -> kpb.GetMetricsResponse:
        backlog = await self._backlog(request.scaledObjectRef)
        value = kpb.MetricValue(metricName=METRIC, metricValue=int(backlog), metricValueFloat=backlog)
        return kpb.GetMetricsResponse(metricValues=[value])


def add_to_server(service: KedaScaler, server: grpc.aio.Server) -> None:
    kpb_grpc.add_ExternalScalerServicer_to_server(service, server)
