"""`PoolReconciler.run_once()` with fake Kubernetes and control plane (no I/O, fake clocks):
a pass that changes nothing neither rebuilds nor compares the Deployment and writes no status;
edits, spec changes and backlog changes are still acted on in the pass that sees them."""

from __future__ import annotations

import copy
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from durable.operator import deployment as dep
from durable.operator.backlog import BacklogUnavailable
from durable.operator.handlers import QuietTicks, quiet_ticks
from durable.operator.metrics import OperatorMetrics
from durable.operator.reconciler import BACKLOG_TIME_REFRESH_SECONDS, PoolReconciler
from durable.operator.scaling import BacklogSample
from durable.operator.settings import OperatorSettings

POLL = 5  # spec.scaling.pollIntervalSeconds of the pool under test
TICK = 1.0


class FakePlane:
    address = "cp:9001"

    def __init__(self) -> None:
        self.sample: BacklogSample | BacklogUnavailable = BacklogSample(pending=0, running=0)

    async def backlog(self, *_: Any) -> BacklogSample:
        if isinstance(self.sample, BacklogUnavailable):
            raise self.sample
        return self.sample

    async def worker_loads(self, _: str) -> dict[str, int]:
        return {}


class FakePlanes:
    def __init__(self, plane: FakePlane) -> None:
        self.plane = plane

    def get(self, _: str) -> FakePlane:
        return self.plane


