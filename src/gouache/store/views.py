"""Plain, immutable snapshots of database rows, safe to hand to other threads and layers.

They hold no reference to a SQLAlchemy session, so reading them never triggers a query.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gouache.store.models import TERMINAL_STATUSES, ApiKeyRecord, ImageRecord, RequestRecord, ResponseRecord


@dataclass(frozen=True, slots=True)
class ImageView:
    id: str
    request_id: str
    index: int
    blob_key: str
    format: str
    width: int
    height: int
    seed: int | None
    byte_size: int
    created_at: datetime

    @classmethod
    def from_record(cls, rec: ImageRecord) -> ImageView:
        return cls(
            id=rec.id,
            request_id=rec.request_id,
            index=rec.index,
            blob_key=rec.blob_key,
            format=rec.format,
            width=rec.width,
            height=rec.height,
            seed=rec.seed,
            byte_size=rec.byte_size,
            created_at=rec.created_at,
        )


@dataclass(frozen=True, slots=True)
class RequestView:
    id: str
    endpoint: str
    model: str
    resolved_model: str | None
    params: dict[str, Any]
    user: str | None
    status: str
    seed: int | None
    error: dict[str, Any] | None
    timings: dict[str, Any] | None
    usage: dict[str, Any] | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    images: tuple[ImageView, ...] = ()
    api_key_id: str | None = None
    size: str | None = None
    quality: str | None = None
    image_count: int = 0
    cost_usd: float = 0.0
    local_cost_usd: float = 0.0
    wall_s: float | None = None
    cpu_s: float | None = None
    queue_position: int | None = None
    fallback: dict[str, Any] | None = None

    @classmethod
    def from_record(cls, rec: RequestRecord) -> RequestView:
        """Snapshot `rec`; its `images` relationship must already be loaded (or loadable)."""
        return cls(
            id=rec.id,
            endpoint=rec.endpoint,
            model=rec.model,
            resolved_model=rec.resolved_model,
            params=rec.params,
            user=rec.user,
            status=rec.status,
            seed=rec.seed,
            error=rec.error,
            timings=rec.timings,
            usage=rec.usage,
            created_at=rec.created_at,
            started_at=rec.started_at,
            finished_at=rec.finished_at,
            images=tuple(ImageView.from_record(img) for img in rec.images),
            api_key_id=rec.api_key_id,
            size=rec.size,
            quality=rec.quality,
            image_count=rec.image_count or 0,
            cost_usd=rec.cost_usd or 0.0,
            local_cost_usd=rec.local_cost_usd or 0.0,
            wall_s=rec.wall_s,
            cpu_s=rec.cpu_s,
            queue_position=rec.queue_position,
            fallback=rec.fallback,
        )

    @property
    def finished(self) -> bool:
        """Whether the request reached a terminal status (succeeded, failed or cancelled)."""
        return self.status in TERMINAL_STATUSES


@dataclass(frozen=True, slots=True)
class ResponseView:
    id: str
    model: str
    status: str
    previous_response_id: str | None
    request: dict[str, Any]
    input_items: list[Any]
    output: list[Any]
    usage: dict[str, Any] | None
    error: dict[str, Any] | None
    user: str | None
    created_at: datetime
    finished_at: datetime | None
    api_key_id: str | None = None

    @classmethod
    def from_record(cls, rec: ResponseRecord) -> ResponseView:
        return cls(
            id=rec.id,
            model=rec.model,
            status=rec.status,
            previous_response_id=rec.previous_response_id,
            request=rec.request,
            input_items=rec.input_items,
            output=rec.output,
            usage=rec.usage,
            error=rec.error,
            user=rec.user,
            created_at=rec.created_at,
            finished_at=rec.finished_at,
            api_key_id=rec.api_key_id,
        )


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One request as the usage ledger sees it (no params, no images): what aggregates are made of."""

    id: str
    endpoint: str
    model: str
    api_key_id: str | None
    status: str
    size: str | None
    quality: str | None
    image_count: int
    usage: dict[str, Any] | None
    cost_usd: float
    local_cost_usd: float
    wall_s: float | None
    cpu_s: float | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ApiKeyView:
    id: str
    name: str
    redacted: str
    admin: bool
    budget_usd: float | None
    budget_images: int | None
    rate_limit_requests: int | None
    rate_limit_images: int | None
    created_at: datetime
    revoked_at: datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    @classmethod
    def from_record(cls, rec: ApiKeyRecord) -> ApiKeyView:
        return cls(
            id=rec.id,
            name=rec.name,
            redacted=rec.redacted,
            admin=bool(rec.admin),
            budget_usd=rec.budget_usd,
            budget_images=rec.budget_images,
            rate_limit_requests=rec.rate_limit_requests,
            rate_limit_images=rec.rate_limit_images,
            created_at=rec.created_at,
            revoked_at=rec.revoked_at,
        )
