"""`durable operator`: run the DurableWorkerPool operator (kopf, standalone by default)."""

from __future__ import annotations

import click
from pydantic import ValidationError

__all__ = ["operator_command"]


@click.command("operator")
@click.option("--namespace", "-n", "namespaces", multiple=True,
              help="Namespace (or kopf glob) to watch; repeatable. Default: "
                   "DURABLE_OPERATOR_NAMESPACES, else all namespaces.")
@click.option("--control-plane-address", default=None,
              help="Default control plane host:port (env DURABLE_CONTROL_PLANE_ADDRESS).")
@click.option("--metrics-port", type=int, default=None,
              help="Prometheus port, 0 = off (env DURABLE_OPERATOR_METRICS_PORT, default 9090).")
@click.option("--standalone/--peering", default=None,
              help="Standalone (default; run one replica) or kopf peering.")
@click.option("--liveness", "liveness_endpoint", default=None,
              help="kopf liveness endpoint, e.g. http://0.0.0.0:8080/healthz.")
def operator_command(
    namespaces: tuple[str, ...],
    control_plane_address: str | None,
    metrics_port: int | None,
    standalone: bool | None,
    liveness_endpoint: str | None,
) -> None:
    """Run the operator that owns the worker Deployments of DurableWorkerPools."""
    import kopf
    from durable.cli.settings_errors import explain_settings_error
    from durable.operator.handlers import OperatorContext, build_registry, kopf_settings, quiet_ticks
    from durable.operator.settings import OperatorSettings

    overrides: dict[str, object] = {
        key: value for key, value in {
            "namespaces": list(namespaces) or None,
            "control_plane_address": control_plane_address,
            "metrics_port": metrics_port,
            "standalone": standalone,
            "liveness_endpoint": liveness_endpoint,
        }.items() if value is not None
    }
    try:
        settings = OperatorSettings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise click.UsageError(explain_settings_error(exc)) from None

    context = OperatorContext(settings)
    registry = build_registry(context)
    quiet_ticks()
    if settings.metrics_port:
        try:
            context.metrics.serve(settings.metrics_port, setting="DURABLE_OPERATOR_METRICS_PORT")
        except OSError as exc:
            raise click.ClickException(str(exc)) from None
    kopf.run(
        registry=registry,
        settings=kopf_settings(settings, scanning=settings.scanning),
        standalone=settings.standalone,
        clusterwide=not settings.namespaces,
        namespaces=settings.namespaces,
        liveness_endpoint=settings.liveness_endpoint,
    )
