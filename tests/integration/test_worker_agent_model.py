"""The OpenAI-compatible model client of the agent_turn example, against a local HTTP stub."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from durable.common import NonRetryableError, RetryableError
from durable.examples.agent_turn import ChatCompletionsModel, model_from_env
from durable.examples.agent_turn.tools import TOOL_SPECS


class _Stub:
    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str], dict[str, Any]]] = []
        self.replies: list[tuple[int, Any]] = []


@pytest.fixture
def stub() -> Iterator[tuple[_Stub, str]]:
    state = _Stub()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            state.requests.append((self.path, dict(self.headers), body))
            status, reply = state.replies.pop(0)
            data = json.dumps(reply).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, name="model-stub", daemon=True)
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


async def test_chat_completions_client_sends_tools_and_reads_tool_calls(
    stub: tuple[_Stub, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    state, base_url = stub
    monkeypatch.setenv("DURABLE_MODEL_BASE_URL", base_url)
    monkeypatch.setenv("DURABLE_MODEL_API_KEY", "secret-key")
    monkeypatch.setenv("DURABLE_MODEL_NAME", "tiny")
    model = model_from_env()
    assert isinstance(model, ChatCompletionsModel)
    state.replies.append((200, {"choices": [{"message": {
        "role": "assistant", "content": None,
        "tool_calls": [{"id": "c1", "type": "function",
                        "function": {"name": "calculator", "arguments": "{\"expression\": \"1+1\"}"}}],
    }}]}))
    reply = await model.reply([{"role": "user", "content": "1+1?"}], TOOL_SPECS)
    assert reply["tool_calls"][0]["function"] == {"name": "calculator",
                                                 "arguments": "{\"expression\": \"1+1\"}"}
    path, headers, body = state.requests[0]
    assert path == "/v1/chat/completions"
    assert headers["Authorization"] == "Bearer secret-key"
    assert body["model"] == "tiny" and body["tools"] == TOOL_SPECS
    assert body["messages"] == [{"role": "user", "content": "1+1?"}]

    state.replies.append((200, {"choices": [{"message": {"role": "assistant", "content": "2"}}]}))
    assert await model.reply([], TOOL_SPECS) == {"role": "assistant", "content": "2"}


async def test_chat_completions_errors_map_to_retry_policy(stub: tuple[_Stub, str]) -> None:
    state, base_url = stub
    model = ChatCompletionsModel(base_url, "", "m")
    state.replies.append((503, {"error": "overloaded"}))
    with pytest.raises(RetryableError, match="503"):
        await model.reply([], [])
    state.replies.append((400, {"error": "bad request"}))
    with pytest.raises(NonRetryableError, match="400"):
        await model.reply([], [])
    unreachable = ChatCompletionsModel("http://127.0.0.1:1/v1", "", "m", timeout=5)
    with pytest.raises(RetryableError, match="unreachable"):
        await unreachable.reply([], [])
