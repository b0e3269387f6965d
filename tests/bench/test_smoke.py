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
from tests.bench.latency import run_latency_once
from tests.bench.reaper import run_reaper
from tests.bench.report import markdown, ratios, targets
from tests.bench.scale import run_scale_once
from tests.bench.schema_floor import run_schema_floor
from tests.bench.throughput import run_throughput
from tests.bench.workflows import run_workflows_once

FIXTURE = Path(__file__).parent / "fixtures" / "peer-raw.json"


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
                                    idle_s=0.2, log_dir=tmp_path)
    assert result["got"] == 20
    assert result["load_sent"] > 0
    assert (result["not_completed"], result["claimed_twice"]) == (0, 0)
    assert 0 < result["p50_ms"] <= result["p99_ms"] <= result["max_ms"]


@pytest.mark.parametrize(("app", "steps"), [("four_steps", 4), ("agent_turn", 4), ("one_step", 1)])
async def test_workflows_complete_with_each_step_once(server: Server, tmp_path: Path, app: str, steps: int) -> None:
    result = await run_workflows_once(server, app=app, n=10, workers=1, concurrency=8, log_dir=tmp_path, limit_s=60)
    assert result["statuses"] == {"completed": 10}
    assert result["activity_tasks"] == 10 * steps
    assert result["decision_tasks"] == 10 * (steps + 1)
    assert result["activities_claimed_twice"] == 0


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
