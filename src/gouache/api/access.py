"""Who may call `/v1/...`, and how often: one middleware in front of every `/v1` route (routers added later
are covered without doing anything). It authenticates the bearer key, applies the per-key requests limit,
puts the `Caller` on `request.state.caller` (and its id on `request.state.api_key_id`), and adds the
`x-ratelimit-*` headers to the answer. `/health`, `/metrics` and the static playground stay open."""

from __future__ import annotations

import asyncio

from fastapi import Request
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gouache.service.access import ANONYMOUS, Caller
from gouache.service.container import Services
from gouache.service.errors import ServiceError

PROTECTED_PREFIX = "/v1/"


def _bearer(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
            return None
    return None


class AccessMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not str(scope.get("path", "")).startswith(PROTECTED_PREFIX):
            await self.app(scope, receive, send)
            return
        services: Services = scope["app"].state.services
        client = scope.get("client")
        try:
            caller = await asyncio.to_thread(
                _admit_caller, services, _bearer(scope), client[0] if client else None
            )
        except ServiceError as exc:
            services.ops.metrics.refusals.labels(exc.code or exc.type).inc()
            response = JSONResponse({"error": exc.to_error()}, status_code=exc.status, headers=exc.headers)
            await response(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        state["caller"] = caller
        state["api_key_id"] = caller.key_id

        async def send_with_limits(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                extra = [
                    (name.encode(), value.encode())
                    for name, value in services.ops.limit_headers(caller).items()
                    if name.encode() not in present
                ]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, send_with_limits)


def current_caller(request: Request) -> Caller:
    """The authenticated caller of a `/v1` request (anonymous on an open server)."""
    return getattr(request.state, "caller", ANONYMOUS)


def current_key(request: Request) -> str | None:
    """The id of the API key behind the request, or None on an open server."""
    return current_caller(request).key_id


def _admit_caller(services: Services, bearer: str | None, address: str | None) -> Caller:
    """Authenticate, then count the request against the caller's requests limit (which may be kept in the
    database, on a cluster: hence off the event loop)."""
    caller = services.keys.authenticate(bearer, address)
    services.ops.take_request(caller)
    return caller
