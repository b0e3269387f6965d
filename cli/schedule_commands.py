"""`durable schedules create|list|show|pause|resume|trigger|backfill|delete`."""

from __future__ import annotations

import json
import re

import click

from durable.cli.client_commands import address_option, run
from durable.cli.inputs import HELP, moment, read_json
from durable.cli.render import table, when
from durable.client import Client, ScheduleView

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)?\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}
POLICIES = "skip, buffer_one, allow_all, cancel_previous, terminate_previous"
# the order of a recent fire's details (PostgreSQL's jsonb keeps keys in its own order)
DETAILS = ("run_id", "previous_run_id", "count", "from", "to", "started", "existing", "reason", "error")


def duration(text: str, option: str) -> float:
    """'90', '90s', '5m', '2h', '1d' in seconds; anything else is one clear line naming the option."""
    match = _DURATION.match(text)
    if not match:
        raise click.ClickException(f"{option} {text!r} is not a duration (like 30s, 5m, 2h, 1d)")
    return float(match[1]) * _UNITS[match[2]]


def state(s: ScheduleView) -> str:
    if s.paused:
        return "paused"
    return "active" if s.next_tick else "ended"


@click.group("schedules")
def schedules() -> None:
    """Cron and interval schedules that start workflows or enqueue activities."""


@schedules.command("create")
@address_option
@click.argument("schedule_id")
@click.option("--workflow", "workflow_type", default=None, help="Start a workflow of this type on each tick.")
@click.option("--activity", "activity_type", default=None, help="Or enqueue an activity of this type.")
@click.option("--cron", default=None,
              help="Cron expression: 'minute hour day month weekday', or six fields with seconds first.")
@click.option("--every", default=None, help="Or a fixed interval: 30s, 5m, 1h, 1d (whole seconds).")
@click.option("--tz", "time_zone", default="UTC", show_default=True, help="IANA time zone of the cron expression.")
@click.option("--input", "input_text", default="{}", show_default=True, help=f"Input of each run, {HELP}.")
@click.option("--overlap", "overlap_policy", default="skip", show_default=True,
              help=f"When a tick comes while the last run goes on: {POLICIES}.")
@click.option("--catchup-window", default="60s", show_default=True,
              help="Ticks later than this (after downtime) are missed, not run.")
@click.option("--jitter", default="0s", show_default=True, help="Delay each tick by up to this much.")
@click.option("--start-at", default=None, help="No tick before this time (ISO 8601; default now).")
@click.option("--end-at", default=None, help="No tick after this time (ISO 8601).")
@click.option("--paused", is_flag=True, help="Create it paused.")
@click.option("--note", default="", help="A note shown with the schedule.")
def create(address: str, schedule_id: str, workflow_type: str | None, activity_type: str | None, cron: str | None,
           every: str | None, time_zone: str, input_text: str, overlap_policy: str, catchup_window: str,
           jitter: str, start_at: str | None, end_at: str | None, paused: bool, note: str) -> None:
    """Create schedule SCHEDULE_ID. Each tick's workflow is named SCHEDULE_ID-<tick, UTC, %Y%m%dT%H%M%SZ>."""
    if bool(workflow_type) == bool(activity_type):
        raise click.ClickException("give one of --workflow TYPE and --activity TYPE")
    if bool(cron) == bool(every):
        raise click.ClickException("give one of --cron EXPRESSION and --every DURATION")
    payload = read_json(input_text, "--input")
    interval = duration(every, "--every") if every else None
    window = duration(catchup_window, "--catchup-window")
    jitter_seconds = duration(jitter, "--jitter")
    starts = moment(start_at, "--start-at") if start_at else None
    ends = moment(end_at, "--end-at") if end_at else None

    async def action(client: Client) -> None:
        s = await client.create_schedule(
            schedule_id, workflow_type=workflow_type, activity_type=activity_type, input=payload, cron=cron,
            interval_seconds=interval, time_zone=time_zone, overlap_policy=overlap_policy,
            catchup_window_seconds=window, jitter_seconds=jitter_seconds, start_at=starts, end_at=ends,
            paused=paused, note=note,
        )
        click.echo(f"created schedule {s.id}: {s.target}, {s.spec}, overlap {s.overlap_policy}; "
                   f"{'paused' if s.paused else 'next tick ' + when(s.next_tick)}")

    run(address, action)


@schedules.command("list")
@address_option
@click.option("--prefix", default=None, help="Only schedules whose id starts with this.")
def list_(address: str, prefix: str | None) -> None:
    """Every schedule, in id order."""
    rows = run(address, lambda c: c.list_schedules(id_prefix=prefix))
    click.echo(table(
        ["ID", "TARGET", "WHEN", "OVERLAP", "STATE", "NEXT FIRE", "LAST RUN", "STARTED", "SKIPPED", "MISSED"],
        [[s.id, s.target, s.spec, s.overlap_policy, state(s), when(s.next_fire_at), s.last_run_id or "-",
          s.started_count, s.skipped_count, s.missed_count] for s in rows],
    ))


