"""Wire types mirroring OpenAI's Images API (openai 3.57). Validation is strict, as OpenAI's is: wrong types,
unknown parameters and out-of-range values are rejected, never coerced or ignored."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from gouache.api.protocol.common import (
    CACHE_DOC,
    DEADLINE_DOC,
    ERROR_RESPONSES,
    LORAS_DOC,
    Background,
    OutputFormat,
    Quality,
    SvgOptions,
)


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
    loras: list[Any] | None = Field(default=None, description=LORAS_DOC)


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


class ImageRefParam(BaseModel):
    """OpenAI's `ImageRefParam`: exactly one of an uploaded file's id or an image URL (data URLs always;
    http(s) only where GOUACHE_REMOTE_IMAGE_URLS allows)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    file_id: str | None = Field(default=None, min_length=1, max_length=64)
    image_url: str | None = Field(default=None, min_length=1)


class ImageEditJson(ImageFields):
    """`POST /v1/images/edits` as `application/json` (OpenAI's `EditImageBodyJsonParam`): image references
    instead of uploads; every other field as in multipart. Validated strictly, as JSON bodies are."""

    model_config = ConfigDict(extra="forbid", strict=True)

    images: list[ImageRefParam] = Field(min_length=1, max_length=16)
    mask: ImageRefParam | None = None
    moderation: Literal["low", "auto"] | None = None
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


class SvgUsage(BaseModel):
    input_tokens: int
    model: str
    output_tokens: int
    reasoning_tokens: int
    total_tokens: int

    @classmethod
    def traced(cls) -> SvgUsage:
        """Gouache traces the raster with vtracer: no authoring model, no tokens."""
        return cls(input_tokens=0, model="vtracer", output_tokens=0, reasoning_tokens=0, total_tokens=0)


class ImagesResponse(BaseModel):
    created: int
    data: list[ImageData]
    background: Literal["transparent", "opaque"] | None = None
    output_format: str | None = None
    quality: str | None = None
    size: str | None = None
    usage: ImagesUsage | None = None
    safety_identifier: str | None = None
    svg_usage: SvgUsage | None = None


IMAGE_FILE_RESPONSES: dict[int | str, dict[str, Any]] = {
    **ERROR_RESPONSES,
    200: {
        "description": "The image bytes",
        "content": {
            f"image/{fmt}": {"schema": {"type": "string", "format": "binary"}}
            for fmt in ("png", "jpeg", "webp", "gif", "svg+xml")
        },
    },
}
