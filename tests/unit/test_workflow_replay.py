"""The replay engine over hand-written histories (no I/O)."""

from __future__ import annotations

from typing import Any

import pytest

from durable.common import RetryPolicy
from durable.worker import (
    ActivityOptions,
    App,
    CompleteWorkflow,
    FailWorkflow,
    HistoryEvent,
    ScheduleActivity,
    StartTimer,
    Workflow,
    WorkflowCodeError,
    complete,
    fail,
    replay,
    schedule_activity,
    start_timer,
)


def history(*events: tuple[str, dict[str, Any]]) -> list[HistoryEvent]:
    return [HistoryEvent(i, kind, data) for i, (kind, data) in enumerate(events, start=1)]


def started(**input: Any) -> tuple[str, dict[str, Any]]:
    return ("WorkflowStarted", {"workflow_type": "wf", "input": input})


def scheduled(activity_id: str, activity_type: str) -> tuple[str, dict[str, Any]]:
    return ("ActivityScheduled", {"activity_id": activity_id, "activity_type": activity_type,
                                  "input": {}, "options": {}})


def completed(activity_id: str, activity_type: str, **result: Any) -> tuple[str, dict[str, Any]]:
    return ("ActivityCompleted", {"activity_id": activity_id, "activity_type": activity_type,
                                  "result": result, "attempt": 1})


class Counter(Workflow):
    """Schedules `step` until it has seen `n` results, then completes with the sum."""

    def __init__(self) -> None:
        self.n = 0
        self.total = 0
        self.calls: list[str] = []

    def on_start(self, input: dict[str, Any]) -> list[Any]:
        self.n = input["n"]
        self.calls.append("start")
        return [schedule_activity("step", {"i": 0})]

    def on_activity_completed(self, activity_id: str, result: dict[str, Any]) -> list[Any]:
        self.calls.append(activity_id)
        self.total += result["value"]
        done = len(self.calls) - 1
        if done < self.n:
            return [schedule_activity("step", {"i": done})]
        return [complete({"total": self.total})]


def test_first_decision_runs_on_start_and_assigns_deterministic_ids() -> None:
    decision = replay(Counter, history(started(n=2)), decided_through_seq=0)
    assert decision.actions == [
        ScheduleActivity("step", {"i": 0}, activity_id="step-1", options=ActivityOptions())
    ]
    assert decision.seen_through_seq == 1
    assert not decision.ended


def test_only_actions_after_decided_through_seq_are_emitted() -> None:
    events = history(
        started(n=2),
        scheduled("step-1", "step"),
        completed("step-1", "step", value=5),
    )
    decision = replay(Counter, events, decided_through_seq=1)
    # on_start's action was applied already (seq 1); the completion at seq 3 is new.
    assert [a.activity_id for a in decision.actions] == ["step-2"]  # type: ignore[union-attr]
    assert decision.actions[0].input == {"i": 1}  # type: ignore[union-attr]
    assert decision.seen_through_seq == 3

    # Everything decided already: the commands are in the history, nothing is new, even
    # though handlers ran.
    recorded = history(
        started(n=2),
        scheduled("step-1", "step"),
        completed("step-1", "step", value=5),
        scheduled("step-2", "step"),
    )
    assert replay(Counter, recorded, decided_through_seq=4).actions == []


def test_replay_rebuilds_state_from_the_whole_history() -> None:
    events = history(
        started(n=2),
        scheduled("step-1", "step"),
        completed("step-1", "step", value=5),
        scheduled("step-2", "step"),
        completed("step-2", "step", value=7),
    )
    decision = replay(Counter, events, decided_through_seq=3)
    # The total needs step-1's result, which is only known by replaying seq 3.
    assert decision.actions == [CompleteWorkflow({"total": 12})]
    assert decision.ended


def test_a_fresh_object_is_built_for_every_replay() -> None:
    built: list[Counter] = []

    class Tracking(Counter):
        def __init__(self) -> None:
            super().__init__()
            built.append(self)

    events = history(started(n=1), scheduled("step-1", "step"), completed("step-1", "step", value=1))
    replay(Tracking, events, 1)
    replay(Tracking, events, 1)
    assert len(built) == 2
    assert built[0] is not built[1]
    assert built[1].calls == ["start", "step-1"]


