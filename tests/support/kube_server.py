"""The Kubernetes API emulator (tests.support.kube.Emulator) as a process of its own.

    python -m tests.support.kube_server --port 0    # prints "ready http://127.0.0.1:PORT"

It prints that one line on stdout once it serves, then nothing; SIGTERM (or SIGINT) stops it.
`emulator_process()` runs it as a child and yields its URL. The benchmarks use it so that the
emulator's CPU does not compete with the operator (or the benchmark) for one GIL.

kmock keeps every request it ever served, and for each new request checks `request in view`
for its reactions by iterating over that whole history (kmock/_internal/dsl.py
`View.__contains__`, from apps.py `RawHandler._handle`): O(requests) per request. Here the
history (`RequestLog`) holds only the requests being served (watch streams stay in it while
they stream), so a request costs the same at the millionth as at the first. The emulator's
objects and watch streams are untouched; kmock's assertion DSL, which reads the history, is
not available in this process (nobody can reach it anyway).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import attrs
import kmock

from tests.support.kube import Emulator, declare_resources

__all__ = ["EmulatorProcess", "RequestLog", "emulator_process", "serve"]

ROOT = Path(__file__).resolve().parents[2]


class RequestLog:
    """Stands in for kmock's request history: keeps the requests being served only.

    `len()` counts every request ever appended: kmock numbers requests with it
    (`Request.id`), and the emulator keys a create's response by that number."""

    def __init__(self) -> None:
        self._live: dict[int, Any] = {}
        self._appended = 0

    def append(self, request: Any) -> None:
        self._live[id(request)] = request
        self._appended += 1

    def discard(self, request: Any) -> None:
        self._live.pop(id(request), None)

    def __len__(self) -> int:
        return self._appended

    def __iter__(self) -> Iterator[Any]:
        return iter(list(self._live.values()))


@attrs.define(kw_only=True)
class ServedEmulator(Emulator):
    """The emulator, forgetting each request once it has been served."""

    async def _handle(self, request: kmock.Request) -> Any:
        try:
            return await super()._handle(request)
        finally:
            self._requests.discard(request)  # type: ignore[attr-defined]


async def serve(host: str, port: int, stop: asyncio.Event) -> None:
    """Serve the emulator on host:port (0: any free port) until `stop` is set; prints
    `ready <url>` on stdout once serving."""
    emulator = ServedEmulator()
    emulator._requests = RequestLog()  # type: ignore[assignment]
    async with emulator, kmock.Server(emulator, host=host, port=port) as server:
        declare_resources(emulator)
        print(f"ready {str(server.url).rstrip('/')}", flush=True)
        await stop.wait()
        print(f"served {len(emulator._requests)} requests", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.support.kube_server", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: any free port (default)")
    args = parser.parse_args(argv)

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await serve(args.host, args.port, stop)

    asyncio.run(run())


@dataclass
class EmulatorProcess:
    url: str
    pid: int


@contextlib.asynccontextmanager
async def emulator_process(log_path: Path, *, timeout: float = 30.0) -> AsyncIterator[EmulatorProcess]:
    """The emulator as a child process (stderr to `log_path`), serving before this yields;
    stopped with SIGTERM (then SIGKILL) at the end."""
    with open(log_path, "wb") as log:  # noqa: ASYNC230 - a local file, opened once
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.support.kube_server", "--port", "0",
            cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
            stdout=asyncio.subprocess.PIPE, stderr=log)
        try:
            assert proc.stdout is not None
            line = (await asyncio.wait_for(proc.stdout.readline(), timeout)).decode().split()
            if line[:1] != ["ready"]:
                raise RuntimeError(f"the emulator did not start (exit code {await proc.wait()}); see {log_path}")
            yield EmulatorProcess(url=line[1], pid=proc.pid)
        finally:
            if proc.returncode is None:
                proc.terminate()
                try:
                    await asyncio.wait_for(proc.wait(), 10)
                except TimeoutError:
                    proc.kill()
                    await proc.wait()


if __name__ == "__main__":
    main()
