"""Markdown tables (and target checks) from the JSON a benchmark run produced."""

from __future__ import annotations

import itertools
import math
from typing import Any

from tests.bench.latency import at_fraction
from tests.bench.peers import best
from tests.bench.w3 import w3_markdown, w3_targets


def _f(value: Any, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a and b else None


def ratios(data: dict[str, Any]) -> dict[str, Any]:
    """ours (best throughput row) / fastest peer library, and / floor-B100 (best C); also at
    equal concurrency (durable's rows with 64 task slots in all against the peers at C=64),
    and against the SQL floor of durable's own schema."""
    rows = data.get("throughput") or []
    ours = max(rows, key=lambda r: r["tasks_per_s"], default=None)
    ours64 = max((r for r in rows if r["workers"] * r["concurrency"] == 64), key=lambda r: r["tasks_per_s"], default=None)
    peer_rows = ((data.get("peers") or {}).get("summary") or {}).get("w1") or []
    peer, floor = best(peer_rows, floor=False), best(peer_rows, floor=True)
    peer64 = best([p for p in peer_rows if p["conc"] == 64], floor=False)
    schema = data.get("schema_floor")
    return {
        "ours_at_64_slots": ours64 and {"workers": ours64["workers"], "concurrency": ours64["concurrency"],
                                        "tasks_per_s": ours64["tasks_per_s"]},
        "fastest_peer_at_64": peer64 and {"system": peer64["system"], "tasks_per_s": peer64["tasks_per_s"]},
        "ours_over_fastest_peer_at_64": _ratio(ours64["tasks_per_s"] if ours64 else None,
                                               peer64["tasks_per_s"] if peer64 else None),
        "ours_over_schema_floor": _ratio(ours["tasks_per_s"] if ours else None,
                                         schema["tasks_per_s"] if schema else None),
        "ours": ours and {"workers": ours["workers"], "concurrency": ours["concurrency"],
                          "tasks_per_s": ours["tasks_per_s"]},
        "fastest_peer": peer and {"system": peer["system"], "conc": peer["conc"], "tasks_per_s": peer["tasks_per_s"]},
        "floor_b100": floor and {"conc": floor["conc"], "tasks_per_s": floor["tasks_per_s"]},
        "ours_over_fastest_peer": _ratio(ours["tasks_per_s"] if ours else None, peer["tasks_per_s"] if peer else None),
        "ours_over_floor_b100": _ratio(ours["tasks_per_s"] if ours else None, floor["tasks_per_s"] if floor else None),
    }


def targets(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets next to what was measured. Reported, never asserted."""
    out: list[dict[str, Any]] = []
    r = data.get("ratios") or {}
    if r.get("ours_over_fastest_peer") is not None:
        out.append({"target": "no-op tasks/s >= 2x the fastest peer", "measured": f"{r['ours_over_fastest_peer']:.2f}x",
                    "met": r["ours_over_fastest_peer"] >= 2})
    if r.get("ours_over_floor_b100") is not None:
        out.append({"target": "no-op tasks/s >= 50% of the batched raw SQL floor (floor-B100)",
                    "measured": f"{100 * r['ours_over_floor_b100']:.1f}%", "met": r["ours_over_floor_b100"] >= 0.5})
    idle = (data.get("latency") or {}).get("idle")
    if idle:
        out.append({"target": "pickup latency idle p50 < 5 ms", "measured": f"{idle['p50_ms']:.1f} ms",
                    "met": idle["p50_ms"] < 5})
        out.append({"target": "pickup latency idle p99 < 20 ms", "measured": f"{idle['p99_ms']:.1f} ms",
                    "met": idle["p99_ms"] < 20})
    half = at_fraction((data.get("latency") or {}).get("sweep"), 0.5)
    if half:
        out.append({"target": "pickup latency p99 at 50% of the drain rate (2 x 32) < 20 ms",
                    "measured": f"{half['p99_ms']:.1f} ms (background {half['load_sent_per_s']:.0f}/s sent)",
                    "met": half["p99_ms"] < 20})
    scale = data.get("scale") or []
    big = max(scale, key=lambda s: s["workers"], default=None)
    if big is not None:
        out.append({"target": f"{big['workers']} workers: claim p99 < 100 ms", "measured": f"{big['claim_p99_ms']:.1f} ms",
                    "met": big["claim_p99_ms"] < 100})
    if len(scale) >= 3:
        pts = sorted(scale, key=lambda s: s["workers"])
        # linear = base + k * workers; less than linear: the per-worker increment shrinks
        seg = [((b["cp_rss_idle_mb"] - a["cp_rss_idle_mb"]) * 1024 / (b["workers"] - a["workers"]), a["workers"], b["workers"])
               for a, b in itertools.pairwise(pts)]
        out.append({
            "target": "control-plane memory grows less than linearly in workers",
            "measured": "RSS idle " + " / ".join(f"{p['cp_rss_idle_mb']:.0f} MB at {p['workers']}" for p in pts)
                        + "; per added worker: " + ", ".join(f"{k:.0f} KiB ({a}->{b})" for k, a, b in seg),
            "met": seg[-1][0] <= seg[0][0],
        })
    first = (data.get("throughput") or [{}])[0]
    paths = first.get("enqueue_paths")
    if paths and paths["single"].get("n"):
        coalesced, batched = paths["coalesced"]["tasks_per_s"], paths["batched"]["tasks_per_s"]
        out.append({"target": "API enqueue (32 single calls in flight, and the batched RPC) >= 8k tasks/s",
                    "measured": f"coalesced single calls {coalesced:.0f}/s, EnqueueActivities {batched:.0f}/s",
                    "met": min(coalesced, batched) >= 8000})
        out.append({"target": "API enqueue within 2x of the drain rate (32 concurrent producers)",
                    "measured": f"drain {first['tasks_per_s']:.0f}/s / coalesced {coalesced:.0f}/s = "
                                f"{first['tasks_per_s'] / coalesced:.2f}x",
                    "met": first["tasks_per_s"] / coalesced <= 2})
    if data.get("w3"):
        out += w3_targets(data["w3"])
    op = data.get("operator")
    if op and not op.get("error"):
        out.append({"target": f"{op['pools']} pools reconciled within one poll interval "
                              f"({op['poll_interval_s']:.0f} s, + one {op['tick_s']:.0f} s operator tick)",
                    "measured": f"slowest pool {op['rescale_s']:.2f} s after the backlog appeared ({op['rescaled']}/{op['pools']} pools)",
                    "met": bool(op["within_poll_interval"])})
    return out


def sweep_markdown(sweep: dict[str, Any]) -> list[str]:
    """The latency-under-load sweep: one row per background load, then where the probes waited."""
    rows = sweep["rows"]
    if not rows:
        return []
    first = rows[0]
    lines = [f"## Pickup latency under load: {first['rate']:.0f}/s probes, {sweep['workers']} x {sweep['concurrency']}, "
             f"background no-ops at fractions of its drain rate", "",
             f"Drain rate {sweep['drain_rate']:.0f} tasks/s ({sweep['drain_source']}). Background: one connection, a batch "
             f"every 20 ms, {'one insert statement per task' if first['load']['per_row'] else 'one statement per batch (the EnqueueActivities insert)'}. "
             "CPU in cores from the first probe until the last one ran; backlog = background tasks pending when the last probe was sent "
             "(kept up: at most 100 ms of load + 64).", "",
             "| load | background /s offered / sent | probes | p50 ms | p95 ms | p99 ms | max ms | enqueue call p50 ms | "
             "CPU cores: control plane / workers / PG / bench (loader + probes) | backlog at end (max) | kept up |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        w = r["cpu_window_s"]
        pg = _f(r["pg_cpu_s"] / w if r["pg_cpu_s"] is not None else None, 2)
        lines.append(
            f"| {100 * r['fraction']:.0f}% | {r['load_rate']:.0f} / {r['load_sent_per_s']:.0f} | {r['got']}/{r['n']} | "
            f"**{r['p50_ms']:.1f}** | {r['p95_ms']:.1f} | **{r['p99_ms']:.1f}** | {r['max_ms']:.1f} | "
            f"{r['enqueue_call_p50_ms']:.2f} | {r['cp_cpu_s'] / w:.2f} / {r['worker_cpu_s'] / w:.2f} / {pg} / "
            f"{r['bench_cpu_s'] / w:.2f} | {r['backlog_end']} ({r['backlog_max']}) | "
            f"{'yes' if r['kept_up'] else '**no**'} |")
    lines += ["", "Where the probes' time went (p50 / p99 ms of each segment, over the same probes): enqueue call start "
              "-> row written (created_at), row -> claimed (the claim's start), claimed -> activity start; the claims "
              "of the window (all types) and the loader's batches.", "",
              "| load | enqueue -> row | row -> claimed | claimed -> start | claims/s, tasks per claim p50 (probe's claim p50) | "
              "loader batch insert p50 / max ms, furthest behind schedule ms |",
              "|---|---|---|---|---|---|"]
    for r in rows:
        sg, c, ld = r["segments"], r["claims"], r["load"]
        cell = [f"{sg[k]['p50_ms']:.1f} / {sg[k]['p99_ms']:.1f}" for k in ("enqueue_to_row", "row_to_claim", "claim_to_start")]
        loader = (f"{ld['insert_p50_ms']:.1f} / {ld['insert_max_ms']:.1f}, {ld['late_max_ms']:.0f}"
                  if ld["batches"] else "-")
        lines.append(f"| {100 * r['fraction']:.0f}% | {' | '.join(cell)} | {c['per_s']:.0f}, {_f(c['size_p50'], 0)} "
                     f"({_f(sg['probe_claim_size_p50'], 0)}) | {loader} |")
    lines.append("")
    return lines


def markdown(data: dict[str, Any]) -> str:
    meta = data["meta"]
    lines = [f"# durable benchmarks ({meta['when']})", "",
             f"Host: {meta['host']}. PostgreSQL: {meta['pg']}. Engine: git {meta.get('git', '?')}.", ""]
    peers = data.get("peers") or {}
    summary = peers.get("summary") or {}
    if data.get("throughput") is not None:
        lines += ["## Throughput: no-op activities, enqueued then drained by worker processes over gRPC", "",
                  "| system | workers x C | tasks/s (median) | runs | CPU s / 1k tasks: control plane / workers / PG / total | completed | claimed twice |",
                  "|---|---|---|---|---|---|---|"]
        for r in data["throughput"]:
            c = r["cpu_s_per_1k"]
            lines.append(
                f"| **durable** | {r['workers']} x {r['concurrency']} | **{r['tasks_per_s']:.0f}** | "
                f"{' / '.join(f'{t:.0f}' for t in r['runs_tasks_per_s'])} | {c['controlplane']:.2f} / {c['workers']:.2f} / "
                f"{_f(c['postgres'], 2)} / {c['total']:.2f} | {r['completed']}/{r['n']} | {r['claimed_twice']} |")
            k = r.get("keyed")
            if k:
                kc = k["cpu_s_per_1k"]
                lines.append(
                    f"| durable, {k['keys']} concurrency keys (limit 2), {k['over_plain']:.2f} of plain | "
                    f"{k['workers']} x {k['concurrency']} | **{k['tasks_per_s']:.0f}** | "
                    f"{' / '.join(f'{t:.0f}' for t in k['runs_tasks_per_s'])} | {kc['controlplane']:.2f} / "
                    f"{kc['workers']:.2f} / {_f(kc['postgres'], 2)} / {kc['total']:.2f} | {k['completed']}/{k['n']} | "
                    f"{k['claimed_twice']} |")
        sf = data.get("schema_floor")
        if sf:
            lines.append(
                f"| durable's schema, SQL only (store statements, raw asyncpg, B={sf['batch']}) | {sf['conns']} conns | "
                f"**{sf['tasks_per_s']:.0f}** | {sf['tasks_per_s']:.0f} | - / - / {_f(sf['pg_cpu_s_per_1k'], 2)} / - | "
                f"{sf['completed']}/{sf['n']} | {sf['claimed_twice']} |")
        for p in summary.get("w1") or []:
            lines.append(
                f"| {p['system']} (peer-bench) | 1 x {p['conc']} | **{p['tasks_per_s']:.0f}** | "
                f"{' / '.join(f'{t:.0f}' for t in p['runs'])}{' *' if p['timed_out'] else ''} | - / {p['worker_cpu_s_per_1k']:.2f} / "
                f"{p['pg_cpu_s_per_1k']:.2f} / {p['cpu_s_per_1k']:.2f} | | |")
        r = data.get("ratios") or {}
        if r.get("ours"):
            peer, floor = r.get("fastest_peer"), r.get("floor_b100")
            lines += ["", (f"Ratios: durable best ({r['ours']['workers']} x {r['ours']['concurrency']}, "
                          f"{r['ours']['tasks_per_s']:.0f}/s) / fastest peer "
                          f"({peer['system'] + ' C=' + str(peer['conc']) + ', ' + format(peer['tasks_per_s'], '.0f') + '/s' if peer else 'not run'}) = "
                          f"**{_f(r.get('ours_over_fastest_peer'), 2)}x**; / floor-B100 "
                          f"({'C=' + str(floor['conc']) + ', ' + format(floor['tasks_per_s'], '.0f') + '/s' if floor else 'not run'}) = "
                          f"**{_f(r.get('ours_over_floor_b100'), 3)}x**; / the SQL floor of durable's own schema = "
                          f"**{_f(r.get('ours_over_schema_floor'), 2)}x**.")]
            if r.get("ours_at_64_slots") and r.get("fastest_peer_at_64"):
                o, p = r["ours_at_64_slots"], r["fastest_peer_at_64"]
                lines += ["", (f"At equal concurrency (64 task slots): durable {o['workers']} x {o['concurrency']} "
                              f"{o['tasks_per_s']:.0f}/s / {p['system']} C=64 {p['tasks_per_s']:.0f}/s = "
                              f"**{_f(r.get('ours_over_fastest_peer_at_64'), 2)}x**.")]
        first = data["throughput"][0]
        paths = first.get("enqueue_paths")
        if paths and paths["single"].get("n"):
            single, coalesced, batched = paths["single"], paths["coalesced"], paths["batched"]
            drain = first["tasks_per_s"]
            api = max(coalesced["tasks_per_s"], batched["tasks_per_s"])
            lines += ["", (f"Enqueue paths (tasks/s, the median of {len(single['runs_tasks_per_s'])} interleaved rounds "
                          f"of {single['n']}): store insert in one transaction "
                          f"**{first['n'] / first['enqueue_store_s']:.0f}**; API single calls, "
                          f"{single['concurrency']} in flight: not coalesced **{single['tasks_per_s']:.0f}** "
                          f"(call p50 {single['call_p50_ms']:.1f} ms), coalesced **{coalesced['tasks_per_s']:.0f}** "
                          f"(call p50 {coalesced['call_p50_ms']:.1f} ms); EnqueueActivities of {batched['batch']}, "
                          f"{batched['concurrency']} in flight **{batched['tasks_per_s']:.0f}**; drained in the same run "
                          f"({first['workers']} x {first['concurrency']}) {drain:.0f}: drain / coalesced single calls = "
                          f"{drain / coalesced['tasks_per_s']:.2f}x, drain / best API path = {drain / api:.2f}x.")]
        elif first.get("grpc_enqueue", {}).get("n"):
            e = first["grpc_enqueue"]
            lines += ["", (f"Enqueue paths: one transaction through the store's insert statement "
                          f"{first['n'] / first['enqueue_store_s']:.0f} tasks/s; "
                          f"ClientService.EnqueueActivity over gRPC {e['tasks_per_s']:.0f} tasks/s "
                          f"({e['n']} calls, 32 in flight, call p50 {e['call_p50_ms']:.1f} ms).")]
        lines.append("")
    lat = data.get("latency")
    if lat:
        lines += ["## Pickup latency: enqueue call start to activity start", "",
                  "| system | scenario | workers x C | tasks seen | p50 ms | p95 ms | p99 ms | max ms | enqueue call p50 ms |",
                  "|---|---|---|---|---|---|---|---|---|"]
        x = lat.get("idle")
        if x:
            lines.append(f"| **durable** | idle, {x['rate']:.0f}/s one at a time | {x['workers']} x {x['concurrency']} | "
                         f"{x['got']}/{x['n']} | **{x['p50_ms']:.1f}** | {x['p95_ms']:.1f} | **{x['p99_ms']:.1f}** | "
                         f"{x['max_ms']:.1f} | {x['enqueue_call_p50_ms']:.2f} |")
        for p in summary.get("w2") or []:
            lines.append(f"| {p['system']} (peer-bench W2) | idle, 50/s one at a time | 1 x {p['conc']} | {p['got']}/{p['n']} | "
                         f"{p['p50_ms']:.1f} | {p['p95_ms']:.1f} | {p['p99_ms']:.1f} | {p['max_ms']:.1f} | |")
        lines.append("")
        if lat.get("sweep"):
            lines += sweep_markdown(lat["sweep"])
    if data.get("workflows"):
        lines += ["## Workflow throughput: workflows end to end (four_steps, agent_turn: 4 activities and 5 decisions "
                  "each; one_step: 1 and 2)", "",
                  "| app | workers x C | workflows/s | tasks/s (activities + decisions) | wall s | completed | activities claimed twice | CPU s: control plane / workers / PG |",
                  "|---|---|---|---|---|---|---|---|"]
        for w in data["workflows"]:
            lines.append(f"| {w['app']} | {w['workers']} x {w['concurrency']} | **{w['workflows_per_s']:.1f}** | "
                         f"{w['tasks_per_s']:.0f} | {w['wall_s']:.1f} | {w['completed']}/{w['n']} | {w['activities_claimed_twice']} | "
                         f"{w['cp_cpu_s']:.1f} / {w['worker_cpu_s']:.1f} / {_f(w['pg_cpu_s'])} |")
        lines.append("")
    if data.get("w3"):
        lines += w3_markdown(data["w3"])
    if data.get("scale"):
        lines += ["## Scale: simulated workers long-polling one control plane", "",
                  "| workers | enqueue-to-claim p50 ms | p95 ms | p99 ms | max ms | CP CPU idle (cores) | CP CPU under load (cores) | PG CPU idle / load (cores) | CP RSS empty / idle / after load MB | DB commits/s idle | DB commits per task | tasks received | lost | handed out twice |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for s in data["scale"]:
            lines.append(
                f"| {s['workers']} | {s['claim_p50_ms']:.1f} | {s['claim_p95_ms']:.1f} | **{s['claim_p99_ms']:.1f}** | "
                f"{s['claim_max_ms']:.1f} | {s['cp_cpu_idle_cores']:.2f} | {s['cp_cpu_load_cores']:.2f} | "
                f"{_f(s['pg_cpu_idle_cores'], 2)} / {_f(s['pg_cpu_load_cores'], 2)} | "
                f"{s['cp_rss_start_mb']:.0f} / {s['cp_rss_idle_mb']:.0f} / {s['cp_rss_load_mb']:.0f} | "
                f"{s['db_commits_idle_per_s']:.0f} | {s['db_commits_per_task']:.1f} | {s['received']}/{s['tasks']} | {s['lost']} | {s['handed_out_twice']} |")
        lines.append("")
    rp = data.get("reaper")
    if rp:
        def w(x: dict[str, Any]) -> str:
            return f"{x['n']} calls, p50 {x['p50_ms']:.1f} / p99 {x['p99_ms']:.1f} / max {x['max_ms']:.1f} ms"
        lines += ["## Reaper: claimed tasks with stale heartbeats", "",
                  "| measure | value |", "|---|---|",
                  f"| stale claimed tasks | {rp['stale']} |",
                  f"| first pass, default settings (batch 1000) | {rp['first_pass_s']:.2f} s, {rp['first_pass_reclaimed']} reclaimed |",
                  (f"| passes until none stale (default batch) | {rp['default_passes']} passes, {rp['default_total_s']:.1f} s of work, "
                  f"{rp['default_reclaimed']} reclaimed (at REAPER_INTERVAL_SECONDS=10: ~{rp['default_passes'] * 10} s to recover all) |"),
                  *[f"| one pass with batch_size = {p['batch']} | "
                    + (f"{p['seconds']:.1f} s, {p['reclaimed']} reclaimed" if p["finished"]
                       else f"**did not finish within {p['timeout_s']:.0f} s** (killed, rolled back)")
                    + f"; ClaimTasks meanwhile: {w(p['claims'])} |" for p in rp["big_passes"]],
                  f"| still stale at the end | {rp['stale_left_at_end']} |",
                  f"| ClaimTasks (wait 0) before the passes | {w(rp['claims_baseline'])} |",
                  f"| ClaimTasks during the first default pass | {w(rp['claims_first_pass'])} |",
                  f"| ClaimTasks during all default passes | {w(rp['claims_default_passes'])} |",
                  f"| probe tasks claimed / handed out twice | {rp['probe_claims']} / {rp['probe_handed_out_twice']} |", ""]
    if data.get("long_workflow"):
        from tests.bench.long_workflow import long_workflow_table

        steps = data["long_workflow"][0]["steps"]
        lines += [f"## Decision cost as the history grows: {steps}-step sequential workflows, instance cache on and off",
                  "", long_workflow_table(data["long_workflow"]), ""]
    if data.get("retention"):
        from tests.bench.retention import retention_markdown

        lines += retention_markdown(data["retention"])
    op = data.get("operator")
    if op:
        lines += ["## Operator: pools reconciled against the Kubernetes API emulator", ""]
        if op.get("error"):
            lines += [f"Not measured: {op['error']}", ""]
        else:
            lines += ["| measure | value |", "|---|---|",
                      f"| pools | {op['pools']} |",
                      f"| operator tick / pool poll interval | {op['tick_s']:.1f} s / {op['poll_interval_s']:.0f} s |",
                      f"| create all pools -> every Deployment exists and every pool BacklogKnown=True | {op['create_s']:.2f} s |",
                      f"| backlog enqueued -> every Deployment at its new replica count | **{op['rescale_s']:.2f} s** |",
                      f"| pools at the expected replicas | {op['rescaled']}/{op['pools']} |", ""]
    if peers.get("error"):
        lines += [f"Peer baselines not measured: {peers['error']}", ""]
    for e in summary.get("errors") or []:
        lines.append(f"Peer-bench error: {e['system']}: {e['error']}")
    t = data.get("targets") or []
    if t:
        lines += ["## Targets (reported, not asserted)", "", "| target | measured | met |", "|---|---|---|"]
        lines += [f"| {x['target']} | {x['measured']} | {'n/a' if x['met'] is None else 'yes' if x['met'] else '**no**'} |"
                  for x in t]
        lines.append("")
    return "\n".join(lines)