def test_ids_count_all_activities_across_the_replay_and_are_stable() -> None:
    class Fan(Workflow):
        def on_start(self, input: dict[str, Any]) -> list[Any]:
            return [schedule_activity("a"), schedule_activity("b"), schedule_activity("a"),
                    schedule_activity("c", activity_id="mine"), start_timer(5), start_timer(1, "t")]

        def on_activity_completed(self, activity_id: str, result: dict[str, Any]) -> list[Any]:
            return [schedule_activity("b")]

    first = replay(Fan, history(started()), 0)
    ids = [getattr(a, "activity_id", None) or getattr(a, "timer_id", None) for a in first.actions]
    assert ids == ["a-1", "b-2", "a-3", "mine", "timer-1", "t"]
    assert first.actions[4] == StartTimer(fire_after=5.0, timer_id="timer-1")

    recorded = history(
        started(), scheduled("a-1", "a"), scheduled("b-2", "b"), scheduled("a-3", "a"),
        scheduled("mine", "c"), ("TimerStarted", {"timer_id": "timer-1"}),
        ("TimerStarted", {"timer_id": "t"}), completed("a-1", "a"),
    )
    later = replay(Fan, recorded, 7)
    # The counter continues over the replayed (already applied) actions.
    assert [a.activity_id for a in later.actions] == ["b-5"]  # type: ignore[union-attr]
    again = replay(Fan, recorded, 7)
    assert again == later


def test_activity_failure_fails_the_workflow_by_default() -> None:
    events = history(
        started(n=1),
        scheduled("step-1", "step"),
        ("ActivityFailed", {"activity_id": "step-1", "activity_type": "step",
                            "error": {"message": "boom", "type": "ValueError"},
                            "attempts": 5, "reason": "exhausted"}),
    )
    decision = replay(Counter, events, 1)
    assert len(decision.actions) == 1
    action = decision.actions[0]
    assert isinstance(action, FailWorkflow)
    assert action.type == "ValueError"
    assert "boom" in action.message and "step-1" in action.message
    assert decision.ended

    class Plain:  # not a Workflow subclass and no on_activity_failed: same default
        def on_start(self, input: dict[str, Any]) -> list[Any]:
            return [schedule_activity("step")]

    assert isinstance(replay(Plain, events, 1).actions[0], FailWorkflow)


def test_activity_failure_can_be_handled() -> None:
    class Tolerant(Workflow):
        def on_start(self, input: dict[str, Any]) -> list[Any]:
            return [schedule_activity("flaky")]

        def on_activity_failed(self, activity_id: str, error: dict[str, Any]) -> list[Any]:
            return [complete({"fallback": error["type"]})]

    events = history(
        started(),
        scheduled("flaky-1", "flaky"),
        ("ActivityFailed", {"activity_id": "flaky-1", "activity_type": "flaky",
                            "error": {"message": "x", "type": "Timeout"}}),
    )
    assert replay(Tolerant, events, 1).actions == [CompleteWorkflow({"fallback": "Timeout"})]


def test_signals_are_delivered_in_order_and_timers_fire() -> None:
    class Collector(Workflow):
        def __init__(self) -> None:
            self.seen: list[str] = []

        def on_start(self, input: dict[str, Any]) -> list[Any]:
            return [start_timer(60)]

        def on_signal(self, signal_type: str, payload: dict[str, Any]) -> list[Any]:
            self.seen.append(f"{signal_type}:{payload['v']}")
            return []

        def on_timer_fired(self, timer_id: str) -> list[Any]:
            return [complete({"seen": self.seen, "timer": timer_id})]

    events = [
        HistoryEvent(1, "WorkflowStarted", {"input": {}}),
        HistoryEvent(2, "TimerStarted", {"timer_id": "timer-1", "fire_at": 100.0}),
        HistoryEvent(4, "SignalReceived", {"signal_type": "b", "payload": {"v": 2}}),
        HistoryEvent(3, "SignalReceived", {"signal_type": "a", "payload": {"v": 1}}),
        HistoryEvent(5, "SignalReceived", {"signal_type": "c", "payload": {"v": 3}}),
        HistoryEvent(6, "TimerFired", {"timer_id": "timer-1"}),
    ]
    decision = replay(Collector, events, decided_through_seq=3)
    # Sorted by sequence number, whatever order the events came in.
    assert decision.actions == [
        CompleteWorkflow({"seen": ["a:1", "b:2", "c:3"], "timer": "timer-1"})
    ]
    assert decision.seen_through_seq == 6


