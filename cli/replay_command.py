"""`durable replay`: replay recorded histories against workflow code, before rolling it out.

    durable replay --app myapp:app --workflow-id order-17        # one workflow, from GRPC_ADDRESS
    durable replay --app myapp:app --history order-17.json       # `workflows show ID --json`
    durable replay --app myapp:app --types order,refund          # every running one of these types

Exit status 0 when every history replays cleanly, 1 when any does not (each one reported:
the workflow, the event's sequence number, what the history holds, what the code did).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import click

from durable.client import Client, Unavailable
from durable.common.errors import DurableError
from durable.worker.cli import load_app
from durable.worker.workflows import HistoryEvent, ReplayOutcome, check_history, history_from_json
from durable.worker.workflows.history import parse_time

@click.command("replay")
@click.option("--app", "app_ref", required=True, envvar="DURABLE_APP",
              help="The code to check, as module:attr (env DURABLE_APP).")
@click.option("--workflow-id", "workflow_ids", multiple=True,
              help="Replay this workflow's history, fetched from the control plane (repeatable).")
@click.option("--history", "history_files", multiple=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Replay a history file: the JSON of `durable workflows show ID --json` (repeatable).")
@click.option("--types", default=None,
              help="Replay every running workflow of these comma-separated types (paged).")
@click.option("--address", envvar="GRPC_ADDRESS", default="127.0.0.1:9001", show_default=True,
              help="Control-plane gRPC address for --workflow-id and --types (env GRPC_ADDRESS).")
def replay_command(app_ref: str, workflow_ids: tuple[str, ...], history_files: tuple[Path, ...],
                   types: str | None, address: str) -> None:
    """Replay workflow histories against the code of an App; exit 1 on any non-determinism."""
    if not (workflow_ids or history_files or types):
        raise click.UsageError("name what to replay: --workflow-id, --history or --types")
    try:
        app = load_app(app_ref)
    except DurableError as exc:
        raise click.UsageError(str(exc)) from None
    histories: list[tuple[str, str, list[HistoryEvent], int | None]] = []
    for path in history_files:
        try:
            histories.append(history_from_json(json.loads(path.read_text())))
        except (ValueError, KeyError, TypeError) as exc:
            raise click.UsageError(f"--history {path}: {exc}") from None
    if workflow_ids or types:
        try:
            histories += asyncio.run(_fetch(address, workflow_ids, types))
        except Unavailable as exc:
            raise click.ClickException(f"{exc}; is `durable controlplane` running there?") from None
        except DurableError as exc:
            raise click.ClickException(str(exc)) from None
    outcomes: list[ReplayOutcome] = []
    for workflow_id, workflow_type, events, decided in histories:
        definition = app.workflows.get(workflow_type)
        if definition is None:
            raise click.ClickException(
                f"workflow {workflow_id}: type {workflow_type!r} is not registered in {app_ref} "
                f"(registered: {', '.join(sorted(app.workflows)) or 'none'})")
        outcomes.append(check_history(definition, workflow_id, events, decided))
    failed = [o for o in outcomes if o.error is not None]
    for outcome in outcomes:
        if outcome.error is None:
            click.echo(f"ok      {outcome.workflow_id} ({outcome.workflow_type}, {outcome.events} events)")
        else:
            kind = type(outcome.error).__name__
            first = str(outcome.error).splitlines()[0]
            click.echo(f"FAILED  {outcome.workflow_id} ({outcome.workflow_type}): {kind}: {first}")
    click.echo(f"{len(outcomes) - len(failed)} of {len(outcomes)} replayed cleanly")
    if failed:
        raise SystemExit(1)


async def _fetch(
    address: str, workflow_ids: tuple[str, ...], types: str | None
) -> list[tuple[str, str, list[HistoryEvent], int | None]]:
    out: list[tuple[str, str, list[HistoryEvent], int | None]] = []
    async with Client(address) as client:
        ids = list(workflow_ids)
        for workflow_type in [t.strip() for t in (types or "").split(",") if t.strip()]:
            for status in ("running", "pending"):
                ids += [v.id for v in await client.list_workflows(status=status, workflow_type=workflow_type, limit=1000)]
        for workflow_id in dict.fromkeys(ids):
            view = await client.describe_workflow(workflow_id)
            events = await _history(client, workflow_id)
            out.append((workflow_id, view.workflow_type, events, view.replay_through_seq))
    return out


async def _history(client: Client, workflow_id: str) -> list[HistoryEvent]:
    return [HistoryEvent(e.sequence_num, e.event_type, e.data if isinstance(e.data, dict) else {},
                         parse_time(e.created_at)) for e in await client.history(workflow_id)]
