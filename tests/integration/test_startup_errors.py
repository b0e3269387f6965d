"""Start-up fails fast and says why: a port in use, a database that is not there.

Every case runs the real `durable` command as a child process and reads what a user reads:
one line naming the setting, no traceback.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import grpc
import pytest

from tests.support.controlplane import control_plane_process, free_port, running_control_plane, wait_serving
from tests.support.processes import wait_for, worker_env


def durable(*args: str, env: dict[str, str], timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "durable.cli", *args], env=env, capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    """The refusal: stderr holds exactly one line and no traceback."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    assert len(lines) == 1, result.stderr
    return lines[0]


@contextmanager
def listening_socket() -> Iterator[int]:
    """A plain socket listening on 127.0.0.1 (the other process that took the port)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield int(s.getsockname()[1])


def base_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(PYTHONUNBUFFERED="1", **extra)
    return env


# -- item 1: a port in use ----------------------------------------------------------------------


async def test_a_second_control_plane_on_the_same_port_refuses_to_start(database_url: str) -> None:
    port = free_port()
    async with running_control_plane(database_url, address=f"127.0.0.1:{port}"):
        with control_plane_process(database_url, port=port) as (proc, _):
            assert proc.wait(timeout=60) == 2
            assert proc.stdout is not None
            out = proc.stdout.read().decode()
    assert "Traceback" not in out
    assert f"port {port} on 127.0.0.1 is already in use (GRPC_ADDRESS)" in out, out
    assert "Using Durable execution engine runner" not in out


async def test_the_control_plane_refuses_a_metrics_port_in_use(database_url: str) -> None:
    with listening_socket() as taken:
        result = durable("controlplane", env=base_env(
            DATABASE_URL=database_url, GRPC_ADDRESS=f"127.0.0.1:{free_port()}", METRICS_PORT=str(taken)))
    assert result.returncode == 2
    assert f"port {taken} on 0.0.0.0 is already in use (METRICS_PORT)" in one_line_error(result)


@pytest.mark.parametrize("variable", ["WORKER_HEALTH_PORT", "WORKER_METRICS_PORT"])
def test_a_worker_refuses_a_port_in_use(variable: str) -> None:
    with listening_socket() as taken:
        env = worker_env(f"127.0.0.1:{free_port()}", "w-port") | {variable: str(taken)}
        result = durable("worker", "--app", "tests.support.apps:app", env=env)
    assert result.returncode == 1
    assert f"Error: port {taken} on 0.0.0.0 is already in use ({variable})" in one_line_error(result)


async def test_durable_dev_refuses_a_port_in_use(database_url: str) -> None:
    with listening_socket() as taken:
        result = durable("dev", "--serve", "--port", str(taken), "--health-port", "0",
                         env=base_env(DATABASE_URL=database_url))
    assert result.returncode == 2
    assert f"port {taken} on 127.0.0.1 is already in use (--port)" in one_line_error(result)


async def test_a_port_freed_by_a_stopped_control_plane_can_be_used_again(database_url: str) -> None:
    port = free_port()
    async with running_control_plane(database_url, address=f"127.0.0.1:{port}"):
        pass
    with control_plane_process(database_url, port=port) as (_proc, address):
        await wait_serving(address)


# -- item 3: a database that is not there -------------------------------------------------------


def _with(url: str, *, user: str | None = None, password: str | None = None, database: str | None = None,
          host: str | None = None) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    if host is not None:
        query["host"] = host
    current_user = parts.username or "postgres"
    netloc = f"{user or current_user}:{password or ''}@{parts.netloc.rpartition('@')[2]}"
    path = "/" + database if database is not None else parts.path
    return urlunsplit((parts.scheme, netloc, path, urlencode(query, safe="/"), ""))


@pytest.mark.parametrize("command", [("migrate",), ("controlplane",), ("dev", "--port", "0", "--health-port", "0")],
                         ids=["migrate", "controlplane", "dev"])
@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"database": "no_such_db"}, 'database "no_such_db" does not exist; create it'),
        ({"user": "nobody"}, 'role "nobody" does not exist; check the user'),
        ({"host": "/nonexistent/socket-dir"}, "no PostgreSQL socket at /nonexistent/socket-dir/.s.PGSQL.5432; "
                                              "check the socket directory"),
    ],
    ids=["database", "user", "socket-dir"],
)
def test_a_wrong_database_url_is_one_line_naming_it(
    pg_admin_url: str, command: tuple[str, ...], change: dict[str, str], expected: str
) -> None:
    url = _with(pg_admin_url, password="s3cret-pw", **change)
    result = durable(*command, env=base_env(DATABASE_URL=url, GRPC_ADDRESS=f"127.0.0.1:{free_port()}"))
    assert result.returncode in (1, 2), result.stderr
    line = one_line_error(result)
    assert "cannot connect to PostgreSQL at DATABASE_URL=postgresql://" in line, line
    assert expected in line, line
    assert "s3cret-pw" not in result.stderr + result.stdout
    assert ":***@" in line


# -- item 2: a worker that cannot reach the control plane ----------------------------------------


async def _health(port: int) -> int:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
        return int(reply.status)


async def test_a_worker_says_once_that_it_cannot_reach_the_control_plane_and_retries(
    database_url: str, tmp_path: Path
) -> None:
    from grpc_health.v1 import health_pb2

    port = free_port()
    address = f"127.0.0.1:{port}"
    env = worker_env(address, "w-unreachable", DURABLE_LOG_LEVEL="DEBUG", DURABLE_RECONNECT_MAX_BACKOFF="0.2")
    log_path = tmp_path / "worker.log"

    def lines(text: str) -> list[str]:
        return [line for line in log_path.read_text().splitlines() if text in line]

    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "durable.cli", "worker", "--app", "tests.support.apps:app"],
                                env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            attempt = f"cannot reach the control plane at {address}: UNAVAILABLE"
            # several attempts have failed (they log at DEBUG once the reason is known) ...
            await wait_for(lambda: len(lines(attempt)) >= 5, 30, "five failed registrations")
            warnings = [line for line in lines(attempt) if " WARNING " in line]
            # ... and the user was told once, with the reason and the delay
            assert len(warnings) == 1, warnings
            assert "Connection refused; retrying in " in warnings[0]
            health_port = int(env["WORKER_HEALTH_PORT"])
            assert await _health(health_port) == health_pb2.HealthCheckResponse.NOT_SERVING

            async with running_control_plane(database_url, address=address):
                await wait_for(lambda: lines(f"connected to the control plane at {address}"), 30, "the connect line")
                assert await wait_for(lambda: _is_serving(health_port), 30, "worker SERVING")
                proc.send_signal(signal.SIGTERM)
                assert await asyncio.to_thread(proc.wait, 30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


async def _is_serving(port: int) -> bool:
    from grpc_health.v1 import health_pb2

    return await _health(port) == health_pb2.HealthCheckResponse.SERVING
