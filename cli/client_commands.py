"""Client commands: `durable workflows ...`, `durable dlq ...`, `durable activities enqueue`,
`durable stats`, `durable workers`. Cancel, requeue and delete take one id or a filter (bulk)."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import click

from durable.cli.bulk import (
    bulk_options,
    dead_letter_filter_options,
    dead_letter_selection,
    run_bulk,
    workflow_filter_options,
    workflow_selection,
)
from durable.cli.inputs import HELP, read_json
from durable.cli.render import history_json, history_table, steps_table, table, when, workflow_header
from durable.cli.waiting import EXIT_CODES_HELP, Exit, follow, start_and_follow
from durable.client import Client, Unavailable
from durable.common.errors import DurableError

T = TypeVar("T")

STEPS_SHOWN = 1000  # ListWorkflowTasks' largest page

address_option = click.option(
    "--address", envvar="GRPC_ADDRESS", default="127.0.0.1:9001", show_default=True,
    help="Control-plane gRPC address (env GRPC_ADDRESS).",
)


class Unreachable(click.ClickException):
    """The control plane (or its database) could not be reached: exit code 6."""

    exit_code = int(Exit.UNREACHABLE)


def run(address: str, action: Callable[[Client], Awaitable[T]]) -> T:
    async def main() -> T:
        async with Client(address) as client:
            return await action(client)

    try:
        return asyncio.run(main())
    except Unavailable as exc:
        hint = "" if exc.database_down else "; is `durable controlplane` running there?"
        raise Unreachable(f"{exc}{hint}") from None
    except DurableError as exc:
        raise click.ClickException(str(exc)) from None


@click.group("workflows", epilog=EXIT_CODES_HELP)
def workflows() -> None:
    """Start, inspect, wait for, signal and cancel workflows."""


@workflows.command("start", epilog=EXIT_CODES_HELP)
@address_option
@click.argument("workflow_type")
@click.option("--input", "input_text", default="{}", show_default=True, help=f"Input, {HELP}.")
@click.option("--id", "workflow_id", default=None,
              help="Your own workflow id: starting it again returns the existing workflow (same type "
                   "only; another type is an error).")
@click.option("--wait/--no-wait", default=False,
              help="Wait for the workflow to end, printing its events; the exit code tells how it ended.")
@click.option("--timeout", default=300.0, show_default=True, type=click.FloatRange(min=0),
              help="Seconds to wait with --wait (exit 5 when it passes).")
@click.option("--concurrency-key", default=None,
              help="At most --concurrency-limit workflows of this key run at once; this one waits its turn.")
@click.option("--concurrency-limit", default=None, type=click.IntRange(min=1),
              help="How many workflows of --concurrency-key may run at once.")
def start(
    address: str, workflow_type: str, input_text: str, workflow_id: str | None, wait: bool, timeout: float,
    concurrency_key: str | None, concurrency_limit: int | None,
) -> None:
    """Start a workflow of WORKFLOW_TYPE; with --wait, until it ends."""
    if (concurrency_key is None) != (concurrency_limit is None):
        raise click.UsageError("--concurrency-key and --concurrency-limit go together: give both or neither")
    payload = read_json(input_text, "--input")
    concurrency = (concurrency_key, concurrency_limit) if concurrency_key and concurrency_limit else None

    async def action(client: Client) -> Exit:
        if wait:
            return await start_and_follow(client, workflow_type, payload, workflow_id, timeout, concurrency)
        wid, created = await client.start_workflow(workflow_type, payload, workflow_id=workflow_id,
                                                   concurrency_key=concurrency_key, concurrency_limit=concurrency_limit)
        click.echo(f"{'started' if created else 'already exists:'} {wid}")
        return Exit.COMPLETED

    sys.exit(int(run(address, action)))


@workflows.command("wait", epilog=EXIT_CODES_HELP)
@address_option
@click.argument("workflow_id")
@click.option("--timeout", default=300.0, show_default=True, type=click.FloatRange(min=0),
              help="Seconds to wait (exit 5 when it passes).")
@click.option("--events/--no-events", default=False, help="Print the events as they arrive.")
def wait_(address: str, workflow_id: str, timeout: float, events: bool) -> None:
    """Wait for WORKFLOW_ID to end; print how it ended and exit with its code."""
    sys.exit(int(run(address, lambda c: follow(c, workflow_id, timeout, events=events))))


@workflows.command("show")
@address_option
@click.argument("workflow_id")
@click.option("--json", "as_json", is_flag=True,
              help="Print one JSON object: the workflow and its full history, payloads decoded "
                   "(what `durable replay --history FILE` reads).")
@click.option("--full", is_flag=True, help="Print payloads whole (by default they are cut at 100 characters).")
def show(address: str, workflow_id: str, as_json: bool, full: bool) -> None:
    """Show a workflow and its event history: each step's activity type, attempts and retries."""

    async def action(client: Client) -> None:
        view = await client.describe_workflow(workflow_id)
        events = await client.full_history(workflow_id)
        if as_json:
            click.echo(json.dumps(history_json(view, events), indent=2))
            return
        tasks = await client.workflow_tasks(workflow_id, include_finished=True, limit=STEPS_SHOWN)
        click.echo(workflow_header(view, full=full))
        for kind_type in view.unserved_types:
            kind, _, type_ = kind_type.partition(":")
            click.echo(f"warning: no worker serves {kind} type {type_!r}: its tasks wait until one registers")
        click.echo("")
        click.echo(history_table(events, full=full))
        if any(t.kind != "workflow" for t in tasks):
            click.echo("")
            click.echo(steps_table(tasks, full=full))
            if len(tasks) == STEPS_SHOWN:
                click.echo(f"(the first {STEPS_SHOWN} tasks)")

    run(address, action)


