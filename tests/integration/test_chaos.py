"""Fault injection with real processes: a control plane, worker processes and a PostgreSQL that
are killed and restarted while several hundred workflows run.

The chaos run checks the engine's guarantees after the fact, from the database and from the
record every activity run leaves (tests/support/chaos_app.py): every workflow ends, no task
is lost, every step is scheduled once and exactly one attempt's outcome is accepted, the
histories have no duplicated or missing sequence numbers, and every failure is in the
dead-letter queue with its history. Activities run at least once: the re-runs are counted.

Chaos moments come from a seeded RNG (DURABLE_CHAOS_SEED; DURABLE_CHAOS_WORKFLOWS sets the
size) and are tied to progress (a fraction of the activities done), so they spread over the
run however fast the machine is; the test must pass whatever they are.

With DATABASE_URL set (an external server the test cannot restart) the run uses it and skips
only the PostgreSQL restart; the database-loss test needs a server it can stop and is skipped.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from durable.client import Client
from durable.common.errors import DurableError
from durable.controlplane.migrator import migrate_url
from durable.proto.v1 import durable_pb2 as pb
from durable.proto.v1 import durable_pb2_grpc as pb_grpc
from tests.support.controlplane import free_port, wait_serving
from tests.support.pg_control import RestartablePostgres, embedded_available, restartable_postgres
from tests.support.postgres import create_database, drop_database, with_database
from tests.support.processes import ROOT, wait_for, worker_env

SEED = int(os.environ.get("DURABLE_CHAOS_SEED", "20261124"))
WORKFLOWS = int(os.environ.get("DURABLE_CHAOS_WORKFLOWS", "500"))
WORKERS = 4
OPEN_WORKFLOWS = 40  # workflows running at once
WORKER_KILLS = 8
WORKER_PAUSES = 3  # SIGSTOP for longer than the reaper's threshold, then SIGCONT: late reports
APP = "tests.support.chaos_app:app"
TERMINAL = ("completed", "failed", "cancelled")
STALL_TIMEOUT = 90.0  # seconds without any activity finishing before the run is declared stuck

CONTROL_PLANE_ENV = {
    "REAPER_INTERVAL_SECONDS": "0.5",
    "REAPER_STALE_AFTER_SECONDS": "2",
    "REAPER_WORKER_LOST_AFTER_SECONDS": "3",
    # Outages make every in-flight task stale at once; the poison guard is for tasks that
    # kill their workers, which no chaos step does.
    "REAPER_MAX_RECLAIMS": "25",
}
WORKER_ENV = {
    "MAX_CONCURRENT_TASKS": "10",
    "DURABLE_TASK_HEARTBEAT_INTERVAL": "0.5",
    "DURABLE_WORKER_HEARTBEAT_INTERVAL": "0.5",
    "DURABLE_CLAIM_WAIT": "2",
    "DURABLE_RPC_TIMEOUT": "5",
    "DURABLE_RECONNECT_INITIAL_BACKOFF": "0.05",
    "DURABLE_RECONNECT_MAX_BACKOFF": "0.5",
    "DURABLE_DRAIN_GRACE_PERIOD": "1",
}


# -- the dedicated PostgreSQL ------------------------------------------------------------------


@dataclass
class ChaosDatabase:
    url: str
    pg: RestartablePostgres | None  # None: DATABASE_URL, a server this test cannot restart


@asynccontextmanager
async def chaos_database() -> AsyncIterator[ChaosDatabase]:
    external = os.environ.get("DATABASE_URL")
    if external:
        name = await create_database(external, prefix="durable_chaos")
        url = with_database(external, name)
        try:
            await migrate_url(url)
            yield ChaosDatabase(url, None)
        finally:
            await drop_database(external, name)
        return
    with restartable_postgres() as pg:
        name = await create_database(pg.admin_url, prefix="durable_chaos")
        url = with_database(pg.admin_url, name)
        await migrate_url(url)
        yield ChaosDatabase(url, pg)


# -- processes ----------------------------------------------------------------------------------


@dataclass
class Cluster:
    """The control plane and the worker processes of one run, each logging to a file."""

    database_url: str
    log_dir: Path
    record: Path
    port: int = field(default_factory=free_port)
    control_plane: subprocess.Popen[bytes] | None = None
    workers: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    health_ports: dict[str, int] = field(default_factory=dict)
    _logs: list[Any] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _log(self, name: str) -> Any:
        log = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 - closed in close()
        self._logs.append(log)
        return log

    def start_control_plane(self, **extra: str) -> None:
        env = {**os.environ, "DATABASE_URL": self.database_url, "GRPC_ADDRESS": self.address,
               "PYTHONUNBUFFERED": "1", **CONTROL_PLANE_ENV, **extra}
        self.control_plane = subprocess.Popen(
            [sys.executable, "-m", "durable.cli", "controlplane"],
            env=env, stdout=self._log("controlplane"), stderr=subprocess.STDOUT,
        )

    async def stop_control_plane(self, sig: signal.Signals) -> int:
        proc = self.control_plane
        assert proc is not None
        proc.send_signal(sig)
        return await asyncio.to_thread(proc.wait, 60)

    def start_worker(self, worker_id: str) -> None:
        env = worker_env(self.address, worker_id, DURABLE_CHAOS_RECORD=str(self.record), **WORKER_ENV)
        self.health_ports[worker_id] = int(env["WORKER_HEALTH_PORT"])
        self.workers[worker_id] = subprocess.Popen(
            [sys.executable, "-m", "durable.cli", "worker", "--app", APP],
            env=env, stdout=self._log(worker_id), stderr=subprocess.STDOUT, cwd=ROOT,
        )

    async def kill_worker(self, worker_id: str) -> None:
        proc = self.workers.pop(worker_id)
        proc.send_signal(signal.SIGKILL)
        await asyncio.to_thread(proc.wait, 30)

    def note(self, text: str) -> None:
        """Log a chaos event (tmp_path/chaos.log), to read next to the processes' logs."""
        with open(self.log_dir / "chaos.log", "a") as f:
            f.write(f"{time.strftime('%H:%M:%S')}.{int(time.time() * 1000) % 1000:03d} {text}\n")

    def pause_worker(self, worker_id: str, paused: bool) -> subprocess.Popen[bytes]:
        proc = self.workers[worker_id]
        proc.send_signal(signal.SIGSTOP if paused else signal.SIGCONT)
        return proc

    async def pause_for(self, worker_id: str, seconds: float) -> None:
        """SIGSTOP the worker, SIGCONT it `seconds` later (unless it was killed meanwhile)."""
        proc = self.pause_worker(worker_id, True)
        self.note(f"paused {worker_id}")
        try:
            await asyncio.sleep(seconds)  # the length of the freeze, not a synchronisation
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
                self.note(f"resumed {worker_id}")

    async def stop_all(self) -> dict[str, int | None]:
        """SIGTERM everything (workers first); returns the exit codes."""
        codes: dict[str, int | None] = {}
        for worker_id in self.workers:  # a worker still starting up has no SIGTERM handler yet
            await wait_worker_serving(self.health_ports[worker_id], worker_id)
        for worker_id, proc in self.workers.items():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for worker_id, proc in self.workers.items():
            codes[worker_id] = await asyncio.to_thread(_wait_or_kill, proc, 30)
        if self.control_plane is not None and self.control_plane.poll() is None:
            self.control_plane.send_signal(signal.SIGTERM)
            codes["controlplane"] = await asyncio.to_thread(_wait_or_kill, self.control_plane, 30)
        return codes

    def close(self) -> None:
        for proc in [*self.workers.values(), self.control_plane]:
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
        for log in self._logs:
            log.close()

    def check_alive(self) -> None:
        """Fail at once (with its log) when a process died without being told to."""
        procs = {"controlplane": self.control_plane, **self.workers}
        for name, proc in procs.items():
            if proc is not None and proc.poll() is not None:
                raise AssertionError(f"{name} exited on its own with {proc.returncode}:\n{self.tail(name)}")

    def tail(self, name: str, lines: int = 40) -> str:
        path = self.log_dir / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


