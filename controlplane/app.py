"""The control-plane process: gRPC server, reaper, timers, schedules, push dispatch and health, supervised.

Start order: settings are already validated; connect the pool (and migrate when asked);
start the background loops; bind the gRPC server; report SERVING once the database answers.
Stop order (SIGTERM): NOT_SERVING, stop the server with a grace period for in-flight calls,
stop the loops, close the pool. A background loop that dies stops the process loudly.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

import asyncpg
import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from durable.common.ports import GRPC_SERVER_OPTIONS, ensure_free, split_address
from durable.common.security import ServerSecurity
from durable.controlplane.connect_errors import CONNECT_ERRORS, DatabaseUnreachable
from durable.controlplane.connect_errors import explain as explain_connect_error
from durable.controlplane.database_state import DatabaseState, PoolLogFilter
from durable.controlplane.dispatch import TaskListener, TaskSignals
from durable.controlplane.store.served_types import ServedTypeStore
from durable.controlplane.store.idempotency import IdempotencyStore
from durable.controlplane.store.lineage import HistoryLimits
from durable.controlplane.store.rate_limits import RateLimitStore
from durable.controlplane.store.workflow_queries import WorkflowQueryStore
from durable.controlplane.grpc import client_service, keda_scaler, worker_service
from durable.controlplane.grpc.admission import CallLimiter
from durable.controlplane.grpc.auth import ScopedAuthInterceptor
from durable.controlplane.metrics import ControlPlaneMetrics
from durable.controlplane.migrator import migrate
from durable.controlplane.reaper import Reaper
from durable.controlplane.retention import Retention
from durable.controlplane.scheduler import Scheduler
from durable.controlplane.settings import (
    BreakerSettings,
    DatabaseSettings,
    GrpcSettings,
    MetricsSettings,
    ReaperSettings,
    RetentionSettings,
    ScheduleSettings,
)
from durable.controlplane.store import Clock, Store, utc_now
from durable.controlplane.sticky import StickyFallback
from durable.controlplane.timers import TimerFirer

logger = logging.getLogger(__name__)

# Readiness: these follow the database. Liveness ("liveness") stays SERVING while the process
# runs, so a database outage makes pods unready but does not get them restarted.
SERVICE_NAMES = ("", "durable.v1.WorkerService", "durable.v1.ClientService")
LIVENESS_SERVICE = "liveness"
STARTUP_MESSAGE = "Using Durable execution engine runner (PostgreSQL-backed)"


class DatabaseHealth:
    """Checks the database every `interval` seconds and sets the gRPC health status. It tells
    the shared DatabaseState, which logs the change once."""

    def __init__(
        self, pool: asyncpg.Pool, servicer: health.aio.HealthServicer, *, interval: float = 2.0,
        database: DatabaseState | None = None,
    ) -> None:
        self.pool = pool
        self.servicer = servicer
        self.interval = interval
        self.database = database or DatabaseState()
        self.serving: bool | None = None

    async def run_once(self) -> bool:
        try:
            async with asyncio.timeout(max(self.interval, 1.0)):
                await self.pool.fetchval("SELECT 1")
            ok = True
        except Exception as exc:  # any failure means not serving
            ok = False
            self.database.lost("health check", exc)
        if ok:
            self.database.reachable()
        if ok != self.serving:
            status = health_pb2.HealthCheckResponse.SERVING if ok else health_pb2.HealthCheckResponse.NOT_SERVING
            for name in SERVICE_NAMES:
                await self.servicer.set(name, status)
        self.serving = ok
        return ok

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.run_once()
            try:
                await asyncio.wait_for(stop.wait(), timeout=self.interval)
            except TimeoutError:
                pass


async def _no_session_state(conn: asyncpg.Connection) -> None:
    """The pool's reset: nothing beyond what asyncpg always does (roll back an open
    transaction, drop listeners). Its default also sends RESET ALL, CLOSE ALL, UNLISTEN * and
    pg_advisory_unlock_all(), one more round trip for every connection use; the store leaves
    no session state behind (no SET, cursors or LISTEN on pool connections; the migrator
    releases its advisory lock in a `finally`)."""


class ControlPlane:
    """One control-plane instance. `await start()`, then `await stop()` (idempotent, waits)."""

    def __init__(
        self,
        database: DatabaseSettings,
        grpc_settings: GrpcSettings | None = None,
        reaper: ReaperSettings | None = None,
        *,
        security: ServerSecurity | None = None,
        metrics: MetricsSettings | None = None,
        schedules: ScheduleSettings | None = None,
        retention: RetentionSettings | None = None,
        breakers: BreakerSettings | None = None,
        run_migrations: bool = False,
        clock: Clock = utc_now,
        poll_interval: float = 2.0,
        health_interval: float = 2.0,
        timer_interval: float = 0.5,
        keda_interval: float = 2.0,
    ) -> None:
        self.database = database
        self.grpc_settings = grpc_settings or GrpcSettings()
        self.reaper_settings = reaper or ReaperSettings()
        self.retention_settings = retention or RetentionSettings()
        self.breaker_settings = breakers or BreakerSettings()
        self.run_migrations = run_migrations
        self.security = security or ServerSecurity()
        self.metrics_settings = metrics or MetricsSettings(port=0)
        self.schedule_settings = schedules or ScheduleSettings()
        self.metrics = ControlPlaneMetrics(interval=self.metrics_settings.refresh)
        self.clock = clock
        self.poll_interval = poll_interval
        self.health_interval = health_interval
        self.timer_interval = timer_interval
        self.keda_interval = keda_interval
        self._keda: keda_scaler.KedaScaler | None = None
        self.limiter: CallLimiter | None = None
        self.port: int | None = None
        self.failed = asyncio.Event()
        self._stop = asyncio.Event()
        self._stopped = False
        self._tasks: list[asyncio.Task[None]] = []
        self._server: grpc.aio.Server | None = None
        self._keda_server: grpc.aio.Server | None = None
        self.keda_port: int | None = None
        self.pool: asyncpg.Pool | None = None
        self.store: Store | None = None
        self.health = health.aio.HealthServicer()
        self._signals: TaskSignals | None = None
        self.database_state = DatabaseState()
        self._pool_log_filter = PoolLogFilter(self.database_state)

    @property
    def address(self) -> str:
        host = self.grpc_settings.address.rsplit(":", 1)[0]
        host = "127.0.0.1" if host in ("0.0.0.0", "[::]", "") else host
        return f"{host}:{self.port}"

    @property
    def keda(self) -> keda_scaler.KedaScaler | None:
        """The KEDA external scaler both ports serve; None before start()."""
        return self._keda

    @property
    def signals(self) -> TaskSignals | None:
        """The wake-ups of waiting calls (claims, queries, WaitWorkflow); None before start()."""
        return self._signals

    def check_ports(self) -> None:
        """Raise PortInUse (naming the variable) if the gRPC or metrics port is taken."""
        host, port = split_address(self.grpc_settings.address)
        ensure_free(host, port, "GRPC_ADDRESS")
        if self.metrics_settings.port:
            ensure_free("0.0.0.0", self.metrics_settings.port, "METRICS_PORT")
        if self.grpc_settings.keda_address:
            keda_host, keda_port = split_address(self.grpc_settings.keda_address)
            ensure_free(keda_host, keda_port, "DURABLE_KEDA_ADDRESS")

    async def start(self) -> None:
        self.check_ports()  # before the database: a second control plane stops at once
        dsn = self.database.database_url
        try:
            self.pool = await asyncpg.create_pool(
                dsn, min_size=self.database.pool_min_size, max_size=self.database.pool_max_size,
                reset=_no_session_state,
            )
        except CONNECT_ERRORS as exc:
            raise DatabaseUnreachable(explain_connect_error(exc, dsn)) from None
        if self.run_migrations:
            async with self.pool.acquire() as conn:
                applied = await migrate(conn)
            if applied:
                logger.info("applied migrations %s", applied)
        limit = self.grpc_settings.max_payload_bytes
        self.store = Store(self.pool, clock=self.clock, max_payload_bytes=limit, observer=self.metrics,
                           decision_retry_max=self.grpc_settings.decision_retry_max,
                           history_limits=HistoryLimits(max_events=self.grpc_settings.history_max_events,
                                                        max_bytes=self.grpc_settings.history_max_bytes))
        signals = self._signals = TaskSignals()
        signals.on_breakers_changed = self.store.forget_breaker_keys
        for activity_type in self.breaker_settings.type_names:  # DURABLE_CIRCUIT_BREAKERS
            await self.store.configure_circuit_breaker(activity_type, self.breaker_settings.policy())
        queries = WorkflowQueryStore(self.pool, clock=self.clock, max_payload_bytes=limit)
        types = ServedTypeStore(self.pool, clock=self.clock, max_payload_bytes=limit)
        idempotency = IdempotencyStore(self.pool, clock=self.clock, max_payload_bytes=limit,
                                       window=self.retention_settings.idempotency_window)
        for name in SERVICE_NAMES:
            await self.health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        await self.health.set(LIVENESS_SERVICE, health_pb2.HealthCheckResponse.SERVING)
        state = self.database_state
        logging.getLogger("asyncpg.pool").addFilter(self._pool_log_filter)
        db_health = DatabaseHealth(self.pool, self.health, interval=self.health_interval, database=state)
        await db_health.run_once()

        reaper = Reaper(self.store, self.reaper_settings, self.metrics.record_reaper, queries=queries,
                        types=types, database=state)
        self._supervise("reaper", reaper.run(self._stop))
        self._supervise("metrics-state", self.metrics.run(self.store, self._stop, state, types))
        self._supervise("retention", Retention(self.store, self.retention_settings, self.metrics.record_retention).run(self._stop))
        if self.metrics_settings.port:
            port = self.metrics.serve(self.metrics_settings.port, setting="METRICS_PORT")
            logger.info("metrics on :%d/metrics", port)
        self._supervise("sticky-fallback", StickyFallback(
            self.store, fallback=self.grpc_settings.sticky_fallback, database=state,
            on_freed=self.metrics.sticky_fallbacks.inc).run(self._stop))
        self._supervise("timers", TimerFirer(self.store, interval=self.timer_interval, database=state, signals=signals).run(self._stop))
        if self.schedule_settings.enabled:
            self._supervise("schedules", Scheduler(self.store, self.schedule_settings, self.metrics.record_schedules,
                                                   database=state).run(self._stop))
        self._supervise("task-listener", TaskListener(dsn, signals, database=state).run(self._stop))
        self._supervise("database-health", db_health.run(self._stop))

        tokens = self.security.tokens()
        credentials_file = self.security.credentials_file()
        authenticated = bool(tokens or credentials_file)
        limiter = self.limiter = CallLimiter(self.grpc_settings.max_concurrent_rpcs,
                                             self.grpc_settings.max_waiting_rpcs,
                                             on_refused=self.metrics.rpc_refused)
        self.metrics.watch_calls(limiter.in_flight)
        self._server = grpc.aio.server(
            interceptors=[limiter, *([ScopedAuthInterceptor(tokens, credentials_file)] if authenticated else [])],
            options=[
                *GRPC_SERVER_OPTIONS,
                ("grpc.max_receive_message_length", self.grpc_settings.max_message_bytes),
                ("grpc.max_send_message_length", self.grpc_settings.max_response_bytes),
                ("grpc.keepalive_time_ms", 30_000),
                ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
                ("grpc.keepalive_permit_without_calls", 1),
            ]
        )
        worker_service.add_to_server(
            worker_service.WorkerService(
                self.store, signals, poll_interval=self.poll_interval, max_payload_bytes=limit,
                max_message_bytes=self.grpc_settings.max_message_bytes,
                max_response_bytes=self.grpc_settings.max_response_bytes, queries=queries,
                breakers=self.breaker_settings,
            ),
            self._server,
        )
        client_service.add_to_server(
            client_service.ClientService(
                self.store, max_payload_bytes=limit, max_response_bytes=self.grpc_settings.max_response_bytes,
                queries=queries, signals=signals, types=types, idempotency=idempotency,
                rate_limits=RateLimitStore(self.pool, clock=self.clock, max_payload_bytes=limit),
            ),
            self._server,
        )
        # one scaler for both ports: StreamIsActive streams share one periodic read
        self._keda = keda_scaler.KedaScaler(self.store, stream_interval=self.keda_interval)
        keda_scaler.add_to_server(self._keda, self._server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self._server)
        credentials = self.security.server_credentials()
        try:
            if credentials is None:
                self.port = self._server.add_insecure_port(self.grpc_settings.address)
            else:
                self.port = self._server.add_secure_port(self.grpc_settings.address, credentials)
        except RuntimeError:  # "Failed to bind": taken since check_ports, or not a local address
            host, port = split_address(self.grpc_settings.address)
            ensure_free(host, port, "GRPC_ADDRESS")
            raise OSError(f"cannot listen on GRPC_ADDRESS={self.grpc_settings.address}: "
                          "not an address of this host, or the port is taken") from None
        if not self.port:
            raise OSError(f"cannot listen on GRPC_ADDRESS={self.grpc_settings.address}")
        await self._server.start()
        if self.grpc_settings.keda_address:
            await self._start_keda_server(self._keda)
        logger.info(STARTUP_MESSAGE)
        logger.info(
            "authentication: %s; transport: %s",
            ("scoped credentials from " + str(self.security.auth_tokens_file)) if credentials_file
            else "bearer token (admin)" if tokens
            else "none (set DURABLE_AUTH_TOKENS_FILE to require credentials)",
            ("mutual TLS" if self.security.tls_client_ca_file else "TLS") if credentials else "plaintext",
        )
        logger.info("control plane listening on %s", self.grpc_settings.address.rsplit(":", 1)[0] + f":{self.port}")

    async def _start_keda_server(self, scaler: keda_scaler.KedaScaler) -> None:
        """KEDA's external scaler (and health) alone on DURABLE_KEDA_ADDRESS, without credentials:
        KEDA cannot send a bearer token. It answers backlog counts and nothing else."""
        address = self.grpc_settings.keda_address or ""
        self._keda_server = grpc.aio.server(options=GRPC_SERVER_OPTIONS, interceptors=[self.limiter] if self.limiter else None)
        keda_scaler.add_to_server(scaler, self._keda_server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self._keda_server)
        try:
            self.keda_port = self._keda_server.add_insecure_port(address)
        except RuntimeError:  # taken since check_ports, or not an address of this host
            keda_host, keda_port = split_address(address)
            ensure_free(keda_host, keda_port, "DURABLE_KEDA_ADDRESS")
            raise OSError(f"cannot listen on DURABLE_KEDA_ADDRESS={address}: not an address of this host") from None
        if not self.keda_port:
            raise OSError(f"cannot listen on DURABLE_KEDA_ADDRESS={address}")
        await self._keda_server.start()
        logger.info("KEDA external scaler (read-only, no credentials) on %s:%d", address.rsplit(":", 1)[0], self.keda_port)

    def _supervise(self, name: str, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro, name=f"durable-controlplane-{name}")

        def done(t: asyncio.Task[None]) -> None:
            if t.cancelled() or self._stop.is_set():
                return
            exc = t.exception()
            logger.critical("background loop %s stopped unexpectedly: %r; shutting down", name, exc)
            self.failed.set()

        task.add_done_callback(done)
        self._tasks.append(task)

    async def wait(self) -> None:
        """Until stop() is called or a background loop dies."""
        stop = asyncio.ensure_future(self._stop.wait())
        fail = asyncio.ensure_future(self.failed.wait())
        try:
            await asyncio.wait({stop, fail}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            fail.cancel()

    async def stop(self, grace: float = 5.0) -> None:
        if self._stopped:
            return
        self._stopped = True
        self._stop.set()
        await self.health.enter_graceful_shutdown()
        if self._server is not None:
            await self._server.stop(grace)
        if self._keda_server is not None:
            await self._keda_server.stop(grace)
        if self._keda is not None:
            self._keda.shared.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._signals is not None:
            self._signals.close()
        self.metrics.close()
        if self.pool is not None:
            await self.pool.close()
        logging.getLogger("asyncpg.pool").removeFilter(self._pool_log_filter)
        if self._server is not None:  # a start that failed says why; no "stopped" after it
            logger.info("control plane stopped")
