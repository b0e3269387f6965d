"""Client commands: `durable workflows ...`, `durable dlq ...`, `durable stats`, `durable workers`."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import click

from durable.client import Client, Unavailable
from durable.common.errors import DurableError

T = TypeVar("T")

address_option = click.option(
    "--address", envvar="GRPC_ADDRESS", default="127.0.0.1:9001", show_default=True,
    help="Control-plane gRPC address (env GRPC_ADDRESS).",
)


def run(address: str, action: Callable[[Client], Awaitable[T]]) -> T:
    async def main() -> T:
        async with Client(address) as client:
            return await action(client)

    try:
        return asyncio.run(main())
    except Unavailable as exc:
        raise click.ClickException(f"{exc}; is `durable controlplane` running there?") from None
    except DurableError as exc:
        raise click.ClickException(str(exc)) from None


def when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S") if ts else "-"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain aligned table, readable in any terminal and easy to grep."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def blocked_text(blocked: dict[str, Any]) -> str:
    """The `blocked:` lines of a workflow whose decisions fail."""
    lines = [f"blocked:  {blocked.get('type', 'Error')}: {blocked.get('message', '')}",
             f"          {blocked.get('failures', 1)} failed decision(s) since {blocked.get('since', '?')}; "
             "retried with backoff until fixed code is deployed"]
    traceback = str(blocked.get("traceback") or "").strip()
    if traceback:
        lines += ["          " + line for line in traceback.splitlines()[-12:]]
    return "\n".join(lines)


def parse_json_object(text: str, what: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise click.BadParameter(f"{what} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise click.BadParameter(f"{what} must be a JSON object, like '{{\"message\": \"hi\"}}'")
    return value


@click.group("workflows")
def workflows() -> None:
    """Start, inspect, signal and cancel workflows."""


@workflows.command("start")
@address_option
@click.argument("workflow_type")
@click.option("--input", "input_text", default="{}", help="Input as a JSON object.")
@click.option("--id", "workflow_id", default=None, help="Your own workflow id (idempotent start).")
@click.option("--wait/--no-wait", default=False, help="Wait for the workflow to end, showing progress.")
@click.option("--timeout", default=300.0, show_default=True, help="Seconds to wait with --wait.")
def start(address: str, workflow_type: str, input_text: str, workflow_id: str | None, wait: bool, timeout: float) -> None:
    """Start a workflow of WORKFLOW_TYPE."""
    payload = parse_json_object(input_text, "--input")

    async def action(client: Client) -> None:
        wid, created = await client.start_workflow(workflow_type, payload, workflow_id=workflow_id)
        click.echo(f"{'started' if created else 'already exists:'} {wid}")
        if wait:
            await follow(client, wid, timeout)

    run(address, action)


async def follow(client: Client, workflow_id: str, timeout: float) -> None:
    """Print events as they arrive until the workflow ends; a progress line while waiting."""
    started = time.monotonic()
    seen = 0
    interactive = sys.stderr.isatty()
    while True:
        for event in await client.history(workflow_id, after_seq=seen):
            if interactive:
                click.echo("\r\033[K", nl=False, err=True)
            click.echo(f"  {event.sequence_num:>4}  {event.event_type:<20} {short(event.data)}")
            seen = event.sequence_num
        view = await client.describe_workflow(workflow_id)
        if view.is_terminal:
            if interactive:
                click.echo("\r\033[K", nl=False, err=True)
            click.echo(f"{view.status}: {json.dumps(view.result if view.status == 'completed' else view.error)}")
            return
        elapsed = time.monotonic() - started
        if elapsed > timeout:
            raise click.ClickException(f"workflow {workflow_id} still {view.status} after {timeout:.0f} s")
        if interactive:
            click.echo(f"\r  waiting... {elapsed:5.1f} s, status {view.status}", nl=False, err=True)
        await asyncio.sleep(0.2)


def short(data: dict[str, Any], limit: int = 100) -> str:
    text = json.dumps(data, separators=(",", ":"))
    return text if len(text) <= limit else text[: limit - 3] + "..."


@workflows.command("show")
@address_option
@click.argument("workflow_id")
def show(address: str, workflow_id: str) -> None:
    """Show a workflow and its event history."""

    async def action(client: Client) -> None:
        view = await client.describe_workflow(workflow_id)
        events = await client.history(workflow_id)
        click.echo(f"id:       {view.id}\ntype:     {view.workflow_type}\nstatus:   {view.status}"
                   + ("  (pinned)" if view.pinned else ""))
        click.echo(f"created:  {when(view.created_at)}\nended:    {when(view.completed_at)}")
        click.echo(f"input:    {json.dumps(view.input)}")
        if view.result is not None:
            click.echo(f"result:   {json.dumps(view.result)}")
        if view.error is not None:
            click.echo(f"error:    {json.dumps(view.error)}")
        if view.cancel_requested_at and view.status not in ("completed", "failed", "cancelled"):
            click.echo(f"cancel:   requested {when(view.cancel_requested_at)}; its code is stopping")
        if view.blocked:
            click.echo(blocked_text(view.blocked))
        click.echo("")
        click.echo(table(["seq", "event", "at", "data"],
                         [(e.sequence_num, e.event_type, when(e.created_at), short(e.data)) for e in events]))

    run(address, action)


@workflows.command("list")
@address_option
@click.option("--status", default=None, type=click.Choice(["pending", "running", "completed", "failed", "cancelled"]))
@click.option("--type", "workflow_type", default=None)
@click.option("--limit", default=50, show_default=True)
def list_(address: str, status: str | None, workflow_type: str | None, limit: int) -> None:
    """List recent workflows."""
    views = run(address, lambda c: c.list_workflows(status=status, workflow_type=workflow_type, limit=limit))
    click.echo(table(["id", "type", "status", "created", "events"],
                     [(v.id, v.workflow_type, v.status, when(v.created_at), v.last_event_seq) for v in views]))


@workflows.command("cancel")
@address_option
@click.argument("workflow_id")
@click.option("--reason", default="cancelled from the command line", help="Why (recorded in the history).")
@click.option("--terminate", is_flag=True,
              help="End it at once without running its code (no finally blocks or compensations).")
def cancel(address: str, workflow_id: str, reason: str, terminate: bool) -> None:
    """Cancel a workflow: its code gets a CancelledError where it waits, runs its finally
    blocks and compensations, and the workflow ends cancelled. --terminate ends it at once."""
    n = run(address, lambda c: c.cancel_workflow(workflow_id, reason, terminate=terminate))
    if terminate:
        click.echo(f"cancelled {workflow_id} ({n} tasks cancelled)")
    else:
        click.echo(f"cancel requested for {workflow_id}: its code runs its finally blocks, then it ends cancelled")


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
@click.option("--payload", default="{}", help="Payload as a JSON object.")
def signal(address: str, workflow_id: str, signal_type: str, payload: str) -> None:
    """Send a custom signal to a workflow."""
    body = parse_json_object(payload, "--payload")
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
@click.option("--type", "activity_type", default=None)
@click.option("--limit", default=100, show_default=True)
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
@click.argument("dead_letter_id")
def dlq_requeue(address: str, dead_letter_id: str) -> None:
    """Put a fresh task for a dead-lettered one on the queue."""
    task_id = run(address, lambda c: c.requeue_dead_letter(dead_letter_id))
    click.echo(f"requeued as task {task_id}")


@dlq.command("delete")
@address_option
@click.argument("dead_letter_id")
def dlq_delete(address: str, dead_letter_id: str) -> None:
    """Delete a dead-letter entry (a standalone activity's dead task goes with it)."""
    run(address, lambda c: c.delete_dead_letter(dead_letter_id))
    click.echo(f"deleted dead-letter entry {dead_letter_id}")


@click.command("stats")
@address_option
@click.option("--activity-type", "activity_types", multiple=True, help="Limit to these activity types.")
@click.option("--workflow-type", "workflow_types", multiple=True, help="Limit to these workflow types.")
def stats(address: str, activity_types: tuple[str, ...], workflow_types: tuple[str, ...]) -> None:
    """Queue backlog per type: pending, delayed, running, oldest pending age."""
    rows = run(address, lambda c: c.queue_stats(list(activity_types), list(workflow_types)))
    click.echo(table(["kind", "type", "pending", "delayed", "running", "oldest pending"],
                     [(s.kind, s.type, s.pending, s.delayed, s.claimed, f"{s.oldest_pending_age:.1f} s") for s in rows]))


@click.command("workers")
@address_option
@click.option("--all", "include_stopped", is_flag=True, help="Include stopped workers.")
def workers(address: str, include_stopped: bool) -> None:
    """Registered workers and their load."""
    rows = run(address, lambda c: c.list_workers(include_stopped=include_stopped))
    click.echo(table(["id", "group", "status", "load", "max", "last heartbeat"],
                     [(w.id, w.worker_group, w.status, w.current_load, w.max_concurrency, when(w.last_heartbeat_at))
                      for w in rows]))
