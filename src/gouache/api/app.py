"""The FastAPI application: routes, error shapes, request ids, and the services' lifetime."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gouache import __version__
from gouache.api.access import AccessMiddleware
from gouache.api.batch_lines import line_executor
from gouache.api.body_limits import BodyLimitsMiddleware
from gouache.api.browser_boundary import (
    BoundaryCORSMiddleware,
    BoundaryRules,
    BrowserBoundaryMiddleware,
    cors_options,
)
from gouache.api.errors import install_error_handlers
from gouache.api.metrics import MetricsMiddleware
from gouache.api.metrics import router as metrics_router
from gouache.api.routers import (
    batches,
    files,
    health,
    history,
    images,
    models,
    organization,
    provenance,
    responses,
)
from gouache.api.routers.playground import install_playground
from gouache.service.batches import BatchRunner
from gouache.service.container import Services, build_services
from gouache.service.leases import Lease
from gouache.service.webhooks import new_event, post_event
from gouache.settings import Settings

REQUEST_THREADS = 32

log = logging.getLogger(__name__)


class RequestIdMiddleware:
    """Adds `x-request-id` to every response, as OpenAI does (the SDK shows it on errors)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = f"req_{secrets.token_hex(12)}"

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        await self.app(scope, receive, send_with_id)


async def _every(interval_s: float, work: Callable[[], object]) -> None:
    """Run blocking `work` off the event loop now and every `interval_s` seconds (the expired-files sweep);
    a failure is logged and the next round still runs."""
    while True:
        try:
            await asyncio.to_thread(work)
        except Exception:
            log.exception("periodic task %s failed", getattr(work, "__qualname__", work))
        await asyncio.sleep(interval_s)


#: The lease a cluster's gateways hold in turn to run the Batch API's lines.
BATCH_LEASE = "batch-runner"


def _batch_runner(svc: Services, lease_holder: str | None) -> BatchRunner:
    """The batch runner of this server: lines run as direct requests would, in the engine's batch lane;
    final statuses go to the webhook when one is configured. `lease_holder`: this process's name among
    several sharing the database; it runs batches while it holds the batch lease. Its loop also renews this
    process's membership row (`svc.membership`, a cluster's gateways only)."""
    settings = svc.settings
    secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else None

    def on_final(batch_id: str, status: str) -> None:
        if settings.batch_webhook_url:
            event = new_event(f"batch.{status}", data={"id": batch_id})  # OpenAI's batch event names
            post_event(settings.batch_webhook_url, event, secret)

    return BatchRunner(
        svc.store,
        line_executor(svc),
        concurrency=settings.batch_concurrency or settings.max_batch_images,
        queue_full=lambda: svc.queue.full,
        on_final=on_final,
        lease=None if lease_holder is None else Lease(svc.store, BATCH_LEASE, lease_holder),
        membership=svc.membership,
    )


def create_app(
    settings: Settings | None = None,
    services: Services | None = None,
    *,
    build: Callable[[Settings], Services] | None = None,
    on_start: Callable[[], None] | None = None,
    batch_lease_holder: str | None = None,
) -> FastAPI:
    """The app. Pass `services` already built (the CLI does, to report start-up errors plainly); otherwise
    they are built when the app starts, by `build` if given (a Ray gateway builds them around the cluster's
    engine, and its replicas load no model: `on_start` then runs on the app's event loop once they are up).
    The Batch API's lines run here; with `batch_lease_holder`, only while this process holds the batch lease
    under that name (a cluster's gateways share the database: one runs them, another takes over
    if it dies)."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Every request hops to threads for the database and planning; the default pool (cores + 4) would make
        # a burst of requests queue for threads before they could even be refused.
        asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(REQUEST_THREADS, "gouache-io"))
        svc = services
        if svc is None and build is not None:
            svc = await asyncio.to_thread(build, settings)
        elif svc is None:
            svc = await asyncio.to_thread(build_services, settings)
            await asyncio.to_thread(svc.preload)  # checks the files; the workers warm up in the background
        app.state.services = svc
        if on_start is not None:
            on_start()
        background = [asyncio.create_task(_every(svc.settings.file_sweep_interval_s, svc.files.sweep))]
        runner = _batch_runner(svc, batch_lease_holder)
        svc.batches.wake = runner.wake
        background.append(asyncio.create_task(runner.run_forever()))
        try:
            yield
        finally:
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            await asyncio.to_thread(svc.close)

    app = FastAPI(
        title="Gouache",
        version=__version__,
        description="Self-hosted image generation that speaks OpenAI's Images API.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.include_router(images.router)
    app.include_router(provenance.router)
    app.include_router(models.router)
    app.include_router(responses.router)
    app.include_router(files.router)
    app.include_router(batches.router)
    app.include_router(organization.router)
    app.include_router(history.router)
    app.include_router(health.router)
    app.include_router(metrics_router)
    # Outermost last: request ids on every answer, then metrics (which see refusals too), then the browser
    # boundary (Host, cross-site requests, hardening headers; design note 41), then CORS (preflights answered
    # before any key is asked for), then access control in front of every /v1 route, then body limits.
    if settings.playground:
        install_playground(app)
    app.add_middleware(
        BodyLimitsMiddleware,
        max_body_bytes=int(settings.max_body_mb * 2**20),
        max_json_depth=settings.max_json_depth,
    )
    app.add_middleware(AccessMiddleware)
    app.add_middleware(BoundaryCORSMiddleware, **cors_options(settings))
    app.add_middleware(BrowserBoundaryMiddleware, rules=BoundaryRules.from_settings(settings))
    app.add_middleware(MetricsMiddleware)
    app.add_middleware(RequestIdMiddleware)
    return app
