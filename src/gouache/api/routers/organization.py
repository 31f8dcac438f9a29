"""`/v1/organization/usage/images` and `/v1/organization/costs` in OpenAI's shapes (pages of time buckets
with results, `group_by`), over the usage ledger. A key sees its own usage; admin keys and the open server
see everyone's."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from gouache.api.access import current_caller
from gouache.api.deps import services
from gouache.api.protocol.common import ERROR_RESPONSES
from gouache.service.access import Caller
from gouache.service.container import Services
from gouache.service.errors import InvalidRequest
from gouache.service.ledger import BUCKET_SECONDS, PageQuery, costs_page, usage_images_page

router = APIRouter(prefix="/v1/organization", tags=["organization"])


def _list(request: Request, name: str) -> tuple[str, ...]:
    """An array query parameter, as `name=a&name=b`, `name[]=a` or `name=a,b`."""
    values = request.query_params.getlist(name) + request.query_params.getlist(f"{name}[]")
    return tuple(v for value in values for v in value.split(",") if v)


def _int(request: Request, name: str, required: bool = False) -> int | None:
    raw = request.query_params.get(name)
    if raw is None:
        if required:
            raise InvalidRequest(
                f"Missing required parameter: '{name}'.", param=name, code="missing_required_parameter"
            )
        return None
    try:
        return int(raw)
    except ValueError as exc:
        raise InvalidRequest(
            f"Invalid type for '{name}': expected an integer, but got '{raw}'.",
            param=name,
            code="invalid_type",
        ) from exc


def _query(request: Request) -> PageQuery:
    width = request.query_params.get("bucket_width", "1d")
    if width not in BUCKET_SECONDS:
        raise InvalidRequest(
            f"Invalid value: '{width}'. Supported values are: 1m, 1h, 1d.", param="bucket_width"
        )
    start = _int(request, "start_time", required=True)
    assert start is not None
    return PageQuery(
        start_time=start,
        end_time=_int(request, "end_time"),
        bucket_width=width,
        limit=_int(request, "limit"),
        page=request.query_params.get("page"),
        group_by=_list(request, "group_by"),
    )


@router.get("/usage/images", responses=ERROR_RESPONSES)
async def usage_images(
    request: Request, svc: Services = Depends(services), caller: Caller = Depends(current_caller)
) -> dict[str, Any]:
    return usage_images_page(
        svc.store,
        _query(request),
        caller.owner,
        sources=_list(request, "sources"),
        sizes=_list(request, "sizes"),
        api_key_ids=_list(request, "api_key_ids"),
        models=_list(request, "models"),
    )


@router.get("/costs", responses=ERROR_RESPONSES)
async def costs(
    request: Request, svc: Services = Depends(services), caller: Caller = Depends(current_caller)
) -> dict[str, Any]:
    return costs_page(svc.store, _query(request), caller.owner)
