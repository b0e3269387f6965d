"""Waiting for a workflow to end (`workflows start --wait`, `workflows wait`), with exit codes a
script can branch on, riding out a control plane or database that is away for a while."""

from __future__ import annotations

import asyncio
import enum
import sys
import time

import click

from durable.cli.render import activity_types, short, step
from durable.client import Client, Unavailable
from durable.client.client import EventView


class Exit(enum.IntEnum):
    """Exit codes of the client commands (documented in `--help` and the README)."""

    COMPLETED = 0
    ERROR = 1  # any other error (a bad id, a refused request)
    USAGE = 2  # click's usage errors
    FAILED = 3  # the workflow failed
    CANCELLED = 4  # the workflow was cancelled
    TIMED_OUT = 5  # still running when --timeout passed
    UNREACHABLE = 6  # the control plane (or its database) could not be reached


EXIT_CODES_HELP = (
    "Exit codes: 0 completed, 1 other error, 2 usage error, 3 failed, 4 cancelled, "
    "5 timed out waiting, 6 control plane unreachable."
)

_BY_STATUS = {"completed": Exit.COMPLETED, "failed": Exit.FAILED, "cancelled": Exit.CANCELLED}


class Progress:
    """The one-line "waiting..." status on an interactive stderr; nothing when piped."""

    def __init__(self) -> None:
        self.interactive = sys.stderr.isatty()
        self.shown = False

    def show(self, text: str) -> None:
        if self.interactive:
            click.echo(f"\r\033[K{text}", nl=False, err=True)
            self.shown = True

    def clear(self) -> None:
        if self.shown:
            click.echo("\r\033[K", nl=False, err=True)
            self.shown = False


async def follow(client: Client, workflow_id: str, timeout: float, *, events: bool = True) -> Exit:
    """Print events as they arrive (when `events`) until the workflow ends; return its exit code.

    While the control plane or its database is away, say so once (to stderr) and retry with a
    doubling delay (0.2 s to 5 s) until `timeout`.
    """
    started = time.monotonic()
    deadline = started + timeout
    seen = 0
    progress = Progress()
    delay = 0.2
    outage: str | None = None
    types: dict[str, str] = {}
    while True:
        remaining = deadline - time.monotonic()
        try:
            if events:
                seen = _print_events(await client.history(workflow_id, after_seq=seen), types, progress, seen)
            # The long-poll returns at once when the workflow has ended, else after about 1 s.
            view = await client.wait_workflow(workflow_id, timeout=max(0.0, min(1.0, remaining)))
            if outage is not None:
                progress.clear()
                click.echo(f"the control plane at {client.address} answers again", err=True)
                outage, delay = None, 0.2
            if view.is_terminal:
                if events:
                    _print_events(await client.history(workflow_id, after_seq=seen), types, progress, seen)
                progress.clear()
                outcome = view.result if view.status == "completed" else view.error
                click.echo(f"{view.status}: {short(outcome, None)}")
                return _BY_STATUS[view.status]
            status = view.status
        except Unavailable as exc:
            if time.monotonic() + delay > deadline:
                progress.clear()
                click.echo(f"Error: {exc}; gave up waiting for {workflow_id} after {timeout:.0f} s", err=True)
                return Exit.UNREACHABLE
            if str(exc) != outage:
                progress.clear()
                click.echo(f"{exc}; retrying until --timeout ({timeout:.0f} s) passes", err=True)
                outage = str(exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
            continue
        if time.monotonic() >= deadline:
            progress.clear()
            click.echo(f"Error: workflow {workflow_id} is still {status} after {timeout:.0f} s", err=True)
            return Exit.TIMED_OUT
        progress.show(f"  waiting... {time.monotonic() - started:5.1f} s, status {status}")


def _print_events(events: list[EventView], types: dict[str, str], progress: Progress, seen: int) -> int:
    """Print one line per event; returns the last sequence number printed."""
    types.update(activity_types(events))
    for event in events:
        progress.clear()
        click.echo(f"  {event.sequence_num:>4}  {event.event_type:<20} {step(event, types):<24} {short(event.data)}")
        seen = event.sequence_num
    return seen
