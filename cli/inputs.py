"""JSON arguments (`--input`, `--payload`): inline, `@file`, or `-` for standard input.

An inline argument is limited by the operating system (about 128 KiB on Linux: "Argument list
too long"); a file or stdin is not.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

HELP = "a JSON value: inline, @FILE to read a file, or - to read standard input"


def read_json(text: str, option: str) -> Any:
    """Resolve @file / - and parse; a click usage error (exit 2) names the option."""
    source = option
    if text == "-":
        text = sys.stdin.read()
        source = f"{option} - (standard input)"
    elif text.startswith("@"):
        path = Path(text[1:])
        source = f"{option} @{path}"
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise click.BadParameter(f"cannot read {path}: {exc.strerror or exc}", param_hint=option) from None
        except UnicodeDecodeError:
            raise click.BadParameter(f"{path} is not UTF-8 text", param_hint=option) from None
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise click.BadParameter(f"{source} is not valid JSON: {exc}", param_hint=option) from None
    return value  # any JSON value: payloads are (objects, lists, strings, numbers, ...)


def moment(text: str, option: str) -> datetime:
    """ISO 8601; without an offset it is UTC."""
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise click.ClickException(
            f"{option} {text!r} is not a time (ISO 8601, like 2026-06-01T12:00:00Z; no offset means UTC)"
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)
