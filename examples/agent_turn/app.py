"""The agent turn: process_input, then reason; tool calls run as parallel `act` activities,
and reason runs again with their results, until the model answers without tools. The
workflow is plain async code: a loop, a gather, a raise."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from durable.common import NonRetryableError, RetryPolicy
from durable.worker import ActivityContext, App, WorkflowContext, WorkflowFailed
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

    @app.workflow(name="agent_turn")
    async def agent_turn(ctx: WorkflowContext, input: dict[str, Any]) -> dict[str, Any]:
        """Reason until the model answers without tools; its tool calls run in parallel."""
        turn = await ctx.activity("process_input", {"message": input.get("message")},
                                  activity_id="process_input")
        messages = list(turn["messages"])
        for round in range(1, MAX_ROUNDS + 1):
            reply = (await ctx.activity(reason, {"messages": messages}, activity_id=f"reason-{round}"))["message"]
            messages.append(reply)
            calls = reply.get("tool_calls") or []
            if not calls:
                return {"answer": reply.get("content") or "", "rounds": round}
            results = await asyncio.gather(*(
                ctx.activity("act", {"tool_call": call}, activity_id=f"act-{round}-{index}")
                for index, call in enumerate(calls, start=1)
            ))
            messages.extend(results)
        raise WorkflowFailed(f"no answer after {MAX_ROUNDS} reasoning rounds", type="TooManyRounds")

    return app
