"""The package layout promises: one import root, no shadowed stdlib, fresh stubs, layering."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_operator_folder_never_shadows_the_standard_library() -> None:
    assert not (ROOT / "operator" / "__init__.py").exists()
    # Even with the repository root first on sys.path, `operator` is the standard library's.
    code = "import sys; sys.path.insert(0, sys.argv[1]); import operator, collections; print(operator.__file__)"
    out = subprocess.run([sys.executable, "-c", code, str(ROOT)], capture_output=True, text=True, check=True)
    assert "site-packages" not in out.stdout and str(ROOT) not in out.stdout


@pytest.mark.parametrize(
    "module",
    ["durable.controlplane", "durable.worker", "durable.client", "durable.common", "durable.cli",
     "durable.proto.v1.durable_pb2_grpc", "durable.migrations", "durable.console"],
)
def test_every_part_imports_under_one_root(module: str) -> None:
    assert importlib.import_module(module).__name__ == module


def test_generated_stubs_match_the_proto_files(tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT / "proto"))
    try:
        generate = importlib.import_module("generate")
    finally:
        sys.path.pop(0)
    written = generate.generate(tmp_path)
    assert written, "protoc produced nothing"
    for fresh in written:
        relative = fresh.relative_to(tmp_path)
        committed = ROOT / "proto" / relative
        assert committed.read_text() == fresh.read_text(), (
            f"proto/{relative} is stale: run `python proto/generate.py` and commit the result"
        )


# Layering contracts. (import-linter cannot analyse durable.operator, a namespace package by
# design, so the contracts are checked here from the source.)
CONTRACTS = [
    (("worker", "operator", "client"), ("durable.controlplane", "asyncpg"),
     "workers, the operator and clients reach the control plane only over gRPC"),
    (("controlplane",), ("durable.worker", "durable.examples", "durable.operator"),
     "the control plane holds no user code"),
    (("console",), ("durable.controlplane", "asyncpg", "durable.worker"),
     "the console reaches the control plane only over gRPC ClientService"),
]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


@pytest.mark.parametrize(("folders", "forbidden", "why"), CONTRACTS, ids=[c[2] for c in CONTRACTS])
def test_layering_contracts_hold(folders: tuple[str, ...], forbidden: tuple[str, ...], why: str) -> None:
    broken = [
        f"{path.relative_to(ROOT)} imports {name}"
        for folder in folders
        for path in sorted((ROOT / folder).rglob("*.py"))
        for name in _imports(path)
        if any(name == f or name.startswith(f + ".") for f in forbidden)
    ]
    assert not broken, f"{why}: " + "; ".join(broken)
