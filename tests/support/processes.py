"""Worker processes for tests: real `durable worker` children with no DATABASE_URL."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.support.controlplane import free_port

ROOT = Path(__file__).resolve().parents[2]


def worker_env(address: str, worker_id: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(
        GRPC_ADDRESS=address,
        WORKER_ID=worker_id,
        WORKER_HEALTH_PORT=str(free_port()),
        PYTHONPATH=str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""),
        PYTHONUNBUFFERED="1",
        **extra,
    )
    return env


@contextmanager
def worker_process(address: str, worker_id: str, app: str = "tests.support.apps:app", *,
                   log_dir: Path, **extra: str) -> Iterator[subprocess.Popen[bytes]]:
    """A `durable worker` child process; killed at the end if still running."""
    log = open(log_dir / f"{worker_id}.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "durable.cli", "worker", "--app", app],
        env=worker_env(address, worker_id, **extra),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()


def read_records(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


async def wait_for(condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> Any:
    """Poll an (async or sync) condition until it is truthy or the deadline passes."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = condition()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if loop.time() > deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(interval)
