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
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc

from durable.common.errors import InvalidArgument
from durable.controlplane.grpc.errors import rpc
from durable.controlplane.store import Store
from durable.proto.keda import externalscaler_pb2 as kpb
from durable.proto.keda import externalscaler_pb2_grpc as kpb_grpc

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


class KedaScaler(kpb_grpc.ExternalScalerServicer):
    def __init__(self, store: Store, *, stream_interval: float = 2.0) -> None:
        self.store = store
        self.stream_interval = stream_interval

    async def _backlog(self, ref: kpb.ScaledObjectRef) -> float:
        activity_types = _types(ref.scalerMetadata, "activityTypes")
        workflow_types = _types(ref.scalerMetadata, "workflowTypes")
        if not activity_types and not workflow_types:
            raise InvalidArgument(
                "scalerMetadata needs activityTypes and/or workflowTypes (comma-separated type names)"
            )
        stats = await self.store.queue_stats(activity_types, workflow_types)
        return float(sum(s.pending + s.claimed for s in stats))

    @rpc
    async def IsActive(self, request: kpb.ScaledObjectRef, context: Any) -> kpb.IsActiveResponse:
        threshold = _number(request.scalerMetadata, "activationBacklog", 0)
        return kpb.IsActiveResponse(result=await self._backlog(request) > threshold)

    async def StreamIsActive(self, request: kpb.ScaledObjectRef, context: grpc.aio.ServicerContext) -> AsyncIterator[kpb.IsActiveResponse]:
        last: bool | None = None
        while True:
            active = (await self.IsActive(request, context)).result
            if active != last:
                yield kpb.IsActiveResponse(result=active)
                last = active
            await asyncio.sleep(self.stream_interval)

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