async def wait_worker_serving(port: int, worker_id: str, timeout: float = 60.0) -> None:
    async def serving() -> bool:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            try:
                reply = await health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(service=""), timeout=1)
            except grpc.aio.AioRpcError:
                return False
            return reply.status == health_pb2.HealthCheckResponse.SERVING  # type: ignore[no-any-return]

    await wait_for(serving, timeout, f"worker {worker_id} to report SERVING", interval=0.1)


def _wait_or_kill(proc: subprocess.Popen[bytes], timeout: float) -> int | None:
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return None


@contextmanager
def cluster(database_url: str, tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(database_url, tmp_path, tmp_path / "records.jsonl")
    try:
        yield c
    finally:
        c.close()


class RecordTail:
    """Reads the activities' record file incrementally."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.lines: list[dict[str, Any]] = []
        self.ends = 0
        self._partial = b""

    def poll(self) -> int:
        if self.path.exists():
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
            self.offset += len(data)
            data = self._partial + data
            *complete, self._partial = data.split(b"\n")
            for raw in complete:
                if raw.strip():
                    line = json.loads(raw)
                    self.lines.append(line)
                    self.ends += line["phase"] == "end"
        return self.ends

    def seen(self, workflow: str, phase: str) -> bool:
        self.poll()
        return any(r["workflow"] == workflow and r["phase"] == phase for r in self.lines)


# -- the plans ----------------------------------------------------------------------------------


def make_plans(rng: random.Random, count: int) -> list[dict[str, Any]]:
    """Workflows of 3..8 steps in stages of 1..3 parallel steps; a few carry a fatal step."""
    plans = []
    for w in range(count):
        steps_left = rng.randint(3, 8)
        stages: list[list[dict[str, Any]]] = []
        n = 0
        while steps_left:
            width = min(steps_left, rng.choice((1, 1, 1, 2, 2, 3)))
            stage = []
            for _ in range(width):
                slow = rng.random() < 0.15  # in flight long enough to be hit by a kill
                stage.append({
                    "id": f"s{len(stages)}-{n}",
                    "type": "chaos_sync" if rng.random() < 0.3 else "chaos_async",
                    "value": rng.randint(1, 1000),
                    "work_ms": rng.randint(300, 1500) if slow else rng.randint(10, 200),
                    "fail_times": rng.choice((1, 1, 2)) if rng.random() < 0.12 else 0,
                    "fatal": False,
                })
                n += 1
            stages.append(stage)
            steps_left -= width
        if rng.random() < 0.03:
            fatal_stage = rng.randrange(len(stages))
            rng.choice(stages[fatal_stage])["fatal"] = True
        plans.append({"id": f"chaos-{w:04d}", "stages": stages})
    return plans


def reachable_steps(plan: dict[str, Any]) -> list[dict[str, Any]]:
    """The steps that get scheduled: every stage up to and including the one with a fatal step."""
    out: list[dict[str, Any]] = []
    for stage in plan["stages"]:
        out.extend(stage)
        if any(s["fatal"] for s in stage):
            break
    return out


# -- the run ------------------------------------------------------------------------------------


@dataclass
class ChaosReport:
    kills: int = 0
    pauses: int = 0
    cp_restarts: int = 0
    pg_restarts: int = 0
    notes: list[str] = field(default_factory=list)


async def wait_progress(
    c: Cluster, tail: RecordTail, target: int, what: str, feeding: asyncio.Task[None]
) -> None:
    """Wait until `target` activity runs ended; fail when nothing ends for STALL_TIMEOUT s."""
    loop = asyncio.get_running_loop()
    last, since = tail.poll(), loop.time()
    while tail.poll() < target:
        c.check_alive()
        if feeding.done():
            feeding.result()  # raises what stopped the feeder
        if tail.ends != last:
            last, since = tail.ends, loop.time()
        elif loop.time() - since > STALL_TIMEOUT:
            raise AssertionError(f"no activity finished for {STALL_TIMEOUT:.0f} s while waiting for {what} "
                                 f"({tail.ends}/{target} runs ended)")
        await asyncio.sleep(0.05)


async def count_open_workflows(url: str) -> int:
    """Workflows not yet ended; -1 while the database is away."""
    try:
        conn = await asyncpg.connect(url, timeout=5)
        try:
            return int(await conn.fetchval(
                "SELECT count(*) FROM durable_workflow_instances "
                "WHERE status NOT IN ('completed', 'failed', 'cancelled')"))
        finally:
            await conn.close(timeout=5)
    except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
        return -1


class Feeder:
    """Keeps about `open_target` workflows running: starts the next ones as others end, through
    the control plane, retrying (with the same workflow ids) while it or the database is away.
    A small backlog means a task taken back from a worker is soon claimed elsewhere, which is
    when a late report from the first worker would do harm."""

    def __init__(self, address: str, url: str, plans: list[dict[str, Any]], open_target: int) -> None:
        self.address = address
        self.url = url
        self.plans = plans
        self.open_target = open_target
        self.started = 0

    async def run(self) -> None:
        async with Client(self.address, timeout=10) as client:
            while self.started < len(self.plans):
                open_now = await count_open_workflows(self.url)
                batch = self.plans[self.started:self.started + max(self.open_target - open_now, 0)]
                if open_now >= 0 and batch:
                    try:
                        await asyncio.gather(*(
                            client.start_workflow("chaos_flow", {"stages": p["stages"]}, workflow_id=p["id"])
                            for p in batch))
                        self.started += len(batch)
                    except DurableError:  # Unavailable while the control plane restarts
                        pass
                await asyncio.sleep(0.1)


async def run_chaos(db: ChaosDatabase, c: Cluster, plans: list[dict[str, Any]], rng: random.Random) -> ChaosReport:
    report = ChaosReport()
    tail = RecordTail(c.record)
    c.start_control_plane()
    await wait_serving(c.address, timeout=60)
    for i in range(WORKERS):
        c.start_worker(f"chaos-w{i}")
    feeder = Feeder(c.address, db.url, plans, OPEN_WORKFLOWS)
    feeding = asyncio.create_task(feeder.run(), name="chaos-feeder")
    try:
        await inject_faults(db, c, plans, rng, tail, feeding, report)
        await wait_all_ended(db, c, tail, feeding)
    finally:
        if not feeding.done():
            feeding.cancel()
        await asyncio.gather(feeding, return_exceptions=True)
    codes = await c.stop_all()
    assert all(code == 0 for code in codes.values()), f"exit codes after SIGTERM: {codes}"
    return report


async def inject_faults(
    db: ChaosDatabase, c: Cluster, plans: list[dict[str, Any]], rng: random.Random, tail: RecordTail,
    feeding: asyncio.Task[None], report: ChaosReport,
) -> None:
    """The chaos events, each at a random fraction of the activities done."""
    slots = {f"w{i}": f"chaos-w{i}" for i in range(WORKERS)}
    total = sum(len(reachable_steps(p)) for p in plans)
    events: list[tuple[float, str]] = [(rng.uniform(0.03, 0.85), "kill_worker") for _ in range(WORKER_KILLS)]
    events += [(rng.uniform(0.05, 0.8), "pause_worker") for _ in range(WORKER_PAUSES)]
    events += [(rng.uniform(0.15, 0.35), "cp_sigterm"), (rng.uniform(0.40, 0.60), "cp_sigkill")]
    if db.pg is not None:
        events.append((rng.uniform(0.6, 0.8), "pg_restart"))
    else:
        report.notes.append("PostgreSQL restart skipped: DATABASE_URL names a server this test cannot restart")
    replacements = 0
    pauses: list[asyncio.Task[None]] = []
    try:
        for fraction, what in sorted(events):
            await wait_progress(c, tail, int(fraction * total), what, feeding)
            await asyncio.sleep(rng.uniform(0, 0.25))  # a random moment, not a synchronisation
            c.note(f"{what} at {tail.ends}/{total} runs ended")
            if what == "kill_worker":
                slot = rng.choice(sorted(slots))
                victim = slots[slot]
                await c.kill_worker(victim)
                report.kills += 1
                replacements += 1
                # Half the replacements come back under the same id (a restarted pod of a
                # StatefulSet), half under a new one (a new pod of a Deployment).
                slots[slot] = slots[slot] if rng.random() < 0.5 else f"chaos-{slot}-r{replacements}"
                c.start_worker(slots[slot])
                c.note(f"killed {victim}, started {slots[slot]}")
            elif what == "pause_worker":
                # A frozen worker (a long GC pause, a partition): its tasks are taken back and
                # run elsewhere; when it wakes up, its reports are late and must be refused.
                # The freeze (longer than the reaper's stale_after) overlaps the next events.
                worker_id = slots[rng.choice(sorted(slots))]
                pauses.append(asyncio.create_task(
                    c.pause_for(worker_id, rng.uniform(3.0, 4.5)), name=f"chaos-pause-{worker_id}"))
                report.pauses += 1
            elif what in ("cp_sigterm", "cp_sigkill"):
                sig = signal.SIGTERM if what == "cp_sigterm" else signal.SIGKILL
                code = await c.stop_control_plane(sig)
                assert code == (0 if sig == signal.SIGTERM else -signal.SIGKILL), (
                    f"control plane exit code {code} after {sig.name}:\n{c.tail('controlplane')}")
                await asyncio.sleep(rng.uniform(0, 1.0))  # how long it stays away
                c.start_control_plane()
                await wait_serving(c.address, timeout=60)
                c.note("control plane serving")
                report.cp_restarts += 1
            else:
                assert db.pg is not None
                await asyncio.to_thread(db.pg.stop, "immediate")  # a crash: WAL recovery on start
                await asyncio.sleep(rng.uniform(1.0, 3.0))  # the outage
                await asyncio.to_thread(db.pg.start)
                c.note("postgres started")
                report.pg_restarts += 1
    finally:
        await asyncio.gather(*pauses)


async def wait_all_ended(db: ChaosDatabase, c: Cluster, tail: RecordTail, feeding: asyncio.Task[None]) -> None:
    """Until every workflow is started and ended; fail when nothing moves for STALL_TIMEOUT s."""
    loop = asyncio.get_running_loop()
    last_ends, since = tail.poll(), loop.time()
    while not feeding.done() or await count_open_workflows(db.url) != 0:
        c.check_alive()
        if feeding.done():
            feeding.result()  # raises what stopped the feeder
        if tail.poll() != last_ends:
            last_ends, since = tail.ends, loop.time()
        elif loop.time() - since > STALL_TIMEOUT:
            raise AssertionError(
                f"workflows still open and no activity finished for {STALL_TIMEOUT:.0f} s\n"
                f"control plane log:\n{c.tail('controlplane')}")
        await asyncio.sleep(0.2)


# -- the checks ---------------------------------------------------------------------------------


@dataclass
class Findings:
    lost: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    wrong: list[str] = field(default_factory=list)
    reruns: int = 0
    activities: int = 0


def by_workflow(rows: list[asyncpg.Record]) -> dict[str, list[asyncpg.Record]]:
    out: dict[str, list[asyncpg.Record]] = defaultdict(list)
    for r in rows:
        out[r["workflow_id"]].append(r)
    return out


async def check_outcome(url: str, plans: list[dict[str, Any]], records: list[dict[str, Any]]) -> Findings:
    f = Findings()
    conn = await asyncpg.connect(url)
    try:
        workflows = {r["id"]: r for r in await conn.fetch("SELECT * FROM durable_workflow_instances")}
        events = by_workflow(await conn.fetch(
            "SELECT workflow_id, sequence_num, event_type, event_data FROM durable_workflow_events "
            "ORDER BY workflow_id, sequence_num"))
        tasks = await conn.fetch("SELECT * FROM durable_task_queue")
        dlq = await conn.fetch("SELECT * FROM durable_dead_letter_queue")
        dup_seq = await conn.fetch(
            "SELECT workflow_id, sequence_num, count(*) AS n FROM durable_workflow_events "
            "GROUP BY 1, 2 HAVING count(*) > 1")
    finally:
        await conn.close()

    f.duplicated += [f"{r['workflow_id']}: sequence_num {r['sequence_num']} appears {r['n']} times" for r in dup_seq]
    open_tasks = [t for t in tasks if t["status"] in ("pending", "claimed")]
    f.lost += [f"task {t['id']} ({t['kind']} {t['workflow_id']}/{t['activity_id']}) left {t['status']}"
               for t in open_tasks]
    tasks_of = by_workflow([t for t in tasks if t["kind"] == "activity"])
    decisions_of = by_workflow([t for t in tasks if t["kind"] == "workflow"])
    runs = {(r["workflow"], r["activity_id"], r["attempt"], r["phase"]): r for r in records}

    for plan in plans:
        wid = plan["id"]
        wf = workflows.get(wid)
        if wf is None:
            f.lost.append(f"{wid}: never started")
            continue
        steps = reachable_steps(plan)
        f.activities += len(steps)
        fatal = [s["id"] for s in steps if s["fatal"]]
        history = events.get(wid, [])
        seqs = [e["sequence_num"] for e in history]
        if seqs != list(range(1, wf["last_event_seq"] + 1)):
            f.wrong.append(f"{wid}: sequence numbers {seqs} do not run 1..{wf['last_event_seq']}")
        if wf["decided_through_seq"] != wf["last_event_seq"]:
            f.wrong.append(f"{wid}: decided through {wf['decided_through_seq']} of {wf['last_event_seq']} events")
        if wf["status"] not in TERMINAL:
            f.lost.append(f"{wid}: still {wf['status']}")
            continue
        data = [(e["sequence_num"], e["event_type"], json.loads(e["event_data"])) for e in history]
        scheduled = [d["activity_id"] for _, t, d in data if t == "ActivityScheduled"]
        ends = Counter(d["activity_id"] for _, t, d in data if t in ("ActivityCompleted", "ActivityFailed"))
        for aid, n in Counter(scheduled).items():
            if n > 1:
                f.duplicated.append(f"{wid}: {aid} scheduled {n} times")
        for aid, n in ends.items():
            if n > 1:
                f.duplicated.append(f"{wid}: {aid} has {n} accepted outcomes")
        terminal_events = [t for _, t, _ in data if t in ("WorkflowCompleted", "WorkflowFailed", "WorkflowCancelled")]
        if len(terminal_events) != 1 or data[-1][1] != terminal_events[0]:
            f.wrong.append(f"{wid}: terminal events {terminal_events}, last event {data[-1][1]}")
        # Stage by stage, in the plan's order: a stage is scheduled only after the previous ended.
        expected_order = [s["id"] for s in steps]
        if list(dict.fromkeys(scheduled)) != expected_order:
            f.wrong.append(f"{wid}: scheduled {scheduled}, planned {expected_order}")
        seq_of = {(t, d.get("activity_id")): s for s, t, d in data}
        for before, after in zip(plan["stages"], plan["stages"][1:], strict=False):
            done = max((seq_of.get(("ActivityCompleted", s["id"]), 0) for s in before), default=0)
            for s in after:
                at = seq_of.get(("ActivityScheduled", s["id"]))
                if at is not None and at < done:
                    f.wrong.append(f"{wid}: {s['id']} scheduled at {at} before its previous stage ended at {done}")
        # Task rows: one per scheduled step, and its state agrees with the history.
        rows = {t["activity_id"]: t for t in tasks_of.get(wid, [])}
        if len(rows) != len(tasks_of.get(wid, [])):
            f.duplicated.append(f"{wid}: {len(tasks_of[wid])} task rows for {len(rows)} steps")
        for aid in scheduled:
            task = rows.get(aid)
            completed = [d for _, t, d in data if t == "ActivityCompleted" and d["activity_id"] == aid]
            failed = [d for _, t, d in data if t == "ActivityFailed" and d["activity_id"] == aid]
            if task is None:
                f.lost.append(f"{wid}: {aid} scheduled without a task row")
                continue
            if completed:
                event = completed[0]
                result = event["result"]
                if task["status"] != "completed" or task["attempt"] != event["attempt"] or result["attempt"] != event["attempt"]:
                    f.wrong.append(f"{wid}: {aid} completion of attempt {event['attempt']} (result says "
                                   f"{result['attempt']}) but the task is {task['status']} at attempt {task['attempt']}")
                run = runs.get((wid, aid, event["attempt"], "end"))
                if run is None or run["outcome"] != "ok" or (run["worker"], run["pid"]) != (result["worker"], result["pid"]):
                    f.wrong.append(f"{wid}: {aid} accepted attempt {event['attempt']} from {result['worker']} "
                                   f"pid {result['pid']}, but that run recorded {run}")
            elif failed:
                if task["status"] != "dead":
                    f.wrong.append(f"{wid}: {aid} has ActivityFailed but its task is {task['status']}")
            elif wf["status"] == "completed":
                f.lost.append(f"{wid}: {aid} never finished in a completed workflow")
            elif task["status"] != "cancelled":
                f.lost.append(f"{wid}: {aid} neither finished nor cancelled ({task['status']})")
        # The outcome the plan calls for.
        if fatal:
            failed_ids = [d["activity_id"] for _, t, d in data if t == "ActivityFailed"]
            error = json.loads(wf["error"]) if wf["error"] else {}
            if wf["status"] != "failed" or failed_ids != fatal or error.get("type") != "ChaosFatal":
                f.wrong.append(f"{wid}: expected to fail on {fatal}; status {wf['status']}, failed steps "
                               f"{failed_ids}, error {error}")
        else:
            expected = {"total": sum(s["value"] for s in steps), "steps": len(steps)}
            result = json.loads(wf["result"]) if wf["result"] else None
            if wf["status"] != "completed" or result != expected:
                f.wrong.append(f"{wid}: expected completed with {expected}; got {wf['status']} {result} "
                               f"{wf['error']}")
        for d in decisions_of.get(wid, []):
            if d["status"] not in ("completed", "cancelled"):
                f.wrong.append(f"{wid}: decision task {d['id']} ended {d['status']}: {d['last_error']}")

    # The dead-letter queue holds exactly the dead tasks, each with its error history.
    dead = {t["id"]: t for t in tasks if t["status"] == "dead"}
    entries = Counter(e["original_task_id"] for e in dlq)
    for task_id, task in dead.items():
        if entries[task_id] != 1:
            f.wrong.append(f"dead task {task_id} ({task['workflow_id']}/{task['activity_id']}) has "
                           f"{entries[task_id]} DLQ rows")
    for e in dlq:
        if e["original_task_id"] not in dead:
            f.wrong.append(f"DLQ row {e['id']} points at a task that is not dead")
        if not json.loads(e["error_history"]):
            f.wrong.append(f"DLQ row {e['id']} ({e['workflow_id']}/{e['activity_id']}) has no error history")
    fatal_steps = {(p["id"], s["id"]) for p in plans for s in reachable_steps(p) if s["fatal"]}
    dead_steps = {(t["workflow_id"], t["activity_id"]) for t in dead.values()}
    if dead_steps != fatal_steps:
        reasons = {(e["workflow_id"], e["activity_id"]): (e["reason"], e["last_error"]) for e in dlq}
        f.wrong.append(f"dead steps differ from the fatal ones: unexpected "
                       f"{[(k, reasons.get(k)) for k in dead_steps - fatal_steps]}, missing {fatal_steps - dead_steps}")

    # Re-runs: runs that were neither the accepted completion nor a failure the step raised.
    accepted = sum(1 for t in tasks if t["kind"] == "activity" and t["status"] == "completed")
    raised = sum(1 for r in records if r["phase"] == "end" and r["outcome"] != "ok")
    started = sum(1 for r in records if r["phase"] == "start")
    f.reruns = started - accepted - raised
    return f


def emit(request: pytest.FixtureRequest, record_property: Any, key: str, line: str) -> None:
    """Show a line in the terminal whatever the capture mode, and in the JUnit report."""
    record_property(key, line)
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    with capture.global_and_fixture_disabled() if capture is not None else nullcontext():
        if reporter is not None:
            reporter.write_line(line)
        else:
            print(line, flush=True)


async def test_chaos_run_loses_and_duplicates_nothing(
    tmp_path: Path, request: pytest.FixtureRequest, record_property: Any
) -> None:
    """Several hundred workflows on 4 worker processes, SIGKILLed 8 times (and replaced) and
    frozen 3 times, a control plane stopped with SIGTERM and with SIGKILL, PostgreSQL crashed
    (immediate stop) and started again; then the history is checked step by step."""
    rng = random.Random(SEED)
    plans = make_plans(rng, WORKFLOWS)
    started = time.monotonic()
    async with chaos_database() as db:
        with cluster(db.url, tmp_path) as c:
            report = await run_chaos(db, c, plans, rng)
        records = RecordTail(c.record)
        records.poll()
        findings = await check_outcome(db.url, plans, records.lines)
    line = (f"chaos: workflows={len(plans)} activities={findings.activities} kills={report.kills} "
            f"cp_restarts={report.cp_restarts} pg_restarts={report.pg_restarts} reruns={findings.reruns} "
            f"lost={len(findings.lost)} duplicated={len(findings.duplicated)}")
    emit(request, record_property, "chaos", line)
    emit(request, record_property, "chaos_run", f"chaos: seed={SEED} pauses={report.pauses} seconds={time.monotonic() - started:.1f} "
                                   + " ".join(report.notes))
    problems = findings.lost + findings.duplicated + findings.wrong
    assert not problems, f"{len(problems)} problems, first 30:\n" + "\n".join(problems[:30])
    assert report.kills == WORKER_KILLS and report.pauses == WORKER_PAUSES and report.cp_restarts == 2
    assert report.pg_restarts == (1 if db.pg is not None else 0)
    assert findings.reruns >= 0


# -- the database goes away ---------------------------------------------------------------------


def step(step_id: str, value: int, work_ms: int = 10) -> dict[str, Any]:
    return {"id": step_id, "type": "chaos_async", "value": value, "work_ms": work_ms, "fail_times": 0, "fatal": False}


async def health_status(address: str) -> int | None:
    async with grpc.aio.insecure_channel(address) as channel:
        try:
            reply = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service="durable.v1.WorkerService"), timeout=2)
        except grpc.aio.AioRpcError:
            return None
        return reply.status  # type: ignore[no-any-return]


async def unavailable(address: str, method: str, request: Any, service: str = "ClientService") -> str:
    """Call `method` and return the details of the UNAVAILABLE it must fail with."""
    async with grpc.aio.insecure_channel(address) as channel:
        stub = (pb_grpc.ClientServiceStub if service == "ClientService" else pb_grpc.WorkerServiceStub)(channel)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await getattr(stub, method)(request, timeout=10)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE, (method, caught.value.code(), caught.value.details())
    return caught.value.details() or ""


@pytest.mark.skipif(bool(os.environ.get("DATABASE_URL")) or not embedded_available(),
                    reason="needs a PostgreSQL it can stop (DATABASE_URL names an external server)")
async def test_control_plane_rides_out_losing_its_database(tmp_path: Path) -> None:
    """PostgreSQL stops under a running control plane and worker: health turns NOT_SERVING,
    calls fail with UNAVAILABLE and say why, the worker keeps running and keeps its result;
    when the database returns, everything resumes by itself and the same worker process
    delivers the result and does new work."""
    async with chaos_database() as db:
        assert db.pg is not None
        with cluster(db.url, tmp_path) as c:
            # A slow reaper: the in-flight step must be delivered by its worker, not re-run.
            c.start_control_plane(REAPER_STALE_AFTER_SECONDS="60")
            await wait_serving(c.address, timeout=60)
            c.start_worker("steady")
            worker = c.workers["steady"]
            tail = RecordTail(c.record)
            async with Client(c.address, timeout=10) as client:
                first, _ = await client.start_workflow("chaos_flow", {"stages": [[step("a", 1)], [step("b", 2)]]})
                assert (await client.wait_workflow(first, timeout=60)).status == "completed"

                # A step runs while the database goes away; it finishes during the outage.
                inflight, _ = await client.start_workflow("chaos_flow", {"stages": [[step("slow", 5, work_ms=4000)]]})
                await wait_for(lambda: tail.seen(inflight, "start"), 60, "the slow step to start")
                await asyncio.to_thread(db.pg.stop, "fast")

                async def not_serving() -> bool:
                    return await health_status(c.address) == health_pb2.HealthCheckResponse.NOT_SERVING

                await wait_for(not_serving, 30, "health to report NOT_SERVING")
                for method, request, service in (
                    ("DescribeWorkflow", pb.DescribeWorkflowRequest(workflow_id=first), "ClientService"),
                    ("StartWorkflow", pb.StartWorkflowRequest(workflow_type="chaos_flow", input_json="{}"), "ClientService"),
                    ("ClaimTasks", pb.ClaimTasksRequest(worker_id="steady", activity_types=["chaos_async"],
                                                        max_tasks=1), "WorkerService"),
                ):
                    details = await unavailable(c.address, method, request, service)
                    assert "database" in details.lower(), f"{method}: unclear message {details!r}"

                await wait_for(lambda: tail.seen(inflight, "end"), 60, "the slow step to finish during the outage")
                assert worker.poll() is None, "the worker died while the database was away"
                assert await health_status(c.address) == health_pb2.HealthCheckResponse.NOT_SERVING

                await asyncio.to_thread(db.pg.start)
                await wait_serving(c.address, timeout=60)
                view = await client.wait_workflow(inflight, timeout=60)
                assert view.status == "completed" and view.result == {"total": 5, "steps": 1}
                runs = [r for r in tail.lines if r["workflow"] == inflight and r["phase"] == "start"]
                assert [(r["attempt"], r["pid"]) for r in runs] == [(1, worker.pid)], runs  # delivered, not re-run

                after, _ = await client.start_workflow("chaos_flow", {"stages": [[step("c", 3), step("d", 4)]]})
                assert (await client.wait_workflow(after, timeout=60)).result == {"total": 7, "steps": 2}
                tail.poll()
                assert {r["pid"] for r in tail.lines} == {worker.pid}  # one worker process throughout
            codes = await c.stop_all()
            assert codes == {"steady": 0, "controlplane": 0}, codes