class FakeKube:
    """Stores the one Deployment; every write gets a new resourceVersion, as the API server's."""

    def __init__(self) -> None:
        self.deployment: dict[str, Any] | None = None
        self.writes: list[tuple[str, dict[str, Any]]] = []
        self._version = 0

    @staticmethod
    def deployments_path(namespace: str, name: str | None = None) -> str:
        return f"/deployments/{namespace}/{name}" if name else f"/deployments/{namespace}"

    @staticmethod
    def pods_path(namespace: str, name: str | None = None) -> str:
        return f"/pods/{namespace}/{name}" if name else f"/pods/{namespace}"

    async def list(self, path: str, *, labels: Any) -> list[dict[str, Any]]:
        return []  # no pods: nothing to give a deletion cost

    def store(self, body: dict[str, Any]) -> dict[str, Any]:
        self._version += 1
        self.deployment = copy.deepcopy(body)
        self.deployment["metadata"]["resourceVersion"] = str(self._version)
        return copy.deepcopy(self.deployment)

    async def create(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        self.writes.append(("POST", body))
        return self.store(body)

    async def merge_patch(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        self.writes.append(("PATCH", body))
        return self.store(body)  # the operator patches with the whole manifest


class Pool:
    """One pool, its reconciler state and clocks; `tick()` is one pass, as kopf's timer runs
    it: the pool's status then carries what the pass returned, the Deployment index what the
    fake API server stores."""

    def __init__(self) -> None:
        self.plane = FakePlane()
        self.kube = FakeKube()
        self.now = 1000.0
        self.start = datetime(2026, 1, 1, tzinfo=UTC)
        self.reconciler = PoolReconciler(
            OperatorSettings(metrics_port=0), kube=self.kube,  # type: ignore[arg-type]
            planes=FakePlanes(self.plane), metrics=OperatorMetrics(),  # type: ignore[arg-type]
            clock=lambda: self.now,
            wallclock=lambda: self.start + timedelta(seconds=self.now - 1000.0))
        self.state = self.reconciler.new_state()
        self.body: dict[str, Any] = {
            "metadata": {"name": "p", "namespace": "ns", "uid": "uid-1", "generation": 1},
            "spec": {"image": "worker:1", "activityTypes": ["t"],
                     "scaling": {"minReplicas": 1, "maxReplicas": 10,
                                 "targetBacklogPerReplica": 2, "pollIntervalSeconds": POLL}},
            "status": {},
        }

    async def tick(self) -> dict[str, Any]:
        updates = await self.reconciler.run_once(
            self.body, deployment=copy.deepcopy(self.kube.deployment), state=self.state,
            emit=lambda *_: None)
        self.body["status"] = {**self.body["status"], **copy.deepcopy(updates)}
        self.now += TICK
        return updates

    async def settle(self) -> None:
        """Pass until a whole poll interval goes by without writes."""
        quiet = 0
        for _ in range(50):
            writes = len(self.kube.writes)
            quiet = quiet + 1 if not await self.tick() and len(self.kube.writes) == writes else 0
            if quiet > POLL:
                return
        raise AssertionError(f"never settled: {self.body['status']}")

    def condition(self, type_: str) -> dict[str, Any]:
        return next(c for c in self.body["status"]["conditions"] if c["type"] == type_)


@pytest.fixture
def built(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every `build_deployment` and `drifted` call of the reconciler, by name."""
    calls: list[str] = []
    build, drifted = dep.build_deployment, dep.drifted

    def counted_build(**kwargs: Any) -> dict[str, Any]:
        calls.append("build_deployment")
        return build(**kwargs)

    def counted_drifted(live: Any, desired: Any) -> list[str]:
        calls.append("drifted")
        return drifted(live, desired)

    monkeypatch.setattr(dep, "build_deployment", counted_build)
    monkeypatch.setattr(dep, "drifted", counted_drifted)
    return calls


async def test_passes_that_change_nothing_build_no_deployment_and_write_no_status(
    built: list[str],
) -> None:
    pool = Pool()
    await pool.settle()
    assert [method for method, _ in pool.kube.writes] == ["POST"]
    built.clear()
    writes = len(pool.kube.writes)

    polls = 0
    for _ in range(3 * POLL):
        polls += pool.now >= pool.state.next_poll_at
        assert await pool.tick() == {}
    assert polls >= 2  # the backlog was read again, and changed nothing
    assert built == []
    assert len(pool.kube.writes) == writes


async def test_an_edited_deployment_is_put_back_and_a_status_change_is_compared_once(
    built: list[str],
) -> None:
    pool = Pool()
    await pool.settle()
    assert pool.kube.deployment is not None
    good = copy.deepcopy(pool.kube.deployment)

    # Someone edits the Deployment: the next pass sees a new resourceVersion and puts it back.
    edited = copy.deepcopy(good)
    edited["spec"]["template"]["spec"]["containers"][0]["image"] = "evil:1"
    edited["spec"]["replicas"] = 7
    pool.kube.store(edited)
    built.clear()
    await pool.tick()
    assert built == ["build_deployment", "drifted"]
    method, body = pool.kube.writes[-1]
    assert method == "PATCH"
    assert body["spec"]["template"]["spec"]["containers"][0]["image"] == "worker:1"
    assert body["spec"]["replicas"] == 1
    assert pool.kube.deployment["spec"] == good["spec"]

    # The Deployment controller reports status (a new resourceVersion, nothing drifted): one
    # comparison, no write, then quiet again.
    reported = copy.deepcopy(pool.kube.deployment)
    reported["status"] = {"replicas": 1, "readyReplicas": 1}
    pool.kube.store(reported)
    built.clear()
    writes = len(pool.kube.writes)
    assert (await pool.tick()).get("readyReplicas") == 1
    assert built == ["build_deployment", "drifted"]
    built.clear()
    for _ in range(POLL):
        await pool.tick()
    assert built == []
    assert len(pool.kube.writes) == writes


async def test_a_spec_change_or_a_new_replica_count_rebuilds_the_deployment(
    built: list[str],
) -> None:
    pool = Pool()
    await pool.settle()
    built.clear()

    pool.body["spec"] = {**pool.body["spec"], "image": "worker:2"}
    pool.body["metadata"]["generation"] = 2
    updates = await pool.tick()
    assert updates["observedGeneration"] == 2
    assert pool.kube.writes[-1][0] == "PATCH"
    assert pool.kube.deployment is not None
    image = pool.kube.deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == "worker:2"

    pool.plane.sample = BacklogSample(pending=6, running=0)
    while pool.now < pool.state.next_poll_at:
        await pool.tick()
    updates = await pool.tick()
    assert updates["desiredReplicas"] == 3
    assert pool.kube.writes[-1][1]["spec"]["replicas"] == 3
    assert pool.kube.deployment["spec"]["replicas"] == 3


async def test_a_backlog_change_is_written_in_the_pass_that_reads_it() -> None:
    pool = Pool()
    await pool.settle()
    first_read = pool.body["status"]["lastBacklogTime"]

    pool.plane.sample = BacklogSample(pending=1, running=0, delayed=2, oldest_pending_age=0.5)
    while pool.now < pool.state.next_poll_at:
        assert await pool.tick() == {}
    read_at = pool.reconciler.wallclock()
    updates = await pool.tick()
    assert updates["backlog"] == {"pending": 1, "running": 0, "delayed": 2,
                                  "oldestPendingAgeSeconds": 0.5}
    assert updates["lastBacklogTime"] == read_at.isoformat().replace("+00:00", "Z")
    assert updates["lastBacklogTime"] != first_read
    assert "pending 1, running 0, delayed 2" in pool.condition("BacklogKnown")["message"]


async def test_last_backlog_time_alone_is_rewritten_once_it_is_the_refresh_interval_old() -> None:
    pool = Pool()
    await pool.settle()
    recorded = datetime.fromisoformat(pool.body["status"]["lastBacklogTime"])

    written: list[tuple[datetime, dict[str, Any]]] = []
    while not written:
        polled = pool.now >= pool.state.next_poll_at
        now = pool.reconciler.wallclock()
        updates = await pool.tick()
        if updates:
            written.append((now, updates))
        else:
            assert not polled or (now - recorded).total_seconds() < BACKLOG_TIME_REFRESH_SECONDS
    ((now, updates),) = written
    assert list(updates) == ["lastBacklogTime"]
    assert (now - recorded).total_seconds() >= BACKLOG_TIME_REFRESH_SECONDS
    assert (now - recorded).total_seconds() < BACKLOG_TIME_REFRESH_SECONDS + POLL + TICK


async def test_backlog_known_flips_at_once_both_ways() -> None:
    pool = Pool()
    await pool.settle()
    before = pool.body["status"]["lastBacklogTime"]

    pool.plane.sample = BacklogUnavailable("ControlPlaneUnavailable", "no answer")
    while pool.now < pool.state.next_poll_at:
        await pool.tick()
    updates = await pool.tick()
    assert [c["status"] for c in updates["conditions"] if c["type"] == "BacklogKnown"] == ["False"]
    assert "lastBacklogTime" not in updates
    assert pool.body["status"]["lastBacklogTime"] == before

    pool.plane.sample = BacklogSample(pending=0, running=0)
    while pool.now < pool.state.next_poll_at:
        await pool.tick()
    updates = await pool.tick()
    assert [c["status"] for c in updates["conditions"] if c["type"] == "BacklogKnown"] == ["True"]
    assert updates["lastBacklogTime"] > before


def test_the_per_tick_success_line_of_kopf_is_dropped_and_nothing_else() -> None:
    logger = logging.getLogger("test.quiet-ticks")
    quiet_ticks(logger)
    quiet_ticks(logger)
    assert sum(isinstance(f, QuietTicks) for f in logger.filters) == 1

    def passes(message: str, *args: object) -> bool:
        return logger.filter(logging.LogRecord("kopf.objects", logging.INFO, __file__, 1, message, args, None))

    assert not passes("%s succeeded.", "Timer 'reconcile'")
    assert passes("Handler 'create_pool' succeeded.")
    assert passes("Timer 'reconcile' failed with an exception. Will retry.")
