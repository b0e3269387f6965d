"""The worker Deployment a pool owns: built from the pool, compared with what is live.

Pure functions, no I/O. The reconciler creates the Deployment with `build_deployment()`,
and puts it back with a JSON merge patch of the same manifest whenever `drifted()` finds a
managed field that differs (someone edited the Deployment, or the pool's spec changed).
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
from collections.abc import Mapping
from typing import Any

from durable.operator.spec import PoolSpec

__all__ = [
    "API_VERSION",
    "DELETION_COST_ANNOTATION",
    "HEALTH_PORT",
    "KIND",
    "POOL_LABEL",
    "SPEC_HASH_ANNOTATION",
    "build_deployment",
    "drain_grace_seconds",
    "drifted",
    "pod_labels",
    "selector_string",
]

API_VERSION = "durable.dev/v1alpha1"
KIND = "DurableWorkerPool"
POOL_LABEL = "durable.dev/pool"
SPEC_HASH_ANNOTATION = "durable.dev/spec-hash"
DELETION_COST_ANNOTATION = "controller.kubernetes.io/pod-deletion-cost"
HEALTH_PORT = 9002
CONTAINER = "worker"
TMP_VOLUME = "durable-tmp"

# Worker pods get the chart's hardening unless the pool's podTemplate says otherwise (its
# fields win): a non-root uid (the durable image's user), no privilege escalation, no
# capabilities, a read-only root filesystem with a writable /tmp, and no ServiceAccount token
# (set podTemplate.spec.automountServiceAccountToken: true for workers that call the API).
POD_DEFAULTS: dict[str, Any] = {
    "automountServiceAccountToken": False,
    "securityContext": {
        "runAsNonRoot": True,
        "runAsUser": 10001,
        "runAsGroup": 10001,
        "fsGroup": 10001,
        "seccompProfile": {"type": "RuntimeDefault"},
    },
}
CONTAINER_DEFAULTS: dict[str, Any] = {
    "securityContext": {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    },
}


# A stopping worker drains for its grace period (DURABLE_DRAIN_GRACE_PERIOD, the worker's
# default 30 s), then hands back what did not finish and stops. The pod's
# terminationGracePeriodSeconds is that plus HANDBACK_MARGIN_SECONDS, so the hand-back is done
# before the kubelet's SIGKILL (equal periods would race it).
DRAIN_ENV = "DURABLE_DRAIN_GRACE_PERIOD"
WORKER_DRAIN_DEFAULT_SECONDS = 30.0
HANDBACK_MARGIN_SECONDS = 15


def drain_grace_seconds(spec: PoolSpec) -> float:
    """The drain grace period the pool's workers run with: a literal DURABLE_DRAIN_GRACE_PERIOD
    in spec.env (it wins), else spec.drainGracePeriodSeconds, else the worker's default."""
    for var in spec.env:
        if var.name == DRAIN_ENV and var.value is not None:
            try:
                return max(float(var.value), 0.0)
            except ValueError:
                break  # the worker refuses it at start-up, naming the variable
    if spec.drain_grace_period_seconds is not None:
        return float(spec.drain_grace_period_seconds)
    return WORKER_DRAIN_DEFAULT_SECONDS


def pod_labels(pool: str) -> dict[str, str]:
    """The labels of the pool's pods (and of the Deployment)."""
    return {
        "app.kubernetes.io/name": "durable-worker",
        "app.kubernetes.io/instance": pool,
        "app.kubernetes.io/managed-by": "durable-operator",
        POOL_LABEL: pool,
    }


def selector_string(pool: str) -> str:
    """The label selector of the pool's pods, as `status.selector` (scale subresource)."""
    return f"{POOL_LABEL}={pool}"


