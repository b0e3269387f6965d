"""One pass over one pool: validate, read the backlog when due, decide, apply, report.

kopf calls `PoolReconciler.run_once()` for every pool every tick (a timer, see
`durable.operator.handlers`). A pass costs no API call unless something is due or differs:
the Deployment is read from a watch-fed kopf index, the control plane is polled every
`spec.scaling.pollIntervalSeconds` (doubling up to a limit while it fails), and the
Deployment is patched only when it drifted from the manifest built from the pool.

A pass that changes nothing costs little CPU and no API call: the Deployment is built and
compared only when the pool's generation, the desired replicas or the Deployment's
resourceVersion moved since the last pass that found it as built, and `status` is written
only when a field changes (`lastBacklogTime`, a freshness stamp, at most every
`BACKLOG_TIME_REFRESH_SECONDS` unless something else is written with it).

The pass returns the status fields that changed; the handler writes them through kopf's
patch. Nothing here is a global: per-pool memory lives in `PoolState` (kopf's per-object
memo), and the clocks are injected.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp
from durable.operator import deployment as dep
from durable.operator.backlog import BacklogUnavailable, Backoff, ControlPlane, ControlPlanes
from durable.operator.conditions import BACKLOG_KNOWN, READY, SCALING_LIMITED, Conditions
from durable.operator.kube import KubeApiError, KubeClient
from durable.operator.metrics import OperatorMetrics
from durable.operator.scaling import Autoscaler, BacklogSample, ScaleDecision
from durable.operator.settings import OperatorSettings
from durable.operator.spec import InvalidPoolSpec, PoolSpec, parse_pool_spec

__all__ = ["BACKLOG_TIME_REFRESH_SECONDS", "EmitFn", "PoolReconciler", "PoolState"]

log = logging.getLogger(__name__)

EmitFn = Callable[[str, str, str], None]
"""Posts a Kubernetes Event about the pool: (type Normal|Warning, reason, message)."""

BACKLOG_TIME_REFRESH_SECONDS = 30.0
"""A successful backlog read that changes nothing else in the status rewrites
`status.lastBacklogTime` only when the recorded one is at least this old (each write is an
API request and a watch event for every pool)."""


@dataclass
class PoolState:
    """What the operator remembers about one pool between passes (in memory only)."""

    backoff: Backoff
    autoscaler: Autoscaler | None = None
    desired: int | None = None
    next_poll_at: float = 0.0
    backlog: BacklogSample | None = None
    backlog_error: BacklogUnavailable | None = None
    decision: ScaleDecision | None = None
    deployment_error: str | None = None
    deployment_in_sync: tuple[Any, ...] | None = None
    """`_sync_key()` of the last pass that found the live Deployment as built: while the key
    stays the same, the pass neither rebuilds nor compares it."""


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class PoolReconciler:
    """Reconciles DurableWorkerPools: the worker Deployment, the replicas, the status."""

    def __init__(
        self,
        settings: OperatorSettings,
        *,
        kube: KubeClient,
        planes: ControlPlanes,
        metrics: OperatorMetrics,
        clock: Callable[[], float] = time.monotonic,
        wallclock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.settings = settings
        self.kube = kube
        self.planes = planes
        self.metrics = metrics
        self.clock = clock
        self.wallclock = wallclock

    def new_state(self) -> PoolState:
        return PoolState(backoff=Backoff(maximum=self.settings.backoff_max_seconds))

    async def run_once(
        self,
        pool: Mapping[str, Any],
        *,
        deployment: Mapping[str, Any] | None,
        state: PoolState,
        emit: EmitFn,
    ) -> dict[str, Any]:
        """One pass. Returns the `status` fields to write (only those that changed)."""
        meta = pool.get("metadata", {})
        name: str = meta["name"]
        namespace: str = meta.get("namespace") or "default"
        generation = meta.get("generation")
        status: Mapping[str, Any] = pool.get("status") or {}
        wall = self.wallclock()
        now_iso = _iso(wall)
        conditions = Conditions(status.get("conditions"), generation=generation, now=now_iso)
        updates: dict[str, Any] = {}

        # First visit: say so before doing anything.
        if not status.get("conditions"):
            conditions.set_missing_unknown("Reconciling",
                                           "the operator has not finished a pass yet")
            updates["conditions"] = conditions.as_list()
            updates["selector"] = dep.selector_string(name)
            return updates

        try:
            spec = parse_pool_spec(pool.get("spec"))
        except InvalidPoolSpec as exc:
            previous = conditions.get(READY) or {}
            if previous.get("reason") != "InvalidSpec" or previous.get("message") != str(exc):
                emit("Warning", "InvalidSpec", str(exc))
            conditions.set(READY, "False", "InvalidSpec", str(exc))
            conditions.set(BACKLOG_KNOWN, "Unknown", "InvalidSpec", "the spec is invalid")
            conditions.set(SCALING_LIMITED, "Unknown", "InvalidSpec", "the spec is invalid")
            updates["observedGeneration"] = generation
            updates["conditions"] = conditions.as_list()
            return _only_changed(status, updates)

        now = self.clock()
        address = spec.control_plane_address or self.settings.control_plane_address
        plane = self.planes.get(address)
        current = self._current_replicas(spec, status, deployment, state)

        # Read the backlog when due; on failure keep everything and retry with backoff.
        polled_at: str | None = None
        if now >= state.next_poll_at:
            await self._poll(plane, spec, state, namespace, name, now, emit)
            if state.backlog_error is None:
                polled_at = now_iso

        # Decide.
        desired = current
        if spec.autoscaling:
            policy = spec.policy()
            if state.autoscaler is None:
                state.autoscaler = Autoscaler(policy)
            state.autoscaler.policy = policy
            if polled_at is not None and state.backlog is not None:
                state.decision = state.autoscaler.decide(state.backlog, current, now)
                desired = state.decision.desired
        else:
            if state.autoscaler is not None:
                state.autoscaler.reset()
            state.decision = None
            if spec.replicas is not None:
                desired = spec.replicas
            elif spec.scaling is None:
                desired = 1

        # Apply: costs on the pods first when scaling down, then the Deployment.
        live_replicas = (deployment or {}).get("spec", {}).get("replicas")
        if deployment is not None and isinstance(live_replicas, int) and desired < live_replicas:
            await self._set_deletion_costs(plane, spec, namespace, name)
        sync_key = _sync_key(meta, desired, deployment)
        if sync_key is None or sync_key != state.deployment_in_sync:
            manifest = dep.build_deployment(
                name=name, namespace=namespace, uid=meta.get("uid", ""), spec=spec,
                replicas=desired, default_address=self.settings.control_plane_address)
            in_sync = await self._apply(manifest, deployment, state, namespace, name, emit)
            state.deployment_in_sync = sync_key if in_sync else None

        if desired != current:
            updates["lastScaleTime"] = now_iso
            reason = state.decision.reason if state.decision else "ManualReplicas"
            message = state.decision.message if state.decision else f"spec.replicas={desired}"
            emit("Normal", "Scaled", f"replicas {current} -> {desired}: {reason}: {message}")
            self.metrics.observe_scale(namespace, name, before=current, after=desired)
            log.info("pool %s/%s: replicas %d -> %d (%s: %s)", namespace, name, current,
                     desired, reason, message)
        state.desired = desired

        # Report.
        dep_status = (deployment or {}).get("status") or {}
        replicas = int(dep_status.get("replicas") or 0)
        ready = int(dep_status.get("readyReplicas") or 0)
        self.metrics.observe_replicas(namespace, name, desired=desired, actual=replicas,
                                      ready=ready)
        updates.update({
            "observedGeneration": generation,
            "replicas": replicas,
            "readyReplicas": ready,
            "desiredReplicas": desired,
            "selector": dep.selector_string(name),
        })
        if polled_at is not None and state.backlog is not None:
            updates["backlog"] = {
                "pending": state.backlog.pending,
                "running": state.backlog.running,
                "delayed": state.backlog.delayed,
                "oldestPendingAgeSeconds": round(state.backlog.oldest_pending_age, 3),
            }
        self._report_conditions(conditions, spec, state, desired, ready, deployment)
        updates["conditions"] = conditions.as_list()
        changed = _only_changed(status, updates)
        if polled_at is not None and (changed or _older_than(
                status.get("lastBacklogTime"), wall, BACKLOG_TIME_REFRESH_SECONDS)):
            changed["lastBacklogTime"] = polled_at
        return changed

    # --- steps ---------------------------------------------------------------------------

    def _current_replicas(self, spec: PoolSpec, status: Mapping[str, Any],
                          deployment: Mapping[str, Any] | None, state: PoolState) -> int:
        """The replica count the operator last asked for. After a restart: the pool's
        status.desiredReplicas, else the live Deployment's, else the starting point."""
        if state.desired is not None:
            return state.desired
        recorded = status.get("desiredReplicas")
        if isinstance(recorded, int) and recorded >= 0:
            return recorded
        live = (deployment or {}).get("spec", {}).get("replicas")
        if isinstance(live, int) and live >= 0:
            return live
        if spec.autoscaling:
            return spec.policy().min_replicas
        return spec.replicas if spec.replicas is not None else 1

    async def _poll(self, plane: ControlPlane, spec: PoolSpec, state: PoolState,
                    namespace: str, name: str, now: float, emit: EmitFn) -> None:
        try:
            sample = await plane.backlog(spec.activity_types, spec.workflow_types)
        except BacklogUnavailable as exc:
            delay = state.backoff.failed(spec.poll_interval)
            state.next_poll_at = now + delay
            if state.backlog_error is None or state.backlog_error.message != exc.message:
                emit("Warning", exc.reason, f"{exc.message}; holding replicas, retry in {delay:g}s")
                log.warning("pool %s/%s: backlog unknown (%s: %s); retry in %gs",
                            namespace, name, exc.reason, exc.message, delay)
            state.backlog_error = exc
            self.metrics.observe_backlog_error(namespace, name, exc.reason)
            return
        if state.backlog_error is not None:
            emit("Normal", "BacklogRead", f"control plane at {plane.address} answers again")
            log.info("pool %s/%s: backlog known again", namespace, name)
        state.backoff.succeeded()
        state.backlog_error = None
        state.backlog = sample
        state.next_poll_at = now + spec.poll_interval
        self.metrics.observe_backlog(namespace, name, sample)

    async def _set_deletion_costs(self, plane: ControlPlane, spec: PoolSpec, namespace: str,
                                  name: str) -> None:
        """Annotate the pool's pods with their load as pod-deletion-cost: the ReplicaSet
        removes the cheapest pods first, so idle workers go before busy ones."""
        try:
            loads = await plane.worker_loads(spec.worker_group or name)
            pods = await self.kube.list(self.kube.pods_path(namespace),
                                        labels={dep.POOL_LABEL: name})
            for pod in pods:
                pod_meta = pod.get("metadata", {})
                if pod_meta.get("deletionTimestamp"):
                    continue
                cost = str(loads.get(pod_meta.get("name", ""), 0))
                annotations = pod_meta.get("annotations") or {}
                if annotations.get(dep.DELETION_COST_ANNOTATION) == cost:
                    continue
                await self.kube.merge_patch(
                    self.kube.pods_path(namespace, pod_meta["name"]),
                    {"metadata": {"annotations": {dep.DELETION_COST_ANNOTATION: cost}}})
        except (TimeoutError, BacklogUnavailable, KubeApiError, aiohttp.ClientError) as exc:
            # Scaling down still proceeds: workers drain on SIGTERM; the cost only picks who.
            log.warning("pool %s/%s: could not set pod deletion costs: %s", namespace, name, exc)

    async def _apply(self, manifest: dict[str, Any], live: Mapping[str, Any] | None,
                     state: PoolState, namespace: str, name: str, emit: EmitFn) -> bool:
        """Create or put back the Deployment. True when the live one matches what was built,
        already or through our patch: until the watch brings the patched object (a newer
        resourceVersion, compared once more then), the next passes need not patch it again."""
        path = self.kube.deployments_path(namespace, name)
        matched = False
        try:
            if live is None:
                try:
                    await self.kube.create(self.kube.deployments_path(namespace), manifest)
                    log.info("pool %s/%s: created the Deployment", namespace, name)
                except KubeApiError as exc:
                    if exc.status != 409:
                        raise
                    # It exists: ours, and the index lags; or someone else's, left alone.
                    existing = await self.kube.get(path)
                    if not _controlled_by(existing, manifest):
                        raise KubeApiError(409, "AlreadyExists",
                                           f"a Deployment named {name} exists and is not "
                                           f"controlled by this pool") from None
                    await self.kube.merge_patch(path, manifest)
            else:
                differences = dep.drifted(live, manifest)
                if differences:
                    await self.kube.merge_patch(path, manifest)
                    log.info("pool %s/%s: Deployment updated (%s)", namespace, name,
                             ", ".join(differences))
                matched = True
        except (TimeoutError, KubeApiError, aiohttp.ClientError) as exc:
            message = f"cannot create or update the Deployment: {exc}"
            if state.deployment_error != message:
                emit("Warning", "DeploymentError", message)
                log.warning("pool %s/%s: %s", namespace, name, message)
            state.deployment_error = message
        else:
            state.deployment_error = None
        return matched

    def _report_conditions(self, conditions: Conditions, spec: PoolSpec, state: PoolState,
                           desired: int, ready: int, deployment: Mapping[str, Any] | None) -> None:
        if state.backlog_error is not None:
            conditions.set(BACKLOG_KNOWN, "False", state.backlog_error.reason,
                           f"{state.backlog_error.message}; holding {desired} replica(s)")
        elif state.backlog is not None:
            b = state.backlog
            conditions.set(BACKLOG_KNOWN, "True", "BacklogRead",
                           f"pending {b.pending}, running {b.running}, delayed {b.delayed}")

        if not spec.autoscaling:
            why = "spec.scaling.paused is true" if spec.scaling else "the pool has no spec.scaling"
            conditions.set(SCALING_LIMITED, "False", "AutoscalingDisabled",
                           f"{why}; replicas follow spec.replicas")
        elif spec.replicas is not None and spec.replicas != desired:
            conditions.set(SCALING_LIMITED, "True", "ManualReplicasIgnored",
                           f"spec.replicas={spec.replicas} is ignored while autoscaling is active "
                           f"(set spec.scaling.paused to use it)")
        elif state.decision is not None:
            d = state.decision
            if d.limited and d.limit_reason:
                conditions.set(SCALING_LIMITED, "True", d.limit_reason, d.message)
            else:
                conditions.set(SCALING_LIMITED, "False", d.reason, d.message)

        if state.deployment_error is not None:
            conditions.set(READY, "False", "DeploymentError", state.deployment_error)
        elif deployment is None:
            conditions.set(READY, "False", "DeploymentPending",
                           "the worker Deployment is being created")
        elif desired == 0:
            conditions.set(READY, "True", "ScaledToZero", "no work: the pool runs no workers")
        elif ready >= desired:
            conditions.set(READY, "True", "WorkersReady", f"{ready}/{desired} workers ready")
        else:
            conditions.set(READY, "False", "WorkersNotReady", f"{ready}/{desired} workers ready")


