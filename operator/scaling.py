"""The autoscaling algorithm: a pure, clock-injected decision from a backlog sample.

No I/O and no clock of its own: the caller passes every backlog sample, the current replica
count and the time; the `Autoscaler` keeps only what the algorithm needs to remember (the
recommendation history for the stabilization windows and when the pool went idle).

The steps follow the Kubernetes HorizontalPodAutoscaler (``pkg/controller/podautoscaler``):

1. **Recommendation** from the backlog: ``demand = pending + running``; with ``current > 0``
   the ratio ``demand / (current * target)`` inside the tolerance band keeps ``current``,
   otherwise ``ceil(demand / target)``. When the oldest pending task is older than
   ``max_oldest_pending_age`` the recommendation is at least ``current + 1``.
2. **Stabilization**: the raw recommendation goes into a history; the pool scales up only to
   the *lowest* recommendation of the scale-up window and down only to the *highest* of the
   scale-down window (HPA ``stabilizeRecommendationWithBehaviors``). Waking from zero skips
   the scale-up window: there is nothing running to protect from flapping, and the first
   pending task must find a worker within one poll interval.
3. **Bounds**: clamped to ``[min, max]``; with ``min == 0`` the floor stays 1 until the pool
   has had no pending or running work for ``idle_before_scale_to_zero`` seconds.
4. **Rate**: at most ``max_step`` replicas added or removed per change.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

__all__ = ["Autoscaler", "BacklogSample", "ScaleDecision", "ScalingPolicy"]


@dataclass(frozen=True)
class BacklogSample:
    """The control plane's view of a pool's work at one instant (summed over its types)."""

    pending: int
    """Tasks visible now and waiting for a worker."""
    running: int
    """Tasks claimed by a worker."""
    delayed: int = 0
    """Tasks pending but not yet visible (backoff, start delay); not part of the demand."""
    oldest_pending_age: float = 0.0
    """Seconds the oldest visible pending task has waited; 0 when nothing is pending."""

    @property
    def demand(self) -> int:
        return self.pending + self.running


@dataclass(frozen=True)
class ScalingPolicy:
    """The pool's `spec.scaling`, resolved (defaults applied, target known)."""

    min_replicas: int = 1
    max_replicas: int = 10
    target_per_replica: int = 10
    tolerance: float = 0.1
    scale_up_stabilization: float = 0.0
    scale_down_stabilization: float = 300.0
    max_step: int | None = None
    max_oldest_pending_age: float | None = None
    idle_before_scale_to_zero: float = 300.0

    def __post_init__(self) -> None:
        if self.min_replicas < 0 or self.max_replicas < 1 or self.min_replicas > self.max_replicas:
            raise ValueError(f"invalid bounds: min={self.min_replicas} max={self.max_replicas}")
        if self.target_per_replica < 1:
            raise ValueError("target_per_replica must be >= 1")
        if self.max_step is not None and self.max_step < 1:
            raise ValueError("max_step must be >= 1")


@dataclass(frozen=True)
class ScaleDecision:
    """What the autoscaler wants, and why."""

    desired: int
    reason: str
    """CamelCase: BacklogAboveTarget, BacklogBelowTarget, WithinTolerance, OldestPendingAge,
    NoWork, WakeFromZero, ScaleToZero, IdleBeforeScaleToZero, ScaleUpStabilized,
    ScaleDownStabilized, or the limit reason when a limit decided the number."""
    message: str
    limited: bool = False
    """True when a bound or the step limit changed the number (HPA's ScalingLimited)."""
    limit_reason: str | None = None
    """TooManyReplicas, TooFewReplicas, ScaleUpLimit or ScaleDownLimit when `limited`."""


