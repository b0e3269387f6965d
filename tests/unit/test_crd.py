"""The DurableWorkerPool CRD: its schema, offline, against good and bad example pools.

No API server here, so this file does what `kubectl apply` would, as far as the schema decides:

- the CRD itself is checked against the apiextensions.k8s.io/v1 schema (kubernetes-validate);
- the openAPIV3Schema is turned into JSON Schema (2020-12) and run with `jsonschema`, after the
  schema's defaults are applied, as the API server applies them before validating;
- every `x-kubernetes-validations` rule is evaluated with a real CEL implementation (the
  `common-expression-language` package, import name `cel`), with `self` bound to the object at
  that node, as the API server does.

Kubernetes extensions are mapped on purpose, and an unknown one fails the conversion:

- x-kubernetes-int-or-string: the value may be an integer or a string;
- x-kubernetes-preserve-unknown-fields: unknown fields allowed there; every other object with
  `properties` rejects unknown fields (additionalProperties: false), which is what kubectl's
  default strict field validation does (the server would otherwise prune them silently);
- x-kubernetes-list-type: set -> uniqueItems; map -> unique keys (x-kubernetes-list-map-keys,
  checked by a custom keyword); atomic -> nothing to check;
- x-kubernetes-validations: CEL, by a custom keyword;
- x-kubernetes-map-type: ignored (it only steers server-side-apply merges).

OpenAPI v3.0's boolean exclusiveMinimum/exclusiveMaximum become JSON Schema's numeric ones.

Each bad pool under examples/pools/invalid/ names the failure it must produce in a comment,
`# expect: <path> | <message fragment>`; it must fail with exactly that (all its errors match
one of its expectations), so a typo elsewhere in a bad example cannot make its test pass.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import cel
import jsonschema
import kubernetes_validate
import pytest
import yaml
from jsonschema import ValidationError
from jsonschema.protocols import Validator

ROOT = Path(__file__).resolve().parents[2]
CRD_PATH = ROOT / "crds" / "durable.dev_durableworkerpools.yaml"
POOLS = ROOT / "examples" / "pools"
GOOD_POOLS = sorted(POOLS.glob("*.yaml"))
BAD_POOLS = sorted((POOLS / "invalid").glob("*.yaml"))

# The Kubernetes versions the CRD object itself is checked against: the chart's floor
# (Chart.yaml kubeVersion) and a recent one that kubernetes-validate ships.
KUBERNETES_VERSIONS = ("1.30", "1.34")

_EXTENSIONS_HANDLED = {
    "x-kubernetes-int-or-string",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-validations",
    "x-kubernetes-map-type",
}


def load_crd() -> dict[str, Any]:
    """The CRD document."""
    crd: dict[str, Any] = yaml.safe_load(CRD_PATH.read_text())
    return crd


def crd_schema(crd: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The openAPIV3Schema of the (only) served version."""
    crd = crd or load_crd()
    (version,) = crd["spec"]["versions"]
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return schema


# --------------------------------------------------------------------------------------------
# OpenAPI (structural schema) -> JSON Schema
# --------------------------------------------------------------------------------------------


def to_json_schema(node: Mapping[str, Any]) -> dict[str, Any]:
    """Convert one structural-schema node (recursively) to JSON Schema 2020-12."""
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key.startswith("x-") and key not in _EXTENSIONS_HANDLED:
            raise AssertionError(f"unhandled schema extension {key}: decide how to check it")
        if key == "properties":
            out["properties"] = {name: to_json_schema(sub) for name, sub in value.items()}
        elif key == "items":
            out["items"] = to_json_schema(value)
        elif key == "additionalProperties":
            out[key] = value if isinstance(value, bool) else to_json_schema(value)
        elif key == "anyOf" or key == "allOf" or key == "oneOf":
            out[key] = [to_json_schema(sub) for sub in value]
        elif key == "not":
            out[key] = to_json_schema(value)
        elif key == "nullable":
            continue
        elif key in ("exclusiveMinimum", "exclusiveMaximum"):
            bound = "minimum" if key == "exclusiveMinimum" else "maximum"
            if value is True:
                out[key] = node[bound]
        elif key == "x-kubernetes-list-type":
            if value == "set":
                out["uniqueItems"] = True
            elif value not in ("map", "atomic"):
                raise AssertionError(f"unknown list type {value}")
        elif key in ("x-kubernetes-int-or-string", "x-kubernetes-preserve-unknown-fields",
                     "x-kubernetes-map-type"):
            continue
        else:
            out[key] = value
    for bound, flag in (("minimum", "exclusiveMinimum"), ("maximum", "exclusiveMaximum")):
        if node.get(flag) is True:
            out.pop(bound, None)
    if node.get("x-kubernetes-int-or-string") and "anyOf" not in node:
        out["type"] = ["integer", "string"]
    if (
        "properties" in node
        and not node.get("x-kubernetes-preserve-unknown-fields")
        and "additionalProperties" not in node
    ):
        out["additionalProperties"] = False
    if node.get("nullable"):
        kind = out.get("type")
        if isinstance(kind, str):
            out["type"] = [kind, "null"]
    return out


