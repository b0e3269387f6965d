"""Simulated workers: many lightweight WorkerService clients in one process.

    python -m tests.bench.simworkers --address 127.0.0.1:9001 --count 250 --prefix p0

Each simulated worker is what a real worker does on the wire, without running user code:
its own gRPC channel (one HTTP/2 connection, like a worker process), RegisterWorker, a
WorkerHeartbeat every `--heartbeat-interval` s, and a loop of ClaimTasks (max_tasks=1,
long-poll `--wait` s) followed at once by CompleteTask for each task it got. Modes:

- `longpoll` (scale benchmark): records, per task, enqueue-to-claim latency
  (`time.time() - input.ts` when the ClaimTasks answer arrives);
- `busy` (reaper benchmark): ClaimTasks with wait 0 in a tight loop, recording every call's
  start time and duration, sleeping 5 ms when the queue is empty.

Protocol (JSON lines): prints {"ev": "ready"} once every worker registered; on "stop" on
stdin prints {"ev": "final", ...} and exits.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import threading
import time
from typing import Any

import grpc
from durable.proto.v1 import durable_pb2 as pb
from durable.proto.v1 import durable_pb2_grpc as pb_grpc

CHANNEL_OPTIONS = [
    ("grpc.keepalive_time_ms", 20_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
]


def emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


class Sim:
    def __init__(self, worker_id: str, stub: pb_grpc.WorkerServiceStub, types: list[str], record: dict[str, Any]) -> None:
        self.worker_id = worker_id
        self.stub = stub
        self.types = types
        self.record = record

    async def register(self) -> None:
        await self.stub.RegisterWorker(
            pb.RegisterWorkerRequest(worker_id=self.worker_id, worker_group="bench-sim",
                                     activity_types=self.types, max_concurrency=1, hostname="sim"),
            timeout=60,
        )

    async def heartbeats(self, interval: float) -> None:
        await asyncio.sleep(random.uniform(0, interval))
        while True:
            try:
                await self.stub.WorkerHeartbeat(
                    pb.WorkerHeartbeatRequest(worker_id=self.worker_id, current_load=0), timeout=30)
            except grpc.aio.AioRpcError:
                self.record["errors"] += 1
            await asyncio.sleep(interval)

    async def _complete(self, task: pb.Task) -> None:
        await self.stub.CompleteTask(
            pb.CompleteTaskRequest(worker_id=self.worker_id, task_id=task.id, attempt=task.attempt,
                                   result_json="{}"),
            timeout=30,
        )

    async def longpoll(self, wait: float) -> None:
        request = pb.ClaimTasksRequest(worker_id=self.worker_id, activity_types=self.types, max_tasks=1,
                                       wait_seconds=wait)
        while True:
            try:
                reply = await self.stub.ClaimTasks(request, timeout=wait + 30)
            except grpc.aio.AioRpcError as exc:
                self.record["errors"] += 1
                self.record["last_error"] = f"{exc.code().name}: {exc.details()}"
                await asyncio.sleep(0.5)
                continue
            now = time.time()
            for task in reply.tasks:
                ts = json.loads(task.input_json or "{}").get("ts")
                self.record["received"].append([task.id, task.attempt, (now - ts) if ts else None])
            for task in reply.tasks:
                try:
                    await self._complete(task)
                except grpc.aio.AioRpcError:
                    self.record["errors"] += 1

    async def busy(self) -> None:
        request = pb.ClaimTasksRequest(worker_id=self.worker_id, activity_types=self.types, max_tasks=1,
                                       wait_seconds=0)
        while True:
            t = time.time()
            t0 = time.perf_counter()
            try:
                reply = await self.stub.ClaimTasks(request, timeout=60)
            except grpc.aio.AioRpcError:
                self.record["errors"] += 1
                await asyncio.sleep(0.05)
                continue
            self.record["calls"].append([t, time.perf_counter() - t0, len(reply.tasks)])
            for task in reply.tasks:
                self.record["received"].append([task.id, task.attempt, None])
                await self._complete(task)
            if not reply.tasks:
                await asyncio.sleep(0.005)


async def amain(args: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def read_stdin() -> None:
        for line in sys.stdin:
            if line.strip() == "stop":
                break
        loop.call_soon_threadsafe(stop.set)

    threading.Thread(target=read_stdin, daemon=True).start()
    record: dict[str, Any] = {"received": [], "calls": [], "errors": 0, "last_error": ""}
    types = args.types.split(",")
    shared = grpc.aio.insecure_channel(args.address, options=CHANNEL_OPTIONS) if args.shared_channel else None
    sims = []
    for k in range(args.count):
        channel = shared or grpc.aio.insecure_channel(args.address, options=CHANNEL_OPTIONS)
        sims.append(Sim(f"{args.prefix}-{k}", pb_grpc.WorkerServiceStub(channel), types, record))
    for start in range(0, len(sims), 50):  # register in waves of 50
        await asyncio.gather(*(s.register() for s in sims[start:start + 50]))
    tasks = []
    for s in sims:
        tasks.append(asyncio.create_task(s.heartbeats(args.heartbeat_interval), name=f"hb-{s.worker_id}"))
        body = s.longpoll(args.wait) if args.mode == "longpoll" else s.busy()
        tasks.append(asyncio.create_task(body, name=f"claim-{s.worker_id}"))
    emit({"ev": "ready", "pid": os.getpid(), "count": len(sims)})
    await stop.wait()
    emit({"ev": "final", **record})
    sys.stdout.flush()
    os._exit(0)  # no orderly teardown of hundreds of channels: the benchmark is over


class SimProcess:
    """Driver side: one simulated-workers child process."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.ready = asyncio.Event()
        self.final: dict[str, Any] | None = None
        self._reader = asyncio.create_task(self._read(), name=f"simworkers-reader-{proc.pid}")

    @classmethod
    async def start(cls, address: str, count: int, prefix: str, *, log_path: str, mode: str = "longpoll",
                    types: str = "noop", wait: float = 10.0, shared_channel: bool = False) -> SimProcess:
        from tests.bench.harness import ROOT

        env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
        args = [sys.executable, "-m", "tests.bench.simworkers", "--address", address, "--count", str(count),
                "--prefix", prefix, "--mode", mode, "--types", types, "--wait", str(wait)]
        if shared_channel:
            args.append("--shared-channel")
        with open(log_path, "wb") as err:  # noqa: ASYNC230 - opening a local log file
            proc = await asyncio.create_subprocess_exec(
                *args, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=err,
                env=env, limit=1 << 28)
        return cls(proc)

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        try:
            while line := await self.proc.stdout.readline():
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                if event.get("ev") == "ready":
                    self.ready.set()
                elif event.get("ev") == "final":
                    self.final = event
        finally:
            self.ready.set()

    async def wait_ready(self, timeout: float) -> None:
        await asyncio.wait_for(self.ready.wait(), timeout)
        if self.proc.returncode is not None:
            raise RuntimeError(f"simulated workers exited during start-up (code {self.proc.returncode})")

    async def stop(self, timeout: float = 30.0) -> dict[str, Any]:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(b"stop\n")
            await self.proc.stdin.drain()
            await asyncio.wait_for(self._reader, timeout)
            await asyncio.wait_for(self.proc.wait(), timeout)
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            if self.proc.returncode is None:
                self.proc.kill()
                await self.proc.wait()
        return self.final or {"received": [], "calls": [], "errors": -1}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--address", required=True)
    ap.add_argument("--count", type=int, default=1)
    ap.add_argument("--prefix", default="sim")
    ap.add_argument("--types", default="noop")
    ap.add_argument("--mode", choices=("longpoll", "busy"), default="longpoll")
    ap.add_argument("--wait", type=float, default=10.0)
    ap.add_argument("--heartbeat-interval", type=float, default=10.0)
    ap.add_argument("--shared-channel", action="store_true", help="one channel for all (default: one each)")
    asyncio.run(amain(ap.parse_args()))


if __name__ == "__main__":
    main()
