"""`/v1/responses`: the Responses API with the `image_generation` tool. Validates the tool, hands the turn to
the Responses service, and shapes what comes back as OpenAI's JSON (`api/protocol/responses.py`) or SSE
(`api/sse.py`)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import ValidationError

from gouache.api.access import current_caller
from gouache.api.deps import services
from gouache.api.disconnect import unless_disconnected
from gouache.api.errors import validation_error
from gouache.api.protocol.common import ERROR_RESPONSES, STREAMING_RESPONSES
from gouache.api.protocol.responses import (
    ImageGenerationTool,
    InputItemList,
    ResponseCreateRequest,
    ResponseDeleted,
    ResponseObject,
)
from gouache.api.sse import event_stream, response_events
from gouache.service.access import Caller
from gouache.service.container import Services
from gouache.service.errors import InvalidRequest, UnsupportedParameter

router = APIRouter(prefix="/v1/responses", tags=["responses"])

_UNSUPPORTED_TOOL_OPTIONS = {"complexity": "complexity (planning compute)"}


def image_tool(body: ResponseCreateRequest) -> dict[str, Any]:
    """The request's image_generation tool, validated; other tool types are refused, not ignored."""
    tools = body.tools or []
    if not tools:
        raise InvalidRequest(
            "Gouache answers with images: add the tool {'type': 'image_generation'} to 'tools'.",
            param="tools",
        )
    found: dict[str, Any] | None = None
    for i, raw in enumerate(tools):
        kind = raw.get("type")
        if kind != "image_generation":
            raise InvalidRequest(
                f"Tool type '{kind}' is not supported by Gouache; only 'image_generation' is served.",
                param=f"tools[{i}].type",
                code="unsupported_tool",
            )
        try:
            tool = ImageGenerationTool.model_validate(raw)
        except ValidationError as exc:
            message, param, code = validation_error(dict(exc.errors()[0]))
            where = f"tools[{i}].{param}" if param else f"tools[{i}]"
            raise InvalidRequest(message.replace(f"'{param}'", f"'{where}'"), param=where, code=code) from exc
        for option, what in _UNSUPPORTED_TOOL_OPTIONS.items():
            if getattr(tool, option) is not None:
                raise UnsupportedParameter(
                    f"{what} is not supported by Gouache yet.", param=f"tools[{i}].{option}"
                )
        if tool.output_format in ("gif", "svg"):
            # OpenAI's rule: a GIF or an SVG has no partial images and no mask (lifecycle events stream).
            for option in ("partial_images", "input_image_mask"):
                if getattr(tool, option):
                    raise InvalidRequest(
                        f"{option} cannot be used with output_format '{tool.output_format}'.",
                        param=f"tools[{i}].{option}",
                        code="unsupported_parameter",
                    )
        if found is not None:
            raise InvalidRequest("Only one image_generation tool can be given.", param=f"tools[{i}]")
        found = tool.model_dump(exclude_none=True)
    choice = body.tool_choice
    if isinstance(choice, dict) and choice.get("type") not in ("image_generation", None):
        raise InvalidRequest(
            f"Tool choice '{choice.get('type')}' not found in 'tools' parameter.", param="tool_choice"
        )
    if isinstance(choice, str) and choice not in ("auto", "none", "required"):
        raise InvalidRequest(
            f"Invalid value: '{choice}'. Supported values are: 'auto', 'none', 'required'.",
            param="tool_choice",
        )
    assert found is not None
    return found


@router.post("", responses=STREAMING_RESPONSES)
async def create_response(
    body: ResponseCreateRequest,
    request: Request,
    svc: Services = Depends(services),
    caller: Caller = Depends(current_caller),
) -> Any:
    tool = image_tool(body)
    turn = await svc.responses.start(body.model_dump(exclude_none=True), tool, caller)
    if body.stream:
        return event_stream(request, lambda stop: response_events(svc.responses.stream(turn, stop)))
    return ResponseObject.of(await unless_disconnected(request, svc.responses.run(turn)))


@router.get("/{response_id}", responses=ERROR_RESPONSES)
async def get_response(
    response_id: str, svc: Services = Depends(services), caller: Caller = Depends(current_caller)
) -> Any:
    return ResponseObject.of(await svc.responses.get(response_id, caller.owner))


@router.delete("/{response_id}", responses=ERROR_RESPONSES)
async def delete_response(
    response_id: str, svc: Services = Depends(services), caller: Caller = Depends(current_caller)
) -> Any:
    await svc.responses.delete(response_id, caller.owner)
    return ResponseDeleted(id=response_id)


@router.get("/{response_id}/input_items", responses=ERROR_RESPONSES)
async def list_input_items(
    response_id: str,
    order: str = "desc",
    svc: Services = Depends(services),
    caller: Caller = Depends(current_caller),
) -> Any:
    if order not in ("asc", "desc"):
        raise InvalidRequest(f"Invalid value: '{order}'. Supported values are: 'asc', 'desc'.", param="order")
    return InputItemList.of(await svc.responses.input_items(response_id, caller.owner, order))
