"""Operator: many DurableWorkerPools reconciled against the Kubernetes API emulator.

Three processes besides the benchmark, each with its own interpreter (and GIL):
- the emulator, `python -m tests.support.kube_server` (tests.support.kube.Emulator on kmock),
- the operator, `durable operator` exactly as shipped (kopf, standalone, all namespaces),
  logged in through a kubeconfig that points at the emulator, tick via
  DURABLE_OPERATOR_TICK_SECONDS,
- the control plane, `durable controlplane` on a fresh database.
The benchmark talks to the emulator over HTTP only (tests.bench.kube_http): it POSTs the
pools and follows pools and Deployments with one watch stream each.

1. create `pools` pools (pool i serves activity type `t<i>`; minReplicas 1, maxReplicas 10,
   targetBacklogPerReplica 2, pollIntervalSeconds `poll_interval`, no scale-up stabilization);
   time until every pool has its Deployment and BacklogKnown=True (Ready needs running pods,
   which the emulator has no kubelet for);
2. enqueue a backlog (pool i: 2 x (2 + i % 4) tasks, so it needs 2..5 replicas) in one
   transaction; time until every Deployment has its expected replica count (the arrival of
   the watch event that carried it).

Why separate processes: in one process the emulator's per-request work and the operator
share one GIL, so with 200 pools the emulator's CPU was charged to the operator's latency.
Now each has its own core time, reported per phase (`cpu_s`, `cores`: CPU seconds / wall
seconds; a process near 1.0 core is saturated and bounds the run). The emulator process also
keeps kmock's request history down to the requests in flight (see tests/support/kube_server.py).

"Within one poll interval" is checked as: the slowest pool reached its replicas no later than
one poll interval plus one operator tick after the backlog appeared (a pool that polled just
before the change sees it at its next poll).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from tests.bench.harness import (
    ProcessCpu,
    Server,
    control_plane,
    fresh_database,
    insert_activities,
    log,
    pct,
    profiled,
    stop_process,
    wait_until,
)
from tests.bench.kube_http import DEPLOYMENTS, POOLS, Watch, condition, kube_http
from tests.support.controlplane import free_port
from tests.support.kube_server import emulator_process


@contextlib.asynccontextmanager
async def operator_process(kube_url: str, address: str, tick: float, log_dir: Path,
                           timeout: float = 60.0) -> AsyncIterator[subprocess.Popen[bytes]]:
    """`durable operator` as a child process, logged in to the emulator by a kubeconfig;
    yields once its kopf liveness endpoint answers."""
    port = free_port()
    kubeconfig = log_dir / f"operator-{port}.kubeconfig"
    kubeconfig.write_text(json.dumps({  # JSON is YAML
        "apiVersion": "v1", "kind": "Config", "current-context": "emulator",
        "clusters": [{"name": "emulator", "cluster": {"server": kube_url}}],
        "contexts": [{"name": "emulator", "context": {"cluster": "emulator", "user": "bench"}}],
        "users": [{"name": "bench", "user": {}}],
    }))
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "DURABLE_CONTROL_PLANE_ADDRESS": address,
           "DURABLE_OPERATOR_TICK_SECONDS": str(tick), "DURABLE_OPERATOR_METRICS_PORT": "0",
           "PYTHONUNBUFFERED": "1"}
    liveness = f"http://127.0.0.1:{port}/healthz"
    log_path = log_dir / f"operator-{port}.log"
    with open(log_path, "wb") as out:  # noqa: ASYNC230 - a local file, opened once
        proc = subprocess.Popen(  # noqa: ASYNC220 - spawning returns at once
            [sys.executable, "-m", "durable.cli", "operator", "--liveness", liveness],
            env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
                async def live() -> bool:
                    if proc.poll() is not None:
                        raise RuntimeError(f"the operator exited with code {proc.returncode}; see {log_path}")
                    with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                        async with session.get(liveness) as response:
                            return response.status == 200
                    return False

                await wait_until(live, timeout, "the operator's liveness endpoint", interval=0.1)
            yield proc
        finally:
            await stop_process(proc, grace=15)


class _Cpu:
    """CPU seconds of the named processes, per phase."""

    def __init__(self, pids: Mapping[str, int]) -> None:
        self._meters = {name: ProcessCpu([pid]) for name, pid in pids.items()}
        self._last = self._read()

    def _read(self) -> dict[str, float]:
        return {name: meter.total() for name, meter in self._meters.items()}

    def phase(self) -> dict[str, float]:
        now = self._read()
        spent = {name: now[name] - self._last[name] for name in now}
        self._last = now
        return spent


async def run_operator(
    server: Server, *, pools: int, poll_interval: float = 5.0, tick: float = 1.0, log_dir: Path | None = None,
    timeout: float = 120.0, profile_dir: str | None = None,
) -> dict[str, Any]:
    log_dir = log_dir or Path(tempfile.mkdtemp(prefix="durable-bench-logs-"))
    names = [f"p{i}" for i in range(pools)]
    expected = {name: 2 + i % 4 for i, name in enumerate(names)}
    load_start = os.getloadavg()[0]
    async with fresh_database(server.admin_url) as url, control_plane(url, log_dir, METRICS_PORT="0") as cp, \
            emulator_process(log_dir / "kube-emulator.log") as kube, kube_http(kube.url) as api, \
            Watch(api, POOLS).running() as pool_watch, Watch(api, DEPLOYMENTS).running() as deployments, \
            operator_process(kube.url, cp.address, tick, log_dir) as operator:
        conn = await asyncpg.connect(url)
        pids = {"operator": operator.pid, "emulator": kube.pid, "controlplane": cp.pid}

        def alive() -> None:
            pool_watch.check()
            deployments.check()
            if operator.poll() is not None:
                raise RuntimeError(f"the operator exited with code {operator.returncode}")

        def replicas(name: str) -> int | None:
            deployment = deployments.objects.get(name)
            return None if deployment is None else deployment["spec"]["replicas"]

        try:
            with profiled({f"operator-{pools}-{name}": pid for name, pid in pids.items()}, profile_dir):
                cpu = _Cpu(pids)
                t0 = time.perf_counter()
                for i, name in enumerate(names):
                    await api.create_pool(name, activityTypes=[f"t{i}"], scaling={
                        "minReplicas": 1, "maxReplicas": 10, "targetBacklogPerReplica": 2,
                        "pollIntervalSeconds": poll_interval, "scaleUpStabilizationSeconds": 0})
                created_s = time.perf_counter() - t0

                async def all_ready() -> bool:
                    alive()
                    return all(replicas(n) is not None
                               and condition(pool_watch.objects.get(n), "BacklogKnown").get("status") == "True"
                               for n in names)

                await wait_until(all_ready, timeout, f"{pools} pools with a Deployment and BacklogKnown")
                create_s = time.perf_counter() - t0
                create_cpu = cpu.phase()
                async with conn.transaction():
                    for i, name in enumerate(names):
                        await insert_activities(conn, f"t{i}", [{"i": k} for k in range(2 * expected[name])])
                t1 = time.perf_counter()
                reached: dict[str, float] = {}

                async def all_scaled() -> bool:
                    alive()
                    for n in names:
                        if n not in reached and replicas(n) == expected[n]:
                            reached[n] = deployments.changed_at[n] - t1  # when that event arrived
                    return len(reached) == len(names)

                with contextlib.suppress(TimeoutError):
                    await wait_until(all_scaled, timeout, "every pool at its new replica count", interval=0.02)
                rescale_wall_s = time.perf_counter() - t1
                rescale_cpu = cpu.phase()
        finally:
            await conn.close()
    lags = sorted(reached.values())
    rescale_s = lags[-1] if len(lags) == len(names) else float("nan")
    rescale_cores = {k: v / rescale_wall_s for k, v in rescale_cpu.items()}
    result: dict[str, Any] = {
        "pools": pools, "poll_interval_s": poll_interval, "tick_s": tick, "create_requests_s": created_s,
        "create_s": create_s, "rescale_s": rescale_s, "rescaled": len(reached),
        "rescale_p50_s": pct(lags, 50), "rescale_p99_s": pct(lags, 99),
        "within_poll_interval": rescale_s <= poll_interval + tick,
        "cpu_s": {"create": create_cpu, "rescale": rescale_cpu},
        "cores": {"create": {k: v / create_s for k, v in create_cpu.items()}, "rescale": rescale_cores},
        "load_average": {"start": load_start, "end": os.getloadavg()[0]},
    }
    log(f"operator {pools} pools: all Ready {create_s:.2f}s; rescaled {len(reached)}/{pools} in {rescale_s:.2f}s, "
        f"p50 {result['rescale_p50_s']:.2f}s (poll interval {poll_interval:.0f}s, tick {tick:.1f}s); "
        f"cores while rescaling: {', '.join(f'{k} {v:.2f}' for k, v in rescale_cores.items())}")
    return result
