"""A database outage is two lines in the control-plane log, not hundreds: one when the database
goes, one when it is back, and every loop backs off in between (issue 13, item 4)."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from durable.controlplane.migrator import migrate_url
from tests.support.controlplane import free_port, wait_serving
from tests.support.pg_control import embedded_available, restartable_postgres
from tests.support.postgres import create_database
from tests.support.processes import wait_for, worker_env

LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) (\w+) (\S+): (.*)$")


def records(path: Path) -> list[tuple[datetime, str, str, str]]:
    """(time, level, logger, message) of every log line (tracebacks count as lines of their own)."""
    out = []
    for line in path.read_text().splitlines():
        match = LINE.match(line)
        if match:
            stamp, level, name, message = match.groups()
            out.append((datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f"), level, name, message))
        else:
            out.append((datetime.min, "RAW", "", line))
    return out


async def health(address: str) -> int:
    async with grpc.aio.insecure_channel(address) as channel:
        try:
            reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=2)
        except grpc.aio.AioRpcError:
            return -1
        return int(reply.status)


@pytest.mark.skipif(bool(os.environ.get("DATABASE_URL")) or not embedded_available(),
                    reason="needs a PostgreSQL it can stop (DATABASE_URL names an external server)")
async def test_an_outage_is_one_line_going_and_one_line_back(tmp_path: Path) -> None:
    with restartable_postgres() as pg:
        name = await create_database(pg.admin_url, prefix="durable_outage")
        url = pg.url(name)
        await migrate_url(url)
        port = free_port()
        address = f"127.0.0.1:{port}"
        log_path, worker_log = tmp_path / "controlplane.log", tmp_path / "worker.log"
        env = {**os.environ, "DATABASE_URL": url, "GRPC_ADDRESS": address, "PYTHONUNBUFFERED": "1",
               "METRICS_PORT": "0", "DURABLE_LOG_LEVEL": "DEBUG", "REAPER_INTERVAL_SECONDS": "0.5",
               "METRICS_REFRESH_SECONDS": "0.5"}
        with open(log_path, "wb") as log, open(worker_log, "wb") as wlog:
            plane = subprocess.Popen([sys.executable, "-m", "durable.cli", "controlplane"], env=env,
                                     stdout=log, stderr=subprocess.STDOUT)
            # a worker long-polls throughout: its failing calls must not add a line each
            worker = subprocess.Popen([sys.executable, "-m", "durable.cli", "worker", "--app",
                                       "tests.support.apps:app"], env=worker_env(address, "w-outage"),
                                      stdout=wlog, stderr=subprocess.STDOUT)
            try:
                await wait_serving(address, timeout=60)
                before = len(records(log_path))
                await asyncio.to_thread(pg.stop, "fast")

                async def not_serving() -> bool:
                    return await health(address) == health_pb2.HealthCheckResponse.NOT_SERVING

                await wait_for(not_serving, 30, "NOT_SERVING")

                def timer_retries() -> list[datetime]:
                    return [t for t, level, _, message in records(log_path)[before:]
                            if level == "DEBUG" and message.startswith("timers: database still unreachable")]

                # the timer loop (0.5 s interval) retries with a doubling delay: 1, 2, 4 s ...
                await wait_for(lambda: len(timer_retries()) >= 3, 60, "three timer retries")
                stamps = timer_retries()
                gaps = [(b - a).total_seconds() for a, b in zip(stamps, stamps[1:], strict=False)]
                assert gaps[-1] >= 1.5, f"the timer loop does not back off: gaps {gaps}"

                await asyncio.to_thread(pg.start)
                await wait_serving(address, timeout=60)
                await wait_for(lambda: any(m == "database reachable again" for _, _, _, m in records(log_path)),
                               30, "the line saying the database is back")
                during = [r for r in records(log_path)[before:] if r[1] not in ("DEBUG",)]
                assert [(level, message.split(" (")[0]) for _, level, _, message in during] == [
                    ("ERROR", "database unreachable"),
                    ("INFO", "database reachable again"),
                ], "\n".join(f"{lvl} {n}: {m}" for _, lvl, n, m in during)
            finally:
                for proc in (worker, plane):
                    if proc.poll() is None:
                        proc.terminate()
                        try:
                            proc.wait(timeout=20)
                        except subprocess.TimeoutExpired:
                            proc.kill()
                            proc.wait()
