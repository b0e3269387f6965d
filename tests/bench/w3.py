"""Durable's workflows next to peer-bench's W3 (DBOS, Temporal, Restate), measured in the same run.

W3 (../shared/peer-bench): N workflows of STEPS sequential no-op steps (4 and 1), all started
before go, C steps in flight, one worker process (plus the engine's server process where it has
one). Durable's side is the workflow benchmark (`workflows.py`), the same N, and C task slots
split over its worker processes (default 2 x 32 = 64; activities and decisions share the
slots), one control plane, this run's PostgreSQL, with its steps run two ways (KINDS):

- as steps (`ctx.step`: `four_journalled_steps` / `one_journalled_step`): each step runs in
  the workflow's decision and its outcome is written before the next one runs, as DBOS's
  steps and Restate's `ctx.run` do;
- as activities (`four_steps` / `one_step`): each step a task of its own, claimed and
  completed (Temporal's model, which temporal-wf runs).

Ratios: durable's workflows/s over Restate's and DBOS's, per way, with the goals (4 steps:
durable / Restate >= 1, durable / DBOS >= 8). A peer that failed shows its reason; its ratio
is then n/a.
"""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass
from typing import Any

STEPS_APPS = {4: {"step": "four_journalled_steps", "activity": "four_steps"},
              1: {"step": "one_journalled_step", "activity": "one_step"}}
KINDS = ("step", "activity")
KIND_LABELS = {"step": "steps (ctx.step)", "activity": "activities"}
RATIO_PEERS = (("restate-wf", "Restate"), ("dbos-wf", "DBOS"))
GOALS = {4: {"restate-wf": 1.0, "dbos-wf": 8.0}}

RunKey = tuple[str, int, int, int]  # app, n, workers, concurrency per worker


@dataclass(frozen=True)
class W3Plan:
    """What both sides run: `n` workflows per steps count, `conc` steps in flight in all;
    durable splits `conc` task slots over `workers` processes."""

    n: int
    steps: tuple[int, ...]
    conc: int
    workers: int
    reps: int
    kinds: tuple[str, ...] = KINDS

    def __post_init__(self) -> None:
        bad = [s for s in self.steps if s not in STEPS_APPS]
        if bad:
            raise ValueError(f"--w3-steps: durable has workflows of {', '.join(map(str, sorted(STEPS_APPS)))} "
                             f"steps only (got {', '.join(map(str, bad))})")
        odd = [k for k in self.kinds if k not in KINDS]
        if odd or not self.kinds:
            raise ValueError(f"--w3-durable: durable runs its steps as {' or '.join(KINDS)} (got {', '.join(odd) or 'none'})")
        if self.workers < 1 or self.conc % self.workers:
            raise ValueError(f"--w3-conc {self.conc} does not split evenly over --w3-workers {self.workers}")

    @property
    def concurrency(self) -> int:
        return self.conc // self.workers

    def key(self, steps: int, kind: str) -> RunKey:
        return (STEPS_APPS[steps][kind], self.n, self.workers, self.concurrency)


def plan_workflow_runs(apps: list[str], apps_n: int, workers: int, concurrency: int,
                       w3: W3Plan | None) -> list[RunKey]:
    """The workflow benchmark's runs, each once, then W3's (reps times): a run both want (by
    default `four_steps`, 1,000 workflows, 2 x 32) is made once and shown in both tables."""
    want: Counter[RunKey] = Counter()
    for app in apps:
        key = (app, apps_n, workers, concurrency)
        want[key] = max(want[key], 1)
    if w3 is not None:
        for steps in w3.steps:
            for kind in w3.kinds:
                want[w3.key(steps, kind)] = max(want[w3.key(steps, kind)], w3.reps)
    return [key for key, count in want.items() for _ in range(count)]


def _steps_once(r: dict[str, Any], steps: int, kind: str) -> bool:
    """Every step ran exactly once: as activities, one task each, none claimed twice; as
    steps, one marker each on its first attempt, all in one decision task per workflow on its
    first attempt (a step runs only within a decision attempt)."""
    if kind == "activity":
        return bool(r["activities_claimed_twice"] == 0 and r["activity_tasks"] == r["n"] * steps)
    return bool(r.get("markers") == r["n"] * steps and r.get("markers_retried") == 0
                and r["decision_tasks"] == r["n"] and r.get("decisions_retried") == 0)


