"""The Helm chart charts/durable, rendered offline with helm-python-sdk (Helm's own Go engine,
no helm binary, no cluster).

Every rendered manifest is validated against the Kubernetes OpenAPI schemas shipped by
kubernetes-validate (strict: unknown fields fail). The two kinds those schemas do not cover are
handled explicitly: the CRD is an apiextensions.k8s.io/v1 object they do cover, and the example
DurableWorkerPool is validated against our own CRD (tests/unit/test_crd.py's PoolValidator);
any other kind without a schema fails the test rather than being skipped.
"""

from __future__ import annotations

import filecmp
import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import helm_python as helm
import jsonschema
import kubernetes_validate
import pytest
import yaml

from tests.unit.test_crd import PoolValidator

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "durable"
RELEASE = "durable"
NAMESPACE = "durable"
KUBERNETES_VERSIONS = ("1.30", "1.34")

BASE: dict[str, Any] = {"database": {"existingSecret": "durable-database"}}
SCENARIOS: dict[str, dict[str, Any]] = {
    "defaults": BASE,
    "everything-on": {
        **BASE,
        "image": {"repository": "registry.example.com/durable", "tag": "9.9.9", "pullPolicy": "Always"},
        "imagePullSecrets": [{"name": "regcred"}],
        "networkPolicy": {
            "enabled": True,
            "extraGrpcFrom": [{"podSelector": {"matchLabels": {"app": "orders-api"}}}],
            "metricsFrom": [{"namespaceSelector": {"matchLabels": {"name": "monitoring"}}}],
        },
        "examplePool": {"enabled": True},
        "operator": {"watchNamespace": "team-a"},
        "controlPlane": {
            "replicaCount": 2,
            "extraEnv": [{"name": "DATABASE_POOL_MAX", "value": "40"}],
            "nodeSelector": {"kubernetes.io/os": "linux"},
            "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "durable", "effect": "NoSchedule"}],
            "podAnnotations": {"prometheus.io/scrape": "true"},
        },
    },
    "custom-image": {**BASE, "image": {"repository": "ghcr.io/acme/durable", "tag": "1.2.3"}},
    "auth-and-mtls": {
        **BASE,
        "auth": {"existingSecret": "durable-auth"},
        "tls": {"existingSecret": "durable-tls", "mutual": True},
        "examplePool": {"enabled": True},
    },
    "scoped-secret": {
        **BASE,
        "auth": {"existingSecret": "durable-credentials", "tokensKey": "tokens", "secretKey": "operator"},
        "examplePool": {"enabled": True, "tokenKey": "example-workers"},
    },
    "auth-off": {**BASE, "auth": {"enabled": False}, "networkPolicy": {"enabled": False}},
    "postgresql": {"postgresql": {"enabled": True, "storageClass": "fast"}, "examplePool": {"enabled": True}},
    "namespaced": {**BASE, "operator": {"namespaced": True}, "keda": {"enabled": True}, "examplePool": {"enabled": True}},
    "namespace-list": {**BASE, "operator": {"watchNamespaces": ["team-a", "team-b"]}, "examplePool": {"enabled": True}},
    "console": {
        **BASE,
        "auth": {"existingSecret": "durable-auth"},
        "tls": {"existingSecret": "durable-tls", "mutual": True},
        "console": {
            "enabled": True,
            "secureCookies": True,
            "ingress": {
                "enabled": True, "className": "nginx", "host": "console.example.com",
                "tls": [{"secretName": "console-tls", "hosts": ["console.example.com"]}],
            },
        },
    },
}

# The operator's permissions, pinned: widening them must be a visible change to this test.
OPERATOR_RULES = {
    ("durable.dev", "durableworkerpools"): {"list", "watch", "patch"},
    ("durable.dev", "durableworkerpools/status"): {"patch"},
    ("apps", "deployments"): {"get", "list", "watch", "create", "patch"},
    ("", "pods"): {"list", "patch"},
    ("", "events"): {"create"},
}
# What kopf itself needs: CRDs always (cluster-scoped), namespaces when serving all of them.
KOPF_RULES = {("apiextensions.k8s.io", "customresourcedefinitions"): {"list", "watch"}}
KOPF_CLUSTER_WIDE_RULES = {**KOPF_RULES, ("", "namespaces"): {"list", "watch"}}


