"""Wiring: settings -> catalog, store, engine (cache, runner, job queue) -> services. Used by the server and
by in-process CLI commands alike, so both run exactly the same code."""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gouache.engine import devices
from gouache.engine.backend import BackendOptions
from gouache.engine.catalog import Catalog, CatalogError, ModelSpec, spec_for_directory
from gouache.engine.client import EngineClient, ModelsView
from gouache.engine.embeddings import PromptEmbeddings
from gouache.engine.pipelines import ModelCache
from gouache.engine.queue import JobQueue
from gouache.engine.runner import Runner
from gouache.engine.threads import use_torch_threads
from gouache.engine.warmup import WARM_PROMPT, check_model, warm_jobs
from gouache.service.access import KeyService
from gouache.service.batches import BatchService
from gouache.service.chat_turns import ChatPromptWriter
from gouache.service.files import FileService
from gouache.service.history import HistoryService
from gouache.service.image_refs import ImageRefResolver, RemoteImagePolicy
from gouache.service.images import ImageService
from gouache.service.leases import Membership
from gouache.service.links import LinkSigner, load_secret
from gouache.service.operations import Operations
from gouache.service.provenance import ProvenanceSetup, load_provenance
from gouache.service.responses import ResponsesService
from gouache.service.stores import open_store
from gouache.service.usage import count_text_tokens
from gouache.settings import Settings
from gouache.store import Store

log = logging.getLogger(__name__)


def build_catalog(settings: Settings) -> tuple[Catalog, ModelSpec]:
    """The catalog with the default model resolved (a catalog name or a diffusers directory) and the GPT image
    model names aliased to it."""
    catalog = Catalog.load(settings.catalog_file, settings.pulled_catalog_file)
    default = catalog.resolve(settings.default_model)
    if default is None:
        path = Path(settings.default_model).expanduser()
        if not (path.is_dir() or os.sep in settings.default_model):
            raise CatalogError(
                f"Default model {settings.default_model!r} is neither a catalog model "
                f"({', '.join(catalog.names())}) nor a directory."
            )
        default = spec_for_directory(path)
        catalog.add(default)
    for alias in settings.model_aliases:
        catalog.alias(alias, default.name)
    return catalog, default


def check_devices(settings: Settings, catalog: Catalog, available: devices.Accelerators) -> None:
    """Every device and dtype asked for (GOUACHE_DEVICE/GOUACHE_DTYPE, then each catalog entry's own) exists
    here: otherwise start-up fails with one line naming it, not a traceback at the first request."""
    try:
        devices.resolve_device(settings.device, available)
    except devices.DeviceError as exc:
        raise devices.DeviceError(f"{exc} (GOUACHE_DEVICE)") from None
    try:
        devices.parse_dtype(settings.dtype)
    except devices.DeviceError as exc:
        raise devices.DeviceError(f"{exc} (GOUACHE_DTYPE)") from None
    for spec in catalog.models():
        if spec.device is not None:
            try:
                devices.resolve_device(spec.device, available)
            except devices.DeviceError as exc:
                raise devices.DeviceError(f"[models.{spec.name}] device: {exc}") from None


@dataclass
class Services:
    settings: Settings
    catalog: Catalog
    default_model: ModelSpec
    store: Store
    #: The models the engine holds (this process's `ModelCache`, or what the cluster's replicas report).
    cache: ModelsView
    #: The engine: this process's `JobQueue`, or a Ray cluster's engine replicas (`gouache.ray`).
    queue: EngineClient
    images: ImageService
    responses: ResponsesService
    links: LinkSigner
    ops: Operations
    keys: KeyService
    history: HistoryService
    files: FileService
    image_refs: ImageRefResolver
    batches: BatchService
    #: The C2PA signing keys and the trust anchor the provenance check uses; None when signing is off.
    provenance: ProvenanceSetup | None = None
    #: On a Ray cluster: the replicas and nodes serving this app, for `/health` (None in one process).
    cluster: Callable[[], Awaitable[dict[str, Any]]] | None = None
    #: On a Ray cluster: this gateway's row among the processes sharing the database, renewed by the batch
    #: runner's loop (None in one process: nothing is written).
    membership: Membership | None = None

    def preload(self, warm: bool | None = None) -> None:
        """Check the default model's files now, so that a broken model directory fails start-up naming its
        path; then, if `warm` (default: `GOUACHE_PRELOAD`; false loads on first use), have every engine
        worker load, convert and render it once in the background (`/health` says "warming" meanwhile).
        Meanwhile, on this thread, the usage tokenizer loads its vocabulary (o200k, about 0.5 s): the one cost
        of the first request outside the engine that the warm-up renders do not pay (design note 43)."""
        check_model(self.default_model)
        if self.settings.preload if warm is None else warm:
            outputs = self.images.outputs
            jobs = warm_jobs(self.default_model, outputs.provenance, outputs.metadata)
            self.queue.warm_up(self.default_model.name, jobs)
            count_text_tokens(WARM_PROMPT)

    def close(self) -> None:
        """Stop the engine (waiting jobs dropped, running ones given the grace period), then the store."""
        self.queue.stop(timeout=self.settings.grace_period_s)
        self.store.close()