def _durable_row(runs: list[dict[str, Any]], plan: W3Plan, steps: int, kind: str) -> dict[str, Any]:
    app, n, workers, concurrency = plan.key(steps, kind)
    mine = [r for r in runs if (r["app"], r["n"], r["workers"], r["concurrency"]) == (app, n, workers, concurrency)]
    if not mine:
        return {"system": "durable", "kind": kind, "steps": steps, "error": "not run"}
    done = statistics.median(r["completed"] for r in mine) or 1
    cp = statistics.median(r["cp_cpu_s"] for r in mine)
    worker = statistics.median(r["worker_cpu_s"] for r in mine)
    pgs = [r["pg_cpu_s"] for r in mine if r["pg_cpu_s"] is not None]
    pg = statistics.median(pgs) if len(pgs) == len(mine) else None
    per_wf = {"server": cp / done * 1000, "workers": worker / done * 1000,
              "postgres": pg / done * 1000 if pg is not None else None}
    per_wf["total"] = per_wf["server"] + per_wf["workers"] + (per_wf["postgres"] or 0.0)
    wps = statistics.median(r["workflows_per_s"] for r in mine)
    return {
        "system": "durable", "kind": kind, "steps": steps, "app": app, "n": n, "workers": workers, "concurrency": concurrency,
        "workflows_per_s": wps, "runs": [r["workflows_per_s"] for r in mine], "steps_per_s": wps * steps,
        "wall_s": statistics.median(r["wall_s"] for r in mine), "timed_out": any(r["timed_out"] for r in mine),
        "completed": min(r["completed"] for r in mine), "cpu_ms_per_workflow": per_wf,
        "steps_once": all(_steps_once(r, steps, kind) for r in mine),
        "store_ok": all(r["not_completed"] == 0 for r in mine),
    }


def _peer_reason(peers: dict[str, Any], system: str) -> str:
    if peers.get("skipped"):
        return f"not run ({peers['skipped']})"
    errors = (peers.get("summary") or {}).get("errors") or {}
    if system in errors:
        return f"failed: {errors[system]}"
    if peers.get("error"):
        return f"failed: {peers['error']}"
    return f"no result (peer-bench log: {peers.get('dir', '?')})"


