"""Turns a pydantic-settings validation error into one message naming the variables."""

from __future__ import annotations

from pydantic import ValidationError


def explain_settings_error(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        name = ".".join(str(p) for p in err["loc"]) or "(settings)"
        if err["type"] == "missing":
            lines.append(f"{name} is not set; it is required")
        else:
            shown = err.get("input")
            lines.append(f"{name}={shown!r} is invalid: {err['msg']}")
    return "invalid configuration: " + "; ".join(lines)
