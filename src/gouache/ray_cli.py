"""`gouache serve --ray`: the command line's side of :mod:`gouache.cluster` (imported only with --ray, so the
rest of the CLI works without the `gouache[ray]` extra)."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.markup import escape

from gouache.settings import Settings

err = Console(stderr=True, soft_wrap=True)


def serve_ray(
    settings: Settings,
    address: str | None,
    replicas: int,
    gateways: int,
    engine_cpus: float,
    engine_gpus: float,
    engine_models: list[str],
) -> None:
    """Run the API on Ray Serve until SIGINT/SIGTERM; a missing extra or a bad setting is one red line."""
    try:
        from gouache.cluster.deployments import ClusterOptions
        from gouache.cluster.launch import serve_on_ray
    except ImportError as exc:
        missing = escape(f"pip install 'gouache[ray]' ({exc})")
        err.print(f"[red]Cannot start:[/] --ray needs Ray Serve: {missing}")
        raise typer.Exit(1) from None
    models = tuple(dict.fromkeys([settings.default_model, *engine_models]))
    options = ClusterOptions(
        models=models,
        replicas=replicas,
        gateways=gateways,
        engine_cpus=engine_cpus,
        engine_gpus=engine_gpus,
    )
    err.print(
        f"[bold]Gouache on Ray Serve[/] at http://{settings.host}:{settings.port}/v1 "
        f"({replicas} engine replica(s) per model: {', '.join(models)}; {gateways} gateway(s); "
        f"cluster: {address or 'started here'})"
    )
    from gouache.store.errors import BlobStoreUnavailable

    try:
        serve_on_ray(settings, options, address)
    except (ConnectionError, ValueError, RuntimeError, BlobStoreUnavailable) as exc:
        err.print(f"[red]Cannot start on Ray:[/] {escape(str(exc))}")
        raise typer.Exit(1) from None
