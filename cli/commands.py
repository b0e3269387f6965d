"""Attaches the subcommands of the other parts to the `durable` group."""

from __future__ import annotations

from durable.cli import client_commands, gate_commands, schedule_commands
from durable.cli.dev import dev_command
from durable.cli.main import cli
from durable.cli.replay_command import replay_command
from durable.console.cli import console_command
from durable.controlplane.cli import controlplane_command
from durable.operator.cli import operator_command
from durable.worker.cli import worker_command

cli.add_command(controlplane_command)
cli.add_command(worker_command)
cli.add_command(operator_command)
cli.add_command(client_commands.workflows)
cli.add_command(client_commands.dlq)
cli.add_command(client_commands.activities)
cli.add_command(client_commands.stats)
cli.add_command(client_commands.workers)
cli.add_command(schedule_commands.schedules)
cli.add_command(gate_commands.rate_limits)
cli.add_command(dev_command)
cli.add_command(replay_command)
cli.add_command(console_command)
