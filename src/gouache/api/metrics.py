"""`GET /metrics` (Prometheus text format, open like `/health`) and the middleware that counts and times
every HTTP request by its route template and status."""

from __future__ import annotations

import logging
import re
import time
from typing import Any

from fastapi import APIRouter, Depends, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gouache.api.deps import services
from gouache.service.container import Services
from gouache.service.metrics import CONTENT_TYPE_LATEST

log = logging.getLogger(__name__)

router = APIRouter(tags=["metrics"])


@router.get("/metrics", include_in_schema=False)
async def metrics(svc: Services = Depends(services)) -> Response:
    return Response(svc.ops.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)


class MetricsMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_watch)
        finally:
            endpoint = _endpoint(scope)
            app_state = getattr(scope.get("app"), "state", None)
            svc = getattr(app_state, "services", None)
            if svc is not None:
                m = svc.ops.metrics
                m.requests.labels(endpoint, scope.get("method", ""), str(status)).inc()
                m.http_latency.labels(endpoint).observe(time.perf_counter() - started)


def _endpoint(scope: Scope) -> str:
    """The route template (`/v1/responses/{response_id}`): it keeps the label set small, and it is known for
    requests refused before routing too (401, 429). Unknown URLs share one label."""
    path = str(scope.get("path", ""))
    for template, pattern in _templates(scope.get("app")):
        if pattern.fullmatch(path):
            return template
    return "unmatched"


def _templates(app: Any) -> list[tuple[str, re.Pattern[str]]]:
    """The app's paths from its OpenAPI description (plus `/metrics`), as regular expressions."""
    if app is None:
        return []
    found: list[tuple[str, re.Pattern[str]]] | None = getattr(app.state, "metric_templates", None)
    if found is None:
        try:
            paths = [*app.openapi().get("paths", {}), "/metrics"]
        except Exception:  # a route whose schema cannot be described must not break every request
            log.exception("cannot list routes for metrics labels")
            paths = ["/metrics"]
        found = [(p, re.compile(re.sub(r"\\{[^/]+?\\}", "[^/]+", re.escape(p)))) for p in paths]
        app.state.metric_templates = found
    return found
