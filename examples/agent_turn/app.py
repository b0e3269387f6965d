"""The agent turn: process_input, then reason; tool calls run as parallel `act` activities,
and reason runs again with their results, until the model answers without tools."""

from __future__ import annotations

import json
from typing import Any

from durable.common import NonRetryableError, RetryPolicy
from durable.worker import (
    Action,
    ActivityContext,
    App,
    Workflow,
    complete,
    fail,
    schedule_activity,
)
from durable.examples.agent_turn.models import Model, model_from_env
from durable.examples.agent_turn.tools import TOOL_SPECS, run_tool

SYSTEM_PROMPT = (
    "You are a helpful assistant. Use the calculator tool for arithmetic and answer with its "
    "result."
)
MAX_MESSAGE_CHARS = 20_000
MAX_ROUNDS = 8


def build_app(model: Model | None = None) -> App:
    """The agent-turn App; `model` None: chosen from the environment at each call."""
    app = App("agent_turn")

    @app.activity(
        name="process_input",
        retry_policy=RetryPolicy(max_attempts=3, non_retryable_error_types=("InvalidInput",)),
        start_to_close_timeout=30,
    )
    async def process_input(ctx: ActivityContext, input: dict[str, Any]) -> dict[str, Any]:
        message = input.get("message")
        if not isinstance(message, str) or not message.strip():
            raise NonRetryableError("input.message must be a non-empty string", type="InvalidInput")
        text = " ".join(message.split())[:MAX_MESSAGE_CHARS]
        return {
            "messages": [
                {"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": text},
            ]
        }

    @app.activity(
        name="reason",
        retry_policy=RetryPolicy(max_attempts=5, initial_interval=1.0, max_interval=30.0),
        start_to_close_timeout=120,
    )
    async def reason(ctx: ActivityContext, input: dict[str, Any]) -> dict[str, Any]:
        chosen = model or model_from_env()
        reply = await chosen.reply(list(input.get("messages") or []), TOOL_SPECS)
        return {"message": reply}

    @app.activity(
        name="act",
        retry_policy=RetryPolicy(
            max_attempts=3, non_retryable_error_types=("InvalidExpression", "UnknownTool")
        ),
        start_to_close_timeout=60,
    )
    def act(ctx: ActivityContext, input: dict[str, Any]) -> dict[str, Any]:
        call = input.get("tool_call") or {}
        function = call.get("function") or {}
        try:
            arguments = json.loads(function.get("arguments") or "{}")
        except ValueError:
            raise NonRetryableError("tool arguments are not JSON", type="InvalidExpression") from None
        content = run_tool(str(function.get("name", "")), arguments)
        return {"role": "tool", "tool_call_id": call.get("id", ""), "content": content}

    app.workflow(name="agent_turn")(AgentTurn)
    return app


class AgentTurn(Workflow):
    """State: the conversation, the reasoning round, and the tool calls still running."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.round = 0
        self.pending: dict[str, int] = {}  # act activity id -> position of its result
        self.results: list[dict[str, Any] | None] = []

    def on_start(self, input: dict[str, Any]) -> list[Action]:
        return [schedule_activity("process_input", {"message": input.get("message")},
                                  activity_id="process_input")]

    def on_activity_completed(
        self, activity_id: str, result: dict[str, Any], activity_type: str = ""
    ) -> list[Action]:
        if activity_id == "process_input":
            self.messages = list(result["messages"])
            return self._reason()
        if activity_id.startswith("reason-"):
            return self._on_reply(result["message"])
        if activity_id in self.pending:
            self.results[self.pending.pop(activity_id)] = result
            if self.pending:
                return []
            self.messages.extend(r for r in self.results if r is not None)
            self.results = []
            return self._reason()
        return []

    def _reason(self) -> list[Action]:
        self.round += 1
        if self.round > MAX_ROUNDS:
            return [fail(f"no answer after {MAX_ROUNDS} reasoning rounds", type="TooManyRounds")]
        return [schedule_activity("reason", {"messages": self.messages},
                                  activity_id=f"reason-{self.round}")]

    def _on_reply(self, reply: dict[str, Any]) -> list[Action]:
        self.messages.append(reply)
        calls = reply.get("tool_calls") or []
        if not calls:
            return [complete({"answer": reply.get("content") or "", "rounds": self.round})]
        actions: list[Action] = []
        self.results = [None] * len(calls)
        for index, call in enumerate(calls):
            activity_id = f"act-{self.round}-{index + 1}"
            self.pending[activity_id] = index
            actions.append(schedule_activity("act", {"tool_call": call}, activity_id=activity_id))
        return actions
