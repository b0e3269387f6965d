"""`durable activities enqueue` (with a concurrency key) and `durable rate-limits ...`."""

from __future__ import annotations

import click

from durable.cli.client_commands import address_option, run
from durable.cli.inputs import HELP, read_json
from durable.cli.render import table
from durable.proto.v1 import durable_pb2 as pb


@click.group("activities")
def activities() -> None:
    """Standalone activities: enqueue one."""


@activities.command("enqueue")
@address_option
@click.argument("activity_type")
@click.option("--input", "input_text", default="{}", show_default=True, help=f"Input (a JSON object), {HELP}.")
@click.option("--priority", default=0, show_default=True, type=click.IntRange(-1000, 1000), help="Higher runs first.")
@click.option("--max-attempts", default=0, type=click.IntRange(min=0), help="Attempts in all (0: the default, 5).")
@click.option("--concurrency-key", default=None,
              help="Tasks sharing this key run at most --concurrency-limit at once, cluster-wide.")
@click.option("--concurrency-limit", default=None, type=click.IntRange(min=1),
              help="How many tasks of --concurrency-key may run at once.")
def enqueue(
    address: str, activity_type: str, input_text: str, priority: int, max_attempts: int,
    concurrency_key: str | None, concurrency_limit: int | None,
) -> None:
    """Queue a standalone activity of ACTIVITY_TYPE; prints its task id."""
    if (concurrency_key is None) != (concurrency_limit is None):
        raise click.UsageError("--concurrency-key and --concurrency-limit go together: give both or neither")
    payload = read_json(input_text, "--input")
    if not isinstance(payload, dict):
        raise click.UsageError(f"--input must be a JSON object for an activity, got {type(payload).__name__}")
    task_id = run(address, lambda c: c.enqueue_activity(
        activity_type, payload, priority=priority, max_attempts=max_attempts,
        concurrency_key=concurrency_key, concurrency_limit=concurrency_limit,
    ))
    click.echo(task_id)


@click.group("rate-limits")
def rate_limits() -> None:
    """Rate limits per activity type: at most R starts per second across the cluster."""


@rate_limits.command("set")
@address_option
@click.argument("activity_type")
@click.option("--rate", required=True, type=click.FloatRange(min=0, min_open=True), help="Starts per second.")
@click.option("--burst", default=None, type=click.FloatRange(min=1),
              help="Starts at once after a quiet spell (the bucket's size; default: a tenth of a "
                   "second's starts, at least 1).")
def set_limit(address: str, activity_type: str, rate: float, burst: float | None) -> None:
    """Limit ACTIVITY_TYPE to --rate starts per second (retunes an existing limit)."""
    info = run(address, lambda c: c.set_rate_limit(activity_type, rate, burst=burst or 0.0))
    click.echo(f"rate limit {info.activity_type}: {info.rate:g}/s, burst {info.burst:g}")


@rate_limits.command("delete")
@address_option
@click.argument("activity_type")
def delete_limit(address: str, activity_type: str) -> None:
    """Remove the rate limit of ACTIVITY_TYPE."""
    run(address, lambda c: c.delete_rate_limit(activity_type))
    click.echo(f"deleted the rate limit of {activity_type}")


@rate_limits.command("list")
@address_option
def list_limits(address: str) -> None:
    """Rate limits with their tokens now, and the concurrency keys busiest now."""
    limits, keys = run(address, lambda c: c.rate_limits())
    click.echo(render_gates(limits, keys))


def render_gates(limits: list[pb.RateLimitInfo], keys: list[pb.ConcurrencyKeyInfo]) -> str:
    """The rate-limit and busiest-key tables (also shown by `durable stats`)."""
    parts = []
    if limits:
        parts.append(table(["rate-limited type", "rate/s", "burst", "tokens", "pending", "running"],
                           [(r.activity_type, f"{r.rate:g}", f"{r.burst:g}", f"{r.tokens:.2f}", r.pending, r.running)
                            for r in limits]))
    if keys:
        parts.append(table(["concurrency key", "running", "limit"], [(k.key, k.running, k.limit) for k in keys]))
    return "\n\n".join(parts) if parts else "no rate limits; no keyed task running"
