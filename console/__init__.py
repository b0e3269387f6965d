"""The web console: workflows, histories, dead letters, workers and queues in the browser.

It talks to the control plane only over gRPC ClientService (durable.client) and holds no
database credentials. Run it with `durable console`.
"""

from __future__ import annotations

from durable.console.app import create_app
from durable.console.settings import ConsoleSettings

__all__ = ["ConsoleSettings", "create_app"]