def apply_defaults(node: Mapping[str, Any], value: Any) -> Any:
    """Fill in schema defaults, as the API server does before it validates."""
    if isinstance(value, dict) and "properties" in node:
        for name, sub in node["properties"].items():
            if name not in value and "default" in sub:
                value[name] = copy.deepcopy(sub["default"])
            if name in value:
                value[name] = apply_defaults(sub, value[name])
    elif isinstance(value, dict) and isinstance(node.get("additionalProperties"), dict):
        for name in value:
            value[name] = apply_defaults(node["additionalProperties"], value[name])
    elif isinstance(value, list) and "items" in node:
        return [apply_defaults(node["items"], item) for item in value]
    return value


def _cel_rules(
    validator: Validator, rules: list[dict[str, Any]], instance: Any, schema: Mapping[str, Any]
) -> Iterator[ValidationError]:
    for rule in rules:
        message = rule.get("message") or f"failed rule: {rule['rule']}"
        try:
            result = cel.compile(rule["rule"]).execute({"self": instance})
        except (ValueError, KeyError, TypeError, RuntimeError) as exc:
            # An evaluation error (no such key, no such overload) rejects the object, as in the
            # API server.
            yield ValidationError(f"{message} (evaluation error: {exc})")
            continue
        if result is not True:
            yield ValidationError(message)


def _list_map_keys(
    validator: Validator, keys: list[str], instance: Any, schema: Mapping[str, Any]
) -> Iterator[ValidationError]:
    if not isinstance(instance, list):
        return
    seen: set[tuple[Any, ...]] = set()
    for item in instance:
        if not isinstance(item, dict):
            continue
        key = tuple(item.get(k) for k in keys)
        if key in seen:
            shown = ",".join(f'{k}="{v}"' for k, v in zip(keys, key, strict=True))
            yield ValidationError(f"duplicate entries for key [{shown}]")
        seen.add(key)


KubernetesValidator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator,
    {"x-kubernetes-validations": _cel_rules, "x-kubernetes-list-map-keys": _list_map_keys},
)