@schedules.command("show")
@address_option
@click.argument("schedule_id")
@click.option("--upcoming", default=5, show_default=True, help="How many next ticks to list.")
@click.option("--json", "as_json", is_flag=True, help="Print the schedule as JSON.")
def show(address: str, schedule_id: str, upcoming: int, as_json: bool) -> None:
    """A schedule: its definition, state, next ticks and recent fires."""
    s, ticks = run(address, lambda c: c.describe_schedule(schedule_id, upcoming=upcoming))
    if as_json:
        from dataclasses import asdict

        click.echo(json.dumps({**asdict(s), "upcoming_ticks": ticks}, indent=2))
        return
    lines = [
        f"id:        {s.id}",
        f"target:    {s.target}",
        f"input:     {json.dumps(s.input)}",
        f"when:      {s.spec}" + (f", jitter up to {s.jitter_seconds:g} s" if s.jitter_seconds else ""),
        f"overlap:   {s.overlap_policy}; catch-up window {s.catchup_window_seconds:g} s",
        f"state:     {state(s)}" + (f" ({s.note})" if s.note else ""),
        f"started:   {s.started_count}, skipped {s.skipped_count}, missed {s.missed_count}, "
        f"already existing {s.existing_count}",
        f"last run:  {s.last_run_id or '-'}" + (f" (tick {when(s.last_tick)})" if s.last_tick else ""),
    ]
    if s.buffered_tick:
        lines.append(f"buffered:  tick {when(s.buffered_tick)} waits for the last run to end")
    if s.end_at:
        lines.append(f"ends:      {when(s.end_at)}")
    lines.append("next ticks:" + ("" if ticks else " none"))
    lines += [f"  {when(t)}" for t in ticks]
    lines.append("recent fires:" + ("" if s.recent_fires else " none"))
    for fire in reversed(s.recent_fires):
        detail = " ".join(f"{k}={fire[k]}" for k in DETAILS if k in fire)
        lines.append(f"  {fire.get('tick', fire.get('at', ''))[:19]}  {fire['outcome']:<16} {detail}".rstrip())
    click.echo("\n".join(lines))


@schedules.command("pause")
@address_option
@click.argument("schedule_id")
@click.option("--note", default="", help="Why (shown with the schedule).")
def pause(address: str, schedule_id: str, note: str) -> None:
    """Stop firing ticks until resumed."""
    run(address, lambda c: c.pause_schedule(schedule_id, note))
    click.echo(f"paused {schedule_id}")


@schedules.command("resume")
@address_option
@click.argument("schedule_id")
def resume(address: str, schedule_id: str) -> None:
    """Fire again from the next tick (ticks while paused do not fire)."""
    s = run(address, lambda c: c.resume_schedule(schedule_id))
    click.echo(f"resumed {schedule_id}; next tick {when(s.next_tick)}")


@schedules.command("trigger")
@address_option
@click.argument("schedule_id")
@click.option("--overlap", "overlap_policy", default=None, help=f"Instead of the schedule's: {POLICIES}.")
def trigger(address: str, schedule_id: str, overlap_policy: str | None) -> None:
    """Run the schedule now, outside its ticks."""
    outcome, run_id = run(address, lambda c: c.trigger_schedule(schedule_id, overlap_policy=overlap_policy))
    click.echo(f"{outcome} {run_id}".rstrip() if run_id else
               f"{outcome}: the last run of {schedule_id} is still going (overlap policy)")


@schedules.command("backfill")
@address_option
@click.argument("schedule_id")
@click.option("--from", "start", required=True, help="First time of the range (ISO 8601; no offset = UTC).")
@click.option("--to", "end", required=True, help="Last time of the range, included (a date alone is its midnight).")
def backfill(address: str, schedule_id: str, start: str, end: str) -> None:
    """Run every tick of a past (or future) time range now; ticks already run are not run again."""
    starts, ends = moment(start, "--from"), moment(end, "--to")
    started, existing = run(address, lambda c: c.backfill_schedule(schedule_id, starts, ends))
    click.echo(f"backfilled {schedule_id}: started {started}, already existing {existing}")


@schedules.command("delete")
@address_option
@click.argument("schedule_id")
def delete(address: str, schedule_id: str) -> None:
    """Delete the schedule; the runs it started go on."""
    run(address, lambda c: c.delete_schedule(schedule_id))
    click.echo(f"deleted {schedule_id}")
