"""The browser boundary: what a web page in the user's browser can make this server do (design note 41).

With no API key Gouache trusts loopback callers, and a browser on the same machine is one that any web page
can steer. Three rules, checked in this order in one pure-ASGI middleware in front of everything else
(`BaseHTTPMiddleware` would buffer streams and break cancellation):

1. **Host.** A request whose `Host` is not a name this server answers to is refused (421 `invalid_host`), on
   every route. This is what stops DNS rebinding: a page that rebinds its own name to 127.0.0.1 still sends
   its own name as `Host`. Answered names: localhost, 127.0.0.1, [::1] and the bind address, at the server's
   port, plus `GOUACHE_ALLOWED_HOSTS`.
2. **Cross-site requests.** A POST, PUT, PATCH or DELETE whose `Origin` (else `Referer`) is another origin
   than the request's own (scheme, host and port) and not in `GOUACHE_CORS_ORIGINS` is refused (403
   `cross_site_request`), whatever its content type: HTML forms can send multipart and text/plain bodies to
   any site without a preflight. Requests with neither header (SDKs, curl) are not browsers' and pass.
3. **CORS** (Starlette's `CORSMiddleware`, configured here): preflights and response headers for the origins
   in `GOUACHE_CORS_ORIGINS`, answered before authentication.

`*` in either setting is honoured only while API keys are on (`gouache serve` refuses to start otherwise, and
a key revoked later makes `*` stop counting at once). Responses also carry hardening headers: the playground a
content security policy allowing only its own files, every answer `nosniff` and frame protection.

The decisions are pure functions of the settings and the request's headers (`BoundaryRules.check`),
unit-tested in-process; the middleware asks the store whether keys are on only when a `*` is what would let
a request in. Everything is driven by `Settings` (host, port, allowed hosts, origins), so it holds behind any
proxy that keeps the `Host` header, Ray Serve's included."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gouache.api.errors import error_response
from gouache.settings import Settings

DEFAULT_PORTS = {"http": 80, "https": 443}
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")
#: Bind addresses that name no host of their own: only the loopback names (and GOUACHE_ALLOWED_HOSTS) apply.
WILDCARD_BINDS = frozenset({"", "0.0.0.0", "::", "[::]"})
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

#: Request headers a browser app may send (preflight): what the official SDKs send, OpenAI's own headers.
CORS_ALLOW_HEADERS = (
    "Authorization",
    "Content-Type",
    "Idempotency-Key",
    "OpenAI-Beta",
    "OpenAI-Organization",
    "OpenAI-Project",
    "X-Stainless-Arch",
    "X-Stainless-Async",
    "X-Stainless-Custom-Event-Handler",
    "X-Stainless-Custom-Poll-Interval",
    "X-Stainless-Helper-Method",
    "X-Stainless-Lang",
    "X-Stainless-OS",
    "X-Stainless-Package-Version",
    "X-Stainless-Poll-Helper",
    "X-Stainless-Raw-Response",
    "X-Stainless-Read-Timeout",
    "X-Stainless-Retry-Count",
    "X-Stainless-Runtime",
    "X-Stainless-Runtime-Version",
    "X-Stainless-Stream-Helper",
    "X-Stainless-Timeout",
)
#: Response headers a browser app may read (tests/test_browser_boundary.py checks every `x-gouache-*` name in
#: the sources is here: `Access-Control-Expose-Headers` has no prefix wildcards).
CORS_EXPOSE_HEADERS = (
    "x-request-id",
    "x-gouache-request-id",
    "x-gouache-seed",
    "x-gouache-cost-usd",
    "x-gouache-cache",
    "x-gouache-budget-warning",
    "x-ratelimit-limit-requests",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-reset-requests",
    "x-ratelimit-limit-images",
    "x-ratelimit-remaining-images",
    "x-ratelimit-reset-images",
    "retry-after",
    "retry-after-ms",
    "x-should-retry",
)
CORS_METHODS = ("GET", "HEAD", "POST", "DELETE", "OPTIONS")

#: The playground: its own scripts (ES modules), styles and images; images it shows are `blob:` URLs made from
#: API answers and uploads (and `data:` URLs of chat attachments); fetches to this origin only. No inline
#: script or style attribute exists in the page (CSSOM changes from its scripts are not inline styles).
PLAYGROUND_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; font-src 'self'; manifest-src 'self'; form-action 'self'; base-uri 'none'; "
    "frame-ancestors 'none'"
)
#: Everything else (JSON, images behind links, SVG outputs opened directly): nothing may run or be framed.
API_CSP = "default-src 'none'; frame-ancestors 'none'"
#: FastAPI's own documentation pages load their scripts from a CDN: they keep no CSP (but the other headers).
DOCS_PATHS = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc"})
# `same-origin`, not `no-referrer`: under `no-referrer` a browser sends `Origin: null` even on the page's own
# POSTs, which rule 2 would then refuse.
COMMON_HEADERS = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "x-frame-options": "DENY",
}


def is_playground_path(path: str) -> bool:
    return path == "/" or path.startswith("/web/")


# --- pure parsing -----------------------------------------------------------------------------------------


def split_host(value: str) -> tuple[str, int | None] | None:
    """`name`, `name:port`, `[v6]`, `[v6]:port` -> (lower-case name, IPv6 in brackets; port or None);
    None when malformed (an empty name, a port that is not a number in 1-65535, an unbracketed IPv6)."""
    value = value.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return None
        name, rest = value[: end + 1], value[end + 1 :]
        if rest and not rest.startswith(":"):
            return None
        port_text = rest[1:] if rest else None
    else:
        if value.count(":") > 1:
            return None
        name, _, port_text = value.partition(":")
        port_text = port_text if ":" in value else None
    if not name or any(c.isspace() or c in "/?#@\\" for c in name):
        return None
    if port_text is None:
        return name, None
    if not (port_text.isascii() and port_text.isdigit()) or not 0 < int(port_text) < 65536:
        return None
    return name, int(port_text)


def bracket(address: str) -> str:
    """An IPv6 literal as it appears in a Host header (`::1` -> `[::1]`); other names unchanged."""
    try:
        if isinstance(ipaddress.ip_address(address.strip("[]")), ipaddress.IPv6Address):
            return f"[{address.strip('[]')}]"
    except ValueError:
        pass
    return address


def normalize_origin(value: str) -> str | None:
    """An origin or URL -> `scheme://host:port` (lower case, default port filled in), or None when it names
    no http(s) origin (`null`, `file:`, garbage)."""
    try:
        parts = urlsplit(value.strip())
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.netloc or "@" in parts.netloc:
        return None
    host = split_host(parts.netloc)
    if host is None:
        return None
    name, port = host
    return f"{scheme}://{name}:{port or DEFAULT_PORTS[scheme]}"


def browser_origin(value: str) -> str:
    """An origin as browsers send it in `Origin` (default port left out), for CORS's literal comparison."""
    normalized = normalize_origin(value)
    if normalized is None:
        return value
    scheme, _, rest = normalized.partition("://")
    return f"{scheme}://{rest.removesuffix(f':{DEFAULT_PORTS[scheme]}')}"


