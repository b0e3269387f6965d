"""Attaches the subcommands of the other parts to the `durable` group."""

from __future__ import annotations
