"""The agent turn of the seed: process_input, reason, act, reason ... until an answer.

Run it with ``durable worker --app durable.examples.agent_turn:app`` and start a workflow of
type ``agent_turn`` with ``{"message": "what is 2+3*4?"}``: it completes with
``{"answer": "2+3*4 = 14", ...}``. Set DURABLE_MODEL_BASE_URL (plus DURABLE_MODEL_API_KEY and
DURABLE_MODEL_NAME) to reason with an OpenAI-compatible endpoint instead of the local model.
"""

from __future__ import annotations

from durable.examples.agent_turn.app import build_app
from durable.examples.agent_turn.models import (
    ChatCompletionsModel,
    LocalModel,
    Model,
    model_from_env,
)

app = build_app()

__all__ = [
    "ChatCompletionsModel",
    "LocalModel",
    "Model",
    "app",
    "build_app",
    "model_from_env",
]