@dataclass(frozen=True)
class HostPattern:
    """One name this server answers to; `port` None matches any port (and a Host without one)."""

    name: str
    port: int | None

    def matches(self, name: str, port: int) -> bool:
        return self.name == name and (self.port is None or self.port == port)

    def __str__(self) -> str:
        return self.name if self.port is None else f"{self.name}:{self.port}"


@dataclass(frozen=True)
class Refusal:
    """A request the boundary turns away, in OpenAI's error terms. `waived_by_keys`: it is let through
    while API keys are on (it was refused only because a `*` setting needs keys)."""

    status: int
    message: str
    param: str
    code: str
    waived_by_keys: bool = False

    def response(self) -> Response:
        return error_response(self.status, self.message, "invalid_request_error", self.param, self.code)


def wildcard_problem(settings: Settings, keys_on: bool) -> str | None:
    """Why these settings may not serve (a `*` without API keys), or None. `gouache serve` checks it."""
    if keys_on:
        return None
    for name, values in (
        ("GOUACHE_ALLOWED_HOSTS", settings.allowed_hosts),
        ("GOUACHE_CORS_ORIGINS", settings.cors_origins),
    ):
        if "*" in values:
            return (
                f"{name}=* lets any web page reach this server, so it needs API keys: create one with "
                "`gouache keys create NAME` (or set GOUACHE_REQUIRE_AUTH=true), or list the names instead."
            )
    return None


