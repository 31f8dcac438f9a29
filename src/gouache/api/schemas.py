"""Wire types mirroring OpenAI's Images API (openai 3.57). Validation is strict, as OpenAI's is: wrong types,
unknown parameters and out-of-range values are rejected, never coerced or ignored."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Quality = Literal["low", "medium", "high", "auto", "xhigh", "max", "standard", "hd"]
OutputFormat = Literal["png", "jpeg", "webp", "gif", "svg"]
Background = Literal["transparent", "opaque", "auto"]


DEADLINE_DOC = (
    "Extension: seconds the request may take, queue included (at most the server's "
    "GOUACHE_REQUEST_TIMEOUT_S); then it stops with 408 deadline_exceeded."
)
CACHE_DOC = (
    "Extension: false renders even when an identical request with the same explicit seed was served before "
    "(the x-gouache-cache response header says hit, miss or off)."
)


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class SvgReasoning(StrictModel):
    effort: Literal["none", "minimal", "low", "medium", "high", "xhigh", "max"] | None = None


class SvgOptions(StrictModel):
    model: str | None = None
    reasoning: SvgReasoning | None = None


class ImageFields(BaseModel):
    """Fields shared by generations and edits. Extension fields (`seed`, `negative_prompt`, `steps`,
    `guidance_scale`) are optional; a plain OpenAI request never needs them."""

    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(min_length=1, max_length=32000)
    model: str | None = None
    n: int | None = Field(default=None, ge=1, le=10)
    size: str | None = None
    quality: Quality | None = None
    output_format: OutputFormat | None = None
    output_compression: int | None = Field(default=None, ge=0, le=100)
    background: Background | None = None
    response_format: Literal["url", "b64_json"] | None = None
    user: str | None = None
    safety_identifier: str | None = None
    stream: bool | None = None
    partial_images: int | None = Field(default=None, ge=0, le=3)
    complexity: Literal["low", "medium", "high"] | None = None
    frame_count: int | None = Field(default=None, ge=2, le=16)
    frame_duration_ms: int | None = Field(default=None, ge=10, le=655_350)
    svg: SvgOptions | None = None
    # Gouache extensions
    seed: int | None = Field(default=None, ge=0, le=2**63 - 1, description="Extension: reproducible seed.")
    negative_prompt: str | None = Field(default=None, max_length=32000, description="Extension.")
    steps: int | None = Field(default=None, ge=1, le=150, description="Extension: denoising steps.")
    guidance_scale: float | None = Field(default=None, ge=0.0, le=30.0, description="Extension: CFG scale.")
    deadline_s: float | None = Field(default=None, gt=0, le=86_400, description=DEADLINE_DOC)
    cache: bool | None = Field(default=None, description=CACHE_DOC)


class ImageGenerateRequest(ImageFields):
    """`POST /v1/images/generations` (JSON, validated strictly: no type coercion)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    moderation: Literal["low", "auto"] | None = None
    style: Literal["vivid", "natural"] | None = None


class ImageEditForm(ImageFields):
    """The text fields of `POST /v1/images/edits` (multipart: values arrive as strings and are parsed, as
    OpenAI does; the files are read separately)."""

    input_fidelity: Literal["high", "low"] | None = None
    strength: float | None = Field(default=None, gt=0.0, le=1.0, description="Extension: how far to move.")


