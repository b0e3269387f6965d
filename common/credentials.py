"""Scoped credentials: who may call which part of the control plane.

A credential is a bearer token or a client certificate (mutual TLS). Each carries one scope:

  admin    everything
  client   the ClientService (start, signal, cancel, describe, list, the DLQ, statistics) and
           KEDA's external scaler
  read     only what changes nothing: describe, list, history, wait, the DLQ list, statistics,
           workers, and KEDA's external scaler
  worker   only the WorkerService, and only for the worker ids bound to the credential (a
           worker-id prefix); a worker credential cannot register, claim, complete, fail or
           release anything as another worker

The control plane reads them from the credentials file named by DURABLE_AUTH_TOKENS_FILE, one
credential a line, `scope[:worker-id-prefix] credential`, `#` starts a comment:

  # scope[:worker-id-prefix]   credential
  admin                        9f3c1e...            # people and automation that own the engine
  client                       a71b0d...            # the applications that start workflows
  read                         5c2e88...            # dashboards
  read                         cert:keda            # KEDA's client certificate (mutual TLS)
  worker:orders-workers-       0d4f9a...            # the pool "orders-workers" (its pod names)
  worker                       cert:billing-workers # a certificate: its name is the prefix

A credential of the form `cert:NAME` is a client certificate whose common name or a subject
alternative name is NAME; for `worker` without an explicit prefix the bound prefix is NAME.
A token needs no prefix except under `worker`, where it must have one. Several lines may carry
the same scope: during a rotation the old and the new token are both listed, and the old line is
removed once every client has the new one. The file is re-read when it changes (a mounted Secret
is updated in place), so rotation needs no restart.

The single token of DURABLE_AUTH_TOKEN / DURABLE_AUTH_TOKEN_FILE (comma-separated values allowed)
still works and means `admin`. Clients always send one token, from DURABLE_AUTH_TOKEN or
DURABLE_AUTH_TOKEN_FILE.
"""

from __future__ import annotations

import enum
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CERT_PREFIX", "Credentials", "Grant", "Scope", "parse_credentials"]

CERT_PREFIX = "cert:"
_WORKER_ID_PREFIX = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")


class Scope(str, enum.Enum):
    """What a credential may do (see the module docstring)."""

    ADMIN = "admin"
    CLIENT = "client"
    READ = "read"
    WORKER = "worker"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Grant:
    """One credential's rights: its scope, and for `worker` the worker-id prefix it is bound to.
    `source` says where it came from (for logs; never the secret)."""

    scope: Scope
    worker_prefix: str | None = None
    source: str = ""

    def may_act_as(self, worker_id: str) -> bool:
        """Whether this credential may make WorkerService calls for `worker_id`."""
        if self.scope is Scope.ADMIN:
            return True
        if self.scope is not Scope.WORKER or not self.worker_prefix or not worker_id:
            return False
        return worker_id.startswith(self.worker_prefix)

    def describe(self) -> str:
        bound = f" bound to worker ids starting with {self.worker_prefix!r}" if self.worker_prefix else ""
        return f"{self.scope.value}{bound}"


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


@dataclass(frozen=True)
class Credentials:
    """The accepted credentials: tokens (by their SHA-256, so lookups do not compare secrets
    byte by byte) and certificate names, each with its Grant."""

    tokens: dict[bytes, Grant]
    certificates: tuple[tuple[str, Grant], ...] = ()

    @classmethod
    def admin_tokens(cls, tokens: Iterable[str], source: str) -> Credentials:
        return cls({_digest(t): Grant(Scope.ADMIN, source=source) for t in tokens})

    def merged(self, other: Credentials) -> Credentials:
        return Credentials({**self.tokens, **other.tokens}, self.certificates + other.certificates)

    def __bool__(self) -> bool:
        return bool(self.tokens or self.certificates)

    def for_token(self, token: str) -> Grant | None:
        return self.tokens.get(_digest(token))

    def for_certificate(self, names: Iterable[str]) -> Grant | None:
        """The grant of the first line whose name is one of the certificate's names."""
        present = set(names)
        for name, grant in self.certificates:
            if name in present:
                return grant
        return None


def parse_credentials(text: str, source: str) -> Credentials:
    """Parse a credentials file (see the module docstring). A bad line raises ValueError naming
    the file and the line number, never the token."""
    tokens: dict[bytes, Grant] = {}
    certificates: list[tuple[str, Grant]] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        where = f"{source} line {number}"
        fields = line.split()
        if len(fields) != 2:
            raise ValueError(f"{where}: expected `scope[:worker-id-prefix] credential`, found {len(fields)} fields")
        scope_field, credential = fields
        name, _, prefix = scope_field.partition(":")
        try:
            scope = Scope(name)
        except ValueError:
            raise ValueError(
                f"{where}: unknown scope {name!r}; use one of admin, client, read, worker"
            ) from None
        if prefix and scope is not Scope.WORKER:
            raise ValueError(f"{where}: only the worker scope takes a worker-id prefix (`worker:<prefix>`)")
        if scope_field.endswith(":") and not prefix:
            raise ValueError(f"{where}: the worker-id prefix after `worker:` is empty")
        if prefix and not _WORKER_ID_PREFIX.match(prefix):
            raise ValueError(f"{where}: worker-id prefix {prefix!r} may hold only letters, digits and . _ : -")
        if credential.startswith(CERT_PREFIX):
            cert_name = credential[len(CERT_PREFIX):]
            if not cert_name:
                raise ValueError(f"{where}: `cert:` needs the certificate's name, e.g. cert:keda")
            bound = (prefix or cert_name) if scope is Scope.WORKER else None
            certificates.append((cert_name, Grant(scope, bound, f"{where} (certificate {cert_name})")))
            continue
        if scope is Scope.WORKER and not prefix:
            raise ValueError(
                f"{where}: a worker token must be bound to worker ids: write `worker:<worker-id-prefix> TOKEN`"
            )
        if len(credential) < 16:
            raise ValueError(f"{where}: the token is shorter than 16 characters; use e.g. `openssl rand -hex 32`")
        digest = _digest(credential)
        if digest in tokens:
            raise ValueError(f"{where}: this token is already listed on an earlier line")
        tokens[digest] = Grant(scope, prefix or None, where)
    return Credentials(tokens, tuple(certificates))


class CredentialsFile:
    """A credentials file, re-read whenever it changes on disk (a Kubernetes Secret volume swaps
    its files in place). A changed file that does not parse is refused and the previous
    credentials stay in force; `error` then holds the reason until the file is fixed."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.error: str | None = None
        self._stamp = self._stat()
        self._credentials = self._load()

    def _stat(self) -> tuple[int, int, int]:
        try:
            st = Path(self.path).stat()
        except OSError as exc:
            raise ValueError(f"DURABLE_AUTH_TOKENS_FILE={self.path!r} cannot be read: {exc.strerror}") from None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def _load(self) -> Credentials:
        try:
            text = Path(self.path).read_text()
        except OSError as exc:
            raise ValueError(f"DURABLE_AUTH_TOKENS_FILE={self.path!r} cannot be read: {exc.strerror}") from None
        return parse_credentials(text, self.path)

    def current(self) -> tuple[Credentials, bool]:
        """The credentials in force, and whether they were (re)loaded by this call."""
        try:
            stamp = self._stat()
        except ValueError as exc:
            self.error = str(exc)
            return self._credentials, False
        if stamp == self._stamp:
            return self._credentials, False
        self._stamp = stamp
        try:
            self._credentials = self._load()
        except ValueError as exc:
            self.error = str(exc)
            return self._credentials, False
        self.error = None
        return self._credentials, True
