"""Bulk actions on the command line: filter options, a dry-run count, and the batches one
call at a time under a progress bar (click's own; it prints nothing but the label when
standard error is not a terminal)."""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from typing import Any

import click

from durable.cli.inputs import moment
from durable.client import BulkResult, DeadLetterSelection, WorkflowSelection

BulkCall = Callable[..., Awaitable[BulkResult]]


def _seconds(text: str | None, option: str) -> float:
    return moment(text, option).timestamp() if text else 0.0


def workflow_filter_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """--type, --status, --created-after, --created-before, --error, --id-prefix, --all."""
    for option in reversed([
        click.option("--type", "workflow_type", default=None, help="Only workflows of this type."),
        click.option("--status", default=None,
                     type=click.Choice(["pending", "running", "completed", "failed", "cancelled"]),
                     help="Only workflows in this status."),
        click.option("--created-after", default=None, help="Only workflows created at or after (ISO 8601; UTC)."),
        click.option("--created-before", default=None, help="Only workflows created before (ISO 8601; UTC)."),
        click.option("--error", "error_contains", default=None,
                     help="Only workflows whose error contains this text (case-insensitive)."),
        click.option("--id-prefix", default=None, help="Only workflows whose id starts with this."),
        click.option("--all", "everything", is_flag=True, help="No filter: every workflow the action takes."),
    ]):
        f = option(f)
    return f


def dead_letter_filter_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """--type, --error, --dead-after, --dead-before, --workflow, --all."""
    for option in reversed([
        click.option("--type", "activity_type", default=None, help="Only entries of this activity type."),
        click.option("--error", "error_contains", default=None,
                     help="Only entries whose last error contains this text (case-insensitive)."),
        click.option("--dead-after", default=None, help="Only entries dead at or after (ISO 8601; UTC)."),
        click.option("--dead-before", default=None, help="Only entries dead before (ISO 8601; UTC)."),
        click.option("--workflow", "workflow_id", default=None, help="Only the entries of this workflow."),
        click.option("--all", "everything", is_flag=True, help="No filter: every entry the action takes."),
    ]):
        f = option(f)
    return f


def bulk_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """--dry-run, --batch-size, --yes."""
    for option in reversed([
        click.option("--dry-run", is_flag=True, help="Print how many would be affected; change nothing."),
        click.option("--batch-size", default=100, show_default=True, type=click.IntRange(1, 1000),
                     help="Rows per call (each call a few short transactions)."),
        click.option("--yes", "-y", is_flag=True, help="Do not ask before acting on many."),
    ]):
        f = option(f)
    return f


def workflow_selection(
    workflow_type: str | None, status: str | None, created_after: str | None, created_before: str | None,
    error_contains: str | None, id_prefix: str | None, everything: bool,
) -> WorkflowSelection:
    selection = WorkflowSelection(
        workflow_type, status, _seconds(created_after, "--created-after"), _seconds(created_before, "--created-before"),
        error_contains, id_prefix,
    )
    _need_filter(selection != WorkflowSelection() or everything,
                 "--type, --status, --created-after, --created-before, --error or --id-prefix")
    return selection


def dead_letter_selection(
    activity_type: str | None, error_contains: str | None, dead_after: str | None, dead_before: str | None,
    workflow_id: str | None, everything: bool,
) -> DeadLetterSelection:
    selection = DeadLetterSelection(
        activity_type, _seconds(dead_after, "--dead-after"), _seconds(dead_before, "--dead-before"),
        error_contains, workflow_id,
    )
    _need_filter(selection != DeadLetterSelection() or everything,
                 "--type, --error, --dead-after, --dead-before or --workflow")
    return selection


def _need_filter(given: bool, names: str) -> None:
    if not given:
        raise click.UsageError(f"name an ID, or a filter ({names}), or --all for every one")


async def run_bulk(
    call: BulkCall, selection: Any, *, verb: str, noun: str, dry_run: bool, batch_size: int, yes: bool,
    **extra: Any,
) -> int:
    """Count, ask (unless --yes), then call batch after batch under a progress bar; print what
    was done (and why some were skipped, on standard error). Returns how many were affected."""
    total = (await call(selection, dry_run=True, **extra)).matched
    if dry_run:
        click.echo(f"would {verb} {total} {noun}")
        return 0
    if total == 0:
        click.echo(f"nothing to {verb}: no {noun} match")
        return 0
    if not yes:
        click.confirm(f"{verb} {total} {noun}?", abort=True, err=True)
    affected, skipped = 0, 0
    errors: list[str] = []
    token = ""
    with click.progressbar(length=total, label=f"{verb} {noun}", file=sys.stderr, show_pos=True) as bar:
        while True:
            result = await call(selection, page_token=token, batch_size=batch_size, **extra)
            affected += result.affected
            skipped += result.skipped
            errors += result.errors[: max(0, 10 - len(errors))]
            bar.update(result.matched)
            token = result.next_page_token
            if not token:
                break
    past = {"cancel": "cancelled", "requeue": "requeued", "delete": "deleted"}.get(verb, verb + "ed")
    click.echo(f"{past} {affected} {noun}" + (f", {skipped} skipped (changed meanwhile)" if skipped else ""))
    for line in errors:
        click.echo(f"  skipped {line}", err=True)
    return affected