@dataclass(frozen=True)
class BoundaryRules:
    """The host and origin rules of one server, from its settings."""

    hosts: tuple[HostPattern, ...]
    any_host: bool
    origins: frozenset[str]
    any_origin: bool

    @classmethod
    def build(
        cls, bind: str, port: int, allowed_hosts: Iterable[str] = (), cors_origins: Iterable[str] = ()
    ) -> BoundaryRules:
        """Raises ValueError naming a malformed entry."""
        names = list(LOOPBACK_NAMES)
        if bind.strip().lower() not in WILDCARD_BINDS:
            names.append(bracket(bind.strip().lower()))
        hosts = [HostPattern(name, port) for name in dict.fromkeys(names)]
        any_host = False
        for entry in allowed_hosts:
            if entry.strip() == "*":
                any_host = True
                continue
            parsed = split_host(bracket(entry.strip()) if entry.count(":") > 1 else entry)
            if parsed is None:
                raise ValueError(f"GOUACHE_ALLOWED_HOSTS: {entry!r} is not a host name (name or name:port)")
            hosts.append(HostPattern(*parsed))
        origins: set[str] = set()
        any_origin = False
        for entry in cors_origins:
            if entry.strip() == "*":
                any_origin = True
                continue
            origin = normalize_origin(entry)
            if origin is None:
                raise ValueError(f"GOUACHE_CORS_ORIGINS: {entry!r} is not an origin (scheme://host[:port])")
            origins.add(origin)
        return cls(tuple(hosts), any_host, frozenset(origins), any_origin)

    @classmethod
    def from_settings(cls, settings: Settings) -> BoundaryRules:
        return cls.build(settings.host, settings.port, settings.allowed_hosts, settings.cors_origins)

    def host_refusal(self, host_header: str | None, scheme: str) -> Refusal | None:
        """Rule 1. No `Host` at all (HTTP/1.0) is no browser's request: it passes. A Host without a port
        means the scheme's default port (80/443), as HTTP defines it."""
        if host_header is None:
            return None
        parsed = split_host(host_header)
        if parsed is not None:
            name, port = parsed
            port = port or DEFAULT_PORTS.get(scheme, 80)
            if any(pattern.matches(name, port) for pattern in self.hosts):
                return None
        shown = host_header[:200]
        if self.any_host and parsed is not None:
            return Refusal(
                421,
                f"This server does not answer to the host '{shown}': GOUACHE_ALLOWED_HOSTS=* is honoured "
                "only while API keys are on, and none is.",
                "Host",
                "invalid_host",
                waived_by_keys=True,
            )
        known = ", ".join(str(p) for p in self.hosts)
        return Refusal(
            421,
            f"This server does not answer to the host '{shown}'. It answers to {known}; add the name clients "
            "use to GOUACHE_ALLOWED_HOSTS.",
            "Host",
            "invalid_host",
        )

    def origin_refusal(
        self, method: str, scheme: str, own_host: str, origin: str | None, referer: str | None
    ) -> Refusal | None:
        """Rule 2 (and `*` in GOUACHE_CORS_ORIGINS without keys). `own_host` is the request's Host (or the
        address it reached). Safe methods are judged by `Origin` only: a Referer from a link is no CORS
        request."""
        unsafe = method.upper() in UNSAFE_METHODS
        if origin is not None:
            source, param = origin, "Origin"
        elif referer is not None and unsafe:
            source, param = referer, "Referer"
        else:
            return None  # no browser header: an SDK, curl, a same-origin GET
        parsed = split_host(own_host)
        own = (
            None if parsed is None else f"{scheme}://{parsed[0]}:{parsed[1] or DEFAULT_PORTS.get(scheme, 80)}"
        )
        seen = normalize_origin(source)
        if seen is not None and (seen == own or seen in self.origins):
            return None
        shown = source[:200]
        if self.any_origin and seen is not None:
            return Refusal(
                403,
                f"Cross-origin request from '{shown}' refused: GOUACHE_CORS_ORIGINS=* is honoured only while "
                "API keys are on, and none is.",
                param,
                "cross_site_request",
                waived_by_keys=True,
            )
        if not unsafe:
            return None  # a cross-origin read: the browser withholds the answer unless CORS allows it
        return Refusal(
            403,
            f"Cross-site request refused: {method.upper()} from '{shown}', which is neither this server's "
            "own origin nor listed in GOUACHE_CORS_ORIGINS.",
            param,
            "cross_site_request",
        )

    def check(
        self, method: str, scheme: str, headers: Mapping[str, str], server: tuple[str, int] | None = None
    ) -> Refusal | None:
        """Rules 1 and 2 for one request (`headers` lower-case names). The first refusal that keys cannot
        waive wins; else the first waivable one; else None."""
        host_header = headers.get("host")
        own_host = host_header or (f"{bracket(server[0])}:{server[1]}" if server else "")
        refusals = [
            r
            for r in (
                self.host_refusal(host_header, scheme),
                self.origin_refusal(method, scheme, own_host, headers.get("origin"), headers.get("referer")),
            )
            if r is not None
        ]
        hard = [r for r in refusals if not r.waived_by_keys]
        return hard[0] if hard else (refusals[0] if refusals else None)


