"""Every option of every `durable` command says what it does; the exit codes are documented."""

from __future__ import annotations

from collections.abc import Iterator

import click
from click.testing import CliRunner

from durable.cli import commands  # noqa: F401  (attaches the subcommands)
from durable.cli.main import cli
from durable.cli.waiting import Exit


def _options(command: click.Command, path: str) -> Iterator[tuple[str, click.Option]]:
    for param in command.params:
        if isinstance(param, click.Option):
            yield path, param
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            yield from _options(sub, f"{path} {name}")


def test_every_option_has_help_text() -> None:
    missing = [f"{path} {'/'.join(option.opts)}" for path, option in _options(cli, "durable") if not option.help]
    assert not missing, f"options without help: {missing}"


def test_the_exit_codes_are_in_the_help_of_the_waiting_commands() -> None:
    for args in (["workflows", "start", "--help"], ["workflows", "wait", "--help"]):
        out = CliRunner().invoke(cli, args).output
        text = " ".join(out.split())
        assert ("Exit codes: 0 completed, 1 other error, 2 usage error, 3 failed, 4 cancelled, "
                "5 timed out waiting, 6 control plane unreachable.") in text, out
    assert [int(e) for e in Exit] == [0, 1, 2, 3, 4, 5, 6]
