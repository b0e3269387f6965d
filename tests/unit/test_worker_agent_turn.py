"""The agent_turn example without I/O: the local model, the calculator, and the workflow
driven through the replay engine by a tiny in-memory engine."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from durable.common import NonRetryableError
from durable.examples.agent_turn import ChatCompletionsModel, LocalModel, app, build_app, model_from_env
from durable.examples.agent_turn.tools import TOOL_SPECS, calculate
from durable.worker import (
    ActivityContext,
    CompleteWorkflow,
    FailWorkflow,
    HistoryEvent,
    ScheduleActivity,
    replay,
)


def test_calculator_is_arithmetic_only() -> None:
    assert calculate("2+3*4") == 14
    assert calculate("(2+3)*4") == 20
    assert calculate("7/2") == 3.5
    assert calculate("2^10") == 1024
    for bad in ("__import__('os')", "2**1000", "1/0", "", "a+1"):
        with pytest.raises(NonRetryableError):
            calculate(bad)


async def test_local_model_calls_the_calculator_then_answers() -> None:
    model = LocalModel()
    user = [{"role": "user", "content": "what is 2+3*4?"}]
    first = await model.reply(user, TOOL_SPECS)
    (call,) = first["tool_calls"]
    assert call["function"]["name"] == "calculator"
    assert json.loads(call["function"]["arguments"]) == {"expression": "2+3*4"}
    tool = {"role": "tool", "tool_call_id": call["id"], "content": "14"}
    second = await model.reply([*user, first, tool], TOOL_SPECS)
    assert "tool_calls" not in second
    assert second["content"] == "2+3*4 = 14"

    echo = await model.reply([{"role": "user", "content": "hello there"}], TOOL_SPECS)
    assert echo == {"role": "assistant", "content": "You said: hello there"}


def test_model_choice_follows_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DURABLE_MODEL_BASE_URL", raising=False)
    assert isinstance(model_from_env(), LocalModel)
    monkeypatch.setenv("DURABLE_MODEL_BASE_URL", "http://127.0.0.1:1/v1/")
    monkeypatch.setenv("DURABLE_MODEL_NAME", "m")
    chosen = model_from_env()
    assert isinstance(chosen, ChatCompletionsModel)
    assert chosen.url == "http://127.0.0.1:1/v1/chat/completions" and chosen.model == "m"


async def _run_in_memory(message: str) -> tuple[dict[str, Any], list[HistoryEvent]]:
    """Drive agent_turn like the control plane would: decide, run scheduled activities,
    record their results, decide again."""
    events: list[HistoryEvent] = []

    def record(kind: str, data: dict[str, Any]) -> None:
        events.append(HistoryEvent(len(events) + 1, kind, data))

    record("WorkflowStarted", {"workflow_type": "agent_turn", "input": {"message": message}})
    decided = 0
    pending: list[ScheduleActivity] = []
    cls = app.workflows["agent_turn"].cls
    for _ in range(50):
        decision = replay(cls, events, decided, activity_defaults=app.activity_options)
        decided = decision.seen_through_seq
        for action in decision.actions:
            if isinstance(action, (CompleteWorkflow, FailWorkflow)):
                return {"result": action}, events
            assert isinstance(action, ScheduleActivity)
            record("ActivityScheduled", {"activity_id": action.activity_id,
                                         "activity_type": action.activity_type,
                                         "input": action.input, "options": {}})
            pending.append(action)
        # Complete the scheduled activities one at a time (a new decision after each).
        action = pending.pop(0)
        definition = app.activities[action.activity_type]
        ctx = ActivityContext(task_id="t", attempt=1, activity_type=action.activity_type,
                              activity_id=action.activity_id or "")
        if definition.is_async:
            result = await definition.fn(ctx, action.input)
        else:
            result = await asyncio.to_thread(definition.fn, ctx, action.input)
        record("ActivityCompleted", {"activity_id": action.activity_id,
                                     "activity_type": action.activity_type,
                                     "result": result, "attempt": 1})
    raise AssertionError("the workflow did not end")


async def test_agent_turn_uses_tools_in_parallel_and_answers() -> None:
    outcome, events = await _run_in_memory("what is 2+3*4 and (1+1)*5?")
    assert outcome["result"] == CompleteWorkflow({"answer": "2+3*4 = 14; (1+1)*5 = 10", "rounds": 2})
    scheduled = [e.data["activity_id"] for e in events if e.event_type == "ActivityScheduled"]
    # Both tool calls were scheduled by one decision, before either completed.
    assert scheduled == ["process_input", "reason-1", "act-1-1", "act-1-2", "reason-2"]
    kinds = [e.event_type for e in events]
    first_act_done = kinds.index("ActivityCompleted", kinds.index("ActivityScheduled", 6))
    assert kinds[5:7] == ["ActivityScheduled", "ActivityScheduled"] and first_act_done > 6


async def test_agent_turn_answers_directly_without_arithmetic() -> None:
    outcome, events = await _run_in_memory("tell me a story")
    assert outcome["result"] == CompleteWorkflow({"answer": "You said: tell me a story", "rounds": 1})
    assert not any(e.data.get("activity_type") == "act" for e in events)


async def test_process_input_rejects_an_empty_message() -> None:
    fn = build_app().activities["process_input"].fn
    ctx = ActivityContext(task_id="t", attempt=1, activity_type="process_input")
    with pytest.raises(NonRetryableError, match="message"):
        await fn(ctx, {"message": "  "})
