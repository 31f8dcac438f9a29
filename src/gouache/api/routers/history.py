"""`/v1/gouache/history`: the recorded image requests, newest first, with links to their images (a Gouache
extension that the playground's gallery reads; OpenAI has no such endpoint)."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel

from gouache.api.access import current_caller
from gouache.api.deps import services
from gouache.api.protocol.common import ERROR_RESPONSES
from gouache.api.routers.images import signed_file_url
from gouache.service.access import Caller
from gouache.service.container import Services
from gouache.service.history import MAX_PAGE, HistoryEntry

router = APIRouter(prefix="/v1/gouache/history", tags=["gouache"])


class HistoryImageOut(BaseModel):
    id: str
    index: int
    url: str
    seed: int | None
    width: int
    height: int
    format: str
    byte_size: int


class HistoryEntryOut(BaseModel):
    id: str
    object: Literal["gouache.history.entry"] = "gouache.history.entry"
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
    created_at: int
    finished_at: int | None
    images: list[HistoryImageOut]


class HistoryList(BaseModel):
    object: Literal["list"] = "list"
    data: list[HistoryEntryOut]
    has_more: bool


class HistoryDeleted(BaseModel):
    id: str
    object: Literal["gouache.history.entry.deleted"] = "gouache.history.entry.deleted"
    deleted: bool


def _timestamp(value: datetime | None) -> int | None:
    return None if value is None else int(value.timestamp())


def _entry_out(entry: HistoryEntry, request: Request) -> HistoryEntryOut:
    images = []
    for image in entry.images:
        images.append(
            HistoryImageOut(
                id=image.id,
                index=image.index,
                url=signed_file_url(request, image.id, image.expires, image.signature),
                seed=image.seed,
                width=image.width,
                height=image.height,
                format=image.format,
                byte_size=image.byte_size,
            )
        )
    return HistoryEntryOut(
        id=entry.id,
        kind=entry.kind,
        status=entry.status,
        model=entry.model,
        resolved_model=entry.resolved_model,
        prompt=entry.prompt,
        params=entry.params,
        resolved=entry.resolved,
        input_images=entry.input_images,
        masked=entry.masked,
        seed=entry.seed,
        timings=entry.timings,
        usage=entry.usage,
        error=entry.error,
        created_at=_timestamp(entry.created_at) or 0,
        finished_at=_timestamp(entry.finished_at),
        images=images,
    )


@router.get("", response_model=HistoryList, responses=ERROR_RESPONSES)
async def list_history(
    request: Request,
    limit: int = Query(20, description=f"Entries per page, 1-{MAX_PAGE}."),
    offset: int = Query(0, description="Entries to skip (newest first)."),
    status: str | None = Query(None, description="Only this status: succeeded, failed, cancelled..."),
    kind: str | None = Query(None, description="Only generation, edit or variation requests."),
    svc: Services = Depends(services),
    caller: Caller = Depends(current_caller),
) -> HistoryList:
    """Recorded image requests, newest first: parameters, seed, timings, status, error and image links
    (signed, valid 60 minutes)."""
    page = await asyncio.to_thread(
        svc.history.list, limit=limit, offset=offset, status=status, kind=kind, owner=caller.owner
    )
    return HistoryList(data=[_entry_out(e, request) for e in page.entries], has_more=page.has_more)


@router.delete("/{request_id}", response_model=HistoryDeleted, responses=ERROR_RESPONSES)
async def delete_history_entry(
    request_id: str, svc: Services = Depends(services), caller: Caller = Depends(current_caller)
) -> HistoryDeleted:
    """Delete one entry: its record, its images, and uploaded or generated files nothing else uses."""
    await asyncio.to_thread(svc.history.delete, request_id, caller.owner)
    return HistoryDeleted(id=request_id, deleted=True)
