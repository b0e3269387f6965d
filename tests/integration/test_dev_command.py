"""The README's "run it" command works on this machine: `durable dev` with its own embedded
PostgreSQL (no DATABASE_URL), one agent turn, the answer printed; it cleans up after itself.
`durable dev --app` and `durable worker --app` run your own module from the current directory."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from durable.controlplane.settings import MetricsSettings
from durable.worker.settings import WorkerSettings
from tests.support.controlplane import free_port, running_control_plane
from tests.support.processes import wait_for

MY_APP = '''
from durable.worker import App, Workflow, complete, schedule_activity

app = App()


@app.activity(name="greet")
async def greet(ctx, input):
    return {"text": f"hello {input['name']}"}


@app.workflow(name="hello")
class Hello(Workflow):
    def on_start(self, input):
        return [schedule_activity("greet", input)]

    def on_activity_completed(self, activity_id, result):
        return [complete(result)]
'''

# The console script, as a user runs it (`python -m` would put the current directory on the path).
DURABLE = str(Path(sys.executable).parent / "durable")


def test_durable_dev_runs_an_agent_turn_on_embedded_postgres() -> None:
    # A short TMPDIR of its own (PostgreSQL's socket path must stay under 108 bytes), empty after.
    scratch = Path(tempfile.mkdtemp(prefix="dd-", dir="/tmp"))
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "XDG_RUNTIME_DIR")}
    env["TMPDIR"] = str(scratch)
    try:
        result = subprocess.run(
            [sys.executable, "-m", "durable.cli", "dev", "--port", "0", "--health-port", "0",
             "--message", "what is 6*7?"],
            env=env, capture_output=True, text=True, timeout=180,
        )
        left = list(scratch.iterdir())
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "starting embedded PostgreSQL" in result.stdout
    assert "WorkflowCompleted" in result.stdout
    assert "answer: 6*7 = 42" in result.stdout, result.stdout
    assert "fork() handlers" not in result.stdout + result.stderr
    assert left == [], "durable dev left temporary directories behind"


def _my_app(tmp_path: Path) -> Path:
    project = tmp_path / "project"
    project.mkdir()
    (project / "myapp.py").write_text(MY_APP)
    return project


async def _durable_in(cwd: Path, address: str, *args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        DURABLE, *args, cwd=cwd, env={**os.environ, "GRPC_ADDRESS": address},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=90)
    return proc.returncode or 0, out.decode()


async def test_durable_dev_app_runs_your_own_workflows(database_url: str, tmp_path: Path) -> None:
    project = _my_app(tmp_path)
    port = free_port()
    log = tmp_path / "dev.log"
    with open(log, "wb") as out:
        dev = subprocess.Popen(
            [DURABLE, "dev", "--app", "myapp:app", "--port", str(port), "--health-port", "0"],
            cwd=project, env={**os.environ, "DATABASE_URL": database_url}, stdout=out, stderr=subprocess.STDOUT,
        )
        try:
            await wait_for(lambda: "serving your app on" in log.read_text() or dev.poll() is not None, 60,
                           "durable dev to serve the app")
            assert dev.poll() is None, log.read_text()
            assert "workflows hello" in log.read_text()
            code, text = await _durable_in(project, f"127.0.0.1:{port}", "workflows", "start", "hello",
                                           "--input", '{"name": "you"}', "--wait")
            assert code == 0, text
            assert 'completed: {"text":"hello you"}' in text
            dev.send_signal(signal.SIGINT)
            assert await asyncio.to_thread(dev.wait, 30) == 0
        finally:
            if dev.poll() is None:
                dev.kill()
                dev.wait()


async def test_durable_worker_finds_the_app_module_in_the_current_directory(database_url: str, tmp_path: Path) -> None:
    project = _my_app(tmp_path)
    async with running_control_plane(database_url) as address:
        log = tmp_path / "worker.log"
        with open(log, "wb") as out:
            env = {**os.environ, "GRPC_ADDRESS": address, "WORKER_HEALTH_PORT": "0", "PYTHONUNBUFFERED": "1"}
            env.pop("PYTHONPATH", None)
            worker = subprocess.Popen([DURABLE, "worker", "--app", "myapp:app"], cwd=project, env=env,
                                      stdout=out, stderr=subprocess.STDOUT)
            try:
                code, text = await _durable_in(project, address, "workflows", "start", "hello",
                                               "--input", '{"name": "cwd"}', "--wait", "--timeout", "60")
                assert code == 0, text + log.read_text()
                assert 'completed: {"text":"hello cwd"}' in text
                worker.send_signal(signal.SIGTERM)
                assert await asyncio.to_thread(worker.wait, 30) == 0
            finally:
                if worker.poll() is None:
                    worker.kill()
                    worker.wait()


def test_the_control_plane_and_worker_metrics_ports_differ_by_default() -> None:
    worker_default = WorkerSettings.model_fields["metrics_port"].default
    control_plane_default = MetricsSettings.model_fields["port"].default
    assert (control_plane_default, worker_default) == (9090, 9091)