@workflows.command("list")
@address_option
@click.option("--status", default=None, type=click.Choice(["pending", "running", "completed", "failed", "cancelled"]),
              help="Only workflows in this status.")
@click.option("--type", "workflow_type", default=None, help="Only workflows of this type.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 1000),
              help="Most workflows to list (1..1000), newest first.")
def list_(address: str, status: str | None, workflow_type: str | None, limit: int) -> None:
    """List recent workflows."""
    views = run(address, lambda c: c.list_workflows(status=status, workflow_type=workflow_type, limit=limit))
    click.echo(table(["id", "type", "status", "created", "events"],
                     [(v.id, v.workflow_type, v.status, when(v.created_at), v.last_event_seq) for v in views]))


@workflows.command("cancel")
@address_option
@click.argument("workflow_id", required=False)
@click.option("--reason", default="cancelled from the command line", show_default=True,
              help="Why (recorded in the history).")
@click.option("--terminate", is_flag=True,
              help="End it at once without running its code (no finally blocks or compensations).")
@workflow_filter_options
@bulk_options
def cancel(address: str, workflow_id: str | None, reason: str, terminate: bool, dry_run: bool, batch_size: int,
           yes: bool, **filters: Any) -> None:
    """Cancel a workflow: its code gets a CancelledError where it waits, runs its finally
    blocks and compensations, and the workflow ends cancelled. --terminate ends it at once.

    Without WORKFLOW_ID, cancel every pending and running workflow the filter options
    select, in batches, with a progress bar (--dry-run prints how many)."""
    if workflow_id is None:
        selection = workflow_selection(**filters)
        run(address, lambda c: run_bulk(
            c.bulk_cancel_workflows, selection, verb="cancel", noun="workflows", dry_run=dry_run,
            batch_size=batch_size, yes=yes, reason=reason, terminate=terminate))
        return
    _no_filters("workflows cancel WORKFLOW_ID", dry_run, filters)
    n = run(address, lambda c: c.cancel_workflow(workflow_id, reason, terminate=terminate))
    if terminate:
        click.echo(f"cancelled {workflow_id} ({n} tasks cancelled)")
    else:
        click.echo(f"cancel requested for {workflow_id}: its code runs its finally blocks, then it ends cancelled")


@workflows.command("delete")
@address_option
@workflow_filter_options
@bulk_options
def delete_workflows(address: str, dry_run: bool, batch_size: int, yes: bool, **filters: Any) -> None:
    """Delete the ended (completed, failed, cancelled), unpinned workflows the filter options
    select, with their histories, tasks and dead letters, in batches (admin scope)."""
    selection = workflow_selection(**filters)
    run(address, lambda c: run_bulk(
        c.bulk_delete_workflows, selection, verb="delete", noun="workflows", dry_run=dry_run,
        batch_size=batch_size, yes=yes))


