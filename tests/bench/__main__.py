"""The one command: every benchmark against a PostgreSQL it starts (or DATABASE_URL), with the
peer baselines measured in the same run; a markdown table, then the same numbers as JSON.

    python -m tests.bench                       # everything, full sizes (~15-20 min on 2 cores)
    python -m tests.bench --quick               # small sizes, a couple of minutes
    python -m tests.bench --only throughput,latency --peers floor-B100,pgqueuer
    python -m tests.bench --all-peers           # every peer-bench system (adds ~20 min)
    python -m tests.bench --no-peers --json-out /tmp/bench.json
    python -m tests.bench --only workflows      # + peer-bench W3 (DBOS, Temporal, Restate) beside it

See tests/bench/README.md for what each number means.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

from tests.bench import peers as peer_bench
from tests.bench.harness import Server, bench_server, describe_server, log
from tests.bench.latency import FRACTIONS, run_latency_once, run_latency_sweep
from tests.bench.long_workflow import run_long_workflow_once
from tests.bench.reaper import run_reaper
from tests.bench.retention import run_retention
from tests.bench.report import markdown, ratios, targets
from tests.bench.scale import run_scale_once
from tests.bench.w3 import W3Plan, compare, plan_workflow_runs
from tests.bench.schema_floor import run_schema_floor
from tests.bench.throughput import run_throughput, run_throughput_once
from tests.bench.workflows import run_workflows_once

BENCHMARKS = ("throughput", "latency", "workflows", "long_workflow", "scale", "reaper", "operator", "retention")


def _configs(text: str) -> list[tuple[int, int]]:
    out = []
    for part in text.split(","):
        w, c = part.lower().split("x")
        out.append((int(w), int(c)))
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m tests.bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default=",".join(BENCHMARKS), help=f"comma list of {', '.join(BENCHMARKS)}")
    ap.add_argument("--quick", action="store_true", help="small sizes (a quick look, not the numbers to quote)")
    ap.add_argument("--n", type=int, default=20000, help="no-op tasks per throughput run (peers too)")
    ap.add_argument("--reps", type=int, default=3, help="repetitions per throughput config (peers too)")
    ap.add_argument("--keys", type=int, default=1000,
                    help="throughput also with the tasks spread over this many concurrency keys, limit 2 (0: not)")
    ap.add_argument("--configs", default="1x16,1x64,2x32",
                    help="throughput configs, worker processes x MAX_CONCURRENT_TASKS")
    ap.add_argument("--latency-n", type=int, default=500)
    ap.add_argument("--latency-rate", type=float, default=50.0)
    ap.add_argument("--load-fractions", default=",".join(f"{f:g}" for f in FRACTIONS),
                    help="latency under load: background no-ops at these fractions of the 2 x 32 drain rate")
    ap.add_argument("--drain-rate", type=float, default=0.0,
                    help="the 2 x 32 drain rate (tasks/s) the fractions apply to (0: the throughput run's 2 x 32 "
                         "median, else one drain of --n measured before the sweep)")
    ap.add_argument("--load-per-row", action="store_true",
                    help="the background loader inserts one statement per task (the single insert), not one per batch")
    ap.add_argument("--load-tick", type=float, default=0.02,
                    help="latency under load: seconds between the background loader's batches")
    ap.add_argument("--workflows-n", type=int, default=1000)
    ap.add_argument("--long-steps", type=int, default=300, help="steps of --only long_workflow's workflows")
    ap.add_argument("--workflow-apps", default="four_steps,agent_turn,four_local_steps")
    ap.add_argument("--w3-n", type=int, default=1000,
                    help="workflows per run, both sides, of --only workflows' comparison with peer-bench W3")
    ap.add_argument("--w3-steps", default="4,1", help="W3 steps per workflow (4 and 1)")
    ap.add_argument("--w3-durable", default="step,activity",
                    help="how durable runs W3's steps: step (ctx.step: four_journalled_steps / one_journalled_step), "
                         "activity (four_steps / one_step), or both")
    ap.add_argument("--w3-conc", type=int, default=64,
                    help="W3 steps in flight: the peers' C; durable's task slots in all, split over --w3-workers")
    ap.add_argument("--w3-workers", type=int, default=2, help="durable worker processes in the W3 comparison")
    ap.add_argument("--w3-reps", type=int, default=1, help="W3 repetitions per steps count, both sides (median shown)")
    ap.add_argument("--w3-peers", default=",".join(peer_bench.W3_SYSTEMS),
                    help="peer-bench W3 systems (default: dbos-wf,temporal-wf,restate-wf; --all-peers: all five)")
    ap.add_argument("--scale-workers", default="10,100,1000")
    ap.add_argument("--scale-tasks", type=int, default=1000)
    ap.add_argument("--scale-rate", type=float, default=100.0)
    ap.add_argument("--reaper-stale", type=int, default=100_000)
    ap.add_argument("--retention-tasks", type=int, default=1_000_000, help="completed tasks for --only retention")
    ap.add_argument("--retention-workflows", type=int, default=100_000, help="finished workflows for --only retention")
    ap.add_argument("--operator-pools", type=int, default=200)
    ap.add_argument("--operator-deadline", type=float, default=600.0, help="seconds for the whole operator benchmark")
    ap.add_argument("--operator-profile", default=None, metavar="DIR",
                    help="py-spy the operator, emulator and control-plane processes during the operator run into DIR")
    group = ap.add_mutually_exclusive_group()
    group.add_argument("--peers", default=",".join(peer_bench.DEFAULT_SYSTEMS),
                       help="peer-bench systems to run (default: floor-B1,floor-B100,pgqueuer)")
    group.add_argument("--all-peers", action="store_true", help="every peer-bench system")
    group.add_argument("--no-peers", action="store_true")
    ap.add_argument("--peer-mode", choices=("same", "own"), default="same",
                    help="same: peers on our PostgreSQL server (default); own: run.sh with its PostgreSQL 15")
    ap.add_argument("--peer-reps", type=int, default=None, help="default: --reps")
    ap.add_argument("--peer-conc", default="16,64")
    ap.add_argument("--json-out", default=None, help="also write the JSON to this file")
    ap.add_argument("--profile", default=None, metavar="DIR",
                    help="py-spy the control plane and one worker during each throughput run into DIR")
    ap.add_argument("--log-dir", default=None, help="process logs (default: a temporary directory)")
    args = ap.parse_args(argv)
    if args.quick:
        args.n, args.reps, args.latency_n, args.workflows_n = 3000, 1, 200, 200
        args.scale_workers, args.scale_tasks, args.reaper_stale, args.operator_pools = "10,100,300", 300, 10_000, 20
        args.retention_tasks, args.retention_workflows = 100_000, 10_000
        args.long_steps = 60
        args.w3_n = 200
    try:
        w3_plan(args)
    except ValueError as exc:
        ap.error(str(exc))
    return args


def w3_plan(args: argparse.Namespace) -> W3Plan:
    return W3Plan(n=args.w3_n, steps=tuple(int(s) for s in args.w3_steps.split(",")), conc=args.w3_conc,
                  workers=args.w3_workers, reps=args.w3_reps, kinds=tuple(filter(None, args.w3_durable.split(","))))


def _git_head() -> str:
    import subprocess

    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=Path(__file__).parents[2],
                              capture_output=True, text=True, timeout=10, check=False).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=Path(__file__).parents[2],
                               capture_output=True, text=True, timeout=10, check=False).stdout.strip()
        return head + (" + uncommitted changes" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


async def _w3_peers(server: Server, args: argparse.Namespace, plan: W3Plan) -> dict[str, Any]:
    """peer-bench W3 in the same run; a failure of the whole driver is recorded, not raised
    (a single system's failure is an ERR record in its JSON)."""
    systems = peer_bench.ALL_W3_SYSTEMS if args.all_peers else tuple(filter(None, args.w3_peers.split(",")))
    if args.no_peers:
        return {"systems": list(systems), "skipped": "--no-peers"}
    try:
        raw = await asyncio.to_thread(
            peer_bench.run_peers, server, systems=systems, reps=plan.reps, mode=args.peer_mode, workloads=("W3",),
            w3_n=plan.n, w3_steps=plan.steps, w3_conc=plan.conc)
    except Exception as exc:  # noqa: BLE001 - durable's side is still worth having
        log(f"peer-bench W3 failed: {exc}")
        return {"systems": list(systems), "mode": args.peer_mode, "error": f"{type(exc).__name__}: {exc}"}
    return {"mode": raw["mode"], "systems": list(systems), "dir": raw["dir"],
            "summary": peer_bench.summarize_w3(raw["results"]), "raw": raw["results"]}


async def _drain_rate(server: Server, args: argparse.Namespace, throughput: list[dict[str, Any]],
                      log_dir: Path) -> tuple[float, str]:
    """What 2 workers x 32 drain from a standing backlog (tasks/s), and where the figure comes
    from: --drain-rate, the throughput run of this invocation, or one drain measured now."""
    if args.drain_rate:
        return args.drain_rate, "--drain-rate"
    for row in throughput:
        if (row["workers"], row["concurrency"]) == (2, 32):
            return row["tasks_per_s"], f"the throughput run above (2 x 32, median of {len(row['runs_tasks_per_s'])})"
    run = await run_throughput_once(server, n=args.n, workers=2, concurrency=32, enqueue_rpc_n=0, log_dir=log_dir)
    return run["tasks_per_s"], f"one drain of {args.n} measured before the sweep (2 x 32)"


async def run_all(server: Server, args: argparse.Namespace) -> dict[str, Any]:
    only = set(filter(None, args.only.split(",")))
    unknown = only - set(BENCHMARKS)
    if unknown:
        raise SystemExit(f"--only: unknown benchmark(s) {', '.join(sorted(unknown))}")
    log_dir = Path(args.log_dir or tempfile.mkdtemp(prefix="durable-bench-logs-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    log(f"process logs in {log_dir}")
    data: dict[str, Any] = {"meta": {
        "when": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "host": f"{os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB, Python {sys.version.split()[0]}, "
                f"load average at start {os.getloadavg()[0]:.1f}",
        "pg": f"{server.version} ({', '.join(f'{k}={v}' for k, v in sorted(server.settings.items()))})",
        "args": vars(args),
        "git": _git_head(),
    }}
    if "throughput" in only:
        data["throughput"] = await run_throughput(
            server, n=args.n, configs=_configs(args.configs), reps=args.reps, log_dir=log_dir,
            profile_dir=args.profile, keys=args.keys)
        data["schema_floor"] = await run_schema_floor(server, n=args.n)
    # peer-bench W1 is shown beside throughput, W2 beside latency; W3 runs with the workflows
    workloads = tuple(w for w, bench in (("W1", "throughput"), ("W2", "latency")) if bench in only)
    if not args.no_peers and workloads:
        systems = peer_bench.ALL_SYSTEMS if args.all_peers else tuple(filter(None, args.peers.split(",")))
        try:
            raw = await asyncio.to_thread(
                peer_bench.run_peers, server, systems=systems, n=args.n, reps=args.peer_reps or args.reps,
                conc=args.peer_conc, mode=args.peer_mode, workloads=workloads)
            data["peers"] = {"mode": raw["mode"], "systems": list(systems), "dir": raw["dir"],
                             "summary": peer_bench.summarize(raw["results"]), "raw": raw["results"]}
        except Exception as exc:  # noqa: BLE001 - the rest of the run is still worth having
            log(f"peer-bench failed: {exc}")
            data["peers"] = {"error": f"{type(exc).__name__}: {exc}"}
    if "latency" in only:
        data["latency"] = {"idle": await run_latency_once(server, n=args.latency_n, rate=args.latency_rate, workers=1,
                                                          concurrency=16, log_dir=log_dir)}
        drain, source = await _drain_rate(server, args, data.get("throughput") or [], log_dir)
        data["latency"]["sweep"] = await run_latency_sweep(
            server, n=args.latency_n, rate=args.latency_rate, drain_rate=drain, drain_source=source,
            fractions=[float(f) for f in args.load_fractions.split(",")], workers=2, concurrency=32,
            per_row=args.load_per_row, load_tick=args.load_tick, log_dir=log_dir)
    if "workflows" in only:
        plan = w3_plan(args)
        runs = plan_workflow_runs(list(filter(None, args.workflow_apps.split(","))), args.workflows_n, 2, 32, plan)
        data["workflows"] = [
            await run_workflows_once(server, app=app, n=n, workers=workers, concurrency=concurrency, log_dir=log_dir,
                                     profile_dir=args.profile)
            for app, n, workers, concurrency in runs
        ]
        data["w3"] = {"n": plan.n, "steps": list(plan.steps), "kinds": list(plan.kinds), "conc": plan.conc,
                      "workers": plan.workers,
                      "concurrency": plan.concurrency, "reps": plan.reps,
                      "peers": await _w3_peers(server, args, plan)}
        data["w3"].update(compare(data["w3"], data["workflows"]))
    if "long_workflow" in only:
        data["long_workflow"] = [
            await run_long_workflow_once(server, cache=cache, steps=args.long_steps, log_dir=log_dir)
            for cache in (True, False)
        ]
    if "scale" in only:
        data["scale"] = [
            await run_scale_once(server, workers=int(w), tasks=args.scale_tasks, rate=args.scale_rate, log_dir=log_dir)
            for w in args.scale_workers.split(",")
        ]
    if "reaper" in only:
        data["reaper"] = await run_reaper(server, stale=args.reaper_stale, log_dir=log_dir)
    if "retention" in only:
        data["retention"] = await run_retention(server, tasks=args.retention_tasks, workflows=args.retention_workflows)
    if "operator" in only:
        try:
            from tests.bench.operator_pools import run_operator
        except ImportError as exc:
            data["operator"] = {"error": f"the operator benchmark cannot run: {exc}"}
        else:
            try:
                # a hard deadline on the whole run, whatever stalls
                data["operator"] = await asyncio.wait_for(
                    run_operator(server, pools=args.operator_pools, log_dir=log_dir, timeout=240,
                                 profile_dir=args.operator_profile),
                    timeout=args.operator_deadline)
            except Exception as exc:  # noqa: BLE001 - reported in the output
                log(f"operator benchmark failed: {exc!r}")
                data["operator"] = {"error": f"{type(exc).__name__}: {exc}" if str(exc) else
                                    f"{type(exc).__name__} (over --operator-deadline {args.operator_deadline:.0f} s)"}
    data["ratios"] = ratios(data)
    data["targets"] = targets(data)
    return data


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)

    async def go(url: str) -> dict[str, Any]:
        return await run_all(await describe_server(url), args)

    with bench_server() as url:
        data = asyncio.run(go(url))
    text = json.dumps(data, indent=1, default=str)
    if args.json_out:
        Path(args.json_out).write_text(text + "\n")
    print(markdown(data))
    print("\n<!-- JSON -->")
    print(text)


if __name__ == "__main__":
    main()
