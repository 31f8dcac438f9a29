"""`/v1/images/*`: OpenAI's Images API over the image service."""

from __future__ import annotations

import base64

from fastapi import APIRouter, Depends, Response

from gouache.api.deps import services
from gouache.api.schemas import ERROR_RESPONSES, ImageData, ImageGenerateRequest, ImagesResponse
from gouache.service.container import Services
from gouache.service.errors import InvalidRequest, UnsupportedParameter
from gouache.service.images import GenerateParams, GenerateResult

router = APIRouter(prefix="/v1/images", tags=["images"])


def _not_yet(param: str, what: str) -> UnsupportedParameter:
    return UnsupportedParameter(f"{what} is not supported by Gouache yet.", param=param)


def reject_unsupported(body: ImageGenerateRequest) -> None:
    """Parameters the current SDK can send that we do not serve yet: a clear 400 each, never silence."""
    if body.stream:
        raise _not_yet("stream", "Streaming (stream=true)")
    if body.output_format in ("gif", "svg"):
        raise _not_yet("output_format", f"output_format='{body.output_format}'")
    if body.frame_count is not None:
        raise _not_yet("frame_count", "frame_count (animated GIF output)")
    if body.frame_duration_ms is not None:
        raise _not_yet("frame_duration_ms", "frame_duration_ms (animated GIF output)")
    if body.svg is not None:
        raise _not_yet("svg", "svg (SVG output)")
    if body.complexity is not None:
        raise _not_yet("complexity", "complexity (planning compute)")
    if body.response_format == "url":
        raise _not_yet("response_format", "response_format='url'")
    if body.style is not None:
        raise InvalidRequest(
            "style is a dall-e-3 parameter; GPT image models take the style in the prompt.",
            param="style",
            code="unknown_parameter",
        )
    if body.quality in ("standard", "hd"):
        raise InvalidRequest(
            f"Invalid value: '{body.quality}'. quality '{body.quality}' is for retired DALL-E models; "
            "supported values are: low, medium, high, auto.",
            param="quality",
        )


def to_params(body: ImageGenerateRequest) -> GenerateParams:
    fields = body.model_dump(
        exclude_none=True,
        include={
            "prompt",
            "model",
            "n",
            "size",
            "quality",
            "output_format",
            "output_compression",
            "background",
            "moderation",
            "user",
            "safety_identifier",
            "seed",
            "negative_prompt",
            "steps",
            "guidance_scale",
        },
    )
    return GenerateParams(**fields)


def to_response(result: GenerateResult) -> ImagesResponse:
    return ImagesResponse.model_validate(
        {
            "created": result.created,
            "data": [
                ImageData(b64_json=base64.b64encode(img.data).decode("ascii"), seed=img.seed)
                for img in result.images
            ],
            "background": result.background,
            "output_format": result.output_format,
            "quality": result.quality,
            "size": result.size,
            "usage": result.usage,
            "safety_identifier": result.safety_identifier,
        }
    )


@router.post(
    "/generations",
    response_model=ImagesResponse,
    response_model_exclude_none=True,
    responses=ERROR_RESPONSES,
)
async def create_image(
    body: ImageGenerateRequest, response: Response, svc: Services = Depends(services)
) -> ImagesResponse:
    reject_unsupported(body)
    result = await svc.images.generate(to_params(body))
    response.headers["x-gouache-request-id"] = result.request_id
    response.headers["x-gouache-seed"] = ",".join(str(img.seed) for img in result.images)
    return to_response(result)
