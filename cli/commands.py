"""Attaches the subcommands of the other parts to the `durable` group."""

from __future__ import annotations

from durable.cli.main import cli
from durable.controlplane.cli import controlplane_command

cli.add_command(controlplane_command)