@dataclass
class Autoscaler:
    """Decides a pool's replica count from successive backlog samples.

    Call `decide()` once per poll with the sample, the replica count currently requested
    from the Deployment and the current time (any monotonic clock, in seconds).
    """

    policy: ScalingPolicy
    _history: deque[tuple[float, int]] = field(default_factory=deque, init=False)
    _idle_since: float | None = field(default=None, init=False)

    def reset(self) -> None:
        """Forget the history (e.g. when autoscaling resumes after a pause)."""
        self._history.clear()
        self._idle_since = None

    def decide(self, sample: BacklogSample, current: int, now: float) -> ScaleDecision:
        policy = self.policy
        demand = sample.demand

        # Idle tracking for scale-to-zero: how long there has been no pending or running work.
        if demand > 0:
            self._idle_since = None
        elif self._idle_since is None:
            self._idle_since = now
        idle_for = 0.0 if self._idle_since is None else now - self._idle_since

        # Like the HPA after a restart: seed the history with the current count, so the
        # scale-down window starts now instead of acting on the first sample.
        if not self._history:
            self._history.append((now, current))

        # 1. The raw recommendation from the backlog.
        raw, reason, message = self._recommend(sample, current)

        # 2. Stabilization over the recommendation history.
        up = down = raw
        for stamp, recommendation in self._history:
            if stamp > now - policy.scale_up_stabilization:
                up = min(up, recommendation)
            if stamp > now - policy.scale_down_stabilization:
                down = max(down, recommendation)
        self._history.append((now, raw))
        horizon = now - max(policy.scale_up_stabilization, policy.scale_down_stabilization)
        while self._history and self._history[0][0] <= horizon:
            self._history.popleft()

        waking = current == 0 and demand > 0
        desired = current
        if waking:
            desired = raw
            reason, message = "WakeFromZero", f"{demand} task(s) waiting and no replicas"
        else:
            desired = max(desired, up)
            desired = min(desired, down)
            if raw > current and desired < raw:
                reason = "ScaleUpStabilized"
                message = (f"recommended {raw}; holding {desired}, the lowest recommendation "
                           f"of the last {policy.scale_up_stabilization:g}s")
            elif raw < current and desired > raw:
                reason = "ScaleDownStabilized"
                message = (f"recommended {raw}; holding {desired}, the highest recommendation "
                           f"of the last {policy.scale_down_stabilization:g}s")

        # 3. Bounds, with the idle floor that guards scale-to-zero.
        limited = False
        limit_reason: str | None = None
        floor = policy.min_replicas
        still_idling = current > 0 and idle_for < policy.idle_before_scale_to_zero
        if floor == 0 and (demand > 0 or still_idling):
            floor = 1
        if desired > policy.max_replicas:
            desired = policy.max_replicas
            limited, limit_reason = True, "TooManyReplicas"
            message = f"{message}; capped at maxReplicas={policy.max_replicas}"
        elif desired < floor:
            if floor > policy.min_replicas:
                if reason not in ("ScaleDownStabilized",):
                    reason = "IdleBeforeScaleToZero"
                    message = (f"idle for {idle_for:g}s of the "
                               f"{policy.idle_before_scale_to_zero:g}s before scaling to zero")
            else:
                limited, limit_reason = True, "TooFewReplicas"
                message = f"{message}; raised to minReplicas={policy.min_replicas}"
            desired = floor
        if desired == 0 and current > 0:
            reason = "ScaleToZero"
            message = f"no pending or running work for {idle_for:g}s"

        # 4. Rate limit.
        step = policy.max_step
        if step is not None:
            if desired > current + step:
                desired = current + step
                limited, limit_reason = True, "ScaleUpLimit"
                message = f"{message}; at most {step} added per change (maxStep)"
            elif desired < current - step:
                desired = current - step
                limited, limit_reason = True, "ScaleDownLimit"
                message = f"{message}; at most {step} removed per change (maxStep)"

        return ScaleDecision(desired=desired, reason=reason, message=message,
                             limited=limited, limit_reason=limit_reason)

    def _recommend(self, sample: BacklogSample, current: int) -> tuple[int, str, str]:
        policy = self.policy
        demand = sample.demand
        target = policy.target_per_replica
        described = (f"demand {demand} (pending {sample.pending}, running {sample.running}), "
                     f"target {target} per replica")
        if current > 0:
            ratio = demand / (current * target)
            if abs(ratio - 1.0) <= policy.tolerance:
                raw, reason = current, "WithinTolerance"
            else:
                raw = math.ceil(demand / target)
                reason = "BacklogAboveTarget" if raw > current else "BacklogBelowTarget"
        else:
            raw = math.ceil(demand / target)
            reason = "BacklogAboveTarget" if raw > 0 else "NoWork"
        message = f"{described}: {raw} replica(s)"
        limit = policy.max_oldest_pending_age
        too_old = limit is not None and sample.pending > 0 and sample.oldest_pending_age > limit
        if too_old and raw <= current:
            raw = current + 1
            reason = "OldestPendingAge"
            message = (f"oldest pending task waited {sample.oldest_pending_age:g}s "
                       f"> {limit:g}s: one more replica ({raw})")
        return raw, reason, message
