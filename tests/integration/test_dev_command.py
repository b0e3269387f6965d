"""The README's "run it" command works on this machine: `durable dev` with its own embedded
PostgreSQL (no DATABASE_URL), one agent turn, the answer printed."""

from __future__ import annotations

import os
import subprocess
import sys


def test_durable_dev_runs_an_agent_turn_on_embedded_postgres() -> None:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    result = subprocess.run(
        [sys.executable, "-m", "durable.cli", "dev", "--port", "0", "--health-port", "0", "--message", "what is 6*7?"],
        env=env, capture_output=True, text=True, timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "starting embedded PostgreSQL" in result.stdout
    assert "WorkflowCompleted" in result.stdout
    assert "answer: 6*7 = 42" in result.stdout, result.stdout
