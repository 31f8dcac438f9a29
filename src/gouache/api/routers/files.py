"""`/v1/files`: OpenAI's Files API over the file service (batch input and output files, images to reference
in JSON edits)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Depends, Query, Request, Response
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException

from gouache.api.access import current_caller
from gouache.api.deps import services
from gouache.api.pagination import list_query
from gouache.api.protocol.common import ERROR_RESPONSES
from gouache.api.protocol.files import FileDeleted, FileList, FileObject
from gouache.service.access import Caller
from gouache.service.container import Services
from gouache.service.errors import InvalidRequest
from gouache.service.files import Upload
from gouache.service.pages import ListQuery

router = APIRouter(prefix="/v1/files", tags=["files"], responses=ERROR_RESPONSES)

_UPLOAD_FIELDS = {"purpose", "expires_after[anchor]", "expires_after[seconds]"}
_CONTENT_RESPONSES = {
    **ERROR_RESPONSES,
    200: {
        "description": "The file's bytes",
        "content": {"application/octet-stream": {}, "application/jsonl": {}},
    },
}


async def _read_upload(request: Request, max_bytes: int) -> Upload:
    """The multipart body the SDK sends: `file`, `purpose`, `expires_after[anchor|seconds]`."""
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise InvalidRequest(
            "This endpoint takes multipart/form-data, with the file in 'file'.",
            param="file",
            code="invalid_content_type",
        )
    try:
        form = await request.form(max_files=1, max_fields=8)
    except (MultiPartException, HTTPException) as exc:
        detail = getattr(exc, "message", None) or getattr(exc, "detail", exc)
        raise InvalidRequest(
            f"Could not read the multipart body: {detail}", code="invalid_multipart"
        ) from exc
    try:
        fields: dict[str, str] = {}
        upload: UploadFile | None = None
        for key, value in form.multi_items():
            if isinstance(value, UploadFile):
                if key != "file":
                    raise InvalidRequest(f"Unknown parameter: '{key}'.", param=key, code="unknown_parameter")
                upload = value
            elif key not in _UPLOAD_FIELDS:
                raise InvalidRequest(f"Unknown parameter: '{key}'.", param=key, code="unknown_parameter")
            else:
                fields[key] = value
        if upload is None:
            raise InvalidRequest(
                "Missing required parameter: 'file'.", param="file", code="missing_required_parameter"
            )
        if "purpose" not in fields:
            raise InvalidRequest(
                "Missing required parameter: 'purpose'.", param="purpose", code="missing_required_parameter"
            )
        data = await upload.read(max_bytes + 1)
        filename = upload.filename or "upload"
    finally:
        await form.close()
    return Upload(data, filename, fields["purpose"], _expires_after(fields))


def _expires_after(fields: dict[str, str]) -> int | None:
    anchor, seconds = fields.get("expires_after[anchor]"), fields.get("expires_after[seconds]")
    if anchor is None and seconds is None:
        return None
    if anchor != "created_at":
        raise InvalidRequest(
            f"Invalid value: '{anchor}'. Supported values are: 'created_at'.", param="expires_after.anchor"
        )
    try:
        return int(seconds or "")
    except ValueError:
        raise InvalidRequest(
            f"Invalid type for 'expires_after.seconds': expected an integer, but got '{seconds}'.",
            param="expires_after.seconds",
            code="invalid_type",
        ) from None


@router.post(
    "",
    response_model=FileObject,
    openapi_extra={
        "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {"type": "object"}}}}
    },
)
async def create_file(request: Request, svc: Services = Depends(services)) -> FileObject:
    """Upload a file: `batch` input (JSONL), or `vision` / `user_data` images to reference by `file_id`."""
    upload = await _read_upload(request, svc.files.max_file_bytes)
    file = await asyncio.to_thread(svc.files.upload, upload, current_caller(request))
    return FileObject.of(file)


@router.get("", response_model=FileList)
async def list_files(
    purpose: str | None = Query(default=None, max_length=64),
    query: ListQuery = Depends(list_query(default_limit=10_000, max_limit=10_000)),
    svc: Services = Depends(services),
    caller: Caller = Depends(current_caller),
) -> FileList:
    files, more = await asyncio.to_thread(svc.files.list, caller, query, purpose)
    return FileList.of([FileObject.of(f) for f in files], more)


@router.get("/{file_id}", response_model=FileObject)
async def retrieve_file(
    file_id: str, svc: Services = Depends(services), caller: Caller = Depends(current_caller)
) -> FileObject:
    return FileObject.of(await asyncio.to_thread(svc.files.get, file_id, caller))


@router.get("/{file_id}/content", responses=_CONTENT_RESPONSES)
async def file_content(
    file_id: str, svc: Services = Depends(services), caller: Caller = Depends(current_caller)
) -> Response:
    file, data = await asyncio.to_thread(svc.files.content, file_id, caller)
    media = "application/jsonl" if file.filename.endswith(".jsonl") else "application/octet-stream"
    return Response(data, media_type=media)


@router.delete("/{file_id}", response_model=FileDeleted)
async def delete_file(
    file_id: str, svc: Services = Depends(services), caller: Caller = Depends(current_caller)
) -> FileDeleted:
    await asyncio.to_thread(svc.files.delete, file_id, caller)
    return FileDeleted(id=file_id)
