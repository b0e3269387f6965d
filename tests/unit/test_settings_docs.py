"""The README's settings table lists every control-plane setting (its environment name)."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic_settings import BaseSettings

from durable.controlplane import settings

README = Path(__file__).resolve().parents[2] / "README.md"


def test_every_control_plane_setting_is_in_the_readme_table() -> None:
    rows = [line.split("|")[1] for line in README.read_text().splitlines() if line.startswith("| `")]
    table = {name for row in rows for name in re.findall(r"`([A-Z0-9_]+)`", row)}
    names = {
        str(field.validation_alias)
        for model in vars(settings).values()
        if isinstance(model, type) and issubclass(model, BaseSettings) and model is not BaseSettings
        for field in model.model_fields.values()
        if isinstance(field.validation_alias, str)
    }
    assert names, "no settings found"
    assert sorted(names - table) == []
