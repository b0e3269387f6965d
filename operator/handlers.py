"""kopf wiring: which resources the operator watches and what it does about them.

Everything is registered on a fresh `kopf.OperatorRegistry` by `build_registry()` (nothing
on kopf's global default registry), so the CLI and the tests build the same operator with
different settings and logins.

- A watch-fed index of the Deployments labelled `durable.dev/pool` (no API reads per pass).
- A timer per DurableWorkerPool, every `tick_seconds`: `PoolReconciler.run_once()` with the
  pool's live body; it writes `status` through kopf's patch and returns nothing.
- Deleting a pool: the Deployment carries an ownerReference to the pool (controller,
  blockOwnerDeletion), so Kubernetes' garbage collector deletes it. The operator has no
  delete handler that deletes it itself. The timer makes kopf put its finalizer on pools;
  on deletion kopf stops the timer and releases the finalizer (a small optional handler
  drops the pool's metric series on the way).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import kopf
from durable.operator.backlog import ControlPlanes
from durable.operator.deployment import POOL_LABEL
from durable.operator.kube import KubeClient
from durable.operator.metrics import OperatorMetrics
from durable.operator.reconciler import PoolReconciler, PoolState
from durable.operator.settings import OperatorSettings

__all__ = ["GROUP", "PLURAL", "VERSION", "OperatorContext", "QuietTicks", "build_registry", "kopf_settings",
           "quiet_ticks"]

log = logging.getLogger(__name__)

GROUP = "durable.dev"
VERSION = "v1alpha1"
PLURAL = "durableworkerpools"
_STATE = "durable_pool_state"

ConnectFn = Callable[..., Awaitable[kopf.ConnectionInfo | None] | kopf.ConnectionInfo | None]


async def default_login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """In-cluster service account, else the kubeconfig (kopf's own minimal logins).
    None when neither is there: kopf then reports that and retries."""
    info = kopf.login_with_service_account(**kwargs)
    if info is None:
        try:
            info = kopf.login_with_kubeconfig(**kwargs)
        except OSError as exc:
            log.warning("cannot read the kubeconfig: %s", exc)
    return info


@dataclass
class OperatorContext:
    """The operator's long-lived parts, built once and shared by the handlers."""

    settings: OperatorSettings
    metrics: OperatorMetrics = field(default_factory=OperatorMetrics)
    login: ConnectFn = default_login
    connection: kopf.ConnectionInfo | None = None

    def __post_init__(self) -> None:
        self.kube = KubeClient(self._connection, timeout=self.settings.request_timeout_seconds)
        self.planes = ControlPlanes(timeout=self.settings.grpc_timeout_seconds)
        self.reconciler = PoolReconciler(self.settings, kube=self.kube, planes=self.planes,
                                         metrics=self.metrics)

    async def _connection(self) -> kopf.ConnectionInfo:
        if self.connection is None:
            raise RuntimeError("not logged in to Kubernetes yet")
        return self.connection

    async def close(self) -> None:
        await self.kube.close()
        await self.planes.close()


class QuietTicks(logging.Filter):
    """Drops kopf's "Timer 'reconcile' succeeded." line, logged at INFO for every pool at every
    tick (200 pools at a 1 s tick: 200 lines a second). The reconciler logs what it changes;
    a failed pass is still logged by kopf (as an error, with its traceback)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not (message.startswith("Timer '") and message.endswith("' succeeded."))


def quiet_ticks(logger: logging.Logger | None = None) -> None:
    """Install QuietTicks on kopf's per-object logger (once)."""
    target = logger or logging.getLogger("kopf.objects")
    if not any(isinstance(f, QuietTicks) for f in target.filters):
        target.addFilter(QuietTicks())


def kopf_settings(settings: OperatorSettings, *, scanning: bool = True) -> kopf.OperatorSettings:
    """kopf's settings for this operator.

    - Progress and the diff base in annotations under `durable.dev/` (nothing under
      `status`, which the CRD's schema owns), finalizer `durable.dev/operator`.
    - Events reported as `durable-operator`.
    - Watches re-established every few minutes even when the server keeps them open.
    - `scanning=False` disables the CRD/namespace discovery watches (test API servers).
    """
    kset = kopf.OperatorSettings()
    kset.persistence.finalizer = "durable.dev/operator"
    kset.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="durable.dev")
    kset.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix="durable.dev", key="last-handled-configuration")
    kset.posting.reporting_component = "durable-operator"
    kset.posting.event_name_prefix = "durable-operator-"
    kset.watching.server_timeout = 270
    kset.watching.client_timeout = 300
    kset.scanning.disabled = not scanning
    return kset


def build_registry(context: OperatorContext) -> kopf.OperatorRegistry:
    """A kopf registry with the operator's handlers bound to `context`."""
    registry = kopf.OperatorRegistry()
    settings = context.settings

    @kopf.on.login(registry=registry)
    async def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        result = context.login(**kwargs)
        info = await result if isinstance(result, Awaitable) else result
        context.connection = info
        return info

    @kopf.on.cleanup(registry=registry)
    async def cleanup(**_: Any) -> None:
        await context.close()

    @kopf.index("apps", "v1", "deployments", registry=registry, id="pool_deployments",
                labels={POOL_LABEL: kopf.PRESENT})
    def pool_deployments(namespace: str | None, name: str, body: kopf.Body,
                         **_: Any) -> dict[tuple[str, str], dict[str, Any]]:
        return {(namespace or "default", name): {
            "metadata": dict(body.metadata),
            "spec": dict(body.spec),
            "status": dict(body.status),
        }}

    @kopf.timer(GROUP, VERSION, PLURAL, registry=registry, id="reconcile",
                interval=settings.tick_seconds, backoff=max(5.0, settings.tick_seconds))
    async def reconcile(body: kopf.Body, patch: kopf.Patch, memo: Any, **kwargs: Any) -> None:
        pool_deployments: kopf.Index[tuple[str, str], dict[str, Any]] = kwargs["pool_deployments"]
        state = memo.get(_STATE)
        if not isinstance(state, PoolState):
            state = memo[_STATE] = context.reconciler.new_state()
        namespace = body.metadata.namespace or "default"
        name = body.metadata.name or ""
        deployment = _owned(pool_deployments, namespace, name)

        def emit(type_: str, reason: str, message: str) -> None:
            kopf.event(body, type=type_, reason=reason, message=message)

        updates = await context.reconciler.run_once(
            _raw(body), deployment=deployment, state=state, emit=emit)
        for key, value in updates.items():
            patch.status[key] = value

    @kopf.on.delete(GROUP, VERSION, PLURAL, registry=registry, optional=True, id="forget")
    async def forget(namespace: str | None, name: str | None, **_: Any) -> None:
        context.metrics.forget(namespace or "default", name or "")

    return registry


def _raw(body: kopf.Body) -> dict[str, Any]:
    return {
        "metadata": dict(body.metadata),
        "spec": dict(body.spec),
        "status": dict(body.status),
    }


def _owned(index: kopf.Index[tuple[str, str], dict[str, Any]], namespace: str,
           name: str) -> Mapping[str, Any] | None:
    for item in index.get((namespace, name), []):
        if (item.get("metadata", {}).get("labels") or {}).get(POOL_LABEL) == name:
            return item
    return None