class PoolValidator:
    """Validates DurableWorkerPool objects as the API server would, as far as the CRD decides."""

    def __init__(self, crd: Mapping[str, Any] | None = None) -> None:
        self.schema = crd_schema(crd)
        json_schema = to_json_schema(self.schema)
        self._validator = KubernetesValidator(json_schema)
        self._types_only = jsonschema.Draft202012Validator(json_schema)

    def defaulted(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """A copy of the object with the schema's defaults applied."""
        result: dict[str, Any] = apply_defaults(self.schema, copy.deepcopy(dict(obj)))
        return result

    def errors(self, obj: Mapping[str, Any]) -> list[str]:
        """Every violation, as "<path> | <message>" (path "<root>" for the object itself)."""
        obj = self.defaulted(obj)
        # Like the API server, skip the CEL rules when a value has the wrong type (it reports
        # "some validation rules were not checked" instead of evaluating them on bad data).
        structural = list(self._types_only.iter_errors(obj))
        if not any(e.validator == "type" for e in structural):
            structural = list(self._validator.iter_errors(obj))
        found = []
        for error in structural:
            path = ".".join(str(p) for p in error.absolute_path) or "<root>"
            found.append(f"{path} | {error.message}")
        return sorted(found)


@pytest.fixture(scope="module")
def validator() -> PoolValidator:
    return PoolValidator()


def _expectations(path: Path) -> list[str]:
    return [m.group(1).strip() for m in re.finditer(r"^# expect: (.+)$", path.read_text(), re.MULTILINE)]


def _schema_nodes(node: Mapping[str, Any], path: str = "") -> Iterator[tuple[str, Mapping[str, Any]]]:
    yield path or "<root>", node
    for name, sub in node.get("properties", {}).items():
        yield from _schema_nodes(sub, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        yield from _schema_nodes(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from _schema_nodes(node["additionalProperties"], f"{path}{{}}")


# --------------------------------------------------------------------------------------------
# The CRD object
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_crd_is_a_valid_customresourcedefinition(version: str) -> None:
    kubernetes_validate.validate(load_crd(), version, strict=True)


def test_names_scope_and_subresources() -> None:
    crd = load_crd()
    spec = crd["spec"]
    assert crd["metadata"]["name"] == "durableworkerpools.durable.dev"
    assert spec["group"] == "durable.dev"
    assert spec["scope"] == "Namespaced"
    assert spec["names"]["kind"] == "DurableWorkerPool"
    assert spec["names"]["plural"] == "durableworkerpools"
    assert spec["names"]["singular"] == "durableworkerpool"
    assert spec["names"]["shortNames"] == ["dwp"]
    (version,) = spec["versions"]
    assert version["name"] == "v1alpha1" and version["served"] and version["storage"]
    assert version["subresources"]["status"] == {}
    assert version["subresources"]["scale"] == {
        "specReplicasPath": ".spec.replicas",
        "statusReplicasPath": ".status.replicas",
        "labelSelectorPath": ".status.selector",
    }


def _resolve(schema: Mapping[str, Any], json_path: str) -> Mapping[str, Any]:
    node = schema
    for part in json_path.lstrip(".").split("."):
        part = part.split("[", 1)[0]
        node = node["properties"][part]
        if "[" in json_path and node.get("type") == "array":
            node = node["items"]
    return node


def test_scale_subresource_paths_exist_with_the_right_types() -> None:
    schema = crd_schema()
    assert _resolve(schema, ".spec.replicas")["type"] == "integer"
    assert _resolve(schema, ".status.replicas")["type"] == "integer"
    assert _resolve(schema, ".status.selector")["type"] == "string"


def test_printer_columns_point_at_fields_of_their_type() -> None:
    (version,) = load_crd()["spec"]["versions"]
    columns = {c["name"]: c for c in version["additionalPrinterColumns"]}
    default_columns = [c["name"] for c in version["additionalPrinterColumns"] if not c.get("priority")]
    assert default_columns == ["Desired", "Ready", "Backlog", "Oldest", "Status", "Age"]
    assert columns["Status"]["jsonPath"] == '.status.conditions[?(@.type=="Ready")].status'
    assert columns["Age"] == {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}
    schema = crd_schema()
    for column in columns.values():
        if column["jsonPath"].startswith(".metadata."):
            continue
        path = re.sub(r"\[\?\(.*?\)\]", "[]", column["jsonPath"])
        node = _resolve(schema, path)
        assert node["type"] == column["type"], column


def test_schema_is_structural_and_described() -> None:
    """Every field has a type and a description (kubectl explain), and nothing the API server
    refuses in a structural schema (uniqueItems, $ref, additionalProperties beside properties)."""
    for path, node in _schema_nodes(crd_schema()):
        assert "$ref" not in node and "uniqueItems" not in node, path
        assert not ("properties" in node and "additionalProperties" in node), path
        if not node.get("x-kubernetes-int-or-string"):
            assert "type" in node, f"{path} has no type"
        is_field = not path.endswith(("[]", "{}")) and path != ".metadata"
        if is_field:
            assert node.get("description", "").strip(), f"{path} has no description"
        if node.get("x-kubernetes-list-type") == "map":
            keys = node["x-kubernetes-list-map-keys"]
            assert set(keys) <= set(node["items"].get("required", [])), path


def test_conditions_are_a_list_map_keyed_by_type() -> None:
    conditions = _resolve(crd_schema(), ".status.conditions")
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]
    item = conditions["items"]
    assert {"type", "status"} <= set(item["required"])
    assert item["properties"]["status"]["enum"] == ["True", "False", "Unknown"]
    assert "phase" not in _resolve(crd_schema(), ".status")["properties"]


def test_scale_decision_is_documented_on_spec_replicas() -> None:
    description = _resolve(crd_schema(), ".spec.replicas")["description"]
    for words in ("kubectl scale", "paused", "ScalingLimited", "ManualReplicasIgnored"):
        assert words in description


def test_every_cel_rule_compiles() -> None:
    rules = [
        rule["rule"]
        for _, node in _schema_nodes(crd_schema())
        for rule in node.get("x-kubernetes-validations", [])
    ]
    assert len(rules) == 4
    for rule in rules:
        assert cel.compile(rule) is not None


# --------------------------------------------------------------------------------------------
# Example pools
# --------------------------------------------------------------------------------------------


def test_there_are_examples() -> None:
    assert [p.name for p in GOOD_POOLS] == ["minimal.yaml", "pool.yaml"]
    assert len(BAD_POOLS) >= 20


@pytest.mark.parametrize("path", GOOD_POOLS, ids=lambda p: p.name)
def test_good_pools_are_accepted(path: Path, validator: PoolValidator) -> None:
    assert validator.errors(yaml.safe_load(path.read_text())) == []


@pytest.mark.parametrize("path", BAD_POOLS, ids=lambda p: p.name)
def test_bad_pools_fail_for_their_stated_reason(path: Path, validator: PoolValidator) -> None:
    expected = _expectations(path)
    assert expected, f"{path.name} has no '# expect: <path> | <message>' line"
    errors = validator.errors(yaml.safe_load(path.read_text()))
    assert errors, f"{path.name} was accepted"
    for error in errors:
        assert any(_matches(error, e) for e in expected), f"unexpected error: {error}"
    for e in expected:
        assert any(_matches(error, e) for error in errors), f"missing error {e!r}; got {errors}"


def _matches(error: str, expected: str) -> bool:
    err_path, _, err_message = error.partition(" | ")
    exp_path, _, exp_fragment = expected.partition(" | ")
    return err_path == exp_path.strip() and exp_fragment.strip() in err_message


def test_every_cel_rule_has_a_bad_example(validator: PoolValidator) -> None:
    messages = {
        rule["message"]
        for _, node in _schema_nodes(crd_schema())
        for rule in node.get("x-kubernetes-validations", [])
    }
    tripped = {
        message
        for path in BAD_POOLS
        for error in validator.errors(yaml.safe_load(path.read_text()))
        for message in messages
        if message in error
    }
    assert tripped == messages


def test_defaults_are_applied_and_valid(validator: PoolValidator) -> None:
    pool = validator.defaulted(yaml.safe_load((POOLS / "minimal.yaml").read_text()))
    assert pool["spec"]["maxConcurrentTasks"] == 10
    assert pool["spec"]["scaling"] == {
        "minReplicas": 1,
        "maxReplicas": 10,
        "pollIntervalSeconds": 15,
        "scaleUpStabilizationSeconds": 0,
        "scaleDownStabilizationSeconds": 300,
        "idleBeforeScaleToZeroSeconds": 300,
        "tolerance": 0.1,
        "paused": False,
    }
    assert "replicas" not in pool["spec"]  # manual replicas stay unset unless written
    assert validator.errors(pool) == []
    # No scaling block, no autoscaling: the operator then follows spec.replicas, so the block
    # must not be defaulted into existence.
    del pool["spec"]["scaling"]
    assert "scaling" not in validator.defaulted(pool)["spec"]


def test_a_status_as_the_operator_writes_it_is_accepted(validator: PoolValidator) -> None:
    pool = yaml.safe_load((POOLS / "minimal.yaml").read_text())
    pool["status"] = {
        "observedGeneration": 3,
        "replicas": 2,
        "readyReplicas": 2,
        "desiredReplicas": 2,
        "backlog": {"pending": 17, "running": 20, "delayed": 1, "oldestPendingAgeSeconds": 4.5},
        "lastScaleTime": "2026-01-01T00:00:00Z",
        "lastBacklogTime": "2026-01-01T00:00:15Z",
        "selector": "durable.dev/pool=emails",
        "conditions": [
            {"type": "Ready", "status": "True", "reason": "ReplicasReady", "message": "2/2 ready",
             "lastTransitionTime": "2026-01-01T00:00:00Z", "observedGeneration": 3},
            {"type": "BacklogKnown", "status": "Unknown", "reason": "FirstVisit", "message": ""},
            {"type": "ScalingLimited", "status": "False", "reason": "WithinBounds"},
        ],
    }
    assert validator.errors(pool) == []


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ({"conditions": [{"type": "Ready", "status": "Maybe"}]}, "status.conditions.0.status | 'Maybe' is not one of"),
        ({"conditions": [{"type": "Ready", "status": "True"}, {"type": "Ready", "status": "False"}]},
         'status.conditions | duplicate entries for key [type="Ready"]'),
        ({"conditions": [{"type": "Ready", "status": "True", "reason": "not camel"}]},
         "status.conditions.0.reason | 'not camel' does not match"),
        ({"phase": "Running"}, "status | Additional properties are not allowed ('phase' was unexpected)"),
        ({"backlog": {"pending": -1}}, "status.backlog.pending | -1 is less than the minimum of 0"),
    ],
)
def test_a_bad_status_is_rejected(status: dict[str, Any], expected: str, validator: PoolValidator) -> None:
    pool = yaml.safe_load((POOLS / "minimal.yaml").read_text())
    pool["status"] = status
    errors = validator.errors(pool)
    assert len(errors) == 1 and _matches(errors[0], expected), errors