def _no_filters(command: str, dry_run: bool, filters: dict[str, Any]) -> None:
    """One id and filter options together are a mistake: say so rather than pick one."""
    flags = {"activity_type": "--type", "workflow_type": "--type", "error_contains": "--error",
             "everything": "--all", "workflow_id": "--workflow"}
    named = [flags.get(k, f"--{k.replace('_', '-')}") for k, v in filters.items() if v]
    if named or dry_run:
        raise click.UsageError(
            f"`durable {command}` acts on that one; filter options ({', '.join(named or ['--dry-run'])}) "
            "are for acting on many without an id")


@workflows.command("query")
@address_option
@click.argument("workflow_id")
@click.argument("name")
@click.option("--arg", "arg_text", default=None, help="The query's argument, as JSON.")
@click.option("--timeout", default=10.0, show_default=True, help="Seconds to wait for a worker's answer.")
def query(address: str, workflow_id: str, name: str, arg_text: str | None, timeout: float) -> None:
    """Ask a workflow's query handler (answered by a worker; works on ended workflows too)."""
    arg = None
    if arg_text is not None:
        try:
            arg = json.loads(arg_text)
        except ValueError as exc:
            raise click.BadParameter(f"--arg is not valid JSON: {exc}") from None
    answer = run(address, lambda c: c.query_workflow(workflow_id, name, arg, timeout=timeout))
    click.echo(json.dumps(answer, indent=2))


@workflows.command("signal")
@address_option
@click.argument("workflow_id")
@click.argument("signal_type")
@click.option("--payload", default="{}", show_default=True, help=f"Payload, {HELP}.")
def signal(address: str, workflow_id: str, signal_type: str, payload: str) -> None:
    """Send a custom signal to a workflow."""
    body = read_json(payload, "--payload")
    seq = run(address, lambda c: c.signal_workflow(workflow_id, signal_type, body))
    click.echo(f"signal {signal_type} recorded as event {seq}")


@workflows.command("pin")
@address_option
@click.argument("workflow_id")
def pin(address: str, workflow_id: str) -> None:
    """Keep a workflow for ever: retention never deletes it."""
    run(address, lambda c: c.pin_workflow(workflow_id, True))
    click.echo(f"pinned {workflow_id}: kept until unpinned")


@workflows.command("unpin")
@address_option
@click.argument("workflow_id")
def unpin(address: str, workflow_id: str) -> None:
    """Let retention delete a pinned workflow again (after its status's retention)."""
    run(address, lambda c: c.pin_workflow(workflow_id, False))
    click.echo(f"unpinned {workflow_id}: retention applies again")


@click.group("dlq")
def dlq() -> None:
    """The dead-letter queue."""


@dlq.command("list")
@address_option
@click.option("--type", "activity_type", default=None, help="Only dead-lettered tasks of this activity type.")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 1000),
              help="Most entries to list (1..1000).")
def dlq_list(address: str, activity_type: str | None, limit: int) -> None:
    """List dead-lettered tasks, newest first."""
    entries = run(address, lambda c: c.list_dead_letters(activity_type, limit))
    click.echo(table(
        ["id", "type", "workflow", "attempts", "reason", "dead at", "requeued", "last error"],
        [(e.id, e.activity_type, e.workflow_id or "-", e.attempts, e.reason, when(e.dead_at),
          e.requeue_count, (e.last_error or "")[:60]) for e in entries],
    ))


@dlq.command("requeue")
@address_option
@click.argument("dead_letter_id", required=False)
@dead_letter_filter_options
@bulk_options
def dlq_requeue(address: str, dead_letter_id: str | None, dry_run: bool, batch_size: int, yes: bool,
                **filters: Any) -> None:
    """Put a fresh task for a dead-lettered one on the queue.

    Without DEAD_LETTER_ID, requeue every unresolved entry the filter options select (of
    standalone activities, or of workflows still running), in batches, with a progress bar."""
    if dead_letter_id is None:
        selection = dead_letter_selection(**filters)
        run(address, lambda c: run_bulk(
            c.bulk_requeue_dead_letters, selection, verb="requeue", noun="dead letters", dry_run=dry_run,
            batch_size=batch_size, yes=yes))
        return
    _no_filters("dlq requeue DEAD_LETTER_ID", dry_run, filters)
    task_id = run(address, lambda c: c.requeue_dead_letter(dead_letter_id))
    click.echo(f"requeued as task {task_id}")


