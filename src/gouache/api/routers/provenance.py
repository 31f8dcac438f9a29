"""`POST /v1/content_provenance_checks`: OpenAI's provenance check (multipart `file`, as the SDK sends it)."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends, Request

from gouache.api.deps import services
from gouache.api.forms import read_form
from gouache.api.protocol.common import ERROR_RESPONSES
from gouache.service import provenance
from gouache.service.container import Services
from gouache.service.errors import InvalidRequest

router = APIRouter(prefix="/v1", tags=["provenance"])


@router.post(
    "/content_provenance_checks",
    responses=ERROR_RESPONSES,
    openapi_extra={
        "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {"type": "object"}}}}
    },
)
async def create_content_provenance_check(request: Request, svc: Services = Depends(services)) -> Any:
    """Is this one of our images, unchanged? A `c2pa` result: `trusted` for a manifest this server signed,
    `valid` for another issuer's intact one, `invalid` for a changed file, `not_present` for none."""
    form = await read_form(request, int(svc.settings.max_upload_mb * 2**20))
    unknown = sorted((set(form.files) | set(form.fields)) - {"file"})
    if unknown:
        raise InvalidRequest(
            f"Unknown parameter: '{unknown[0]}'.", param=unknown[0], code="unknown_parameter"
        )
    files = form.files.get("file", [])
    if len(files) != 1:
        raise InvalidRequest(
            "Missing required parameter: 'file'." if not files else "Send exactly one file.",
            param="file",
            code="missing_required_parameter" if not files else "invalid_value",
        )
    anchor = svc.provenance.trust_anchor if svc.provenance is not None else None
    return await asyncio.to_thread(provenance.check, files[0], anchor)
