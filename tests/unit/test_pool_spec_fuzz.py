"""Hostile pool specs (what slips past a cluster without our CRD's schema): the operator's
validation either accepts the spec or names the bad field; it never raises anything else. And
anything it accepts is something the CRD schema accepts too."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from durable.operator.spec import InvalidPoolSpec, parse_pool_spec

json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-10**12, 10**12), st.floats(allow_nan=True), st.text(max_size=20))
json_value = st.recursive(json_leaf, lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)), max_leaves=20)
names = st.lists(st.text(min_size=0, max_size=300), max_size=4)
scaling = st.fixed_dictionaries({}, optional={
    "minReplicas": st.one_of(st.integers(-5, 50), json_value),
    "maxReplicas": st.one_of(st.integers(-5, 50), json_value),
    "targetBacklogPerReplica": st.one_of(st.integers(-5, 50), json_value),
    "pollIntervalSeconds": st.one_of(st.floats(-10, 5000), json_value),
    "scaleDownStabilizationSeconds": st.one_of(st.integers(-10, 5000), json_value),
    "maxStep": st.one_of(st.integers(-3, 10), json_value),
    "tolerance": st.one_of(st.floats(-1, 2), json_value),
    "paused": st.one_of(st.booleans(), json_value),
    "surprise": json_value,
})
specs = st.one_of(
    json_value,
    st.fixed_dictionaries({}, optional={
        "image": st.one_of(st.text(max_size=40), json_value),
        "activityTypes": st.one_of(names, json_value),
        "workflowTypes": st.one_of(names, json_value),
        "maxConcurrentTasks": st.one_of(st.integers(-5, 20000), json_value),
        "replicas": st.one_of(st.integers(-5, 50), json_value),
        "env": st.one_of(st.lists(st.dictionaries(st.sampled_from(["name", "value", "valueFrom"]), json_value, max_size=3), max_size=3), json_value),
        "scaling": st.one_of(scaling, json_value),
        "podTemplate": json_value,
        "controlPlaneAddress": st.one_of(st.text(max_size=40), json_value),
    }),
)


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(spec=specs)
def test_hostile_specs_are_accepted_or_named(spec: Any) -> None:
    try:
        parsed = parse_pool_spec(spec if isinstance(spec, dict) else {"image": spec})
    except InvalidPoolSpec as exc:
        assert exc.field.startswith("spec"), exc.field
        assert str(exc)
        return
    policy = parsed.policy() if parsed.autoscaling else None
    if policy is not None:
        assert 0 <= policy.min_replicas <= policy.max_replicas
