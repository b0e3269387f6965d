"""The peer baselines: ../shared/peer-bench (pgqueuer, procrastinate, DBOS and the raw-asyncpg
floor), run as a subprocess in the same run, and its raw JSON read back.

peer-bench is reused, not copied: its `run.sh` makes its venv (/tmp/peerbench/venv) and, in
`own` mode, its own PostgreSQL 15; its driver (`python -m pb.driver`) does the measuring.
Two modes:

- `same` (default): the driver runs against the SAME PostgreSQL server as our benchmarks
  (PB_PGHOST/PB_PGPORT/PB_PGUSER/PB_PGDATA point at it), so ours/peer ratios compare the
  systems, not two servers. Needs a local server whose data directory we can read (the
  embedded one, or a local DATABASE_URL as superuser); run.sh is called once with --help
  only to create the venv if it is missing.
- `own`: `run.sh` with its own PostgreSQL 15 (its README's settings).

The driver writes raw-<stamp>.json (a list of result dicts, kind W1/W2/W3/ERR) to --out. W3
(multi-step workflows: DBOS, Temporal's dev server, Restate) runs only when asked for
(`workloads=("W3",)`); in `same` mode its engine stores and server logs go under --out too
(PB_ROOT points there, PB_RESTATE_BIN at the restate-server run.sh installed), so they never
meet another run's.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from tests.bench.harness import ROOT, Server, log

PEER_DIR = Path(os.environ.get("DURABLE_PEER_BENCH", ROOT.parent / "shared" / "peer-bench"))
PEER_ROOT = Path(os.environ.get("PB_ROOT", "/tmp/peerbench"))
DEFAULT_SYSTEMS = ("floor-B1", "floor-B100", "pgqueuer")
ALL_SYSTEMS = (
    "floor-B1", "floor-B100", "pgqueuer", "procrastinate", "dbos-wf0-poll0.01", "dbos-wf1-poll0.01",
    "dbos-wf0-default", "dbos-wf1-default", "dbos-wf0-wcC-poll1",
)
W3_SYSTEMS = ("dbos-wf", "temporal-wf", "restate-wf")
ALL_W3_SYSTEMS = ("dbos-wf", "temporal-wf", "temporal-wf-wal", "restate-wf", "restate-wf-p24")
W1_MODULES = ("asyncpg", "pgqueuer", "procrastinate", "dbos", "psutil", "psycopg")
W3_MODULES = ("temporalio", "restate", "hypercorn", "httpx")


def _venv_python() -> Path:
    return PEER_ROOT / "venv" / "bin" / "python"


def restate_bin() -> Path:
    """Where run.sh puts restate-server (npm, exact versions) for W3."""
    return PEER_ROOT / "npm" / "node_modules" / "@restatedev" / "restate-server-linux-x64" / "bin" / "restate-server"


def ensure_venv(*, w3: bool = False) -> None:
    """Let run.sh build peer-bench's venv, and for W3 the Temporal CLI and restate-server (it does
    so idempotently before anything else). Without npm run.sh still succeeds; restate-wf then
    fails alone in the driver."""
    python = _venv_python()
    imports = "import " + ", ".join(W1_MODULES + (W3_MODULES if w3 else ()))
    ok = python.exists() and subprocess.run([str(python), "-c", imports], capture_output=True, check=False).returncode == 0
    if w3:
        ok = ok and (python.parent / "temporal").exists() and restate_bin().exists()
    if not ok:
        log("peer-bench: creating its venv with run.sh --help (one-time)")
        subprocess.run([str(PEER_DIR / "run.sh"), "--help"], check=True, stdout=subprocess.DEVNULL)


def run_peers(
    server: Server | None,
    *,
    systems: tuple[str, ...] = DEFAULT_SYSTEMS,
    n: int = 20000,
    reps: int = 3,
    conc: str = "16,64",
    mode: str = "same",
    workloads: tuple[str, ...] = ("W1", "W2"),
    w3_n: int = 1000,
    w3_steps: tuple[int, ...] = (4, 1),
    w3_conc: int = 64,
    timeout_s: float = 3600,
) -> dict[str, Any]:
    """Run peer-bench; returns {"mode", "results": [raw dicts], "markdown", "dir"}. `reps` applies
    to every workload; `n`/`conc` are W1's, `w3_*` W3's."""
    out = Path(tempfile.mkdtemp(prefix="durable-bench-peers-"))
    args = ["--only", ",".join(systems), "--workloads", ",".join(workloads), "--reps", str(reps), "--out", str(out)]
    if "W1" in workloads:
        args += ["--n", str(n), "--conc", conc, "--no-2proc"]
    w3 = "W3" in workloads
    if w3:
        args += ["--w3-n", str(w3_n), "--w3-steps", ",".join(map(str, w3_steps)), "--w3-conc", str(w3_conc)]
    env = dict(os.environ)
    env.pop("DATABASE_URL", None)
    if mode == "same":
        if server is None or server.postmaster_pid is None or not server.data_directory:
            raise RuntimeError("peer mode 'same' needs a local PostgreSQL whose data directory is readable; "
                               "use --peer-mode own")
        ensure_venv(w3=w3)
        parts = server.libpq_parts()
        env.update(PB_PGHOST=parts["host"], PB_PGPORT=parts["port"], PB_PGUSER=parts["user"],
                   PB_PGDATA=server.data_directory, PB_LOGDIR=str(out / "logs"), PYTHONPATH=str(PEER_DIR),
                   PB_ROOT=str(out))
        env.setdefault("PB_RESTATE_BIN", str(restate_bin()))
        cmd = [str(_venv_python()), "-m", "pb.driver", *args]
    else:
        cmd = [str(PEER_DIR / "run.sh"), *args]
    log(f"peer-bench ({mode}): {' '.join(cmd)}")
    proc = subprocess.run(cmd, cwd=PEER_DIR, env=env, capture_output=True, text=True, timeout=timeout_s,
                          check=False)
    (out / "driver.stderr").write_text(proc.stderr)
    if proc.returncode != 0:
        raise RuntimeError(f"peer-bench failed ({proc.returncode}); see {out}/driver.stderr:\n{proc.stderr[-2000:]}")
    raws = sorted(out.glob("raw-*.json"))
    if not raws:
        raise RuntimeError(f"peer-bench wrote no raw-*.json in {out}")
    return {"mode": mode, "results": json.loads(raws[-1].read_text()), "markdown": proc.stdout, "dir": str(out)}


def summarize(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Peer-bench raw results -> per (system, C) median W1 tasks/s and CPU, W2 latencies, errors."""
    w1: dict[tuple[str, int, int], list[dict[str, Any]]] = {}
    for r in results:
        if r.get("kind") == "W1":
            w1.setdefault((r["cfg"], int(r["conc"]), int(r.get("procs", 1))), []).append(r)
    rows = []
    for (cfg, conc, procs), runs in w1.items():
        tps = sorted(r["tps"] for r in runs)
        done = statistics.median(r["done_db"] for r in runs) or 1
        wc = statistics.median(r["worker_cpu_s"] for r in runs)
        pc = statistics.median(r["pg_cpu_s"] for r in runs)
        rows.append({
            "system": cfg, "conc": conc, "procs": procs, "tasks_per_s": statistics.median(tps),
            "runs": [r["tps"] for r in runs], "timed_out": any(r.get("timed_out") for r in runs),
            "worker_cpu_s_per_1k": wc / done * 1000, "pg_cpu_s_per_1k": pc / done * 1000,
            "cpu_s_per_1k": (wc + pc) / done * 1000,
        })
    w2 = [
        {"system": r["cfg"], "conc": r["conc"], "got": r["got"], "n": r["n"], "p50_ms": r["p50_ms"],
         "p95_ms": r["p95_ms"], "p99_ms": r["p99_ms"], "max_ms": r["max_ms"]}
        for r in results if r.get("kind") == "W2"
    ]
    errors = [{"system": r["cfg"], "error": r["error"]} for r in results if r.get("kind") == "ERR"]
    return {"w1": rows, "w2": w2, "errors": errors}


