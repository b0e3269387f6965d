"""`durable controlplane` as a process: its start-up line, and settings refused before start."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from tests.support.controlplane import control_plane_process, wait_serving


async def test_start_up_line_and_clean_stop(database_url: str) -> None:
    with control_plane_process(database_url, RUNNER_MODE="durable") as (proc, address):
        await wait_serving(address)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
        assert proc.stdout is not None
        out = proc.stdout.read().decode()
    assert "Using Durable execution engine runner (PostgreSQL-backed)" in out


def _refused(**env: str) -> str:
    environment = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"} | env
    result = subprocess.run([sys.executable, "-m", "durable.cli", "controlplane"], env=environment,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    return result.stderr


def test_bad_settings_stop_it_before_start_naming_the_variable() -> None:
    assert "DATABASE_URL is not set" in _refused()
    assert "DATABASE_URL='mysql://x' is invalid" in _refused(DATABASE_URL="mysql://x")
    message = _refused(DATABASE_URL="postgresql://u@h/db", RUNNER_MODE="temporal")
    assert "RUNNER_MODE='temporal' is invalid" in message and "only the PostgreSQL-backed" in message
    assert "REAPER_INTERVAL_SECONDS='-1' is invalid" in _refused(DATABASE_URL="postgresql://u@h/db",
                                                                  REAPER_INTERVAL_SECONDS="-1")
