"""The history of image requests, newest first, for the playground's gallery (an extension: OpenAI has no
such endpoint). Images are handed out as signed, expiring links, like `response_format=url`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gouache.service.errors import InvalidRequest, NotFound
from gouache.service.links import LinkSigner
from gouache.store import ALL_OWNERS, Owner, RequestView, Store
from gouache.store.models import RequestStatus

MAX_PAGE = 100
#: The largest offset a page may start at (a signed 64-bit integer, what SQLite and PostgreSQL bind).
MAX_OFFSET = 2**63 - 1
#: Endpoint names as recorded, by the short kind the API filters on.
KINDS = {
    "generation": "images.generations",
    "edit": "images.edits",
    "variation": "images.variations",
}
_STATUSES = tuple(s.value for s in RequestStatus)
#: Recorded fields that are the server's own bookkeeping, not parameters a user set.
_INTERNAL = {"resolved", "input_images", "mask"}


@dataclass(frozen=True)
class HistoryImage:
    id: str
    index: int
    seed: int | None
    width: int
    height: int
    format: str
    byte_size: int
    expires: int
    signature: str


@dataclass(frozen=True)
class HistoryEntry:
    id: str
    kind: str
    status: str
    model: str
    resolved_model: str | None
    prompt: str | None
    params: dict[str, Any]
    resolved: dict[str, Any]
    input_images: int
    masked: bool
    seed: int | None
    timings: dict[str, Any]
    usage: dict[str, Any] | None
    error: dict[str, Any] | None
    created_at: datetime
    finished_at: datetime | None
    images: list[HistoryImage]


@dataclass(frozen=True)
class HistoryPage:
    entries: list[HistoryEntry]
    has_more: bool


class HistoryService:
    def __init__(self, store: Store, links: LinkSigner) -> None:
        self.store = store
        self.links = links

    def list(
        self,
        limit: int = 20,
        offset: int = 0,
        status: str | None = None,
        kind: str | None = None,
        owner: Owner = ALL_OWNERS,
    ) -> HistoryPage:
        """A page of entries, newest first. `owner` (an API key id) keeps only that key's requests."""
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidRequest(
                f"Invalid 'limit': expected a value from 1 to {MAX_PAGE}, but got {limit} instead.",
                param="limit",
            )
        if not 0 <= offset <= MAX_OFFSET:  # past a 64-bit integer no database can bind it
            raise InvalidRequest(
                f"Invalid 'offset': expected a value from 0 to {MAX_OFFSET}, got {offset}.", param="offset"
            )
        if status is not None and status not in _STATUSES:
            raise InvalidRequest(
                f"Invalid value: '{status}'. Supported values are: {', '.join(_STATUSES)}.", param="status"
            )
        if kind is not None and kind not in KINDS:
            raise InvalidRequest(
                f"Invalid value: '{kind}'. Supported values are: {', '.join(KINDS)}.", param="kind"
            )
        # Only image requests: a Responses turn's own ledger row (its text tokens) has no image of its own.
        endpoints = (KINDS[kind],) if kind else tuple(KINDS.values())
        views = self.store.list_requests(limit + 1, offset, owner=owner, status=status, endpoints=endpoints)
        return HistoryPage([self._entry(v) for v in views[:limit]], has_more=len(views) > limit)

    def delete(self, request_id: str, owner: Owner = ALL_OWNERS) -> None:
        if not self.store.delete_request(request_id, owner=owner):
            raise NotFound(f"No history entry '{request_id}'.", param="request_id")

    def _entry(self, view: RequestView) -> HistoryEntry:
        params = dict(view.params)
        images = []
        for image in view.images:
            expires, signature = self.links.sign(image.id)
            images.append(
                HistoryImage(
                    id=image.id,
                    index=image.index,
                    seed=image.seed,
                    width=image.width,
                    height=image.height,
                    format=image.format,
                    byte_size=image.byte_size,
                    expires=expires,
                    signature=signature,
                )
            )
        kind = next((k for k, endpoint in KINDS.items() if endpoint == view.endpoint), view.endpoint)
        return HistoryEntry(
            id=view.id,
            kind=kind,
            status=view.status,
            model=view.model,
            resolved_model=view.resolved_model,
            prompt=params.get("prompt"),
            params={k: v for k, v in params.items() if k not in _INTERNAL},
            resolved=dict(params.get("resolved") or {}),
            input_images=len(params.get("input_images") or []),
            masked=bool(params.get("mask")),
            seed=view.seed,
            timings=dict(view.timings or {}),
            usage=view.usage,
            error=view.error,
            created_at=view.created_at,
            finished_at=view.finished_at,
            images=images,
        )
