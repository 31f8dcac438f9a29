"""`/v1/images/*`: OpenAI's Images API over the image service."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ValidationError

from gouache.api.access import current_caller
from gouache.api.deps import services
from gouache.api.disconnect import unless_disconnected
from gouache.api.errors import validation_error
from gouache.api.forms import ParsedForm, read_form
from gouache.api.protocol.common import STREAMING_RESPONSES
from gouache.api.protocol.images import (
    IMAGE_FILE_RESPONSES,
    ImageData,
    ImageEditForm,
    ImageEditJson,
    ImageGenerateRequest,
    ImagesResponse,
    ImageVariationForm,
    SvgUsage,
)
from gouache.api.sse import event_stream, image_events
from gouache.service.access import Caller
from gouache.service.container import Services
from gouache.service.errors import InvalidRequest, NotFound, UnsupportedParameter
from gouache.service.images import EditParams, GenerateParams, GenerateResult, PreparedRequest
from gouache.service.policies.pricing import format_usd

router = APIRouter(prefix="/v1/images", tags=["images"])

_MEDIA_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp", "gif": "image/gif"}
_MEDIA_TYPES["svg"] = "image/svg+xml"
_GENERATION_FIELDS = {
    "prompt", "model", "n", "size", "quality", "output_format", "output_compression", "background",
    "moderation", "user", "safety_identifier", "seed", "negative_prompt", "steps", "guidance_scale",
    "deadline_s", "cache", "loras", "frame_count", "frame_duration_ms", "svg",
}  # fmt: skip
_EDIT_FIELDS = (_GENERATION_FIELDS - {"moderation"}) | {"strength", "input_fidelity"}


#: Route options of the multipart endpoints: OpenAI's response and error shapes, a form body in the schema.
_MULTIPART_ROUTE: dict[str, Any] = {
    "response_model": ImagesResponse,
    "response_model_exclude_none": True,
    "responses": STREAMING_RESPONSES,
    "openapi_extra": {
        "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {"type": "object"}}}}
    },
}
#: The edits endpoint also takes OpenAI's JSON body (image references instead of uploads).
_EDIT_ROUTE: dict[str, Any] = {
    **_MULTIPART_ROUTE,
    "openapi_extra": {
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {"schema": {"type": "object"}},
                "application/json": {"schema": {"type": "object"}},
            },
        }
    },
}


def _max_upload_bytes(svc: Services) -> int:
    return int(svc.settings.max_upload_mb * 2**20)


def _not_yet(param: str, what: str) -> UnsupportedParameter:
    return UnsupportedParameter(f"{what} is not supported by Gouache yet.", param=param)


def reject_unsupported(body: ImageGenerateRequest | ImageEditForm | ImageEditJson) -> None:
    """Parameters the current SDK can send that we do not serve (yet), and what GIF and SVG outputs cannot
    stream: a clear 400 each, never silence."""
    if body.output_format in ("gif", "svg"):
        for name in ("stream", "partial_images"):
            if getattr(body, name):
                raise InvalidRequest(
                    f"{name} cannot be used with output_format '{body.output_format}'.",
                    param=name,
                    code="unsupported_parameter",
                )
    if body.complexity is not None:
        raise _not_yet("complexity", "complexity (planning compute)")
    if getattr(body, "style", None) is not None:
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


def _reject_unknown_files(form: ParsedForm, allowed: set[str]) -> None:
    unknown = sorted(set(form.files) - allowed)
    if unknown:
        raise InvalidRequest(
            f"Unknown parameter: '{unknown[0]}'.", param=unknown[0], code="unknown_parameter"
        )


def validate_body(schema: type[BaseModel], fields: dict[str, Any]) -> Any:
    """A parsed body or form as `schema`, or a 400 naming the first bad field (batch lines use it too)."""
    try:
        return schema.model_validate(fields)
    except ValidationError as exc:
        message, param, code = validation_error(dict(exc.errors()[0]))
        raise InvalidRequest(message, param=param, code=code) from exc


def _json_field(value: Any, name: str) -> Any:
    """A multipart field that carries JSON (an extension's list or object) as a string."""
    if not isinstance(value, str):
        raise InvalidRequest(f"'{name}' must be a JSON string in a multipart form.", param=name)
    try:
        return json.loads(value)
    except ValueError as exc:
        raise InvalidRequest(f"'{name}' is not valid JSON: {exc}.", param=name) from exc


def signed_file_url(request: Request, image_id: str, expires: int, signature: str) -> str:
    """The absolute `/v1/images/files/{id}` link for a signature from the link signer."""
    url = str(request.url_for("get_image_file", image_id=image_id))
    return f"{url}?expires={expires}&signature={signature}"


def to_response(
    result: GenerateResult, response_format: str | None, request: Request | None, svc: Services
) -> ImagesResponse:
    """OpenAI's response body (`request` is needed only for `url` links)."""
    data = []
    for img in result.images:
        if response_format == "url" and request is not None:
            url = signed_file_url(request, img.image_id, *svc.links.sign(img.image_id))
            data.append(ImageData(url=url, seed=img.seed, revised_prompt=img.revised_prompt))
        else:
            b64 = base64.b64encode(img.data).decode("ascii")
            data.append(ImageData(b64_json=b64, seed=img.seed, revised_prompt=img.revised_prompt))
    return ImagesResponse.model_validate(
        {
            "created": result.created,
            "data": data,
            "background": result.background,
            "output_format": result.output_format,
            "quality": result.quality,
            "size": result.size,
            "usage": result.usage,
            "safety_identifier": result.safety_identifier,
            "svg_usage": svg_usage(result),
        }
    )


def svg_usage(result: GenerateResult) -> dict[str, Any] | None:
    """OpenAI's `svg_usage` for an SVG: Gouache traces the raster (no authoring model, no tokens)."""
    return SvgUsage.traced().model_dump() if result.output_format == "svg" else None


#: The hosted-equivalent price of the request in dollars (a decimal string), known before any compute.
COST_HEADER = "x-gouache-cost-usd"
#: Present when the request reached a budget's soft threshold: which budget and how much of it is used.
BUDGET_WARNING_HEADER = "x-gouache-budget-warning"


def _admission_headers(response: Response, prepared: PreparedRequest) -> None:
    response.headers[COST_HEADER] = format_usd(prepared.cost_usd)
    if prepared.admission.warnings:
        response.headers[BUDGET_WARNING_HEADER] = "; ".join(prepared.admission.warnings)


#: The result cache: "hit" (served from the store without compute), "miss" (rendered, now cached) or "off"
#: (no explicit seed, `"cache": false`, a streamed request, or GOUACHE_RESULT_CACHE=false).
CACHE_HEADER = "x-gouache-cache"


def _headers(response: Response, result: GenerateResult) -> None:
    response.headers[CACHE_HEADER] = result.cache
    response.headers["x-gouache-request-id"] = result.request_id
    response.headers["x-gouache-seed"] = ",".join(str(img.seed) for img in result.images)


async def _respond(
    prefix: str,
    params: GenerateParams,
    stream: bool,
    partial_images: int,
    response_format: str | None,
    request: Request,
    response: Response,
    svc: Services,
) -> Any:
    """Run a request: as server-sent events when `stream` is set, else as one `ImagesResponse`. Refusals
    (moderation, OpenAI's rules, budgets, limits, a full queue) are raised by `ImageService.prepare`."""
    caller: Caller = current_caller(request)
    prepared = await svc.images.prepare(params, previews=partial_images if stream else 0, caller=caller)
    if stream:
        streaming = event_stream(
            request, lambda stop: image_events(prefix, prepared, svc.images.stream(prepared, stop))
        )
        _admission_headers(streaming, prepared)
        streaming.headers[CACHE_HEADER] = "off"  # partial images need the denoising: never served cached
        return streaming
    result = await unless_disconnected(request, svc.images.run(prepared))
    _admission_headers(response, prepared)
    _headers(response, result)
    return to_response(result, response_format, request, svc)


@router.post(
    "/generations",
    response_model=ImagesResponse,
    response_model_exclude_none=True,
    responses=STREAMING_RESPONSES,
)
async def create_image(
    body: ImageGenerateRequest, request: Request, response: Response, svc: Services = Depends(services)
) -> ImagesResponse:
    """Text to image. `response_format=url` is an extension for code written for dall-e."""
    reject_unsupported(body)
    params = GenerateParams(**body.model_dump(exclude_none=True, include=_GENERATION_FIELDS))
    return await _respond(
        "image_generation", params, bool(body.stream), body.partial_images or 0, body.response_format,
        request, response, svc,
    )  # fmt: skip


def generation_params(body: Any) -> tuple[GenerateParams, ImageGenerateRequest]:
    """A generations JSON body (already parsed) as service parameters; a 400 naming the field if invalid.
    The Batch API's lines go through here too, so a line gets exactly what a direct request would."""
    request: ImageGenerateRequest = validate_body(ImageGenerateRequest, body)
    reject_unsupported(request)
    return GenerateParams(**request.model_dump(exclude_none=True, include=_GENERATION_FIELDS)), request


async def json_edit_params(body: Any, svc: Services, caller: Caller) -> tuple[EditParams, ImageEditJson]:
    """An edits JSON body (`images`/`mask` as references) as service parameters, the references read
    (files, data URLs, remote URLs where allowed); a 400 naming the field if anything is wrong."""
    edit: ImageEditJson = validate_body(ImageEditJson, body)
    reject_unsupported(edit)

    def resolve() -> tuple[tuple[bytes, ...], bytes | None]:
        images = tuple(
            svc.image_refs.resolve(ref.model_dump(exclude_none=True), f"images[{i}]", caller.owner)
            for i, ref in enumerate(edit.images)
        )
        mask = None
        if edit.mask is not None:
            mask = svc.image_refs.resolve(edit.mask.model_dump(exclude_none=True), "mask", caller.owner)
        return images, mask

    images, mask = await asyncio.to_thread(resolve)
    fields = edit.model_dump(exclude_none=True, include=_EDIT_FIELDS | {"moderation"})
    return EditParams(**fields, images=images, mask=mask), edit


async def _read_json(request: Request) -> Any:
    try:
        return await request.json()
    except ValueError as exc:
        raise InvalidRequest(
            f"We could not parse the JSON body of your request. The API expects a JSON payload ({exc}).",
            code="invalid_json",
        ) from exc


@router.post("/edits", **_EDIT_ROUTE)
async def edit_image(
    request: Request, response: Response, svc: Services = Depends(services)
) -> ImagesResponse:
    """Inpainting (mask), outpainting (transparent areas), image-to-image and several reference images:
    multipart uploads, or JSON with `images` (and `mask`) as `file_id` / `image_url` references."""
    if request.headers.get("content-type", "").split(";")[0].strip().lower() == "application/json":
        params, edit = await json_edit_params(await _read_json(request), svc, current_caller(request))
        return await _respond(
            "image_edit", params, bool(edit.stream), edit.partial_images or 0, edit.response_format,
            request, response, svc,
        )  # fmt: skip
    form = await read_form(request, _max_upload_bytes(svc))
    for name in ("image", "mask", "markup"):
        if name in form.fields:
            raise InvalidRequest(f"'{name}' must be sent as a file.", param=name, code="invalid_type")
    _reject_unknown_files(form, {"image", "mask", "markup"})
    if "loras" in form.fields:
        form.fields["loras"] = _json_field(form.fields["loras"], "loras")
    body: ImageEditForm = validate_body(ImageEditForm, form.fields)
    reject_unsupported(body)
    masks = form.files.get("mask", [])
    if len(masks) > 1:
        raise InvalidRequest("Only one mask can be given.", param="mask")
    markups = form.files.get("markup", [])
    if len(markups) > 1:
        raise InvalidRequest("Only one markup can be given.", param="markup")
    params = EditParams(
        **body.model_dump(exclude_none=True, include=_EDIT_FIELDS),
        images=tuple(form.files.get("image", [])),
        mask=masks[0] if masks else None,
        markup=markups[0] if markups else None,
    )
    return await _respond(
        "image_edit", params, bool(body.stream), body.partial_images or 0, body.response_format,
        request, response, svc,
    )  # fmt: skip


@router.post("/variations", **_MULTIPART_ROUTE)
async def create_variation(
    request: Request, response: Response, svc: Services = Depends(services)
) -> ImagesResponse:
    """Variations of one image (OpenAI retired this dall-e-2 endpoint; Gouache serves it on any model)."""
    form = await read_form(request, _max_upload_bytes(svc))
    _reject_unknown_files(form, {"image"})
    body: ImageVariationForm = validate_body(ImageVariationForm, form.fields)
    images = form.files.get("image", [])
    if len(images) > 1:
        raise InvalidRequest("Variations take exactly one image.", param="image")
    # Code written for dall-e-2 names it; it is served by the default model like the GPT image names.
    model = body.model if body.model not in (None, "dall-e-2") else "gpt-image-2"
    params = EditParams(
        prompt="",
        model=model or "gpt-image-2",
        n=body.n or 1,
        size=body.size or "1024x1024",
        user=body.user,
        seed=body.seed,
        steps=body.steps,
        strength=body.strength,
        deadline_s=body.deadline_s,
        cache=body.cache,
        images=tuple(images),
        variation=True,
    )
    return await _respond(
        "image_edit", params, False, 0, body.response_format or "url", request, response, svc
    )


@router.get("/files/{image_id}", name="get_image_file", responses=IMAGE_FILE_RESPONSES)
async def get_image_file(
    image_id: str,
    expires: int = 0,
    signature: str = "",
    svc: Services = Depends(services),
    caller: Caller = Depends(current_caller),
) -> Response:
    """An image behind a `response_format=url` link; unknown, forged or expired links, and images of
    another key, are 404."""
    if not signature or not svc.links.verify(image_id, expires, signature):
        raise NotFound(f"No image at this URL (unknown or expired link to '{image_id}').", param=None)
    image = svc.store.get_image(image_id, caller.owner)
    if image is None:
        raise NotFound(f"No image '{image_id}'.")
    data = svc.store.read_image_bytes(image_id, caller.owner)
    return Response(data, media_type=_MEDIA_TYPES.get(image.format, "application/octet-stream"))
