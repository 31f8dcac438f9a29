"""The FastAPI application: routes, error shapes, request ids, and the services' lifetime."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gouache import __version__
from gouache.api.access import AccessMiddleware
from gouache.api.body_limits import BodyLimitsMiddleware
from gouache.api.errors import install_error_handlers
from gouache.api.metrics import MetricsMiddleware
from gouache.api.metrics import router as metrics_router
from gouache.api.routers import health, history, images, models, organization, provenance, responses
from gouache.api.routers.playground import install_playground
from gouache.service.container import Services, build_services
from gouache.settings import Settings

REQUEST_THREADS = 32


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


def create_app(settings: Settings | None = None, services: Services | None = None) -> FastAPI:
    """The app. Pass `services` already built (the CLI does, to report start-up errors plainly); otherwise
    they are built when the app starts."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Every request hops to threads for the database and planning; the default pool (cores + 4) would make
        # a burst of requests queue for threads before they could even be refused.
        asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(REQUEST_THREADS, "gouache-io"))
        svc = services
        if svc is None:
            svc = await asyncio.to_thread(build_services, settings)
            if settings.preload:
                await asyncio.to_thread(svc.preload)
        app.state.services = svc
        try:
            yield
        finally:
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
    app.include_router(organization.router)
    app.include_router(history.router)
    app.include_router(health.router)
    app.include_router(metrics_router)
    # Outermost last: request ids on every answer, then metrics (which see refusals too), then access
    # control in front of every /v1 route, then body limits.
    if settings.playground:
        install_playground(app)
    app.add_middleware(
        BodyLimitsMiddleware,
        max_body_bytes=int(settings.max_body_mb * 2**20),
        max_json_depth=settings.max_json_depth,
    )
    app.add_middleware(AccessMiddleware)
    app.add_middleware(MetricsMiddleware)
    app.add_middleware(RequestIdMiddleware)
    return app