def test_nothing_is_decided_after_the_workflow_ended() -> None:
    class Done(Workflow):
        def on_start(self, input: dict[str, Any]) -> list[Any]:
            return [complete({"x": 1}), schedule_activity("never")]

        def on_signal(self, signal_type: str, payload: dict[str, Any]) -> list[Any]:
            return [schedule_activity("late")]

    first = replay(Done, history(started()), 0)
    assert first.actions == [CompleteWorkflow({"x": 1})]
    assert first.ended
    later = replay(Done, history(started(), ("WorkflowCompleted", {"result": {"x": 1}}),
                                 ("SignalReceived", {"signal_type": "s", "payload": {}})), 1)
    assert later.actions == [] and later.ended
    cancelled = replay(Done, [HistoryEvent(1, "WorkflowCancelled", {"reason": "r", "terminated": True})], 0)
    assert cancelled.actions == [] and cancelled.ended


def test_activity_type_is_passed_to_handlers_that_declare_it() -> None:
    class Typed(Workflow):
        def on_start(self, input: dict[str, Any]) -> list[Any]:
            return [schedule_activity("x")]

        def on_activity_completed(
            self, activity_id: str, result: dict[str, Any], activity_type: str = ""
        ) -> list[Any]:
            return [complete({"type": activity_type, "id": activity_id})]

    events = history(started(), scheduled("x-1", "x"), completed("x-1", "x"))
    assert replay(Typed, events, 1).actions == [CompleteWorkflow({"type": "x", "id": "x-1"})]


def test_registry_defaults_fill_unset_options() -> None:
    app = App()
    policy = RetryPolicy(max_attempts=2)

    @app.activity(name="slow", retry_policy=policy, start_to_close_timeout=30, priority=5)
    async def slow(ctx: Any, input: dict[str, Any]) -> dict[str, Any]:
        return {}

    class Wf(Workflow):
        def on_start(self, input: dict[str, Any]) -> list[Any]:
            return [schedule_activity("slow", priority=9), schedule_activity("other")]

    decision = replay(Wf, history(started()), 0, activity_defaults=app.activity_options)
    first, second = decision.actions
    assert isinstance(first, ScheduleActivity) and isinstance(second, ScheduleActivity)
    assert first.options == ActivityOptions(retry_policy=policy, priority=9,
                                            start_to_close_timeout=30.0)
    assert second.options == ActivityOptions()


def test_workflow_code_errors_are_reported() -> None:
    class Broken(Workflow):
        def on_start(self, input: dict[str, Any]) -> list[Any]:
            raise KeyError("missing")

    with pytest.raises(WorkflowCodeError, match="on_start raised KeyError") as info:
        replay(Broken, history(started()), 0)
    assert isinstance(info.value.__cause__, KeyError)

    class Wrong(Workflow):
        def on_start(self, input: dict[str, Any]) -> Any:
            return ["not an action"]

    with pytest.raises(WorkflowCodeError, match="schedule_activity"):
        replay(Wrong, history(started()), 0)


def test_handlers_may_return_none_or_a_single_action() -> None:
    class Loose:
        def on_start(self, input: dict[str, Any]) -> Any:
            return fail("nope", type="Nope")

        def on_signal(self, signal_type: str, payload: dict[str, Any]) -> Any:
            return None

    assert replay(Loose, history(started()), 0).actions == [FailWorkflow("nope", "Nope")]
    events = history(("SignalReceived", {"signal_type": "s", "payload": {}}))
    assert replay(Loose, events, 0).actions == []


def test_workflow_identity_is_set_before_handlers() -> None:
    class Who(Workflow):
        def on_start(self, input: dict[str, Any]) -> list[Any]:
            return [complete({"id": self.workflow_id, "type": self.workflow_type})]

    decision = replay(Who, history(started()), 0, workflow_id="w-1", workflow_type="who")
    assert decision.actions == [CompleteWorkflow({"id": "w-1", "type": "who"})]
