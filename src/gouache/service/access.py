"""API keys and who is calling: keys are created, listed and revoked here; a bearer token becomes a `Caller`.

Secrets are `sk-gouache-…` strings of 256 random bits. Only their SHA-256 is stored (a slow password hash
buys nothing for random secrets of that length) and they are never logged: errors show a redacted form.
With no active key (and `require_auth` off) the server is open, to loopback clients only."""

from __future__ import annotations

import hashlib
import ipaddress
import secrets
from dataclasses import dataclass

from gouache.service.errors import ServiceError
from gouache.store import ALL_OWNERS, ApiKeyView, Owner, Store

SECRET_PREFIX = "sk-gouache-"


class Unauthorized(ServiceError):
    status = 401
    type = "invalid_request_error"
    code = "invalid_api_key"


@dataclass(frozen=True)
class Caller:
    """Who a request comes from: a key, or nobody (the open server) with `key_id` None."""

    key_id: str | None
    name: str = "anonymous"
    admin: bool = False
    budget_usd: float | None = None
    budget_images: int | None = None
    rate_limit_requests: int | None = None
    rate_limit_images: int | None = None

    @property
    def owner(self) -> Owner:
        """Whose rows this caller may read: its own, or all of them (admin keys, the open server)."""
        return ALL_OWNERS if self.admin or self.key_id is None else self.key_id

    @property
    def limit_key(self) -> str:
        return self.key_id or "anonymous"

    @classmethod
    def of(cls, key: ApiKeyView) -> Caller:
        return cls(
            key_id=key.id,
            name=key.name,
            admin=key.admin,
            budget_usd=key.budget_usd,
            budget_images=key.budget_images,
            rate_limit_requests=key.rate_limit_requests,
            rate_limit_images=key.rate_limit_images,
        )


#: The caller of an open server (no keys): may read everything, like the single user it is.
ANONYMOUS = Caller(key_id=None)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def redact(secret: str) -> str:
    """A form safe to show: the first and last few characters."""
    if len(secret) <= 12:
        return "*" * len(secret)
    return f"{secret[:6]}...{secret[-4:]}"


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


class KeyService:
    def __init__(self, store: Store, require_auth: bool = False) -> None:
        self.store = store
        self.require_auth = require_auth

    def create(
        self,
        name: str,
        *,
        admin: bool = False,
        budget_usd: float | None = None,
        budget_images: int | None = None,
        rate_limit_requests: int | None = None,
        rate_limit_images: int | None = None,
    ) -> tuple[ApiKeyView, str]:
        """A new key and its secret; the secret is shown once and cannot be recovered."""
        secret = SECRET_PREFIX + secrets.token_urlsafe(32)
        key = self.store.create_api_key(
            "key_" + secrets.token_hex(12),
            name,
            hash_secret(secret),
            f"{secret[: len(SECRET_PREFIX) + 3]}...{secret[-4:]}",
            admin=admin,
            budget_usd=budget_usd,
            budget_images=budget_images,
            rate_limit_requests=rate_limit_requests,
            rate_limit_images=rate_limit_images,
        )
        return key, secret

    def list(self, include_revoked: bool = True) -> list[ApiKeyView]:
        return self.store.list_api_keys(include_revoked)

    def revoke(self, key_id: str) -> bool:
        return self.store.revoke_api_key(key_id)

    def required(self) -> bool:
        """Whether every request needs a key now: `require_auth`, or an active key exists. The browser
        boundary honours `*` in GOUACHE_ALLOWED_HOSTS / GOUACHE_CORS_ORIGINS only while this holds."""
        return self.require_auth or self.store.has_active_api_keys()

    def authenticate(self, token: str | None, client_host: str | None) -> Caller:
        """The caller behind `Authorization: Bearer <token>`, or `Unauthorized`."""
        if token:
            key = self.store.api_key_by_hash(hash_secret(token))
            if key is not None:
                if not key.active:
                    raise Unauthorized(f"The API key {key.redacted} ({key.id}) has been revoked.")
                return Caller.of(key)
        if self.required():
            if not token:
                raise Unauthorized(
                    "You didn't provide an API key. Send it as 'Authorization: Bearer <key>' "
                    "(create one with `gouache keys create`)."
                )
            raise Unauthorized(f"Incorrect API key provided: {redact(token)}.")
        if not is_loopback(client_host):
            raise Unauthorized(
                "No API key exists yet, so this server only answers loopback clients. Create a key with "
                "`gouache keys create` and send it as 'Authorization: Bearer <key>'."
            )
        return ANONYMOUS