def _controlled_by(existing: Mapping[str, Any], manifest: Mapping[str, Any]) -> bool:
    (ours,) = manifest["metadata"]["ownerReferences"]
    owners = existing.get("metadata", {}).get("ownerReferences") or []
    return any(o.get("controller") and o.get("uid") == ours["uid"] for o in owners)


def _sync_key(meta: Mapping[str, Any], desired: int,
              deployment: Mapping[str, Any] | None) -> tuple[Any, ...] | None:
    """What the built Deployment and its comparison with the live one depend on: the pool
    (uid, generation: the spec), the replicas, and the live object's resourceVersion (any
    edit, by anyone, changes it). None when one is unknown: then always compare."""
    generation = meta.get("generation")
    version = ((deployment or {}).get("metadata") or {}).get("resourceVersion")
    if not isinstance(generation, int) or not version:
        return None
    return (meta.get("uid"), generation, desired, version)


def _older_than(stamp: Any, now: datetime, seconds: float) -> bool:
    """Whether an RFC 3339 `stamp` is at least `seconds` before `now` (or is missing)."""
    try:
        moment = datetime.fromisoformat(str(stamp))
    except ValueError:
        return True
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (now - moment).total_seconds() >= seconds


def _only_changed(status: Mapping[str, Any], updates: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in updates.items() if status.get(key) != value}
