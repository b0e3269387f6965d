"""The `durable` command line."""

from durable.cli.main import main

__all__ = ["main"]