@dlq.command("delete")
@address_option
@click.argument("dead_letter_id", required=False)
@dead_letter_filter_options
@bulk_options
def dlq_delete(address: str, dead_letter_id: str | None, dry_run: bool, batch_size: int, yes: bool,
               **filters: Any) -> None:
    """Delete a dead-letter entry (a standalone activity's dead task goes with it).

    Without DEAD_LETTER_ID, delete every entry the filter options select, in batches (admin scope)."""
    if dead_letter_id is None:
        selection = dead_letter_selection(**filters)
        run(address, lambda c: run_bulk(
            c.bulk_delete_dead_letters, selection, verb="delete", noun="dead letters", dry_run=dry_run,
            batch_size=batch_size, yes=yes))
        return
    _no_filters("dlq delete DEAD_LETTER_ID", dry_run, filters)
    run(address, lambda c: c.delete_dead_letter(dead_letter_id))
    click.echo(f"deleted dead-letter entry {dead_letter_id}")


@click.group("activities")
def activities() -> None:
    """Standalone activities (tasks outside any workflow)."""


@activities.command("enqueue")
@address_option
@click.argument("activity_type")
@click.option("--input", "input_text", default="{}", show_default=True, help=f"Input, {HELP}.")
@click.option("--idempotency-key", default=None,
              help="Enqueueing with the same key again within the control plane's DURABLE_IDEMPOTENCY_WINDOW "
                   "(default 24h) returns the first task instead of a new one.")
@click.option("--priority", default=0, show_default=True, type=click.IntRange(-1000, 1000),
              help="Higher is claimed first.")
@click.option("--max-attempts", default=0, type=click.IntRange(min=0), help="Attempts before it is dead-lettered "
              "(0 = the default).")
@click.option("--concurrency-key", default=None,
              help="Tasks sharing this key run at most --concurrency-limit at once, cluster-wide.")
@click.option("--concurrency-limit", default=None, type=click.IntRange(min=1),
              help="How many tasks of --concurrency-key may run at once.")
def enqueue(address: str, activity_type: str, input_text: str, idempotency_key: str | None, priority: int,
            max_attempts: int, concurrency_key: str | None, concurrency_limit: int | None) -> None:
    """Queue a task of ACTIVITY_TYPE; prints its id (and whether the key had made it already)."""
    if (concurrency_key is None) != (concurrency_limit is None):
        raise click.UsageError("--concurrency-key and --concurrency-limit go together: give both or neither")
    payload = read_json(input_text, "--input")
    done = run(address, lambda c: c.enqueue(
        activity_type, payload, priority=priority, max_attempts=max_attempts, idempotency_key=idempotency_key,
        concurrency_key=concurrency_key, concurrency_limit=concurrency_limit))
    click.echo(f"already enqueued (same idempotency key): {done.task_id}" if done.duplicate
               else f"enqueued {done.task_id}")


@click.command("stats")
@address_option
@click.option("--activity-type", "activity_types", multiple=True, help="Limit to these activity types.")
@click.option("--workflow-type", "workflow_types", multiple=True, help="Limit to these workflow types.")
def stats(address: str, activity_types: tuple[str, ...], workflow_types: tuple[str, ...]) -> None:
    """Queue backlog per type: pending, delayed, running, oldest pending age; then the rate
    limits (tokens now) and the busiest concurrency keys, when there are any."""
    from durable.cli.gate_commands import render_gates

    async def action(c: Client) -> tuple[list[Any], list[Any], list[Any]]:
        rows = await c.queue_stats(list(activity_types), list(workflow_types))
        limits, keys = await c.rate_limits()
        return rows, limits, keys

    rows, limits, keys = run(address, action)
    click.echo(table(["kind", "type", "pending", "delayed", "running", "oldest pending"],
                     [(s.kind, s.type, s.pending, s.delayed, s.claimed, f"{s.oldest_pending_age:.1f} s") for s in rows]))
    for s in rows:
        if s.unserved:
            click.echo(f"warning: no worker serves {s.kind} type {s.type!r} ({s.pending + s.delayed} tasks waiting)")
    if limits or keys:
        click.echo("")
        click.echo(render_gates(limits, keys))


@click.command("workers")
@address_option
@click.option("--all", "include_stopped", is_flag=True, help="Include stopped workers.")
def workers(address: str, include_stopped: bool) -> None:
    """Registered workers and their load."""
    rows = run(address, lambda c: c.list_workers(include_stopped=include_stopped))
    click.echo(table(["id", "group", "status", "load", "max", "last heartbeat"],
                     [(w.id, w.worker_group, w.status, w.current_load, w.max_concurrency, when(w.last_heartbeat_at))
                      for w in rows]))
