"""The autoscaling algorithm over recorded backlog series (no I/O, an explicit clock)."""

from __future__ import annotations

from collections.abc import Iterable

import pytest
from durable.operator.scaling import Autoscaler, BacklogSample, ScaleDecision, ScalingPolicy
from durable.operator.spec import InvalidPoolSpec, parse_pool_spec


def policy(**overrides: object) -> ScalingPolicy:
    base: dict[str, object] = {
        "min_replicas": 1, "max_replicas": 20, "target_per_replica": 10, "tolerance": 0.1,
        "scale_up_stabilization": 0.0, "scale_down_stabilization": 0.0,
        "max_step": None, "max_oldest_pending_age": None, "idle_before_scale_to_zero": 0.0,
    }
    base.update(overrides)
    return ScalingPolicy(**base)  # type: ignore[arg-type]


def run(
    scaler: Autoscaler,
    series: Iterable[tuple[float, int, int] | tuple[float, int, int, float]],
    start: int,
) -> list[ScaleDecision]:
    """Feed (time, pending, running[, oldest age]) samples; the pool follows each decision,
    as the operator does. Returns every decision."""
    current = start
    decisions = []
    for sample in series:
        now, pending, running, *rest = sample
        decision = scaler.decide(
            BacklogSample(pending=pending, running=running,
                          oldest_pending_age=rest[0] if rest else 0.0),
            current, now)
        decisions.append(decision)
        current = decision.desired
    return decisions


def desired(decisions: list[ScaleDecision]) -> list[int]:
    return [d.desired for d in decisions]


def test_burst_scales_to_demand_over_target_then_caps_at_max() -> None:
    scaler = Autoscaler(policy(max_replicas=8))
    decisions = run(scaler, [(0, 5, 0), (1, 45, 0), (2, 400, 0)], start=1)
    assert desired(decisions) == [1, 5, 8]
    assert decisions[1].reason == "BacklogAboveTarget"
    assert decisions[2].limited and decisions[2].limit_reason == "TooManyReplicas"


def test_demand_counts_pending_and_running() -> None:
    scaler = Autoscaler(policy())
    (decision,) = run(scaler, [(0, 12, 18)], start=1)
    assert decision.desired == 3  # ceil((12 + 18) / 10)


def test_tolerance_band_keeps_replicas() -> None:
    scaler = Autoscaler(policy(tolerance=0.1))
    # 4 replicas * 10 = 40; 43 and 37 are within 10 %, 45 is not.
    assert desired(run(scaler, [(0, 43, 0), (1, 37, 0), (2, 45, 0)], start=4)) == [4, 4, 5]
    assert run(Autoscaler(policy()), [(0, 41, 0)], start=4)[0].reason == "WithinTolerance"


def test_ramp_up_and_down_follows_demand() -> None:
    scaler = Autoscaler(policy())
    ramp = [(t, 10 * t, 0) for t in range(1, 8)] + [(t, 10 * (15 - t), 0) for t in range(8, 15)]
    assert desired(run(scaler, ramp, start=1)) == [1, 2, 3, 4, 5, 6, 7, 7, 6, 5, 4, 3, 2, 1]


def test_max_step_limits_each_change() -> None:
    scaler = Autoscaler(policy(max_step=2))
    decisions = run(scaler, [(0, 100, 0), (1, 100, 0), (2, 100, 0), (3, 100, 0), (4, 0, 0),
                             (5, 0, 0)], start=1)
    assert desired(decisions) == [3, 5, 7, 9, 7, 5]
    assert decisions[0].limit_reason == "ScaleUpLimit"
    assert decisions[4].limit_reason == "ScaleDownLimit"


def test_scale_down_waits_for_the_down_window_and_uses_its_highest_recommendation() -> None:
    scaler = Autoscaler(policy(scale_down_stabilization=10))
    series = [(0, 50, 0), (1, 50, 0), (2, 10, 0), (5, 30, 0), (8, 10, 0), (12, 10, 0),
              (16, 10, 0)]
    decisions = run(scaler, series, start=5)
    # Until t=11 the window still holds 5 (t=1); then it holds 3 (t=5); after t=15, only 1s.
    assert desired(decisions) == [5, 5, 5, 5, 5, 3, 1]
    assert decisions[2].reason == "ScaleDownStabilized"


def test_scale_up_window_uses_its_lowest_recommendation() -> None:
    scaler = Autoscaler(policy(scale_up_stabilization=5, scale_down_stabilization=0))
    series = [(0, 10, 0), (1, 60, 0), (3, 60, 0), (4.9, 60, 0), (5.1, 60, 0)]
    decisions = run(scaler, series, start=1)
    # The recommendation of 1 at t=0 holds the pool until it leaves the 5 s window.
    assert desired(decisions) == [1, 1, 1, 1, 6]
    assert decisions[1].reason == "ScaleUpStabilized"


def test_oscillating_backlog_does_not_flap_with_a_down_window() -> None:
    scaler = Autoscaler(policy(scale_down_stabilization=30))
    series = [(t, 60 if t % 2 == 0 else 5, 0) for t in range(20)]
    decisions = run(scaler, series, start=1)
    assert desired(decisions) == [6] * 20  # up at once, never down inside the window


