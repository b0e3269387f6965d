"""The Kubernetes guide and the chart's README are runnable as written: every `helm install` and
`helm upgrade` names its namespace (which exists or is created), sets the image (there is no
public one), an upgrade that changes one thing reuses the other values, and the values each
command sets render with the chart. The CloudNativePG path's Cluster and values agree."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.unit.test_chart import render

ROOT = Path(__file__).resolve().parents[2]
PAGES = (ROOT / "docs" / "kubernetes.md", ROOT / "charts" / "durable" / "README.md")


def shell_blocks(page: Path) -> list[str]:
    return re.findall(r"```(?:sh|bash)\n(.*?)```", page.read_text(), re.S)


def helm_commands(block: str) -> list[list[str]]:
    joined = block.replace("\\\n", " ")
    return [shlex.split(line.split(" #", 1)[0]) for line in joined.splitlines()
            if line.strip().startswith("helm ")]


def sets(command: list[str]) -> dict[str, Any]:
    """The values a helm command's --set flags give, as nested dicts."""
    values: dict[str, Any] = {}
    for flag, value in zip(command, command[1:]):
        if flag != "--set":
            continue
        key, _, raw = value.partition("=")
        node = values
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        parsed: Any = {"true": True, "false": False}.get(raw, raw)
        if isinstance(parsed, str) and parsed.startswith("[") and parsed.endswith("]"):
            parsed = [p.strip() for p in parsed[1:-1].split(",")]
        node[leaf] = parsed
    return values


COMMANDS = [
    pytest.param(page, block, command, id=f"{page.name}:{' '.join(command[:3])}:{n}")
    for page in PAGES
    for block in shell_blocks(page)
    for n, command in enumerate(helm_commands(block))
    if command[1] in ("install", "upgrade")
]


def test_the_pages_have_helm_commands() -> None:
    assert len(COMMANDS) >= 8


@pytest.mark.parametrize(("page", "block", "command"), COMMANDS)
def test_every_helm_command_is_runnable(page: Path, block: str, command: list[str]) -> None:
    assert "-n" in command or "--namespace" in command, "name the namespace (-n)"
    values = sets(command)
    if command[1] == "install":
        assert "--create-namespace" in command or "kubectl create namespace" in block, \
            "create the namespace (or --create-namespace)"
        assert {"repository", "tag"} <= set(values.get("image", {})), "set image.repository and image.tag"
        assert values.get("database", {}).get("existingSecret") or values.get("postgresql", {}).get("enabled")
        render(values)  # renders: the values exist and the chart's checks pass
    else:
        assert "--reuse-values" in command, "an upgrade that changes one thing keeps the rest (--reuse-values)"
        render({"database": {"existingSecret": "durable-database"}, **values})


def test_the_cloudnativepg_path() -> None:
    text = (ROOT / "docs" / "kubernetes.md").read_text()
    (cluster,) = [d for block in re.findall(r"```yaml\n(.*?)```", text, re.S)
                  for d in yaml.safe_load_all(block) if d and d.get("kind") == "Cluster"]
    assert cluster["apiVersion"] == "postgresql.cnpg.io/v1"
    assert cluster["spec"]["bootstrap"]["initdb"]["database"] == "durable"
    (install,) = [c for page in PAGES[:1] for b in shell_blocks(page) for c in helm_commands(b)
                  if "database.secretKey=uri" in c]
    values = sets(install)
    # CloudNativePG names the Secret "<cluster>-app" and keeps the URL under "uri"
    assert values["database"] == {"existingSecret": f"{cluster['metadata']['name']}-app", "secretKey": "uri"}
    objects = render(values)
    deployment = next(o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == "durable-controlplane")
    env = {e["name"]: e.get("valueFrom") for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["DATABASE_URL"] == {"secretKeyRef": {"name": "durable-pg-app", "key": "uri"}}


def test_the_failure_of_a_broken_database_url_is_explained() -> None:
    text = (ROOT / "docs" / "kubernetes.md").read_text()
    section = text[text.index("### When the install hangs"):text.index("### Upgrades and the CRD")]
    for needed in ("migrations.backoffLimit", "--timeout", "BackoffLimitExceeded",
                   "kubectl -n durable logs job/durable-migrate", "logs deploy/durable-controlplane -c migrate"):
        assert needed in section, needed
    assert "database that **exists**" in text
    assert "The database must exist" in (ROOT / "charts" / "durable" / "README.md").read_text()