def render(values: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every object the chart renders (templates only; CRDs come from crds/)."""
    with helm.Chart.load(CHART) as chart:
        manifests = chart.render(dict(values), name=RELEASE, namespace=NAMESPACE)
    objects: list[dict[str, Any]] = []
    for name, text in sorted(manifests.items()):
        if not name.endswith(".yaml"):
            continue
        objects.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return objects


@pytest.fixture(scope="module", params=sorted(SCENARIOS))
def scenario(request: pytest.FixtureRequest) -> tuple[str, list[dict[str, Any]]]:
    return request.param, render(SCENARIOS[request.param])


@pytest.fixture(scope="module")
def defaults() -> list[dict[str, Any]]:
    return render(BASE)


@pytest.fixture(scope="module")
def everything() -> list[dict[str, Any]]:
    return render(SCENARIOS["everything-on"])


def one(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def kinds(objects: list[dict[str, Any]], *wanted: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] in wanted]


def pod_specs(objects: list[dict[str, Any]], *, postgresql: bool = False) -> Iterator[tuple[str, dict[str, Any]]]:
    """The chart's durable pods (and, with postgresql=True, the chart's PostgreSQL too)."""
    for obj in kinds(objects, "Deployment", "Job", "StatefulSet", "DaemonSet"):
        if obj["kind"] == "StatefulSet" and not postgresql:
            continue
        yield f"{obj['kind']}/{obj['metadata']['name']}", obj["spec"]["template"]


def env_of(container: Mapping[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


# --------------------------------------------------------------------------------------------
# Chart, values, lint
# --------------------------------------------------------------------------------------------


def test_chart_metadata() -> None:
    with helm.Chart.load(CHART) as chart:
        meta = chart.metadata
    assert meta["apiVersion"] == "v2"
    assert meta["name"] == "durable"
    assert meta["appVersion"]


def test_missing_database_secret_fails_with_a_clear_message() -> None:
    with pytest.raises(helm.HelmError, match=r"database\.existingSecret is required"):
        render({})


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_lint_is_clean(name: str) -> None:
    report = helm.lint(CHART, SCENARIOS[name], strict=True)
    assert report["errors"] == []
    # Severity 1 is informational ("icon is recommended"); warnings and errors fail.
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


def test_values_schema_accepts_the_scenarios_and_rejects_nonsense() -> None:
    jsonschema.Draft7Validator.check_schema(json.loads((CHART / "values.schema.json").read_text()))
    with helm.Chart.load(CHART) as chart:
        for values in SCENARIOS.values():
            chart.validate_schema(chart.merge_values(values))
        for bad in (
            {"image": {"pullPolicy": "Sometimes"}},
            {"operater": {"enabled": True}},  # a typo of a top-level key
            {"controlPlane": {"reaper": {"intervalSeconds": 0}}},
            {"operator": {"watchNamespace": "Not_A_Namespace"}},
            {"networkPolicy": {"enabled": "yes"}},
        ):
            with pytest.raises(helm.HelmValuesError):
                chart.validate_schema(chart.merge_values({**BASE, **bad}))


def _values_doc_comments() -> dict[tuple[str, ...], bool]:
    """Each key path of values.yaml, and whether a `# --` comment documents it."""
    documented: dict[tuple[str, ...], bool] = {}
    stack: list[tuple[int, str]] = []
    comments: list[str] = []
    for line in (CHART / "values.yaml").read_text().splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            comments.append(stripped)
            continue
        match = re.match(r"^(\s*)([A-Za-z0-9_]+):", line)
        if match:
            indent = len(match.group(1))
            while stack and stack[-1][0] >= indent:
                stack.pop()
            path = (*(key for _, key in stack), match.group(2))
            documented[path] = bool(comments) and comments[0].startswith("# -- ")
            stack.append((indent, match.group(2)))
        comments = []
    return documented


def _schema_fields(node: Mapping[str, Any], path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for name, sub in node.get("properties", {}).items():
        yield (*path, name)
        yield from _schema_fields(sub, (*path, name))


def test_every_value_is_documented_and_in_the_schema() -> None:
    documented = _values_doc_comments()
    schema = json.loads((CHART / "values.schema.json").read_text())
    fields = [f for f in _schema_fields(schema) if f != ("global",)]
    missing = [".".join(f) for f in fields if f not in documented]
    assert missing == [], f"in values.schema.json but not in values.yaml: {missing}"
    undocumented = [".".join(f) for f in fields if not documented[f]]
    assert undocumented == [], f"values without a '# --' comment: {undocumented}"


# --------------------------------------------------------------------------------------------
# Every manifest is valid Kubernetes
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_manifest_is_valid(scenario: tuple[str, list[dict[str, Any]]], version: str) -> None:
    _, objects = scenario
    pools = PoolValidator()
    assert objects
    for obj in objects:
        label = f"{obj['kind']}/{obj['metadata']['name']}"
        if obj["apiVersion"] == "durable.dev/v1alpha1":
            assert obj["kind"] == "DurableWorkerPool", label
            assert pools.errors(obj) == [], label
            continue
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(str(p) for p in exc.path)
            pytest.fail(f"{label} is invalid for Kubernetes {version}: {path}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError as exc:
            pytest.fail(f"{label}: no schema to validate it ({exc.message}); handle it explicitly")


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_chart_crds_are_valid(version: str) -> None:
    with helm.Chart.load(CHART) as chart:
        crds = chart.crds
    assert [c["filename"] for c in crds] == ["durable/crds/durable.dev_durableworkerpools.yaml"]
    for crd in crds:
        kubernetes_validate.validate(yaml.safe_load(crd["data"]), version, strict=True)


def test_chart_crds_do_not_drift_from_the_root_crds() -> None:
    root, chart = ROOT / "crds", CHART / "crds"
    names = sorted(p.name for p in root.glob("*.yaml"))
    assert names == sorted(p.name for p in chart.glob("*.yaml"))
    _, mismatch, errors = filecmp.cmpfiles(root, chart, names, shallow=False)
    assert (mismatch, errors) == ([], []), "charts/durable/crds/ differs from crds/: copy it over"


# --------------------------------------------------------------------------------------------
# Pods: hardened, rolled on config changes
# --------------------------------------------------------------------------------------------


def test_every_pod_is_hardened(scenario: tuple[str, list[dict[str, Any]]]) -> None:
    name, objects = scenario
    specs = list(pod_specs(objects, postgresql=True))
    # control plane, operator, migrations (a Job, or with postgresql an init container) or
    # PostgreSQL, and the console where it is enabled
    assert len(specs) == 3 + bool(SCENARIOS[name].get("console", {}).get("enabled")), [label for label, _ in specs]
    for label, template in specs:
        pod = template["spec"]
        assert pod.get("automountServiceAccountToken") is (None if label == "Deployment/durable-operator" else False), label
        assert pod["securityContext"]["runAsNonRoot"] is True, label
        # the official PostgreSQL image runs as its postgres user (999)
        assert pod["securityContext"]["runAsUser"] == (999 if label.startswith("StatefulSet/") else 10001), label
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, label
        assert "hostNetwork" not in pod and "hostPID" not in pod, label
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        for container in pod["containers"] + pod.get("initContainers", []):
            where = f"{label} container {container['name']}"
            sc = container["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, where
            assert sc["readOnlyRootFilesystem"] is True, where
            assert sc["runAsNonRoot"] is True, where
            assert sc["capabilities"] == {"drop": ["ALL"]}, where
            assert "DURABLE_AUTH_TOKEN" not in env_of(container), f"{where}: a token in the environment"
            assert sc["seccompProfile"] == {"type": "RuntimeDefault"}, where
            assert sc.get("privileged") is not True, where
            tmp = [m for m in container["volumeMounts"] if m["mountPath"] == "/tmp"]
            assert len(tmp) == 1 and "emptyDir" in volumes[tmp[0]["name"]], where


def _checksums(objects: list[dict[str, Any]]) -> dict[str, str]:
    return {
        obj["metadata"]["name"]: obj["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
        for obj in kinds(objects, "Deployment")
    }


def test_config_changes_roll_the_pods_that_use_them(defaults: list[dict[str, Any]]) -> None:
    before = _checksums(defaults)
    assert set(before) == {"durable-controlplane", "durable-operator"}
    assert all(re.fullmatch(r"[0-9a-f]{64}", v) for v in before.values())
    reaper = _checksums(render({**BASE, "controlPlane": {"reaper": {"intervalSeconds": 5}}}))
    assert reaper["durable-controlplane"] != before["durable-controlplane"]
    assert reaper["durable-operator"] == before["durable-operator"]
    address = _checksums(render({**BASE, "operator": {"controlPlaneAddress": "cp.other.svc:9001"}}))
    assert address["durable-operator"] != before["durable-operator"]
    assert address["durable-controlplane"] == before["durable-controlplane"]


# --------------------------------------------------------------------------------------------
# The components
# --------------------------------------------------------------------------------------------


def test_control_plane(defaults: list[dict[str, Any]]) -> None:
    deployment = one(defaults, "Deployment", "durable-controlplane")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "durable:0.1.0"
    assert container["args"] == ["controlplane"]
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {"grpc": 9001, "metrics": 9090}
    assert container["livenessProbe"]["grpc"] == {"port": 9001, "service": "liveness"}
    assert container["readinessProbe"]["grpc"] == {"port": 9001, "service": ""}
    assert env_of(container)["DATABASE_URL"] == {
        "secretKeyRef": {"name": "durable-database", "key": "DATABASE_URL"}
    }
    (source,) = container["envFrom"]
    config = one(defaults, "ConfigMap", source["configMapRef"]["name"])
    assert config["data"] == {
        "GRPC_ADDRESS": "0.0.0.0:9001",
        "DURABLE_LOG_LEVEL": "INFO",
        "REAPER_INTERVAL_SECONDS": "10",
        "REAPER_STALE_AFTER_SECONDS": "30",
    }
    assert "DATABASE_URL" not in json.dumps(config)
    service = one(defaults, "Service", "durable-controlplane")
    assert {p["name"]: (p["port"], p["targetPort"]) for p in service["spec"]["ports"]} == {
        "grpc": (9001, "grpc"), "metrics": (9090, "metrics"),
    }
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert deployment["spec"]["template"]["spec"]["automountServiceAccountToken"] is False


def test_reaper_settings_and_secret_key_come_from_values() -> None:
    objects = render({
        "database": {"existingSecret": "pg-app", "secretKey": "uri"},
        "controlPlane": {"reaper": {"intervalSeconds": 3, "staleAfterSeconds": 12.5}},
    })
    config = one(objects, "ConfigMap", "durable-controlplane")
    assert config["data"]["REAPER_INTERVAL_SECONDS"] == "3"
    assert config["data"]["REAPER_STALE_AFTER_SECONDS"] == "12.5"
    for _, template in pod_specs(objects):
        for container in template["spec"]["containers"]:
            if container["name"] in ("controlplane", "migrate"):
                assert env_of(container)["DATABASE_URL"] == {"secretKeyRef": {"name": "pg-app", "key": "uri"}}


def test_migrations_run_as_a_hook(defaults: list[dict[str, Any]]) -> None:
    job = one(defaults, "Job", "durable-migrate")
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert job["metadata"]["annotations"]["helm.sh/hook-delete-policy"] == "before-hook-creation,hook-succeeded"
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    (container,) = pod["containers"]
    assert container["args"] == ["migrate"]
    assert env_of(container)["DATABASE_URL"] == {
        "secretKeyRef": {"name": "durable-database", "key": "DATABASE_URL"}
    }
    # A pre-install hook runs before the chart's other objects exist: it must not need them.
    assert "envFrom" not in container and "serviceAccountName" not in pod
    assert not kinds(render({**BASE, "migrations": {"enabled": False}}), "Job")


def test_only_the_control_plane_and_migrations_see_the_database(scenario: tuple[str, list[dict[str, Any]]]) -> None:
    _, objects = scenario
    for label, template in pod_specs(objects):
        for container in template["spec"]["containers"]:
            has_db = "DATABASE_URL" in env_of(container)
            assert has_db == (container["name"] in ("controlplane", "migrate")), label


def test_operator(defaults: list[dict[str, Any]]) -> None:
    deployment = one(defaults, "Deployment", "durable-operator")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "durable-operator"
    (container,) = pod["containers"]
    assert container["args"] == ["operator", "--standalone"]
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {"metrics": 9090, "health": 8080}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    (source,) = container["envFrom"]
    config = one(defaults, "ConfigMap", source["configMapRef"]["name"])
    assert config["data"] == {
        "DURABLE_CONTROL_PLANE_ADDRESS": "durable-controlplane.durable.svc:9001",
        "DURABLE_LOG_LEVEL": "INFO",
        "DURABLE_OPERATOR_METRICS_PORT": "9090",
        "DURABLE_OPERATOR_LIVENESS_ENDPOINT": "http://0.0.0.0:8080/healthz",
    }
    no_probe = render({**BASE, "operator": {"livenessProbe": {"enabled": False}}})
    (container,) = one(no_probe, "Deployment", "durable-operator")["spec"]["template"]["spec"]["containers"]
    assert "livenessProbe" not in container
    assert "DURABLE_OPERATOR_LIVENESS_ENDPOINT" not in one(no_probe, "ConfigMap", "durable-operator")["data"]


def test_operator_address_and_namespace_follow_values(everything: list[dict[str, Any]]) -> None:
    (container,) = one(everything, "Deployment", "durable-operator")["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["operator", "--standalone", "--namespace", "team-a"]
    extra = render({**BASE, "operator": {"extraArgs": ["--liveness", "http://0.0.0.0:8081/healthz"]}})
    (container,) = one(extra, "Deployment", "durable-operator")["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["operator", "--standalone", "--liveness", "http://0.0.0.0:8081/healthz"]
    custom = render({**BASE, "operator": {"controlPlaneAddress": "cp.elsewhere.svc:9001"}})
    config = one(custom, "ConfigMap", "durable-operator")
    assert config["data"]["DURABLE_CONTROL_PLANE_ADDRESS"] == "cp.elsewhere.svc:9001"
    with helm.Chart.load(CHART) as chart:
        manifests = chart.render(BASE, name="prod", namespace="jobs")
    config = yaml.safe_load(manifests["durable/templates/operator-configmap.yaml"])
    assert config["data"]["DURABLE_CONTROL_PLANE_ADDRESS"] == "prod-durable-controlplane.jobs.svc:9001"


def _granted(objects: list[dict[str, Any]], kind: str) -> dict[tuple[str, str], set[str]]:
    granted: dict[tuple[str, str], set[str]] = {}
    for role in kinds(objects, kind):
        for rule in role["rules"]:
            assert "*" not in rule["verbs"] and "*" not in rule["resources"], role["metadata"]["name"]
            assert "*" not in rule["apiGroups"] and not rule.get("resourceNames"), role["metadata"]["name"]
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    granted.setdefault((group, resource), set()).update(rule["verbs"])
    return granted


def _bound_to_operator(objects: list[dict[str, Any]], binding_kind: str) -> set[tuple[str, str]]:
    roles = set()
    for binding in kinds(objects, binding_kind):
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": "durable-operator", "namespace": NAMESPACE}
        ]
        roles.add((binding["roleRef"]["kind"], binding["roleRef"]["name"]))
    return roles


def test_operator_rbac_cluster_wide_is_exactly_what_it_needs(defaults: list[dict[str, Any]]) -> None:
    assert _granted(defaults, "ClusterRole") == {**OPERATOR_RULES, **KOPF_CLUSTER_WIDE_RULES}
    assert not kinds(defaults, "Role", "RoleBinding")
    assert _bound_to_operator(defaults, "ClusterRoleBinding") == {
        ("ClusterRole", r["metadata"]["name"]) for r in kinds(defaults, "ClusterRole")
    }


def test_operator_rbac_namespaced_is_exactly_what_it_needs(everything: list[dict[str, Any]]) -> None:
    """A watched namespace: a Role there, nothing cluster-wide, kopf's discovery watches off."""
    assert not kinds(everything, "ClusterRole", "ClusterRoleBinding")
    assert _granted(everything, "Role") == OPERATOR_RULES
    (role,) = kinds(everything, "Role")
    (binding,) = kinds(everything, "RoleBinding")
    assert role["metadata"]["namespace"] == binding["metadata"]["namespace"] == "team-a"
    assert _bound_to_operator(everything, "RoleBinding") == {("Role", role["metadata"]["name"])}
    assert one(everything, "ConfigMap", "durable-operator")["data"]["DURABLE_OPERATOR_SCANNING"] == "false"


