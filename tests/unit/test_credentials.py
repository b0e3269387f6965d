"""The credentials file format (durable.common.credentials): what each line means, and one-line
errors that name the line and never the token."""

from __future__ import annotations

import pytest

from durable.common.credentials import Grant, Scope, parse_credentials
from durable.operator.settings import OperatorSettings

TOKEN = "0123456789abcdef0123"


def test_each_line_is_a_scope_and_a_credential() -> None:
    credentials = parse_credentials(
        f"""
        # a comment, then blank lines

        admin   a{TOKEN}
        client  c{TOKEN}     # orders-api
        read    r{TOKEN}
        read    r2{TOKEN}    # rotation: two tokens of one scope
        worker:orders-  w{TOKEN}
        read    cert:keda
        worker  cert:billing
        worker:bill-  cert:billing-2
        """,
        "tokens",
    )
    grant = credentials.for_token
    assert grant(f"a{TOKEN}").scope is Scope.ADMIN
    assert grant(f"c{TOKEN}").scope is Scope.CLIENT
    assert grant(f"r{TOKEN}").scope is grant(f"r2{TOKEN}").scope is Scope.READ
    assert (grant(f"w{TOKEN}").scope, grant(f"w{TOKEN}").worker_prefix) == (Scope.WORKER, "orders-")
    assert grant("unknown-token-0000000") is None
    assert credentials.for_certificate(["keda"]).scope is Scope.READ
    assert credentials.for_certificate(["billing"]).worker_prefix == "billing"
    assert credentials.for_certificate(["x", "billing-2"]).worker_prefix == "bill-"
    assert credentials.for_certificate(["stranger"]) is None


def test_a_worker_grant_acts_only_for_its_prefix() -> None:
    worker = Grant(Scope.WORKER, "orders-")
    assert worker.may_act_as("orders-7d9f-abcde")
    assert not worker.may_act_as("billing-1")
    assert not worker.may_act_as("x-orders-1")
    assert not worker.may_act_as("")
    assert Grant(Scope.ADMIN).may_act_as("anyone")
    assert not Grant(Scope.CLIENT).may_act_as("orders-1")


@pytest.mark.parametrize(("line", "message"), [
    (f"admin {TOKEN} extra", "line 1: expected `scope[:worker-id-prefix] credential`, found 3 fields"),
    (f"superuser {TOKEN}", "line 1: unknown scope 'superuser'; use one of admin, client, read, worker"),
    (f"worker {TOKEN}", "line 1: a worker token must be bound to worker ids: write `worker:<worker-id-prefix> TOKEN`"),
    (f"worker: {TOKEN}", "line 1: the worker-id prefix after `worker:` is empty"),
    (f"read:orders- {TOKEN}", "line 1: only the worker scope takes a worker-id prefix"),
    (f"worker:or ders {TOKEN}", "found 3 fields"),
    (f"worker:or/ders {TOKEN}", "worker-id prefix 'or/ders' may hold only letters, digits and . _ : -"),
    ("admin short", "line 1: the token is shorter than 16 characters"),
    ("read cert:", "line 1: `cert:` needs the certificate's name"),
])
def test_a_bad_line_is_named_and_the_token_is_not(line: str, message: str) -> None:
    with pytest.raises(ValueError) as err:
        parse_credentials(line, "/etc/durable/auth/tokens")
    assert message in str(err.value)
    assert str(err.value).startswith("/etc/durable/auth/tokens line 1")
    assert TOKEN not in str(err.value)


def test_a_token_listed_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="line 2: this token is already listed on an earlier line"):
        parse_credentials(f"admin {TOKEN}\nread {TOKEN}\n", "tokens")


def test_a_namespace_scoped_operator_needs_exact_names() -> None:
    assert OperatorSettings(DURABLE_OPERATOR_NAMESPACES="team-a,team-b", DURABLE_OPERATOR_SCANNING="false").scanning is False
    with pytest.raises(ValueError, match="DURABLE_OPERATOR_SCANNING=false needs exact namespace names, not patterns: team-\\*"):
        OperatorSettings(DURABLE_OPERATOR_NAMESPACES="team-*", DURABLE_OPERATOR_SCANNING="false")