def test_oscillation_without_windows_flaps_which_is_why_they_exist() -> None:
    scaler = Autoscaler(policy())
    series = [(t, 60 if t % 2 == 0 else 5, 0) for t in range(4)]
    assert desired(run(scaler, series, start=1)) == [6, 1, 6, 1]


def test_idle_to_zero_then_wake_within_one_poll() -> None:
    scaler = Autoscaler(policy(min_replicas=0, idle_before_scale_to_zero=30,
                               scale_up_stabilization=60))
    series = [(0, 20, 0), (5, 0, 5), (10, 0, 0), (20, 0, 0), (39, 0, 0), (40, 0, 0),
              (50, 0, 0), (55, 3, 0), (56, 3, 0)]
    decisions = run(scaler, series, start=2)
    assert desired(decisions) == [2, 1, 1, 1, 1, 0, 0, 1, 1]
    assert decisions[3].reason == "IdleBeforeScaleToZero"
    assert decisions[5].reason == "ScaleToZero"
    # Waking skips the 60 s scale-up window: the first pending task gets a worker at once.
    assert decisions[7].reason == "WakeFromZero"


def test_running_work_is_not_idle() -> None:
    scaler = Autoscaler(policy(min_replicas=0, idle_before_scale_to_zero=10))
    series = [(0, 0, 3), (20, 0, 3), (40, 0, 0), (45, 0, 0), (50, 0, 0)]
    assert desired(run(scaler, series, start=1)) == [1, 1, 1, 1, 0]


def test_never_zero_when_min_replicas_is_positive() -> None:
    scaler = Autoscaler(policy(min_replicas=1, idle_before_scale_to_zero=0))
    decisions = run(scaler, [(0, 0, 0), (100, 0, 0)], start=3)
    assert desired(decisions) == [1, 1]
    assert decisions[0].limit_reason == "TooFewReplicas"


def test_wake_from_zero_goes_straight_to_demand_within_step_and_max() -> None:
    assert desired(run(Autoscaler(policy(min_replicas=0)), [(0, 35, 0)], start=0)) == [4]
    stepped = Autoscaler(policy(min_replicas=0, max_step=2))
    assert desired(run(stepped, [(0, 35, 0)], start=0)) == [2]
    assert desired(run(Autoscaler(policy(min_replicas=0)), [(0, 0, 0)], start=0)) == [0]


def test_oldest_pending_age_adds_a_replica_under_target() -> None:
    scaler = Autoscaler(policy(max_oldest_pending_age=30))
    series = [(0, 3, 0, 5.0), (1, 3, 0, 31.0), (2, 3, 0, 32.0), (3, 1, 0, 2.0)]
    decisions = run(scaler, series, start=1)
    assert desired(decisions) == [1, 2, 3, 1]
    assert decisions[1].reason == "OldestPendingAge"


def test_oldest_age_needs_pending_tasks() -> None:
    scaler = Autoscaler(policy(max_oldest_pending_age=30))
    assert desired(run(scaler, [(0, 0, 10, 99.0)], start=1)) == [1]


def test_restart_seeds_the_down_window_with_the_current_count() -> None:
    scaler = Autoscaler(policy(scale_down_stabilization=10))
    assert desired(run(scaler, [(0, 0, 0), (5, 0, 0), (11, 0, 0)], start=4)) == [4, 4, 1]


def test_history_forgets_beyond_the_windows() -> None:
    scaler = Autoscaler(policy(scale_down_stabilization=5))
    run(scaler, [(t, 10, 0) for t in range(100)], start=1)
    assert len(scaler._history) <= 6


def test_policy_rejects_impossible_bounds() -> None:
    with pytest.raises(ValueError):
        ScalingPolicy(min_replicas=3, max_replicas=2)


def test_spec_defaults_and_target_from_max_concurrent_tasks() -> None:
    spec = parse_pool_spec({"image": "w:1", "activityTypes": ["a"], "maxConcurrentTasks": 4,
                            "scaling": {}})
    assert spec.policy().target_per_replica == 4
    assert spec.policy().scale_down_stabilization == 300
    assert spec.poll_interval == 15
    assert spec.autoscaling


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"activityTypes": ["a"]}, "spec.image"),
        ({"image": "w"}, "spec"),
        ({"image": "w", "activityTypes": ["a", "a"]}, "spec.activityTypes"),
        ({"image": "w", "activityTypes": ["a"], "scaling": {"maxReplicas": 0}},
         "spec.scaling.maxReplicas"),
        ({"image": "w", "activityTypes": ["a"], "scaling": {"minReplicas": 5, "maxReplicas": 2}},
         "spec.scaling"),
        ({"image": "w", "activityTypes": ["a"], "scaling": {"tolerance": 2}},
         "spec.scaling.tolerance"),
        ({"image": "w", "activityTypes": ["a"], "env": [{"value": "x"}]}, "spec.env[0].name"),
    ],
)
def test_invalid_spec_names_the_field(spec: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidPoolSpec) as caught:
        parse_pool_spec(spec)
    assert caught.value.field == field