def _prompt_writer(settings: Settings) -> ChatPromptWriter | None:
    if not settings.planner_url:
        return None
    return ChatPromptWriter(settings.planner_url, settings.planner_model, settings.planner_api_key)


def build_engine(
    settings: Settings, available: devices.Accelerators | None = None
) -> tuple[ModelCache, JobQueue]:
    """This process's engine: the model cache, the runner and the started job queue. A Ray engine replica
    builds exactly this (`gouache.ray.deployments`)."""
    cache = ModelCache(
        settings.model_memory_bytes,
        BackendOptions(
            backend=settings.backend,
            threads=settings.threads_per_worker,
            precision=settings.backend_precision,
            cache_dir=settings.backend_cache_dir,
        ),
        device=settings.device,
        dtype=settings.dtype,
        accelerators=available if available is not None else devices.probe(),
    )
    runner = Runner(cache, PromptEmbeddings(settings.prompt_cache_size), settings.max_batch_images)
    queue = JobQueue(
        runner,
        max_queue=settings.queue_depth,
        workers=settings.workers,
        batch_window_s=settings.batch_window_ms / 1000,
        max_batch_images=settings.max_batch_images,
        batch_lane_images=settings.batch_lane_images,
        torch_threads=settings.threads_per_worker,
    )
    queue.start()
    return cache, queue


def build_services(
    settings: Settings,
    engine: tuple[ModelsView, EngineClient] | None = None,
    *,
    recover: bool = True,
    cluster: Callable[[], Awaitable[dict[str, Any]]] | None = None,
) -> Services:
    """Everything a server needs. `engine`: a remote engine (a Ray cluster's) instead of this process's.
    `recover`: migrate the database and mark the requests a previous run left unfinished as failed; a
    gateway replica of a cluster must not (its siblings' requests are in flight in the same database: the
    launcher does both once)."""
    use_torch_threads(settings.threads_per_worker)  # this thread's count; each engine worker sets its own
    catalog, default = build_catalog(settings)
    available = devices.probe() if engine is None else None
    if available is not None:
        check_devices(settings, catalog, available)
    store = open_store(settings, migrate=recover)
    ops = Operations.from_settings(settings, store, shared=engine is not None)
    if recover:
        recover_unfinished(store)
    cache, queue = engine if engine is not None else build_engine(settings, available)
    ops.metrics.track_queue(lambda: queue.depth)
    provenance = (
        load_provenance(settings.data_dir, settings.c2pa_cert, settings.c2pa_key)
        if settings.provenance
        else None
    )
    images = ImageService(
        catalog,
        queue,
        store,
        ops,
        render_memory_bytes=int(settings.render_memory_mb * 2**20),
        default_timeout_s=settings.request_timeout_s,
        result_cache=settings.result_cache,
        provenance=provenance.keys if provenance else None,
        metadata=settings.metadata,
        placement=cache.device_and_dtype,
    )
    secret = (
        bytes.fromhex(settings.url_secret.get_secret_value())
        if settings.url_secret
        else load_secret(settings.data_dir / "url-secret")
    )
    links = LinkSigner(secret)
    files = FileService(store, int(settings.max_file_mb * 2**20))
    return Services(
        settings=settings,
        catalog=catalog,
        default_model=default,
        store=store,
        cache=cache,
        queue=queue,
        images=images,
        responses=ResponsesService(images, store, _prompt_writer(settings)),
        links=links,
        history=HistoryService(store, links),
        ops=ops,
        keys=KeyService(store, settings.require_auth),
        files=files,
        batches=BatchService(store, files),
        image_refs=ImageRefResolver(
            store,
            RemoteImagePolicy(
                settings.remote_image_urls,
                int(settings.remote_image_max_mb * 2**20),
                settings.remote_image_timeout_s,
            ),
        ),
        provenance=provenance,
        cluster=cluster,
    )


def recover_unfinished(store: Store) -> int:
    """Mark the requests and responses a stopped server left unfinished as failed; returns how many."""
    interrupted = store.fail_unfinished("The server stopped before this request finished.")
    interrupted += store.fail_unfinished_responses("The server stopped before this response finished.")
    if interrupted:
        log.warning("marked %d interrupted request(s) as failed", interrupted)
    return interrupted