# --- the middleware ---------------------------------------------------------------------------------------


def security_headers(path: str) -> list[tuple[bytes, bytes]]:
    headers = dict(COMMON_HEADERS)
    if is_playground_path(path):
        headers["content-security-policy"] = PLAYGROUND_CSP
    elif path not in DOCS_PATHS:
        headers["content-security-policy"] = API_CSP
    return [(name.encode(), value.encode()) for name, value in headers.items()]


async def _keys_on(scope: Scope) -> bool:
    services = getattr(scope["app"].state, "services", None) if "app" in scope else None
    if services is None:
        return False
    return bool(await asyncio.to_thread(services.keys.required))


class BrowserBoundaryMiddleware:
    """Rules 1 and 2 (see the module docstring), and the hardening headers on every answer."""

    def __init__(
        self,
        app: ASGIApp,
        rules: BoundaryRules,
        keys_on: Callable[[Scope], Awaitable[bool]] = _keys_on,
    ) -> None:
        self.app = app
        self.rules = rules
        self.keys_on = keys_on

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = security_headers(scope.get("path", ""))

        async def send_hardened(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                message["headers"] = [
                    *message.get("headers", []),
                    *((name, value) for name, value in extra if name not in present),
                ]
            await send(message)

        headers = Headers(scope=scope)
        refusal = self.rules.check(
            scope["method"],
            scope.get("scheme", "http"),
            {name: headers[name] for name in ("host", "origin", "referer") if name in headers},
            scope.get("server"),
        )
        if refusal is not None and not (refusal.waived_by_keys and await self.keys_on(scope)):
            services = getattr(scope["app"].state, "services", None) if "app" in scope else None
            if services is not None:
                services.ops.metrics.refusals.labels(refusal.code).inc()
            await refusal.response()(scope, receive, send_hardened)
            return
        await self.app(scope, receive, send_hardened)


class BoundaryCORSMiddleware(CORSMiddleware):
    """Starlette's CORS, whose refused preflights answer in OpenAI's error shape rather than plain text."""

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code < 400:
            return response
        origin = request_headers["origin"]
        method = request_headers["access-control-request-method"]
        if not self.is_allowed_origin(origin):
            message, param = f"The origin '{origin[:200]}' is not listed in GOUACHE_CORS_ORIGINS.", "Origin"
        elif method not in self.allow_methods:
            message, param = (
                f"Method {method[:20]} is not allowed cross-origin.",
                "Access-Control-Request-Method",
            )
        else:
            requested = request_headers.get("access-control-request-headers", "")
            message = f"A requested header is not allowed cross-origin: {requested[:300]}."
            param = "Access-Control-Request-Headers"
        headers = {
            k: v for k, v in response.headers.items() if k.lower().startswith(("access-control", "vary"))
        }
        return error_response(
            400, message, "invalid_request_error", param, "cors_not_allowed", headers=headers
        )


def cors_options(settings: Settings) -> dict[str, Any]:
    """`BoundaryCORSMiddleware`'s arguments. Bearer keys, not cookies: no credentials mode. Listed origins
    may be public sites calling a server on this machine: Chrome's Private Network Access preflight is
    answered for them."""
    listed = [o.strip() for o in settings.cors_origins]
    allow = ["*"] if "*" in listed else sorted({browser_origin(o) for o in listed})
    return {
        "allow_origins": allow,
        "allow_methods": CORS_METHODS,
        "allow_headers": CORS_ALLOW_HEADERS,
        "expose_headers": CORS_EXPOSE_HEADERS,
        "allow_credentials": False,
        "allow_private_network": True,
        "max_age": 600,
    }
