"""The control plane as a KEDA external scaler: metric spec, metrics, activity, streaming."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest

from durable.client import Client
from durable.proto.keda import externalscaler_pb2 as kpb
from durable.proto.keda import externalscaler_pb2_grpc as kpb_grpc
from tests.support.controlplane import running_control_plane, running_plane


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


async def test_streams_share_one_stats_read_per_interval(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """N StreamIsActive streams cost one queue_stats read per interval, over every stream's
    types, and each stream still answers for its own types."""
    streams = 8
    async with running_plane(database_url, keda_interval=0.1) as plane, Client(plane.address) as client:
        store = plane.store
        assert store is not None
        calls: list[tuple[list[str], list[str]]] = []
        queue_stats = store.queue_stats

        async def counted(activity_types: Any = (), workflow_types: Any = ()) -> Any:
            calls.append((list(activity_types), list(workflow_types)))
            return await queue_stats(activity_types, workflow_types)

        monkeypatch.setattr(store, "queue_stats", counted)
        async with grpc.aio.insecure_channel(plane.address) as channel:
            keda = kpb_grpc.ExternalScalerStub(channel)
            opened = [keda.StreamIsActive(kpb.ScaledObjectRef(
                name=f"pool-{i}", scalerMetadata={"activityTypes": f"act{i}", "workflowTypes": f"wf{i}"},
            )) for i in range(streams)]
            assert [(await s.read()).result for s in opened] == [False] * streams
            await client.enqueue_activity("act3", {})
            assert (await opened[3].read()).result is True  # its own type, seen by the shared read
            seen = len(calls)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 15
            while len(calls) < seen + 3:  # three more periods
                assert loop.time() < deadline, "the shared read stopped"
                await asyncio.sleep(0.02)
            everything = ([f"act{i}" for i in range(streams)], [f"wf{i}" for i in range(streams)])
            for activity_types, workflow_types in calls[seen:seen + 3]:
                assert (sorted(activity_types), sorted(workflow_types)) == (sorted(everything[0]), sorted(everything[1]))
            bad = keda.StreamIsActive(kpb.ScaledObjectRef(name="bad", scalerMetadata={}))
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await bad.read()
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "activityTypes" in (err.value.details() or "")
            for s in opened:
                s.cancel()
            await asyncio.sleep(0)
        keda_scaler = plane.keda
        assert keda_scaler is not None
        assert keda_scaler.shared.reads == len(calls)  # every read of the store was a shared one
