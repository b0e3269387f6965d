"""The model behind the `reason` activity: pluggable.

- LocalModel (default): deterministic, no network. Arithmetic in the user's message is sent
  to the `calculator` tool (one call per expression, so several run in parallel), and the
  answer quotes the results; any other message is echoed.
- ChatCompletionsModel: an OpenAI-compatible HTTP chat-completions endpoint, chosen when
  DURABLE_MODEL_BASE_URL is set (with DURABLE_MODEL_API_KEY and DURABLE_MODEL_NAME).

Messages and tool calls use the chat-completions shape throughout.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import urllib.error
import urllib.request
from typing import Any, Protocol

from durable.common import NonRetryableError, RetryableError

Message = dict[str, Any]

# An arithmetic expression: numbers joined by at least one operator.
_EXPRESSION = re.compile(
    r"(?<![\w.])\(*\s*-?\d+(?:\.\d+)?(?:\s*\)*\s*(?:\*\*|//|[-+*/%^])\s*\(*\s*-?\d+(?:\.\d+)?\s*\)*)+"
)


class Model(Protocol):
    """Answers a conversation: returns one assistant message (maybe with tool_calls)."""

    async def reply(self, messages: list[Message], tools: list[dict[str, Any]]) -> Message: ...


def find_expressions(text: str) -> list[str]:
    """The arithmetic expressions in `text`, balanced and stripped, in order."""
    found = []
    for match in _EXPRESSION.finditer(text):
        expression = match.group(0).strip()
        while expression.count("(") > expression.count(")") and expression.startswith("("):
            expression = expression[1:].strip()
        while expression.count(")") > expression.count("(") and expression.endswith(")"):
            expression = expression[:-1].strip()
        found.append(expression)
    return found


class LocalModel:
    """A deterministic stand-in for a language model (see the module docstring)."""

    async def reply(self, messages: list[Message], tools: list[dict[str, Any]]) -> Message:
        last = messages[-1] if messages else {"role": "user", "content": ""}
        if last.get("role") == "tool":
            return {"role": "assistant", "content": self._answer(messages)}
        text = str(last.get("content") or "")
        expressions = find_expressions(text)
        if expressions and any(t["function"]["name"] == "calculator" for t in tools):
            calls = [
                {
                    "id": f"call_{index}",
                    "type": "function",
                    "function": {
                        "name": "calculator",
                        "arguments": json.dumps({"expression": expression}),
                    },
                }
                for index, expression in enumerate(expressions, start=1)
            ]
            return {"role": "assistant", "content": None, "tool_calls": calls}
        return {"role": "assistant", "content": f"You said: {text}" if text else "Hello!"}

    @staticmethod
    def _answer(messages: list[Message]) -> str:
        # The tool results that answer the latest assistant tool calls.
        calls: dict[str, str] = {}
        for message in messages:
            for call in message.get("tool_calls") or []:
                arguments = json.loads(call["function"]["arguments"] or "{}")
                calls[call["id"]] = str(arguments.get("expression", ""))
        results = [
            f"{calls.get(m.get('tool_call_id', ''), '?')} = {m.get('content')}"
            for m in messages
            if m.get("role") == "tool"
        ]
        return "; ".join(results)


class ChatCompletionsModel:
    """An OpenAI-compatible `POST {base_url}/chat/completions` client (urllib in a thread)."""

    def __init__(self, base_url: str, api_key: str, model: str, timeout: float = 60.0) -> None:
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.api_key = api_key
        self.model = model
        self.timeout = timeout

    async def reply(self, messages: list[Message], tools: list[dict[str, Any]]) -> Message:
        body = {"model": self.model, "messages": messages}
        if tools:
            body["tools"] = tools
        data = await asyncio.to_thread(self._post, body)
        try:
            message = data["choices"][0]["message"]
        except (KeyError, IndexError, TypeError):
            raise RetryableError(f"unexpected chat-completions answer: {str(data)[:200]}") from None
        reply: Message = {"role": "assistant", "content": message.get("content")}
        if message.get("tool_calls"):
            reply["tool_calls"] = [
                {
                    "id": call.get("id") or f"call_{index}",
                    "type": "function",
                    "function": {
                        "name": call["function"]["name"],
                        "arguments": call["function"].get("arguments") or "{}",
                    },
                }
                for index, call in enumerate(message["tool_calls"], start=1)
            ]
        return reply

    def _post(self, body: dict[str, Any]) -> Any:
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        request = urllib.request.Request(
            self.url, data=json.dumps(body).encode(), headers=headers, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            text = exc.read()[:500].decode(errors="replace")
            if exc.code == 429 or exc.code >= 500:
                raise RetryableError(f"model endpoint answered {exc.code}: {text}",
                                     type="ModelUnavailable") from None
            raise NonRetryableError(f"model endpoint answered {exc.code}: {text}",
                                    type="ModelRequestRejected") from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            raise RetryableError(f"model endpoint unreachable: {exc}",
                                 type="ModelUnavailable") from None
        except ValueError as exc:
            raise RetryableError(f"model endpoint sent invalid JSON: {exc}") from None


def model_from_env() -> Model:
    """ChatCompletionsModel when DURABLE_MODEL_BASE_URL is set, else LocalModel."""
    base_url = os.environ.get("DURABLE_MODEL_BASE_URL", "").strip()
    if not base_url:
        return LocalModel()
    return ChatCompletionsModel(
        base_url,
        os.environ.get("DURABLE_MODEL_API_KEY", ""),
        os.environ.get("DURABLE_MODEL_NAME", "gpt-4o-mini"),
    )
