"""A pool's Deployment: created and owned, rolled on spec changes, put back after drift,
deleted with the pool; invalid pools; status conditions and observedGeneration."""

from __future__ import annotations

import pytest

from tests.k8s.conftest import OperatorFactory
from tests.k8s.pools import (
    DEPLOYMENTS,
    NS,
    POOLS,
    condition,
    create,
    create_pool,
    deployment_path,
    event_reasons,
    history,
    live,
    patch,
    pool_path,
    replicas,
    status,
)
from tests.support.kube import Emulator, wait_until

pytestmark = pytest.mark.k8s


def _env(deployment: dict) -> dict[str, object]:
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


async def test_pool_gets_an_owned_deployment_with_env_probes_and_status(
    kube: Emulator, control_plane: str, start_operator: OperatorFactory
) -> None:
    await start_operator(control_plane)
    created = await create_pool(
        kube, "alpha", activityTypes=["send-email", "charge"], workflowTypes=["order"],
        maxConcurrentTasks=7,
        env=[{"name": "WORKER_GROUP", "value": "custom-group"},
             {"name": "WORKER_ID", "value": "must-not-win"},
             {"name": "EXTRA", "value": "1"}],
        resources={"limits": {"cpu": "1", "memory": "256Mi"}},
        podTemplate={"metadata": {"labels": {"team": "a"}},
                     "spec": {"nodeSelector": {"pool": "workers"}}},
        scaling={"minReplicas": 2, "maxReplicas": 5, "pollIntervalSeconds": 1})

    deployment = await wait_until(lambda: live(kube, DEPLOYMENTS, "alpha"), what="the Deployment")
    uid = created["metadata"]["uid"]
    assert deployment["metadata"]["ownerReferences"] == [{
        "apiVersion": "durable.dev/v1alpha1", "kind": "DurableWorkerPool", "name": "alpha",
        "uid": uid, "controller": True, "blockOwnerDeletion": True,
    }]
    assert deployment["spec"]["replicas"] == 2  # minReplicas, nothing queued
    assert deployment["spec"]["selector"] == {"matchLabels": {"durable.dev/pool": "alpha"}}
    template = deployment["spec"]["template"]
    assert template["metadata"]["labels"] == {
        "team": "a",
        "app.kubernetes.io/name": "durable-worker", "app.kubernetes.io/instance": "alpha",
        "app.kubernetes.io/managed-by": "durable-operator", "durable.dev/pool": "alpha",
    }
    assert template["metadata"]["annotations"]["durable.dev/spec-hash"]
    assert template["spec"]["nodeSelector"] == {"pool": "workers"}
    (container,) = template["spec"]["containers"]
    assert container["name"] == "worker"
    assert container["image"] == "registry.example/worker:1"
    assert container["resources"] == {"limits": {"cpu": "1", "memory": "256Mi"}}
    assert _env(deployment) == {
        "GRPC_ADDRESS": control_plane,
        "MAX_CONCURRENT_TASKS": "7",
        "WORKER_GROUP": "custom-group",
        "DURABLE_WORKFLOW_TYPES": "order",
        "DURABLE_ACTIVITY_TYPES": "send-email,charge",
        "EXTRA": "1",
        "WORKER_ID": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}},
    }
    assert container["ports"] == [{"name": "health", "containerPort": 9002, "protocol": "TCP"}]
    assert container["livenessProbe"] == {"grpc": {"port": 9002}}
    assert container["readinessProbe"] == {"grpc": {"port": 9002, "service": ""}}

    # Status: conditions were Unknown on the first visit, then filled in.
    await wait_until(lambda: condition(kube, "alpha", "BacklogKnown").get("status") == "True",
                     what="BacklogKnown=True")
    first = next(v["status"]["conditions"] for v in history(kube, POOLS, "alpha")
                 if (v.get("status") or {}).get("conditions"))
    assert {c["type"]: c["status"] for c in first} == {
        "Ready": "Unknown", "BacklogKnown": "Unknown", "ScalingLimited": "Unknown"}
    current = status(kube, "alpha")
    assert current["observedGeneration"] == 1
    assert current["selector"] == "durable.dev/pool=alpha"
    assert current["desiredReplicas"] == 2
    assert current["backlog"] == {"pending": 0, "running": 0, "delayed": 0,
                                  "oldestPendingAgeSeconds": 0.0}
    assert all(c["observedGeneration"] == 1 and c["reason"][0].isupper()
               for c in current["conditions"])
    ready = await wait_until(
        lambda: (c := condition(kube, "alpha", "Ready"))
        and c["reason"] != "DeploymentPending" and c,
        what="Ready past DeploymentPending")
    assert (ready["status"], ready["reason"], ready["message"]) == (
        "False", "WorkersNotReady", "0/2 workers ready")

    # The Deployment controller reports ready pods: the pool becomes Ready.
    await patch(kube, deployment_path("alpha") + "/status",
                {"status": {"replicas": 2, "readyReplicas": 2}})
    await wait_until(lambda: condition(kube, "alpha", "Ready").get("status") == "True",
                     what="Ready=True")
    assert condition(kube, "alpha", "Ready")["reason"] == "WorkersReady"
    assert status(kube, "alpha")["readyReplicas"] == 2
    # lastTransitionTime moved only with the status: Ready changed, BacklogKnown did not
    # change since it became True.
    transitions = [c["lastTransitionTime"] for v in history(kube, POOLS, "alpha")
                   for c in (v.get("status") or {}).get("conditions", [])
                   if c["type"] == "BacklogKnown" and c["status"] == "True"]
    assert len(set(transitions)) == 1


