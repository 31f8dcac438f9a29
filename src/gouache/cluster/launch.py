"""Starting Gouache on Ray Serve: `gouache serve --ray` (:func:`serve_on_ray`) and `serve run` /
`serve deploy` with `serve_config.yaml` (:func:`app_builder`).

The launcher does once what no replica may do on its own: it makes every path absolute (replicas run in
other working directories, on other machines), migrates the database and marks the requests a stopped
server left unfinished as failed. It then starts Serve's HTTP proxy on `GOUACHE_HOST:GOUACHE_PORT`, the
same host and port the gateways' `Settings` carry (host checks compare against them)."""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from gouache.cluster.deployments import ClusterOptions, build_application
from gouache.cluster.topology import APP_NAME
from gouache.settings import Settings

log = logging.getLogger(__name__)

#: Settings that name files: made absolute for the replicas.
_PATH_SETTINGS = (
    "catalog_file",
    "models_dir",
    "prices_file",
    "moderation_policy_file",
    "c2pa_cert",
    "c2pa_key",
)


def prepare(settings: Settings) -> Settings:
    """The settings every replica gets: absolute paths, the database URL spelt out, the database migrated and
    recovered (once, here)."""
    from gouache.service.container import recover_unfinished
    from gouache.service.links import load_secret
    from gouache.service.provenance import load_provenance
    from gouache.service.stores import open_blob_store, open_store

    data_dir = settings.data_dir.expanduser().resolve()
    updates: dict[str, Any] = {
        "data_dir": data_dir,
        "database_url": settings.database_url or f"sqlite:///{data_dir / 'gouache.db'}",
    }
    if settings.blob_bucket is None:  # a bucket's URL is the same everywhere; a directory is made absolute
        updates["blob_url"] = str(_absolute(settings.blob_dir if settings.blob_url else data_dir / "blobs"))
    for name in _PATH_SETTINGS:
        value = getattr(settings, name)
        if value is not None:
            updates[name] = _absolute(value)
    if settings.url_secret is None:  # every gateway signs and checks image links with the same key
        updates["url_secret"] = SecretStr(load_secret(data_dir / "url-secret").hex())
    prepared = settings.model_copy(update=updates)
    open_blob_store(prepared, check=True).close()  # serve run/deploy come here without the CLI's check
    if prepared.provenance and (prepared.c2pa_cert is None or prepared.c2pa_key is None):
        # The local signing CA, made here once: gateways starting together would each write their own
        # over the others' files, and sign with a key that no longer matches its certificate.
        load_provenance(data_dir)
    store = open_store(prepared)
    try:
        recover_unfinished(store)
    finally:
        store.close()
    return prepared


def _absolute(path: Path) -> Path:
    return Path(path).expanduser().resolve()


def deploy(settings: Settings, options: ClusterOptions, address: str | None = None) -> Settings:
    """Connect to the cluster at `address` (or start one on this machine), start Serve's HTTP proxy on the
    settings' host and port, and run the application; returns once every replica is up, with the settings
    the gateways got. If Serve was already running with other HTTP options, the gateways get its host and
    port (what clients reach them on, and what host checks compare against), and a warning says so."""
    import ray
    from ray import serve
    from ray.serve.context import _get_global_client

    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, logging_level=logging.WARNING)
    serve.start(
        http_options={"host": settings.host, "port": settings.port}, proxy_location=options.proxy_location
    )
    client = _get_global_client()
    if client is None:  # serve.start has just made one
        raise RuntimeError("Ray Serve did not start")
    http = client.http_config
    if (http.host, http.port) != (settings.host, settings.port):
        log.warning("Serve's HTTP proxy already runs on %s:%s; the gateways use that", http.host, http.port)
        settings = settings.model_copy(update={"host": http.host, "port": http.port})
    serve.run(build_application(settings, options), name=APP_NAME, route_prefix="/", blocking=False)
    return settings


def serve_on_ray(settings: Settings, options: ClusterOptions, address: str | None = None) -> None:
    """`gouache serve --ray`: prepare, deploy, then wait for SIGINT/SIGTERM and take the application down
    (the cluster itself stays up when it was given by `address`)."""
    import ray
    from ray import serve

    settings = prepare(settings)
    deploy(settings, options, address)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        stop.wait()
    finally:
        serve.delete(APP_NAME)
        if address is None:
            serve.shutdown()
        ray.shutdown()


def app_builder(args: dict[str, Any]) -> Any:
    """`import_path: gouache.cluster.launch:app_builder` in a `serve_config.yaml`. `args` (all optional):
    models (list), replicas, gateways, engine_cpus, engine_gpus, max_replicas_per_node, host, port (the
    yaml's http_options, which the gateways' settings must match). Everything else comes from `GOUACHE_*`
    variables (set them in the yaml's `runtime_env.env_vars`)."""
    overrides = {k: args[k] for k in ("host", "port") if k in args}
    settings = prepare(Settings(**overrides))
    models = tuple(args.get("models") or (settings.default_model,))
    options = ClusterOptions(
        models=models,
        replicas=int(args.get("replicas", 1)),
        gateways=int(args.get("gateways", 1)),
        engine_cpus=float(args.get("engine_cpus", 1.0)),
        engine_gpus=float(args.get("engine_gpus", 0.0)),
        max_replicas_per_node=args.get("max_replicas_per_node"),
    )
    return build_application(settings, options)
