"""The operator's Prometheus endpoint, scraped over HTTP: per-pool series exist and move."""

from __future__ import annotations

import urllib.request

import pytest

from durable.proto.v1 import durable_pb2_grpc
from tests.k8s.conftest import OperatorFactory
from tests.k8s.pools import NS, create_pool, enqueue, replicas
from tests.support.controlplane import free_port
from tests.support.kube import Emulator, wait_until

pytestmark = pytest.mark.k8s


def scrape(port: int) -> dict[str, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return {line.rpartition(" ")[0]: float(line.rpartition(" ")[2])
            for line in text.splitlines() if line and not line.startswith("#")}


async def test_operator_metrics_are_scraped_and_move(
    kube: Emulator, control_plane: str, start_operator: OperatorFactory,
    client_stub: durable_pb2_grpc.ClientServiceStub,
) -> None:
    operator = await start_operator(control_plane)
    port = operator.metrics.serve(free_port())
    try:
        await create_pool(kube, "metered", activityTypes=["m"], scaling={
            "pollIntervalSeconds": 1, "minReplicas": 1, "maxReplicas": 5, "targetBacklogPerReplica": 1})
        labels = f'namespace="{NS}",pool="metered"'
        await wait_until(lambda: scrape(port).get(f"durable_pool_desired_replicas{{{labels}}}") == 1,
                         what="desired replicas 1 on the endpoint")
        await enqueue(client_stub, "m", 3)
        await wait_until(lambda: replicas(kube, "metered") == 3, what="three replicas")
        await wait_until(lambda: scrape(port).get(f"durable_pool_desired_replicas{{{labels}}}") == 3,
                         what="desired replicas 3 on the endpoint")
        series = scrape(port)
        assert series[f'durable_pool_backlog_tasks{{{labels},state="pending"}}'] == 3
        assert series[f'durable_pool_scale_changes_total{{direction="up",{labels}}}'] >= 1
        assert series[f"durable_pool_backlog_known{{{labels}}}"] == 1
    finally:
        operator.metrics.close()
