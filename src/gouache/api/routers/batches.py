"""`/v1/batches`: OpenAI's Batch API over the batch service (the runner does the work in the background)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Depends

from gouache.api.access import current_caller
from gouache.api.deps import services
from gouache.api.pagination import list_query
from gouache.api.protocol.batches import BatchCreateRequest, BatchList, BatchObject
from gouache.api.protocol.common import ERROR_RESPONSES, ErrorResponse
from gouache.service.access import Caller
from gouache.service.container import Services
from gouache.service.pages import ListQuery

#: Batch operations may also answer 409: cancelling a batch that has already ended.
_RESPONSES = {**ERROR_RESPONSES, 409: {"model": ErrorResponse, "description": "The batch has already ended"}}
router = APIRouter(prefix="/v1/batches", tags=["batches"], responses=_RESPONSES)


@router.post("", response_model=BatchObject)
async def create_batch(
    body: BatchCreateRequest, svc: Services = Depends(services), caller: Caller = Depends(current_caller)
) -> BatchObject:
    """A batch of Images API requests from an uploaded JSONL file (`purpose="batch"`)."""
    expires = body.output_expires_after
    batch = await asyncio.to_thread(
        lambda: svc.batches.create(
            caller,
            input_file_id=body.input_file_id,
            endpoint=body.endpoint,
            completion_window=body.completion_window,
            metadata=body.metadata,
            output_expires_s=None if expires is None else expires.seconds,
        )
    )
    return BatchObject.of(batch)


@router.get("", response_model=BatchList)
async def list_batches(
    query: ListQuery = Depends(list_query(default_limit=20, max_limit=100)),
    svc: Services = Depends(services),
    caller: Caller = Depends(current_caller),
) -> BatchList:
    batches, more = await asyncio.to_thread(svc.batches.list, caller, query)
    return BatchList.of([BatchObject.of(b) for b in batches], more)


@router.get("/{batch_id}", response_model=BatchObject)
async def retrieve_batch(
    batch_id: str, svc: Services = Depends(services), caller: Caller = Depends(current_caller)
) -> BatchObject:
    return BatchObject.of(await asyncio.to_thread(svc.batches.get, batch_id, caller))


@router.post("/{batch_id}/cancel", response_model=BatchObject)
async def cancel_batch(
    batch_id: str, svc: Services = Depends(services), caller: Caller = Depends(current_caller)
) -> BatchObject:
    """Stop a batch: `cancelling` at once, `cancelled` with its partial output within one job."""
    return BatchObject.of(await asyncio.to_thread(svc.batches.cancel, batch_id, caller))
