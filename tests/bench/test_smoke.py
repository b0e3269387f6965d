"""Smoke versions of the benchmarks, so they don't rot: each benchmark function with tiny sizes
against the test PostgreSQL. Asserts correctness only (every task done, none handed out
twice, the report renders), never speed. peer-bench itself is not run here (it needs its own
venv); its JSON parsing is checked against a fixture from a real run."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any

import pytest

from tests.bench import peers
from tests.bench.harness import Server, describe_server, pct
from tests.bench.latency import run_latency_once, run_latency_sweep
from tests.bench.reaper import run_reaper
from tests.bench.report import markdown, ratios, targets
from tests.bench.scale import run_scale_once
from tests.bench.schema_floor import run_schema_floor
from tests.bench.throughput import run_throughput
from tests.bench.w3 import W3Plan, compare, plan_workflow_runs
from tests.bench.workflows import run_workflows_once

FIXTURE = Path(__file__).parent / "fixtures" / "peer-raw.json"
W3_FIXTURE = Path(__file__).parent / "fixtures" / "peer-w3-raw.json"


@pytest.fixture
async def server(pg_admin_url: str) -> Server:
    return await describe_server(pg_admin_url)


async def test_throughput_drains_every_task_once(server: Server, tmp_path: Path) -> None:
    [row] = await run_throughput(server, n=300, configs=[(1, 8)], reps=1, enqueue_rpc_n=20,
                                 enqueue_rpc_concurrency=4, enqueue_rounds=1, log_dir=tmp_path, limit_s=60)
    assert not row["timed_out"]
    assert (row["completed"], row["not_completed"], row["claimed_twice"]) == (300, 0, 0)
    assert row["grpc_enqueue"]["n"] == 20
    assert {k: v["n"] for k, v in row["enqueue_paths"].items()} == {"single": 20, "coalesced": 20, "batched": 20}
    assert "Enqueue paths (tasks/s" in markdown({"meta": {"when": "now", "host": "h", "pg": "pg"}, "throughput": [row]})
    assert row["cpu_s_per_1k"]["total"] > 0


async def test_schema_floor_drains_every_task_once(server: Server) -> None:
    result = await run_schema_floor(server, n=300, batch=50)
    assert (result["completed"], result["not_completed"], result["claimed_twice"]) == (300, 0, 0)
    assert result["tasks_per_s"] > 0


async def test_latency_sees_every_probe(server: Server, tmp_path: Path) -> None:
    result = await run_latency_once(server, n=20, rate=50, load_rate=200, workers=1, concurrency=8,
                                    idle_s=0.2, log_dir=tmp_path, per_row=True)
    assert result["got"] == 20
    assert result["load_sent"] > 0 and result["load"]["per_row"]
    assert (result["not_completed"], result["claimed_twice"]) == (0, 0)
    assert 0 < result["p50_ms"] <= result["p99_ms"] <= result["max_ms"]


async def test_latency_sweep_offers_each_load(server: Server, tmp_path: Path) -> None:
    sweep = await run_latency_sweep(server, n=25, rate=50, drain_rate=400, drain_source="--drain-rate",
                                    fractions=(0.0, 0.5), workers=1, concurrency=8, idle_s=0.2, log_dir=tmp_path)
    idle, half = sweep["rows"]
    assert (idle["fraction"], idle["load_rate"], idle["load_sent"]) == (0.0, 0, 0)
    assert (half["fraction"], half["load_rate"]) == (0.5, 200)
    # the loader sent what it was asked to over its run (its schedule is cumulative: a batch
    # that runs late carries what fell due, so the short probe window alone may see a catch-up)
    assert half["load"]["sent"] == pytest.approx(200 * half["load"]["run_s"], rel=0.1), half["load"]
    assert half["load_sent_per_s"] > 0
    assert half["load"]["batches"] > 0 and not half["load"]["per_row"]
    for row in sweep["rows"]:
        assert row["got"] == 25
        assert (row["not_completed"], row["claimed_twice"]) == (0, 0)
        assert row["kept_up"] and row["drain_after_s"] < 30
        assert 0 < row["p50_ms"] <= row["p99_ms"] <= row["max_ms"]
        assert row["claims"]["n"] > 0 and row["segments"]["row_to_claim"]["p50_ms"] >= 0
    data: dict[str, Any] = {"meta": {"when": "now", "host": "h", "pg": "pg"}, "latency": {"sweep": sweep}}
    data["targets"] = targets(data)
    [target] = data["targets"]
    assert target["target"].startswith("pickup latency p99 at 50% of the drain rate")
    text = markdown(data)
    assert "| 50% | 200 / " in text and "Drain rate 400 tasks/s (--drain-rate)" in text


@pytest.mark.parametrize(("app", "steps"), [("four_steps", 4), ("agent_turn", 4), ("one_step", 1)])
async def test_workflows_complete_with_each_step_once(server: Server, tmp_path: Path, app: str, steps: int) -> None:
    result = await run_workflows_once(server, app=app, n=10, workers=1, concurrency=8, log_dir=tmp_path, limit_s=60)
    assert result["statuses"] == {"completed": 10}
    assert result["activity_tasks"] == 10 * steps
    # one worker keeps every instance: a decision after the first rides on the completion of
    # the step before it (following decisions) unless that step was claimed before the
    # decision's answer came back (no free slot to hand it over in the answer), or parallel
    # steps completed together; then a decision task decides (test_following_decisions.py
    # counts them where that cannot happen)
    assert 10 <= result["decision_tasks"] <= 10 * (steps + 1)
    assert result["activities_claimed_twice"] == 0


async def test_journalled_steps_complete_in_one_decision_each(server: Server, tmp_path: Path) -> None:
    result = await run_workflows_once(server, app="four_journalled_steps", n=10, workers=1, concurrency=8,
                                      log_dir=tmp_path, limit_s=60)
    assert result["statuses"] == {"completed": 10}
    assert (result["activity_tasks"], result["decision_tasks"], result["decisions_retried"]) == (0, 10, 0)
    assert (result["markers"], result["markers_retried"]) == (40, 0)


async def test_scale_hands_each_task_to_one_simulated_worker(server: Server, tmp_path: Path) -> None:
    result = await run_scale_once(server, workers=6, tasks=30, rate=100, per_process=3, idle_s=0.3, settle_s=0.2, log_dir=tmp_path)
    assert result["processes"] == 2
    assert (result["received"], result["distinct_received"], result["lost"]) == (30, 30, 0)
    assert (result["handed_out_twice"], result["claimed_twice"], result["sim_errors"]) == (0, 0, 0)


async def test_reaper_takes_back_every_stale_task(server: Server, tmp_path: Path) -> None:
    result = await run_reaper(server, stale=2500, probes=300, baseline_s=0.3, log_dir=tmp_path)
    # one pass keeps taking batches (1000 at a time by default) until nothing is stale
    assert result["first_pass_reclaimed"] == 2500
    assert (result["default_passes"], result["default_reclaimed"]) == (1, 2500)
    [big] = result["big_passes"]
    assert (big["finished"], big["reclaimed"], result["stale_left_at_end"]) == (True, 2500, 0)
    assert result["probe_handed_out_twice"] == 0
    assert result["claims_baseline"]["n"] > 0


@pytest.mark.k8s
async def test_operator_reconciles_every_pool(server: Server, tmp_path: Path) -> None:
    from tests.bench.operator_pools import run_operator

    result = await run_operator(server, pools=3, poll_interval=1, tick=0.2, log_dir=tmp_path, timeout=30)
    assert result["rescaled"] == 3
    assert not math.isnan(result["rescale_s"])


def test_peer_bench_json_is_read_and_ratios_rendered() -> None:
    raw = json.loads(FIXTURE.read_text())
    summary = peers.summarize(raw)
    rows = {(r["system"], r["conc"]): r for r in summary["w1"]}
    assert set(rows) == {("floor-B1", 16), ("floor-B100", 16), ("pgqueuer", 16)}
    pgq = rows["pgqueuer", 16]
    assert pgq["tasks_per_s"] == pytest.approx(statistics.median(pgq["runs"]))  # as peer-bench reports
    assert pgq["cpu_s_per_1k"] == pytest.approx(pgq["worker_cpu_s_per_1k"] + pgq["pg_cpu_s_per_1k"])
    assert {w["system"] for w in summary["w2"]} == {"floor-B1", "pgqueuer"}
    assert summary["errors"] == [{"system": "procrastinate", "error": raw[-1]["error"]}]
    fastest, floor = peers.best(summary["w1"], floor=False), peers.best(summary["w1"], floor=True)
    assert fastest is not None and fastest["system"] == "pgqueuer"
    assert floor is not None and floor["system"] == "floor-B100"

    ours = {"workers": 2, "concurrency": 32, "tasks_per_s": 2 * pgq["tasks_per_s"], "n": 100,
            "runs_tasks_per_s": [1.0], "completed": 100, "claimed_twice": 0, "enqueue_store_s": 1.0,
            "cpu_s_per_1k": {"controlplane": 1.0, "workers": 1.0, "postgres": None, "total": 2.0},
            "grpc_enqueue": {"n": 0}}
    data: dict[str, Any] = {"meta": {"when": "now", "host": "h", "pg": "pg"}, "throughput": [ours],
            "peers": {"summary": summary}}
    data["ratios"] = ratios(data)
    assert data["ratios"]["ours_over_fastest_peer"] == pytest.approx(2.0)
    data["targets"] = targets(data)
    assert data["targets"][0]["met"] is True
    text = markdown(data)
    assert "| pgqueuer (peer-bench) | 1 x 16 |" in text and "**2.00x**" in text


def _durable_w3_run(app: str, steps: int, wps: float, journalled: bool = False) -> dict[str, Any]:
    n = 1000
    return {"app": app, "n": n, "workers": 2, "concurrency": 32, "wall_s": n / wps, "workflows_per_s": wps,
            "timed_out": False, "completed": n, "not_completed": 0, "statuses": {"completed": n},
            "activity_tasks": 0 if journalled else n * steps, "decision_tasks": n if journalled else n * (steps + 1),
            "activities_claimed_twice": 0, "decisions_retried": 0, "markers": n * steps if journalled else 0,
            "markers_retried": 0, "tasks_per_s": n * (2 * steps + 1) / (n / wps), "cp_cpu_s": 2.0,
            "worker_cpu_s": 1.0, "pg_cpu_s": 3.0, "start_s": 1.0}


def _w3(peers_part: dict[str, Any]) -> dict[str, Any]:
    runs = [_durable_w3_run("four_steps", 4, 400.0), _durable_w3_run("one_step", 1, 1000.0),
            _durable_w3_run("four_journalled_steps", 4, 800.0, journalled=True),
            _durable_w3_run("one_journalled_step", 1, 1500.0, journalled=True)]
    w3: dict[str, Any] = {"n": 1000, "steps": [4, 1], "conc": 64, "workers": 2, "concurrency": 32, "reps": 1,
                          "peers": {"systems": list(peers.W3_SYSTEMS), **peers_part}}
    w3.update(compare(w3, runs))
    return w3


def test_peer_bench_w3_json_is_read_and_compared() -> None:
    raw = json.loads(W3_FIXTURE.read_text())
    summary = peers.summarize_w3(raw)
    rows = {(r["system"], r["steps"]): r for r in summary["rows"]}
    assert set(rows) == {(s, k) for s in peers.W3_SYSTEMS for k in (4, 1)}
    assert summary["errors"] == {}
    dbos4 = rows["dbos-wf", 4]
    dbos_runs = [r for r in raw if (r["cfg"], r["steps"]) == ("dbos-wf", 4)]
    assert dbos4["runs"] == [r["wf_per_s"] for r in dbos_runs]
    assert dbos4["workflows_per_s"] == pytest.approx(statistics.median(dbos4["runs"]))  # as peer-bench reports
    cpu = dbos4["cpu_ms_per_workflow"]
    assert cpu["server"] is None  # DBOS has no server process
    assert cpu["workers"] == pytest.approx(statistics.median(r["worker_cpu_s"] for r in dbos_runs))  # 1000 done
    assert cpu["total"] == pytest.approx(cpu["workers"] + cpu["postgres"])
    restate = rows["restate-wf", 4]
    [restate_raw] = [r for r in raw if (r["cfg"], r["steps"]) == ("restate-wf", 4)]
    assert restate["cpu_ms_per_workflow"]["server"] == pytest.approx(restate_raw["engine_cpu_s"])
    # PostgreSQL idles beside Restate: shown, not charged to it
    assert restate["cpu_ms_per_workflow"]["total"] == pytest.approx(
        restate["cpu_ms_per_workflow"]["workers"] + restate["cpu_ms_per_workflow"]["server"])
    assert all(r["steps_once"] and r["store_ok"] and not r["outbound"] for r in summary["rows"])

    w3 = _w3({"mode": "same", "summary": summary})
    ratios = {(r["steps"], r["peer"]): r for r in w3["ratios"] if r["kind"] == "activity"}
    steps = {(r["steps"], r["peer"]): r for r in w3["ratios"] if r["kind"] == "step"}
    assert steps[4, "restate-wf"]["ratio"] == pytest.approx(800.0 / restate["workflows_per_s"])
    assert steps[4, "restate-wf"]["met"] is (800.0 >= restate["workflows_per_s"])
    assert ratios[4, "restate-wf"]["ratio"] == pytest.approx(400.0 / restate["workflows_per_s"])
    assert ratios[4, "dbos-wf"]["ratio"] == pytest.approx(400.0 / dbos4["workflows_per_s"])
    assert (ratios[4, "restate-wf"]["goal"], ratios[4, "dbos-wf"]["goal"], ratios[1, "dbos-wf"]["goal"]) == (1.0, 8.0, None)
    assert ratios[4, "dbos-wf"]["met"] is False and ratios[1, "dbos-wf"]["met"] is None
    durable4 = next(r for r in w3["rows"] if (r["system"], r["steps"], r["kind"]) == ("durable", 4, "activity"))
    assert durable4["cpu_ms_per_workflow"] == {"server": 2.0, "workers": 1.0, "postgres": 3.0, "total": 6.0}
    assert all(r["steps_once"] for r in w3["rows"] if r["system"] == "durable")
    data: dict[str, Any] = {"meta": {"when": "now", "host": "h", "pg": "pg"}, "w3": w3}
    data["targets"] = targets(data)
    assert [t["met"] for t in data["targets"]] == [steps[4, "restate-wf"]["met"], True, False, False]
    assert data["targets"][0]["target"].startswith("4-step workflows/s, as steps (ctx.step), >= 1x Restate's")
    text = markdown(data)
    assert "| 4 | **durable**, activities | `four_steps`, 1000 wf, 2 worker procs x 32 task slots" in text
    assert "| 4 | **durable**, steps (ctx.step) | `four_journalled_steps`, 1000 wf" in text
    assert "| 1 | restate-wf | 1000 wf, 1 worker proc + engine server, C=64;" in text
    assert "durable as activities / Restate = **0.95x** (goal >= 1: **not met**)" in text


def test_w3_peer_failures_are_rows_and_ratios_say_na() -> None:
    raw = [r for r in json.loads(W3_FIXTURE.read_text()) if r["cfg"] != "restate-wf"]
    reason = ("RuntimeError: restate-wf runs only inside a private network namespace (unshare -n, needs root); "
              "restate-server tries to reach the internet at start-up and there is no switch for it")
    raw.append({"kind": "ERR", "cfg": "restate-wf", "error": reason})
    w3 = _w3({"mode": "same", "summary": peers.summarize_w3(raw)})
    ratios = {(r["steps"], r["peer"]): r for r in w3["ratios"] if r["kind"] == "activity"}
    assert ratios[4, "restate-wf"]["ratio"] is None and ratios[4, "restate-wf"]["met"] is None
    assert ratios[4, "restate-wf"]["why"] == f"failed: {reason}"
    assert ratios[4, "dbos-wf"]["ratio"] is not None
    data: dict[str, Any] = {"meta": {"when": "now", "host": "h", "pg": "pg"}, "w3": w3}
    data["targets"] = targets(data)
    text = markdown(data)
    assert "| 4 | restate-wf | | **failed: RuntimeError: restate-wf runs only inside a private network" in text
    assert "durable as activities / Restate = n/a (failed: RuntimeError" in text
    assert "| n/a |" in text  # the Restate target: neither met nor missed

    # the whole driver failing (a multi-line message), and --no-peers: every peer row says why
    crashed = _w3({"mode": "same", "error": "RuntimeError: peer-bench failed (1); see x:\nTraceback\n| boom"})
    assert [r.get("error") for r in crashed["rows"] if r["system"] != "durable"] == [
        "failed: RuntimeError: peer-bench failed (1); see x:\nTraceback\n| boom"] * 6
    assert "**failed: RuntimeError: peer-bench failed (1); see x: Traceback / boom**" in markdown(
        {"meta": {"when": "now", "host": "h", "pg": "pg"}, "w3": crashed})
    skipped = _w3({"skipped": "--no-peers"})
    assert {r.get("error") for r in skipped["rows"] if r["system"] != "durable"} == {"not run (--no-peers)"}
    assert all(r["ratio"] is None for r in skipped["ratios"])


def test_w3_durable_runs_are_planned_once_each() -> None:
    plan = W3Plan(n=1000, steps=(4, 1), conc=64, workers=2, reps=1)
    assert plan_workflow_runs(["four_steps", "agent_turn"], 1000, 2, 32, plan) == [
        ("four_steps", 1000, 2, 32), ("agent_turn", 1000, 2, 32), ("four_journalled_steps", 1000, 2, 32),
        ("one_journalled_step", 1000, 2, 32), ("one_step", 1000, 2, 32)]
    three = W3Plan(n=200, steps=(4,), conc=64, workers=1, reps=3, kinds=("activity",))
    assert plan_workflow_runs(["four_steps"], 1000, 2, 32, three) == [
        ("four_steps", 1000, 2, 32), *[("four_steps", 200, 1, 64)] * 3]
    with pytest.raises(ValueError, match="of 1, 4 steps only"):
        W3Plan(n=10, steps=(2,), conc=64, workers=2, reps=1)
    with pytest.raises(ValueError, match="as step or activity"):
        W3Plan(n=10, steps=(4,), conc=64, workers=2, reps=1, kinds=("inline",))
    with pytest.raises(ValueError, match="split evenly"):
        W3Plan(n=10, steps=(4,), conc=64, workers=3, reps=1)


def test_percentiles_interpolate_like_peer_bench() -> None:
    assert pct([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert pct([5.0], 99) == 5.0
    assert math.isnan(pct([], 50))


async def test_retention_deletes_the_due_rows_and_measures_hot(server: Server) -> None:
    from tests.bench.retention import retention_markdown, run_retention

    result = await run_retention(server, tasks=2000, workflows=300, hot_tasks=100, hot_rounds=3, stat_reps=6)
    p = result["pass"]
    assert (p["workflows_deleted"], p["tasks_deleted"], p["events_left"]) == (300, 2000, 0)
    assert result["claims_during_pass"]["n"] > 0
    assert result["hot"]["updates"] == 300 and result["hot_seed"]["updates"] == 300
    assert set(result["stats_seed"]) == set(result["stats_after_pass"])
    assert "## Retention" in "\n".join(retention_markdown(result))
