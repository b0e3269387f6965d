"""The worker pods the operator makes are hardened like the chart's: non-root, no privilege
escalation, no capabilities, a read-only root filesystem with a writable /tmp, and no
ServiceAccount token unless the pool asks for one. The pool's podTemplate still wins."""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest

from durable.operator.deployment import build_deployment
from durable.operator.spec import parse_pool_spec


def deployment(**spec: Any) -> dict[str, Any]:
    raw = {"image": "registry.example.com/orders:1", "activityTypes": ["charge"], **spec}
    return build_deployment(name="orders", namespace="shop", uid="u-1", spec=parse_pool_spec(raw),
                            replicas=1, default_address="durable-controlplane.durable.svc:9001")


def worker_of(pod: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in pod["containers"] if c["name"] == "worker")


@pytest.mark.parametrize("version", ["1.30", "1.34"])
def test_worker_pods_are_hardened_by_default(version: str) -> None:
    built = deployment()
    kubernetes_validate.validate(built, version, strict=True)
    pod = built["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"] == {
        "runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001, "fsGroup": 10001,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    sc = worker_of(pod)["securityContext"]
    assert sc == {
        "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"},
    }
    (tmp,) = [m for m in worker_of(pod)["volumeMounts"] if m["mountPath"] == "/tmp"]
    assert {v["name"]: v for v in pod["volumes"]}[tmp["name"]]["emptyDir"]


def test_the_pool_asks_for_a_token_or_relaxes_a_default() -> None:
    pod = deployment(podTemplate={"spec": {
        "automountServiceAccountToken": True,
        "serviceAccountName": "orders-api-reader",
        "securityContext": {"runAsUser": 20002},
        "volumes": [{"name": "auth", "secret": {"secretName": "orders-worker-token"}}],
        "containers": [{"name": "worker", "securityContext": {"readOnlyRootFilesystem": False},
                        "volumeMounts": [{"name": "auth", "mountPath": "/etc/durable/auth"}]}],
    }})["spec"]["template"]["spec"]
    kubernetes_validate.validate({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": pod},
                                 "1.34", strict=True)
    assert pod["automountServiceAccountToken"] is True
    assert pod["securityContext"]["runAsUser"] == 20002
    assert pod["securityContext"]["runAsNonRoot"] is True  # the rest of the defaults stay
    worker = worker_of(pod)
    assert worker["securityContext"]["readOnlyRootFilesystem"] is False
    assert worker["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert [m["mountPath"] for m in worker["volumeMounts"]] == ["/etc/durable/auth", "/tmp"]
    assert [v["name"] for v in pod["volumes"]] == ["auth", "durable-tmp"]
    assert worker["image"] == "registry.example.com/orders:1"  # ours still win where they must


def test_the_commented_example_pool_mounts_its_token_as_a_file() -> None:
    from pathlib import Path

    import yaml

    example = yaml.safe_load((Path(__file__).resolve().parents[2] / "examples" / "pools" / "pool.yaml").read_text())
    built = build_deployment(name="orders-workers", namespace="shop", uid="u", spec=parse_pool_spec(example["spec"]),
                             replicas=1, default_address="cp:9001")
    kubernetes_validate.validate(built, "1.34", strict=True)
    worker = worker_of(built["spec"]["template"]["spec"])
    env = {e["name"]: e for e in worker["env"]}
    assert env["DURABLE_AUTH_TOKEN_FILE"]["value"] == "/etc/durable/auth/token"
    assert "DURABLE_AUTH_TOKEN" not in env
    assert {m["mountPath"] for m in worker["volumeMounts"]} == {"/etc/durable/auth", "/tmp"}
    assert worker["securityContext"]["readOnlyRootFilesystem"] is True


@pytest.mark.parametrize(("spec", "expected"), [
    ({}, 45),  # the worker's default drain (30 s) + 15
    ({"drainGracePeriodSeconds": 0}, 15),
    ({"drainGracePeriodSeconds": 300}, 315),
    ({"env": [{"name": "DURABLE_DRAIN_GRACE_PERIOD", "value": "62.5"}]}, 78),  # the env wins, rounded up
    ({"drainGracePeriodSeconds": 10, "env": [{"name": "DURABLE_DRAIN_GRACE_PERIOD", "value": "90"}]}, 105),
    ({"drainGracePeriodSeconds": 10, "podTemplate": {"spec": {"terminationGracePeriodSeconds": 5}}}, 5),
])
def test_pods_get_a_termination_grace_period_above_the_drain(spec: dict[str, Any], expected: int) -> None:
    built = deployment(**spec)
    kubernetes_validate.validate(built, "1.34", strict=True)
    pod = built["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] == expected
    env = {e["name"]: e.get("value") for e in worker_of(pod)["env"]}
    if "drainGracePeriodSeconds" in spec and not spec.get("env"):
        assert env["DURABLE_DRAIN_GRACE_PERIOD"] == str(spec["drainGracePeriodSeconds"])


def test_a_drain_grace_period_out_of_range_is_refused() -> None:
    from durable.operator.spec import InvalidPoolSpec

    with pytest.raises(InvalidPoolSpec) as refused:
        deployment(drainGracePeriodSeconds=-1)
    assert "drainGracePeriodSeconds" in str(refused.value)
