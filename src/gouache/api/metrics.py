"""`GET /metrics` (Prometheus text format, open like `/health`) and the middleware that counts and times
every HTTP request by its route template and status."""

from __future__ import annotations

import time

from fastapi import APIRouter, Depends, Response
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gouache.api.deps import services
from gouache.service.container import Services
from gouache.service.metrics import CONTENT_TYPE_LATEST

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
    """The route template (`/v1/responses/{response_id}`): it keeps the label set small. Requests refused
    before routing (401, 429) are matched here; unknown URLs share one label."""
    route = scope.get("route")
    if route is None:
        app = scope.get("app")
        for candidate in getattr(getattr(app, "router", None), "routes", []):
            if candidate.matches(scope)[0] != Match.NONE:
                route = candidate
                break
    return getattr(route, "path", None) or "unmatched"
