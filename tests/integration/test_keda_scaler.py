"""The control plane as a KEDA external scaler: metric spec, metrics, activity, streaming."""

from __future__ import annotations

import grpc
import pytest

from durable.client import Client
from durable.proto.keda import externalscaler_pb2 as kpb
from durable.proto.keda import externalscaler_pb2_grpc as kpb_grpc
from tests.support.controlplane import running_control_plane


async def test_keda_external_scaler_contract(database_url: str) -> None:
    ref = kpb.ScaledObjectRef(name="pool", namespace="default",
                              scalerMetadata={"activityTypes": "reason,act", "targetBacklogPerReplica": "4"})
    async with running_control_plane(database_url) as address, Client(address) as client:
        async with grpc.aio.insecure_channel(address) as channel:
            keda = kpb_grpc.ExternalScalerStub(channel)
            spec = await keda.GetMetricSpec(ref)
            assert [(m.metricName, m.targetSizeFloat, m.targetSize) for m in spec.metricSpecs] == [("durable-backlog", 4.0, 4)]
            assert not (await keda.IsActive(ref)).result
            stream = keda.StreamIsActive(ref)
            first = await stream.read()
            assert first.result is False
            for i in range(5):
                await client.enqueue_activity("reason" if i % 2 else "act", {"i": i})
            await client.enqueue_activity("unrelated", {})
            metrics = await keda.GetMetrics(kpb.GetMetricsRequest(scaledObjectRef=ref, metricName="durable-backlog"))
            assert [(m.metricName, m.metricValueFloat) for m in metrics.metricValues] == [("durable-backlog", 5.0)]
            assert (await keda.IsActive(ref)).result
            assert (await stream.read()).result is True  # streamed when activity changed
            stream.cancel()
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await keda.GetMetrics(kpb.GetMetricsRequest(scaledObjectRef=kpb.ScaledObjectRef(name="x")))
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "activityTypes" in err.value.details()
