"""Listening ports that refuse to share.

gRPC turns on SO_REUSEPORT by default, so a second server on a port already in use starts
silently beside the first and the kernel splits connections between them. Every server of
durable binds with `GRPC_SERVER_OPTIONS` (SO_REUSEPORT off) and checks the port first with
`ensure_free`, so a port in use stops the process with one line naming the setting.
"""

from __future__ import annotations

import errno
import socket

# Options every grpc.aio.server of durable passes: a second process on the same port fails.
GRPC_SERVER_OPTIONS: list[tuple[str, int]] = [("grpc.so_reuseport", 0)]


class PortInUse(OSError):
    """A port durable wants to listen on is already taken; the message names the setting."""


def split_address(address: str) -> tuple[str, int]:
    """'host:port' (or '[::1]:port') to (host, port); raises ValueError when malformed."""
    host, sep, port = address.strip().rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"{address!r} is not host:port")
    return host.strip("[]"), int(port)


def ensure_free(host: str, port: int, setting: str) -> None:
    """Raise PortInUse if another socket listens on host:port. Port 0 (any) is always free.

    A race with a process that binds between this check and the real bind is still caught:
    the real bind has SO_REUSEPORT off and fails.
    """
    if port == 0:
        return
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror:
        return  # the server's own bind reports an unresolvable host
    for family, kind, proto, _, sockaddr in infos:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gRPC and http.server do
            try:
                probe.bind(sockaddr)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    raise port_in_use(host, port, setting) from None
                if exc.errno == errno.EADDRNOTAVAIL:
                    continue  # e.g. no IPv6 on this host; the real bind decides
                raise


def port_in_use(host: str, port: int, setting: str) -> PortInUse:
    """`setting` is what the user changes to pick another port: a variable or an option."""
    return PortInUse(
        f"port {port} on {host or '0.0.0.0'} is already in use ({setting}): another process "
        f"listens there, perhaps another durable; stop it or set {setting} to a free port"
    )


__all__ = ["GRPC_SERVER_OPTIONS", "PortInUse", "ensure_free", "port_in_use", "split_address"]
