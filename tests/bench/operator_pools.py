"""Operator: many DurableWorkerPools reconciled against the Kubernetes API emulator.

The emulator is tests.support.kube.Emulator (kmock) on a local port; the operator is the real
kopf operator (durable.operator.handlers) in a thread with its own event loop, as
tests/k8s/conftest.py runs it; the control plane is a child process on a fresh database.

1. create `pools` pools (pool i serves activity type `t<i>`; minReplicas 1, maxReplicas 10,
   targetBacklogPerReplica 2, pollIntervalSeconds `poll_interval`, no scale-up stabilization);
   time until every pool has its Deployment and BacklogKnown=True (Ready needs running pods,
   which the emulator has no kubelet for);
2. enqueue a backlog (pool i: 2 x (2 + i % 4) tasks, so it needs 2..5 replicas) in one
   transaction; time until every Deployment has its expected replica count.

The emulator (kmock 0.8) keeps every request it ever served and, for each new request, checks
`request in view` by iterating over that whole history (kmock/_internal/dsl.py
View.__contains__, called from apps.py RawHandler._handle): O(requests) per request, O(n^2) per
run. With 200 pools that, not the operator, took ~98% of the samples (py-spy) and the pools
never all got reconciled. The benchmark therefore trims that history (`_requests`, used only
by kmock's assertion DSL, which this benchmark does not use) to its last 200 entries every
0.2 s, so what is measured is the operator.

"Within one poll interval" is checked as: the slowest pool reached its replicas no later than
one poll interval plus one operator tick after the backlog appeared (a pool that polled just
before the change sees it at its next poll).
"""

from __future__ import annotations

import asyncio
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import asyncpg
import kmock
import kopf
from durable.operator.handlers import OperatorContext, build_registry, kopf_settings
from durable.operator.settings import OperatorSettings

from tests.bench.harness import (
    Server,
    control_plane,
    fresh_database,
    insert_activities,
    log,
    wait_until,
)
from tests.k8s.pools import condition, create_pool, replicas
from tests.support.kube import Emulator, declare_resources


def _start_operator(kube: Emulator, address: str, tick: float) -> tuple[threading.Thread, threading.Event, threading.Event, list[BaseException]]:
    server = str(kube.url).rstrip("/")

    def login(**_: Any) -> kopf.ConnectionInfo:
        return kopf.ConnectionInfo(server=server, insecure=True, default_namespace="default")

    settings = OperatorSettings(control_plane_address=address, tick_seconds=tick, metrics_port=0)
    context = OperatorContext(settings, login=login)
    stop, ready = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(kopf.operator(
                registry=build_registry(context), settings=kopf_settings(settings, scanning=False),
                standalone=True, clusterwide=True, stop_flag=stop, ready_flag=ready))
        except BaseException as exc:  # noqa: BLE001 - reported by the benchmark
            errors.append(exc)

    thread = threading.Thread(target=run, name="durable-operator-bench", daemon=True)
    thread.start()
    return thread, stop, ready, errors


async def _trim_request_history(kube: Emulator, keep: int = 200) -> None:
    while True:
        requests = getattr(kube, "_requests", None)
        if isinstance(requests, list) and len(requests) > keep:
            del requests[:-keep]
        await asyncio.sleep(0.2)


async def run_operator(
    server: Server, *, pools: int, poll_interval: float = 5.0, tick: float = 1.0, log_dir: Path | None = None,
    timeout: float = 120.0,
) -> dict[str, Any]:
    log_dir = log_dir or Path(tempfile.mkdtemp(prefix="durable-bench-logs-"))
    names = [f"p{i}" for i in range(pools)]
    expected = {name: 2 + i % 4 for i, name in enumerate(names)}
    async with fresh_database(server.admin_url) as url, control_plane(url, log_dir) as cp, \
            Emulator() as kube, kmock.Server(kube):
        declare_resources(kube)
        trimmer = asyncio.create_task(_trim_request_history(kube), name="bench-kmock-history-trim")
        conn = await asyncpg.connect(url)
        thread, stop, ready, errors = _start_operator(kube, cp.address, tick)
        try:
            await wait_until(lambda: _async(ready.is_set() or bool(errors)), 60, "the operator to start")
            if errors:
                raise errors[0]
            t0 = time.perf_counter()
            for i, name in enumerate(names):
                await create_pool(kube, name, activityTypes=[f"t{i}"], scaling={
                    "minReplicas": 1, "maxReplicas": 10, "targetBacklogPerReplica": 2,
                    "pollIntervalSeconds": poll_interval, "scaleUpStabilizationSeconds": 0})
            created_s = time.perf_counter() - t0

            def all_ready() -> bool:
                return all(replicas(kube, n) is not None and condition(kube, n, "BacklogKnown").get("status") == "True"
                           for n in names)

            await wait_until(lambda: _async(all_ready() or bool(errors)), timeout, f"{pools} pools with a Deployment and BacklogKnown")
            create_s = time.perf_counter() - t0
            async with conn.transaction():
                for i, name in enumerate(names):
                    await insert_activities(conn, f"t{i}", [{"i": k} for k in range(2 * expected[name])])
            t1 = time.perf_counter()
            reached: dict[str, float] = {}

            def all_scaled() -> bool:
                now = time.perf_counter()
                for n in names:
                    if n not in reached and replicas(kube, n) == expected[n]:
                        reached[n] = now - t1
                return len(reached) == len(names) or bool(errors)

            try:
                await wait_until(lambda: _async(all_scaled()), timeout, "every pool at its new replica count", interval=0.02)
            except TimeoutError:
                pass
            rescale_s = max(reached.values(), default=float("nan")) if len(reached) == len(names) else float("nan")
        finally:
            stop.set()
            await asyncio.to_thread(thread.join, 30)
            trimmer.cancel()
            await conn.close()
    if errors:
        raise errors[0]
    lags = sorted(reached.values())
    result = {
        "pools": pools, "poll_interval_s": poll_interval, "tick_s": tick, "create_requests_s": created_s,
        "create_s": create_s, "rescale_s": rescale_s, "rescaled": len(reached),
        "rescale_p50_s": lags[len(lags) // 2] if lags else float("nan"),
        "within_poll_interval": rescale_s <= poll_interval + tick,
    }
    log(f"operator {pools} pools: all Ready {create_s:.2f}s; rescaled {len(reached)}/{pools} in {rescale_s:.2f}s "
        f"(poll interval {poll_interval:.0f}s, tick {tick:.1f}s)")
    return result


async def _async(value: bool) -> bool:
    return value
