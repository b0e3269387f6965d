"""mypy over the package, as it imports (durable.*), with the pydantic plugin."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = ("cli", "common", "client", "controlplane", "worker", "proto", "migrations", "examples", "operator",
           "console")


def test_mypy_is_clean(tmp_path: Path) -> None:
    # The folders map onto durable.* only through the installed package; give mypy the same
    # view with a tree of links.
    package = tmp_path / "durable"
    package.mkdir()
    for folder in FOLDERS:
        (package / folder).symlink_to(ROOT / folder)
    (tmp_path / "mypy.ini").write_text(
        "[mypy]\nplugins = pydantic.mypy\nignore_missing_imports = True\n"
        "[mypy-durable.proto.*]\nignore_errors = True\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-error-summary", "--cache-dir", str(tmp_path / ".cache"),
         "-p", "durable.controlplane", "-p", "durable.common", "-p", "durable.client",
         "-p", "durable.cli", "-p", "durable.worker", "-p", "durable.console"],
        cwd=tmp_path, capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
