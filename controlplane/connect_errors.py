"""Why a connection to PostgreSQL failed, in one line a user can act on.

`durable controlplane` and `durable migrate` connect with DATABASE_URL. When that fails, the
user gets one line naming DATABASE_URL (password hidden), the cause and what to check, never a
traceback of the driver.
"""

from __future__ import annotations

import socket
import ssl
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg

from durable.common.errors import DurableError


class DatabaseUnreachable(DurableError):
    """The control plane could not connect to its database; the message says why."""


def redact(url: str) -> str:
    """The URL with its password (in the user part or a `password=` parameter) hidden."""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if "@" in netloc:
            userinfo, _, hostinfo = netloc.rpartition("@")
            user, sep, _password = userinfo.partition(":")
            netloc = f"{user}{':***' if sep else ''}@{hostinfo}"
        query = urlencode(
            [(k, "***" if k.lower() == "password" else v) for k, v in parse_qsl(parts.query, keep_blank_values=True)],
            safe="/",
        )
        return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
    except ValueError:
        return "(unparsable URL)"


def _target(url: str) -> tuple[str, str, str, str]:
    """(host or socket directory, port, user, database) as the URL names them; '' if unsaid."""
    try:
        parts = urlsplit(url)
        query = dict(parse_qsl(parts.query))
        host = query.get("host") or (parts.hostname or "")
        port = query.get("port") or (str(parts.port) if parts.port else "")
        user = query.get("user") or (parts.username or "")
        database = query.get("dbname") or query.get("database") or parts.path.lstrip("/")
    except ValueError:
        return "", "", "", ""
    return host, port, user, database


def explain(exc: BaseException, url: str) -> str:
    """One line: which URL, what went wrong, what to check."""
    host, port, user, database = _target(url)
    port = port or "5432"
    where = f"DATABASE_URL={redact(url)}"
    cause: str
    hint: str
    if isinstance(exc, asyncpg.InvalidCatalogNameError):
        cause = f'database "{database}" does not exist'
        hint = f'create it (CREATE DATABASE "{database}") or fix the database name in the URL'
    elif isinstance(exc, asyncpg.InvalidPasswordError):
        cause = f'password authentication failed for user "{user}"'
        hint = "check the user and password in the URL"
    elif isinstance(exc, asyncpg.InvalidAuthorizationSpecificationError):
        cause = str(exc).strip().rstrip(".")
        hint = "check the user in the URL and the server's pg_hba.conf"
    elif isinstance(exc, asyncpg.TooManyConnectionsError):
        cause = "the server has no free connection slots"
        hint = "lower DATABASE_POOL_MAX or raise the server's max_connections"
    elif isinstance(exc, asyncpg.CannotConnectNowError):
        cause = f"the server is starting up or shutting down ({exc})"
        hint = "try again in a moment"
    elif isinstance(exc, (FileNotFoundError, ConnectionRefusedError)) and host.startswith("/"):
        cause = f"no PostgreSQL socket at {host}/.s.PGSQL.{port}"
        hint = "check the socket directory (host) and port in the URL and that the server is up"
    elif isinstance(exc, ConnectionRefusedError):
        cause = f"connection refused by {host or 'localhost'}:{port}"
        hint = "check the host and port in the URL and that the server is up"
    elif isinstance(exc, socket.gaierror):
        cause = f"cannot resolve the host {host!r} ({exc.strerror})"
        hint = "check the host in the URL"
    elif isinstance(exc, TimeoutError):
        cause = f"no answer from {host or 'localhost'}:{port} in time"
        hint = "check the host, port and any firewall in between"
    elif isinstance(exc, ssl.SSLError):
        cause = f"TLS failed ({exc.reason or exc})"
        hint = "check sslmode and the server's certificate"
    elif isinstance(exc, asyncpg.PostgresError):
        cause = str(exc).strip().rstrip(".") or type(exc).__name__
        hint = "check the URL and the server's log"
    else:
        cause = str(exc).strip() or type(exc).__name__
        hint = "check the URL and that the server is up"
    return f"cannot connect to PostgreSQL at {where}: {cause}; {hint}"


# What a failed connect raises: the driver's server errors and the socket's errors.
CONNECT_ERRORS: tuple[type[BaseException], ...] = (
    OSError, ConnectionError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError,
)

__all__ = ["CONNECT_ERRORS", "DatabaseUnreachable", "explain", "redact"]