async def test_spec_change_rolls_and_drift_is_put_back(
    kube: Emulator, control_plane: str, start_operator: OperatorFactory
) -> None:
    await start_operator(control_plane)
    await create_pool(kube, "beta", activityTypes=["a"],
                      scaling={"minReplicas": 1, "pollIntervalSeconds": 1})
    first = await wait_until(lambda: live(kube, DEPLOYMENTS, "beta"), what="the Deployment")
    first_hash = first["spec"]["template"]["metadata"]["annotations"]["durable.dev/spec-hash"]

    # A spec change rolls the pods (new spec-hash) and is observed (generation 2).
    await patch(kube, pool_path("beta"), {"spec": {"image": "registry.example/worker:2"}})

    def rolled() -> dict | None:
        d = live(kube, DEPLOYMENTS, "beta")
        if d and d["spec"]["template"]["spec"]["containers"][0]["image"].endswith(":2"):
            return d
        return None

    second = await wait_until(rolled, what="the new image in the Deployment")
    second_hash = second["spec"]["template"]["metadata"]["annotations"]["durable.dev/spec-hash"]
    assert second_hash != first_hash
    await wait_until(lambda: status(kube, "beta").get("observedGeneration") == 2,
                     what="observedGeneration=2")
    assert all(c["observedGeneration"] == 2 for c in status(kube, "beta")["conditions"])

    # A scaling-only change does not roll the pods.
    await patch(kube, pool_path("beta"), {"spec": {"scaling": {"maxReplicas": 4}}})
    await wait_until(lambda: status(kube, "beta").get("observedGeneration") == 3,
                     what="observedGeneration=3")
    third = live(kube, DEPLOYMENTS, "beta")
    assert third is not None
    assert (third["spec"]["template"]["metadata"]["annotations"]
            == second["spec"]["template"]["metadata"]["annotations"])

    # Someone edits the Deployment: the operator puts it back.
    await patch(kube, deployment_path("beta"), {"spec": {
        "replicas": 9,
        "template": {"spec": {"containers": [{"name": "worker", "image": "evil:1"}]}},
    }})
    restored = await wait_until(
        lambda: (d := live(kube, DEPLOYMENTS, "beta")) and d["spec"]["replicas"] == 1
        and d["spec"]["template"]["spec"]["containers"][0]["image"].endswith(":2") and d,
        what="the Deployment to be put back")
    assert restored["spec"]["template"]["spec"]["containers"][0]["readinessProbe"] == {
        "grpc": {"port": 9002, "service": ""}}


async def test_invalid_pool_gets_a_condition_naming_the_field_and_nothing_else(
    kube: Emulator, control_plane: str, start_operator: OperatorFactory
) -> None:
    await start_operator(control_plane)
    await create_pool(kube, "broken", activityTypes=["a"],
                      scaling={"minReplicas": 1, "maxReplicas": 0})
    ready = await wait_until(
        lambda: (c := condition(kube, "broken", "Ready")) and c["status"] == "False" and c,
        what="Ready=False")
    assert ready["reason"] == "InvalidSpec"
    assert "spec.scaling.maxReplicas" in ready["message"]
    await wait_until(lambda: "InvalidSpec" in event_reasons(kube, "broken"),
                     what="an InvalidSpec event")
    assert live(kube, DEPLOYMENTS, "broken") is None
    assert not any(r.method == "POST" and "deployments" in r.url.path for r in kube)

    # Fixing the spec creates the Deployment.
    await patch(kube, pool_path("broken"), {"spec": {"scaling": {"maxReplicas": 3}}})
    await wait_until(lambda: live(kube, DEPLOYMENTS, "broken"), what="the Deployment")
    await wait_until(lambda: condition(kube, "broken", "Ready").get("reason") != "InvalidSpec",
                     what="Ready no longer InvalidSpec")