def _env(spec: PoolSpec, pool: str, address: str) -> list[dict[str, Any]]:
    ours: dict[str, dict[str, Any]] = {
        "GRPC_ADDRESS": {"name": "GRPC_ADDRESS", "value": address},
        "MAX_CONCURRENT_TASKS": {"name": "MAX_CONCURRENT_TASKS",
                                 "value": str(spec.max_concurrent_tasks)},
        "WORKER_GROUP": {"name": "WORKER_GROUP", "value": spec.worker_group or pool},
        "DURABLE_WORKFLOW_TYPES": {"name": "DURABLE_WORKFLOW_TYPES",
                                   "value": ",".join(spec.workflow_types)},
        "DURABLE_ACTIVITY_TYPES": {"name": "DURABLE_ACTIVITY_TYPES",
                                   "value": ",".join(spec.activity_types)},
    }
    if spec.drain_grace_period_seconds is not None:
        ours[DRAIN_ENV] = {"name": DRAIN_ENV, "value": str(spec.drain_grace_period_seconds)}
    extra: list[dict[str, Any]] = []
    for var in spec.env:
        if var.name == "WORKER_ID":
            continue  # the worker's identity is its pod name, always
        rendered = var.model_dump(by_alias=True, exclude_none=True)
        if var.name in ours:
            ours[var.name] = rendered  # the user's value wins on a name clash
        else:
            extra.append(rendered)
    worker_id = {"name": "WORKER_ID",
                 "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}}
    return [*ours.values(), *extra, worker_id]


def _container(spec: PoolSpec, pool: str, address: str) -> dict[str, Any]:
    container: dict[str, Any] = {"name": CONTAINER, "image": spec.image}
    if spec.image_pull_policy:
        container["imagePullPolicy"] = spec.image_pull_policy
    if spec.command is not None:
        container["command"] = list(spec.command)
    if spec.args is not None:
        container["args"] = list(spec.args)
    container["env"] = _env(spec, pool, address)
    container["ports"] = [{"name": "health", "containerPort": HEALTH_PORT, "protocol": "TCP"}]
    container["livenessProbe"] = {"grpc": {"port": HEALTH_PORT}}
    container["readinessProbe"] = {"grpc": {"port": HEALTH_PORT, "service": ""}}
    if spec.resources is not None:
        resources = spec.resources.model_dump(exclude_none=True)
        if resources:
            container["resources"] = resources
    return container


def _merge(base: Mapping[str, Any], overlay: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge dicts; the overlay wins; lists are replaced."""
    result = dict(base)
    for key, value in overlay.items():
        if isinstance(value, Mapping) and isinstance(result.get(key), Mapping):
            result[key] = _merge(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def _pod_spec(spec: PoolSpec, pool: str, address: str) -> dict[str, Any]:
    user = _merge(POD_DEFAULTS, copy.deepcopy(spec.pod_template.spec))  # the user's fields win
    if "terminationGracePeriodSeconds" not in user:  # the drain, then the hand-back, then SIGKILL
        user["terminationGracePeriodSeconds"] = math.ceil(drain_grace_seconds(spec)) + HANDBACK_MARGIN_SECONDS
    worker = _merge(CONTAINER_DEFAULTS, _container(spec, pool, address))
    containers: list[dict[str, Any]] = []
    for extra in user.pop("containers", None) or []:
        if isinstance(extra, Mapping) and extra.get("name") == CONTAINER:
            # the defaults, then the user's fields, then ours (image, env, ports, probes)
            worker = _merge(_merge(CONTAINER_DEFAULTS, extra), _container(spec, pool, address))
        elif isinstance(extra, Mapping):
            containers.append(dict(extra))
    mounts = list(worker.get("volumeMounts") or [])
    if not any(isinstance(m, Mapping) and m.get("mountPath") == "/tmp" for m in mounts):
        worker["volumeMounts"] = [*mounts, {"name": TMP_VOLUME, "mountPath": "/tmp"}]
        volumes = list(user.get("volumes") or [])
        if not any(isinstance(v, Mapping) and v.get("name") == TMP_VOLUME for v in volumes):
            user["volumes"] = [*volumes, {"name": TMP_VOLUME, "emptyDir": {"sizeLimit": "256Mi"}}]
    return {**user, "containers": [worker, *containers]}


def _template_hash(template: Mapping[str, Any]) -> str:
    encoded = json.dumps(template, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(encoded).hexdigest()[:16]


def build_deployment(
    *,
    name: str,
    namespace: str,
    uid: str,
    spec: PoolSpec,
    replicas: int,
    default_address: str,
) -> dict[str, Any]:
    """The pool's Deployment. Its pod template carries `durable.dev/spec-hash`: a hash of
    everything the pool's spec puts into the pods (not `scaling` or `replicas`, which must
    not restart workers), so a spec change rolls the pods."""
    labels = pod_labels(name)
    address = spec.control_plane_address or default_address
    template_metadata: dict[str, Any] = {
        "labels": {**spec.pod_template.metadata.labels, **labels},
        "annotations": dict(spec.pod_template.metadata.annotations),
    }
    template: dict[str, Any] = {
        "metadata": template_metadata,
        "spec": _pod_spec(spec, name, address),
    }
    template_metadata["annotations"][SPEC_HASH_ANNOTATION] = _template_hash(template)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": dict(labels),
            "ownerReferences": [{
                "apiVersion": API_VERSION,
                "kind": KIND,
                "name": name,
                "uid": uid,
                "controller": True,
                "blockOwnerDeletion": True,
            }],
        },
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {POOL_LABEL: name}},
            "template": template,
        },
    }


def _contains(live: Any, desired: Any) -> bool:
    """Whether `live` has every field of `desired` with the same value. Extra dict keys in
    `live` are fine (the API server adds defaults); lists must match item by item."""
    if isinstance(desired, Mapping):
        if not isinstance(live, Mapping):
            return False
        return all(key in live and _contains(live[key], value) for key, value in desired.items())
    if isinstance(desired, list):
        if not isinstance(live, list) or len(live) != len(desired):
            return False
        return all(_contains(a, b) for a, b in zip(live, desired, strict=True))
    return bool(live == desired)


def drifted(live: Mapping[str, Any], desired: Mapping[str, Any]) -> list[str]:
    """The managed top-level sections of `desired` that `live` no longer matches."""
    differences: list[str] = []
    for section in ("labels", "ownerReferences"):
        if not _contains(live.get("metadata", {}).get(section), desired["metadata"][section]):
            differences.append(f"metadata.{section}")
    live_spec = live.get("spec", {})
    for key in ("replicas", "selector", "template"):
        if not _contains(live_spec.get(key), desired["spec"][key]):
            differences.append(f"spec.{key}")
    return differences