class ImageVariationForm(BaseModel):
    """The text fields of `POST /v1/images/variations` (the legacy dall-e-2 endpoint, served on any model)."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = None
    n: int | None = Field(default=None, ge=1, le=10)
    size: Literal["256x256", "512x512", "1024x1024"] | None = None
    response_format: Literal["url", "b64_json"] | None = None
    user: str | None = None
    seed: int | None = Field(default=None, ge=0, le=2**63 - 1)
    steps: int | None = Field(default=None, ge=1, le=150)
    strength: float | None = Field(default=None, gt=0.0, le=1.0)
    deadline_s: float | None = Field(default=None, gt=0, le=86_400, description=DEADLINE_DOC)
    cache: bool | None = Field(default=None, description=CACHE_DOC)


class ImageData(BaseModel):
    b64_json: str | None = None
    url: str | None = None
    revised_prompt: str | None = None
    seed: int | None = Field(default=None, description="Extension: the seed that reproduces this image.")


class InputTokensDetails(BaseModel):
    text_tokens: int
    image_tokens: int


class OutputTokensDetails(BaseModel):
    image_tokens: int
    text_tokens: int


class ImagesUsage(BaseModel):
    input_tokens: int
    input_tokens_details: InputTokensDetails
    output_tokens: int
    total_tokens: int
    output_tokens_details: OutputTokensDetails | None = None


class ImagesResponse(BaseModel):
    created: int
    data: list[ImageData]
    background: Literal["transparent", "opaque"] | None = None
    output_format: str | None = None
    quality: str | None = None
    size: str | None = None
    usage: ImagesUsage | None = None
    safety_identifier: str | None = None


class ErrorObject(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorObject


class Model(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "gouache"
    root: str | None = Field(default=None, description="Extension: the catalog model serving this name.")
    family: str | None = Field(default=None, description="Extension: diffusers model family.")
    qualities: list[str] | None = Field(default=None, description="Extension: quality tiers it serves.")


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[Model]


def _error(description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {"model": ErrorResponse, "description": description}
    if headers:
        entry["headers"] = headers
    return entry


_RETRY_AFTER = {
    "retry-after": {"description": "Seconds to wait before retrying.", "schema": {"type": "integer"}},
    "retry-after-ms": {"description": "The same in milliseconds.", "schema": {"type": "integer"}},
}

#: Every error an endpoint may answer, in OpenAI's shape (declared so that clients and fuzzers know them).
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _error("Invalid request: the message names the parameter"),
    404: _error("Unknown model, object or URL"),
    405: _error("Method not allowed"),
    408: _error("The request's deadline passed (deadline_s or GOUACHE_REQUEST_TIMEOUT_S)"),
    413: _error("Request body larger than GOUACHE_MAX_BODY_MB"),
    429: _error("The engine's queue is full; retry after `retry-after` seconds", _RETRY_AFTER),
    500: _error("Engine failure (no fallback model could serve the request)"),
    503: _error("Shutting down"),
}

#: One server-sent event: `event:` is the JSON's `type`, `data:` one line of JSON.
SSE_EVENT: dict[str, Any] = {
    "type": "object",
    "properties": {"event": {"type": "string"}, "data": {"type": "string"}},
    "required": ["event", "data"],
}

#: Endpoints that stream server-sent events when `stream` is true.
STREAMING_RESPONSES: dict[int | str, dict[str, Any]] = {
    **ERROR_RESPONSES,
    200: {
        "description": "The result, or with `stream: true` server-sent events",
        "content": {"text/event-stream": {"schema": SSE_EVENT}},
    },
}

IMAGE_FILE_RESPONSES: dict[int | str, dict[str, Any]] = {
    **ERROR_RESPONSES,
    200: {
        "description": "The image bytes",
        "content": {
            f"image/{fmt}": {"schema": {"type": "string", "format": "binary"}}
            for fmt in ("png", "jpeg", "webp")
        },
    },
}


class InputImageMask(StrictModel):
    file_id: str | None = None
    image_url: str | None = None


class ImageGenerationTool(StrictModel):
    """The `image_generation` tool of the Responses API, with OpenAI's options."""

    type: Literal["image_generation"]
    action: Literal["generate", "edit", "auto"] | None = None
    model: str | None = None
    size: str | None = None
    quality: Quality | None = None
    background: Background | None = None
    output_format: OutputFormat | None = None
    output_compression: int | None = Field(default=None, ge=0, le=100)
    moderation: Literal["low", "auto"] | None = None
    partial_images: int | None = Field(default=None, ge=0, le=3)
    input_fidelity: Literal["high", "low"] | None = None
    input_image_mask: InputImageMask | None = None
    complexity: Literal["low", "medium", "high"] | None = None
    frame_count: int | None = Field(default=None, ge=2, le=16)
    frame_duration_ms: int | None = Field(default=None, ge=10, le=655_350)
    svg: SvgOptions | None = None
    n: int | None = Field(default=None, ge=1, le=1)
    # Gouache extensions
    seed: int | None = Field(default=None, ge=0, le=2**63 - 1)
    steps: int | None = Field(default=None, ge=1, le=150)


class ResponseCreateRequest(StrictModel):
    """`POST /v1/responses`. Sampling options of the text model are accepted and recorded: the rule-based
    turn planner that stands in for the text model has nothing to sample."""

    model: str = Field(min_length=1)
    input: str | list[dict[str, Any]] | None = None
    instructions: str | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    previous_response_id: str | None = None
    store: bool | None = None
    stream: bool | None = None
    metadata: dict[str, str] | None = None
    user: str | None = None
    safety_identifier: str | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    max_output_tokens: int | None = Field(default=None, ge=1)
    parallel_tool_calls: bool | None = None
    reasoning: dict[str, Any] | None = None
    text: dict[str, Any] | None = None
    truncation: Literal["auto", "disabled"] | None = None
    include: list[str] | None = None
    service_tier: str | None = None
    prompt_cache_key: str | None = None
    stream_options: dict[str, Any] | None = None
    image: dict[str, Any] | None = None
    deadline_s: float | None = Field(default=None, gt=0, le=86_400, description=DEADLINE_DOC)