async def test_deleting_the_pool_deletes_its_deployment_through_the_owner_reference(
    kube: Emulator, control_plane: str, start_operator: OperatorFactory
) -> None:
    await start_operator(control_plane)
    await create_pool(kube, "gamma", activityTypes=["a"], scaling={"pollIntervalSeconds": 1})
    await wait_until(lambda: live(kube, DEPLOYMENTS, "gamma"), what="the Deployment")
    pool = await wait_until(
        lambda: (p := live(kube, POOLS, "gamma")) and p["metadata"].get("finalizers") and p,
        what="kopf's finalizer")
    assert pool["metadata"]["finalizers"] == ["durable.dev/operator"]

    response = await kube.delete(pool_path("gamma"))
    assert response.status == 200
    # kopf stops the pool's timer and releases its finalizer; the pool goes; the emulator's
    # garbage collector (like Kubernetes') deletes what the pool's uid owns.
    await wait_until(lambda: live(kube, POOLS, "gamma") is None, what="the pool to go")
    await wait_until(lambda: live(kube, DEPLOYMENTS, "gamma") is None, what="the Deployment to go")
    # The operator never deleted it itself.
    assert not any(r.method == "DELETE" and "deployments" in r.url.path for r in kube)


async def test_spec_replicas_is_ignored_while_autoscaling_and_used_when_paused(
    kube: Emulator, control_plane: str, start_operator: OperatorFactory
) -> None:
    await start_operator(control_plane)
    await create_pool(kube, "delta", activityTypes=["a"], replicas=3,
                      scaling={"minReplicas": 1, "pollIntervalSeconds": 1})
    limited = await wait_until(
        lambda: (c := condition(kube, "delta", "ScalingLimited")) and c["status"] == "True" and c,
        what="ScalingLimited=True")
    assert limited["reason"] == "ManualReplicasIgnored"
    assert replicas(kube, "delta") == 1

    await patch(kube, pool_path("delta"), {"spec": {"scaling": {"paused": True}}})
    await wait_until(lambda: replicas(kube, "delta") == 3, what="spec.replicas to apply")
    await wait_until(
        lambda: condition(kube, "delta", "ScalingLimited").get("reason") == "AutoscalingDisabled",
        what="ScalingLimited=False AutoscalingDisabled")
    assert status(kube, "delta")["desiredReplicas"] == 3


async def test_a_deployment_the_pool_does_not_own_is_left_alone(
    kube: Emulator, control_plane: str, start_operator: OperatorFactory
) -> None:
    await start_operator(control_plane)
    foreign = {"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": "epsilon", "namespace": NS},
               "spec": {"replicas": 4, "selector": {"matchLabels": {"app": "mine"}},
                        "template": {"metadata": {"labels": {"app": "mine"}},
                                     "spec": {"containers": [{"name": "c", "image": "mine:1"}]}}}}
    await create(kube, foreign)
    await create_pool(kube, "epsilon", activityTypes=["a"], scaling={"pollIntervalSeconds": 1})
    ready = await wait_until(
        lambda: (c := condition(kube, "epsilon", "Ready")) and c["reason"] == "DeploymentError"
        and c, what="Ready=False DeploymentError")
    assert ready["status"] == "False"
    assert "not controlled by this pool" in ready["message"]
    await wait_until(lambda: "DeploymentError" in event_reasons(kube, "epsilon"),
                     what="a DeploymentError event")
    untouched = live(kube, DEPLOYMENTS, "epsilon")
    assert untouched is not None
    assert untouched["spec"]["replicas"] == 4
    assert "ownerReferences" not in untouched["metadata"]


async def test_worker_pods_outlive_their_drain_so_the_hand_back_is_not_killed(
    kube: Emulator, control_plane: str, start_operator: OperatorFactory
) -> None:
    """terminationGracePeriodSeconds = the workers' drain grace + 15 s: the default (30 s drain,
    45 s pod), a pool's drainGracePeriodSeconds (also passed as DURABLE_DRAIN_GRACE_PERIOD), and
    a podTemplate that sets the pod's period itself, which wins."""
    await start_operator(control_plane)
    await create_pool(kube, "plain", activityTypes=["a"])
    await create_pool(kube, "slow", activityTypes=["a"], drainGracePeriodSeconds=120)
    await create_pool(kube, "own", activityTypes=["a"], drainGracePeriodSeconds=120,
                      podTemplate={"spec": {"terminationGracePeriodSeconds": 600}})
    pods = {}
    for name in ("plain", "slow", "own"):
        deployment = await wait_until(lambda n=name: live(kube, DEPLOYMENTS, n), what=f"the Deployment {name}")
        pods[name] = deployment["spec"]["template"]["spec"]
    assert pods["plain"]["terminationGracePeriodSeconds"] == 45
    assert "DURABLE_DRAIN_GRACE_PERIOD" not in _env({"spec": {"template": {"spec": pods["plain"]}}})
    assert pods["slow"]["terminationGracePeriodSeconds"] == 135
    assert _env({"spec": {"template": {"spec": pods["slow"]}}})["DURABLE_DRAIN_GRACE_PERIOD"] == "120"
    assert pods["own"]["terminationGracePeriodSeconds"] == 600