def best(w1_rows: list[dict[str, Any]], *, floor: bool) -> dict[str, Any] | None:
    """The fastest peer row (floor=False: the libraries; floor=True: floor-B100)."""
    pick = [r for r in w1_rows if (r["system"] == "floor-B100") == floor and (floor or not r["system"].startswith("floor"))]
    return max(pick, key=lambda r: r["tasks_per_s"], default=None)


def summarize_w3(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Peer-bench raw W3 results -> per (system, steps) the median workflows/s and steps/s over
    the runs, CPU ms per completed workflow (medians, as peer-bench's own table computes them),
    the checks; and the systems that failed (ERR records: the driver gave up on that system)."""
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for r in results:
        if r.get("kind") == "W3":
            groups.setdefault((r["cfg"], int(r["steps"])), []).append(r)
    rows = []
    for (cfg, steps), runs in groups.items():
        done = statistics.median(r["done_store"] for r in runs) or 1
        worker = statistics.median(r["worker_cpu_s"] for r in runs)
        server = (statistics.median(r["engine_cpu_s"] for r in runs)
                  if all(r.get("engine_cpu_s") is not None for r in runs) else None)
        pg = statistics.median(r["pg_cpu_s"] for r in runs)
        uses_pg = bool(runs[0].get("uses_pg"))
        per_wf = {"server": server / done * 1000 if server is not None else None, "workers": worker / done * 1000,
                  "postgres": pg / done * 1000}
        # an engine that does not use PostgreSQL is not charged for the server idling beside it
        per_wf["total"] = per_wf["workers"] + (per_wf["server"] or 0.0) + (per_wf["postgres"] if uses_pg else 0.0)
        rows.append({
            "system": cfg, "steps": steps, "n": int(runs[0]["n"]), "conc": int(runs[0]["conc"]),
            "procs": int(runs[0].get("procs", 1)), "store": runs[0].get("store", ""), "uses_pg": uses_pg,
            "version": runs[0].get("version", ""),
            "workflows_per_s": statistics.median(r["wf_per_s"] for r in runs),
            "runs": [r["wf_per_s"] for r in runs],
            "steps_per_s": statistics.median(r["steps_per_s"] for r in runs),
            "wall_s": statistics.median(r["wall_s"] for r in runs),
            "timed_out": any(r.get("timed_out") for r in runs),
            "completed": min(int(r["done_store"]) for r in runs),
            "cpu_ms_per_workflow": per_wf,
            "steps_once": all(r.get("exactly_once_ok") for r in runs),
            "store_ok": all((r.get("checks") or {}).get("store_ok") for r in runs),
            "outbound": any((r.get("teardown") or {}).get("phone_home") for r in runs),
        })
    errors = {r["cfg"]: r["error"] for r in results if r.get("kind") == "ERR"}
    return {"rows": rows, "errors": errors}