@pytest.mark.parametrize(("values", "namespaces"), [
    ({"namespaced": True}, ["durable"]),  # the release namespace
    ({"watchNamespaces": ["team-a", "team-b"]}, ["team-a", "team-b"]),
    ({"watchNamespaces": ["team-a"], "watchNamespace": "team-a"}, ["team-a"]),
])
def test_a_namespace_scoped_operator_gets_roles_only(values: dict[str, Any], namespaces: list[str]) -> None:
    objects = render({**BASE, "operator": values})
    assert not kinds(objects, "ClusterRole", "ClusterRoleBinding")
    assert sorted(r["metadata"]["namespace"] for r in kinds(objects, "Role")) == namespaces
    assert sorted(b["metadata"]["namespace"] for b in kinds(objects, "RoleBinding")) == namespaces
    for role in kinds(objects, "Role"):
        assert _granted([role], "Role") == OPERATOR_RULES
    (container,) = one(objects, "Deployment", "durable-operator")["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["operator", "--standalone", *[a for ns in namespaces for a in ("--namespace", ns)]]
    assert one(objects, "ConfigMap", "durable-operator")["data"]["DURABLE_OPERATOR_SCANNING"] == "false"
    defaults = render(BASE)
    assert "DURABLE_OPERATOR_SCANNING" not in one(defaults, "ConfigMap", "durable-operator")["data"]


def test_no_rbac_without_the_operator() -> None:
    objects = render({**BASE, "operator": {"enabled": False}})
    assert not kinds(objects, "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")
    assert [d["metadata"]["name"] for d in kinds(objects, "Deployment")] == ["durable-controlplane"]


def test_network_policy(defaults: list[dict[str, Any]], everything: list[dict[str, Any]]) -> None:
    assert kinds(defaults, "NetworkPolicy")  # on by default
    assert not kinds(render({**BASE, "networkPolicy": {"enabled": False}}), "NetworkPolicy")
    (policy,) = kinds(everything, "NetworkPolicy")
    controlplane = one(everything, "Deployment", "durable-controlplane")
    assert policy["spec"]["podSelector"]["matchLabels"] == controlplane["spec"]["selector"]["matchLabels"]
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    grpc, metrics = policy["spec"]["ingress"]
    assert grpc["ports"] == [{"port": "grpc", "protocol": "TCP"}]
    operator = one(everything, "Deployment", "durable-operator")
    assert grpc["from"] == [
        {"namespaceSelector": {}, "podSelector": {"matchLabels": {"app.kubernetes.io/name": "durable-worker"}}},
        {"podSelector": {"matchLabels": operator["spec"]["selector"]["matchLabels"]}},
        {"podSelector": {"matchLabels": {"app": "orders-api"}}},
    ]
    assert metrics["ports"] == [{"port": "metrics", "protocol": "TCP"}]
    (policy,) = kinds(defaults, "NetworkPolicy")
    assert len(policy["spec"]["ingress"]) == 1 and len(policy["spec"]["ingress"][0]["from"]) == 2


def test_example_pool(defaults: list[dict[str, Any]], everything: list[dict[str, Any]]) -> None:
    assert not kinds(defaults, "DurableWorkerPool")
    (pool,) = kinds(render({**BASE, "examplePool": {"enabled": True}}), "DurableWorkerPool")
    assert pool["metadata"]["namespace"] == NAMESPACE
    assert pool["spec"]["image"] == "durable:0.1.0"
    (pool,) = kinds(everything, "DurableWorkerPool")
    assert pool["metadata"]["namespace"] == "team-a"  # where the operator watches
    assert pool["spec"]["image"] == "registry.example.com/durable:9.9.9"
    assert pool["spec"]["controlPlaneAddress"] == "durable-controlplane.durable.svc:9001"
    assert PoolValidator().errors(pool) == []


def test_custom_image_reaches_every_container(scenario: tuple[str, list[dict[str, Any]]]) -> None:
    name, objects = scenario
    image = SCENARIOS[name].get("image", {})
    expected = f"{image.get('repository', 'durable')}:{image.get('tag', '0.1.0')}"
    for label, template in pod_specs(objects):
        for container in template["spec"]["containers"]:
            assert container["image"] == expected, label
            assert container["imagePullPolicy"] == image.get("pullPolicy", "IfNotPresent"), label


def test_labels_and_stable_selectors(scenario: tuple[str, list[dict[str, Any]]]) -> None:
    _, objects = scenario
    for obj in objects:
        labels = obj["metadata"]["labels"]
        for key in ("app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/version",
                    "app.kubernetes.io/managed-by", "app.kubernetes.io/part-of", "helm.sh/chart"):
            assert key in labels, f"{obj['kind']}/{obj['metadata']['name']} lacks {key}"
    for deployment in kinds(objects, "Deployment"):
        selector = deployment["spec"]["selector"]["matchLabels"]
        assert set(selector) == {"app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/component"}
        pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert selector.items() <= pod_labels.items()
        # Control-plane pods must never look like workers to the NetworkPolicy.
        assert pod_labels["app.kubernetes.io/name"] != "durable-worker"


def _volume_secret(pod: Mapping[str, Any], name: str) -> dict[str, Any]:
    return next(v["secret"] for v in pod["volumes"] if v["name"] == name)


def _decoded(secret: Mapping[str, Any]) -> dict[str, str]:
    import base64

    return {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}


def test_auth_and_tls_wiring() -> None:
    """An existing single-token Secret (the older layout, one admin token) and the TLS Secret
    reach the control plane, the operator and the example pool's workers as files."""
    objects = render(SCENARIOS["auth-and-mtls"])
    expected = {
        "controlplane": {"DURABLE_AUTH_TOKEN_FILE", "DURABLE_TLS_CERT_FILE", "DURABLE_TLS_KEY_FILE",
                         "DURABLE_TLS_CLIENT_CA_FILE"},
        "operator": {"DURABLE_AUTH_TOKEN_FILE", "DURABLE_TLS_CA_FILE", "DURABLE_TLS_CERT_FILE", "DURABLE_TLS_KEY_FILE"},
    }
    assert not [s for s in kinds(objects, "Secret") if s["metadata"]["name"].endswith("-auth")]  # none generated
    for deployment in kinds(objects, "Deployment"):
        role = "controlplane" if "controlplane" in deployment["metadata"]["name"] else "operator"
        assert "console" not in deployment["metadata"]["name"]  # off unless asked for
        pod = deployment["spec"]["template"]["spec"]
        env = env_of(pod["containers"][0])
        assert expected[role] <= set(env), (role, env)
        assert env["DURABLE_AUTH_TOKEN_FILE"] == "/etc/durable/auth/token"
        mounts = {m["name"]: m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
        assert mounts["auth"] == "/etc/durable/auth" and mounts["tls"] == "/etc/durable/tls"
        secrets = {v["name"]: v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v}
        assert secrets == {"auth": "durable-auth", "tls": "durable-tls"}
        assert _volume_secret(pod, "auth")["items"] == [{"key": "token", "path": "token"}]
    [pool] = kinds(objects, "DurableWorkerPool")
    assert {"name": "DURABLE_AUTH_TOKEN_FILE", "value": "/etc/durable/auth/token"} in pool["spec"]["env"]
    assert not [e for e in pool["spec"]["env"] if e["name"] == "DURABLE_AUTH_TOKEN"]
    pool_pod = pool["spec"]["podTemplate"]["spec"]
    assert _volume_secret(pool_pod, "durable-auth")["secretName"] == "durable-auth"
    assert _volume_secret(pool_pod, "durable-auth")["items"] == [{"key": "token", "path": "token"}]


def test_credentials_are_generated_when_none_are_given() -> None:
    """The default is not an open endpoint: a Secret of scoped credentials is generated; the
    control plane sees only the credentials file, the operator only its read token, the example
    workers only their worker token (bound to their pod names), each as a file."""
    from durable.common.credentials import Scope, parse_credentials

    objects = render({**BASE, "examplePool": {"enabled": True}})
    generated = _decoded(one(objects, "Secret", "durable-auth"))
    assert set(generated) == {"tokens", "admin", "operator", "example-pool"}
    credentials = parse_credentials(generated["tokens"], "tokens")
    assert credentials.for_token(generated["admin"]).scope is Scope.ADMIN
    assert credentials.for_token(generated["operator"]).scope is Scope.READ
    worker = credentials.for_token(generated["example-pool"])
    assert (worker.scope, worker.worker_prefix) == (Scope.WORKER, "example-workers-")
    assert len(set(generated[k] for k in ("admin", "operator", "example-pool"))) == 3
    assert all(len(generated[k]) >= 32 for k in ("admin", "operator", "example-pool"))

    controlplane = one(objects, "Deployment", "durable-controlplane")["spec"]["template"]["spec"]
    assert env_of(controlplane["containers"][0])["DURABLE_AUTH_TOKENS_FILE"] == "/etc/durable/auth/tokens"
    assert _volume_secret(controlplane, "auth")["items"] == [{"key": "tokens", "path": "tokens"}]
    operator = one(objects, "Deployment", "durable-operator")["spec"]["template"]["spec"]
    assert env_of(operator["containers"][0])["DURABLE_AUTH_TOKEN_FILE"] == "/etc/durable/auth/token"
    assert _volume_secret(operator, "auth") == {
        "secretName": "durable-auth", "defaultMode": 0o440, "items": [{"key": "operator", "path": "token"}]}

    (pool,) = kinds(objects, "DurableWorkerPool")
    pool_secret = one(objects, "Secret", "durable-example-workers-auth")
    assert pool_secret["metadata"]["namespace"] == pool["metadata"]["namespace"]
    assert _decoded(pool_secret) == {"token": generated["example-pool"]}
    assert _volume_secret(pool["spec"]["podTemplate"]["spec"], "durable-auth")["secretName"] == "durable-example-workers-auth"
    # in another watched namespace, the pool's Secret goes with it
    elsewhere = render({**BASE, "examplePool": {"enabled": True}, "operator": {"watchNamespace": "team-a"}})
    assert one(elsewhere, "Secret", "durable-example-workers-auth")["metadata"]["namespace"] == "team-a"


def test_a_secret_of_scoped_credentials_and_auth_off() -> None:
    objects = render(SCENARIOS["scoped-secret"])
    controlplane = one(objects, "Deployment", "durable-controlplane")["spec"]["template"]["spec"]
    assert env_of(controlplane["containers"][0])["DURABLE_AUTH_TOKENS_FILE"] == "/etc/durable/auth/tokens"
    assert _volume_secret(controlplane, "auth")["items"] == [{"key": "tokens", "path": "tokens"}]
    operator = one(objects, "Deployment", "durable-operator")["spec"]["template"]["spec"]
    assert _volume_secret(operator, "auth")["items"] == [{"key": "operator", "path": "token"}]
    (pool,) = kinds(objects, "DurableWorkerPool")
    assert _volume_secret(pool["spec"]["podTemplate"]["spec"], "durable-auth")["items"] == [
        {"key": "example-workers", "path": "token"}]
    off = render(SCENARIOS["auth-off"])
    assert not kinds(off, "Secret")
    for deployment in kinds(off, "Deployment"):
        env = env_of(deployment["spec"]["template"]["spec"]["containers"][0])
        assert not {"DURABLE_AUTH_TOKEN_FILE", "DURABLE_AUTH_TOKENS_FILE"} & set(env)


def test_the_chart_postgresql() -> None:
    """postgresql.enabled: one StatefulSet of the official image with a PVC, a generated password,
    the control plane pointed at it (migrating in an init container: a pre-install hook would
    run before the database exists), and only the control plane admitted to it."""
    objects = render(SCENARIOS["postgresql"])
    (statefulset,) = kinds(objects, "StatefulSet")
    assert statefulset["metadata"]["name"] == "durable-postgresql"
    (container,) = statefulset["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "postgres:17"
    (claim,) = statefulset["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "8Gi"
    assert claim["spec"]["storageClassName"] == "fast"
    assert {m["name"]: m["mountPath"] for m in container["volumeMounts"]}["data"] == "/var/lib/postgresql/data"
    service = one(objects, "Service", "durable-postgresql")
    assert service["spec"]["selector"] == statefulset["spec"]["selector"]["matchLabels"]
    secret = _decoded(one(objects, "Secret", "durable-postgresql"))
    password = secret["POSTGRES_PASSWORD"]
    assert len(password) == 32
    assert secret["DATABASE_URL"] == f"postgresql://durable:{password}@durable-postgresql.durable.svc:5432/durable"
    assert container["envFrom"] == [{"secretRef": {"name": "durable-postgresql"}}]

    pod = one(objects, "Deployment", "durable-controlplane")["spec"]["template"]["spec"]
    database = {"secretKeyRef": {"name": "durable-postgresql", "key": "DATABASE_URL"}}
    assert env_of(pod["containers"][0])["DATABASE_URL"] == database
    (migrate,) = pod["initContainers"]
    assert migrate["args"] == ["migrate"] and env_of(migrate)["DATABASE_URL"] == database
    assert not kinds(objects, "Job")
    policy = one(objects, "NetworkPolicy", "durable-postgresql")
    assert policy["spec"]["podSelector"] == {"matchLabels": statefulset["spec"]["selector"]["matchLabels"]}
    (rule,) = policy["spec"]["ingress"]
    assert rule["from"] == [{"podSelector": {"matchLabels": one(objects, "Deployment", "durable-controlplane")
                                             ["spec"]["selector"]["matchLabels"]}}]


def test_the_keda_port() -> None:
    objects = render(SCENARIOS["namespaced"])
    config = one(objects, "ConfigMap", "durable-controlplane")["data"]
    assert config["DURABLE_KEDA_ADDRESS"] == "0.0.0.0:9003"
    (container,) = one(objects, "Deployment", "durable-controlplane")["spec"]["template"]["spec"]["containers"]
    assert {p["name"]: p["containerPort"] for p in container["ports"]}["keda"] == 9003
    service = one(objects, "Service", "durable-controlplane")
    assert {p["name"]: (p["port"], p["targetPort"]) for p in service["spec"]["ports"]}["keda"] == (9003, "keda")
    (policy,) = kinds(objects, "NetworkPolicy")
    (keda,) = [r for r in policy["spec"]["ingress"] if r["ports"] == [{"port": "keda", "protocol": "TCP"}]]
    assert keda["from"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "keda"}}}]
    assert "DURABLE_KEDA_ADDRESS" not in one(render(BASE), "ConfigMap", "durable-controlplane")["data"]


def test_console_off_by_default(defaults: list[dict[str, Any]]) -> None:
    assert not [o for o in defaults if "console" in o["metadata"]["name"]]


def test_console_deployment_service_and_ingress() -> None:
    objects = render(SCENARIOS["console"])
    deployment = one(objects, "Deployment", "durable-console")
    pod = deployment["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert container["args"] == ["console"]
    assert pod["automountServiceAccountToken"] is False
    env = env_of(container)
    assert env["GRPC_ADDRESS"] == "durable-controlplane.durable.svc:9001"
    assert env["DURABLE_CONSOLE_HOST"] == "0.0.0.0" and env["DURABLE_CONSOLE_PORT"] == "8080"
    assert env["DURABLE_CONSOLE_AUTH"] == "auto" and env["DURABLE_CONSOLE_SECURE_COOKIES"] == "true"
    # a client of the control plane, like the operator: token file and client TLS, no database
    assert {"DURABLE_AUTH_TOKEN_FILE", "DURABLE_TLS_CA_FILE", "DURABLE_TLS_CERT_FILE"} <= set(env)
    assert "DATABASE_URL" not in env and "DURABLE_TLS_CLIENT_CA_FILE" not in env
    assert container["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    service = one(objects, "Service", "durable-console")
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert service["spec"]["ports"] == [
        {"name": "http", "port": 8080, "targetPort": "http", "protocol": "TCP", "appProtocol": "http"}
    ]
    ingress = one(objects, "Ingress", "durable-console")
    assert ingress["spec"]["ingressClassName"] == "nginx"
    [rule] = ingress["spec"]["rules"]
    assert rule["host"] == "console.example.com"
    assert rule["http"]["paths"][0]["backend"]["service"] == {"name": "durable-console", "port": {"name": "http"}}
    assert ingress["spec"]["tls"] == [{"secretName": "console-tls", "hosts": ["console.example.com"]}]
    # no Ingress unless asked for; another control plane address when given
    plain = render({**BASE, "console": {"enabled": True, "controlPlaneAddress": "cp.elsewhere.svc:9001"}})
    assert not kinds(plain, "Ingress")
    [container] = one(plain, "Deployment", "durable-console")["spec"]["template"]["spec"]["containers"]
    assert env_of(container)["GRPC_ADDRESS"] == "cp.elsewhere.svc:9001"
    # auth is on by default: the console mounts its own generated client token, as a file
    assert env_of(container)["DURABLE_AUTH_TOKEN_FILE"] == "/etc/durable/auth/token"
    pod = one(plain, "Deployment", "durable-console")["spec"]["template"]["spec"]
    assert _volume_secret(pod, "auth") == {"secretName": "durable-auth", "defaultMode": 0o440, "items": [{"key": "console", "path": "token"}]}


def test_console_values_are_checked() -> None:
    with helm.Chart.load(CHART) as chart:
        for bad in ({"console": {"auth": "maybe"}}, {"console": {"enabled": "yes"}},
                    {"console": {"ingress": {"path": "console"}}}, {"console": {"prot": 1}}):
            with pytest.raises(helm.HelmValuesError):
                chart.validate_schema(chart.merge_values({**BASE, **bad}))