def compare(w3: dict[str, Any], workflow_runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Rows (durable, then each peer system, per steps count) and the ratios, from durable's
    workflow runs and the peer summary in `w3["peers"]`."""
    plan = W3Plan(n=w3["n"], steps=tuple(w3["steps"]), conc=w3["conc"], workers=w3["workers"], reps=w3["reps"],
                  kinds=tuple(w3.get("kinds") or KINDS))
    peers = w3.get("peers") or {}
    found = {(r["system"], r["steps"]): r for r in (peers.get("summary") or {}).get("rows") or []}
    rows: list[dict[str, Any]] = []
    ratios: list[dict[str, Any]] = []
    for steps in plan.steps:
        ours_by_kind = [_durable_row(workflow_runs, plan, steps, kind) for kind in plan.kinds]
        rows.extend(ours_by_kind)
        for system in peers.get("systems") or ():
            rows.append(found.get((system, steps)) or {"system": system, "steps": steps,
                                                       "error": _peer_reason(peers, system)})
        for ours in ours_by_kind:
            for system, label in RATIO_PEERS:
                peer = found.get((system, steps))
                goal = GOALS.get(steps, {}).get(system)
                ratio = (ours["workflows_per_s"] / peer["workflows_per_s"]
                         if peer and peer["workflows_per_s"] and ours.get("workflows_per_s") else None)
                why = None
                if ratio is None:
                    why = ours["error"] if ours.get("error") else (
                        _peer_reason(peers, system) if not peer else "no completions")
                ratios.append({"steps": steps, "kind": ours["kind"], "peer": system, "label": label, "ratio": ratio,
                               "why": why, "goal": goal, "met": None if ratio is None or goal is None else ratio >= goal})
    return {"rows": rows, "ratios": ratios}


def w3_targets(w3: dict[str, Any]) -> list[dict[str, Any]]:
    """The goals beside the measured ratios (met is None when a side has no number)."""
    return [{"target": f"{r['steps']}-step workflows/s, as {KIND_LABELS[r.get('kind', 'activity')]}, >= {r['goal']:g}x "
                       f"{r['label']}'s (peer-bench W3, {r['peer']})",
             "measured": f"{r['ratio']:.2f}x" if r["ratio"] is not None else f"n/a ({_short(r['why'], 120)})", "met": r["met"]}
            for r in w3.get("ratios") or [] if r["goal"] is not None]


def _short(reason: str, limit: int = 240) -> str:
    """A reason fit for one table cell: one line, cut (the JSON keeps it whole)."""
    text = " ".join(reason.split()).replace("|", "/")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _n(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _ran(row: dict[str, Any], mode: str | None) -> str:
    if row["system"] == "durable":
        return (f"`{row['app']}`, {row['n']} wf, {row['workers']} worker procs x {row['concurrency']} task slots "
                f"+ control plane; PostgreSQL")
    engine = " + engine server" if row["cpu_ms_per_workflow"]["server"] is not None else ""
    store = ("PostgreSQL" + (", the same server" if mode == "same" else "")) if row["uses_pg"] else row["store"]
    return f"{row['n']} wf, {row['procs']} worker proc{engine}, C={row['conc']}; {store}"


def w3_markdown(w3: dict[str, Any]) -> list[str]:
    peers = w3.get("peers") or {}
    mode = peers.get("mode")
    steps_text = " and ".join(map(str, w3["steps"]))
    lines = [
        f"## Workflows against peer-bench W3: {w3['n']} workflows of {steps_text} no-op steps, "
        f"{w3['conc']} steps in flight", "",
        (f"What each side ran. **durable**: its steps as steps (`ctx.step`: `four_journalled_steps` / "
         "`one_journalled_step`, each step's outcome written before the next runs, as DBOS's steps and Restate's "
         "ctx.run do) and as activities (`four_steps` / `one_step`: a task each, as temporal-wf runs them) "
         f"(tests.bench.apps), {w3['workers']} worker "
         f"processes x MAX_CONCURRENT_TASKS {w3['concurrency']} = {w3['conc']} task slots (activities and decisions "
         "share them), one control plane, this run's PostgreSQL; the workflows are started while the control plane "
         "is paused, then go. **Peers**: peer-bench W3"
         + (f" (peer mode `{mode}`" + (": DBOS on this run's PostgreSQL server)" if mode == "same" else ")") if mode else "")
         + f", one worker process, {w3['conc']} steps in flight (DBOS: queue worker_concurrency; Temporal: "
         "max_concurrent_activities and _workflow_tasks; Restate: invocations), the workflows started before go. "
         f"workflows/s = completed / seconds from go to all completed; median of {w3['reps']} run(s) per row. "
         "CPU: user+sys of each process during the clock, per completed workflow; PostgreSQL = the whole server "
         "(not counted in the total of an engine that does not use it)."), "",
        "| steps | system | ran | workflows/s | runs | steps/s | CPU ms per workflow: server (durable: control plane) "
        "/ workers / PostgreSQL / total | completed | checks |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in w3.get("rows") or []:
        name = f"**durable**, {KIND_LABELS[r.get('kind', 'activity')]}" if r["system"] == "durable" else r["system"]
        if r.get("error"):
            lines.append(f"| {r['steps']} | {name} | | **{_short(r['error'])}** | | | | | |")
            continue
        c = r["cpu_ms_per_workflow"]
        unused = "" if r["system"] == "durable" or r["uses_pg"] else " (unused)"
        runs = " / ".join(f"{x:.0f}" for x in r["runs"]) + (" *" if r["timed_out"] else "")
        checks = (f"steps once: {'yes' if r['steps_once'] else '**NO**'}; store: {'ok' if r['store_ok'] else '**MISMATCH**'}"
                  + ("; **OUTBOUND ATTEMPT**" if r.get("outbound") else ""))
        lines.append(
            f"| {r['steps']} | {name} | {_ran(r, mode)} | **{r['workflows_per_s']:.1f}** | {runs} | {r['steps_per_s']:.0f} | "
            f"{'-' if c['server'] is None else format(c['server'], '.2f')} / {c['workers']:.2f} / "
            f"{_n(c['postgres'], 2)}{unused} / **{c['total']:.2f}** | {r['completed']}/{r['n']} | {checks} |")
    lines.append("")
    for steps in w3["steps"]:
        parts = []
        for x in (r for r in w3.get("ratios") or [] if r["steps"] == steps):
            value = f"**{x['ratio']:.2f}x**" if x["ratio"] is not None else f"n/a ({_short(x['why'], 120)})"
            goal = "" if x["goal"] is None else (
                f" (goal >= {x['goal']:g}: " + {True: "met", False: "**not met**", None: "n/a"}[x["met"]] + ")")
            parts.append(f"durable as {KIND_LABELS[x.get('kind', 'activity')]} / {x['label']} = {value}{goal}")
        lines.append(f"Ratios, {steps} step{'s' if steps != 1 else ''}: " + "; ".join(parts)
                     + ("." if steps in GOALS else " (no goal set for this size)."))
        lines.append("")
    lines.append("`*` = a run hit the time limit (workflows/s then counts the workflows completed by then). "
                 "'steps once': every step ran exactly once (durable, activities: no activity claimed twice; steps: one "
                 "marker each on its first attempt, in one decision task per workflow on its first attempt); "
                 "'store ok': the "
                 "engine's own records agree (durable: every workflow `completed`).")
    lines.append("")
    return lines
