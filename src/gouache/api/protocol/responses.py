"""Wire types of OpenAI's Responses API with the `image_generation` tool: the request and its tool (validated
strictly), and the answer: the response object, its output items (`image_generation_call`, the assistant's
`message`), and the stored input items. Fields are declared in the order OpenAI sends them, which is the
order clients see in the JSON."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from gouache.api.protocol.common import (
    DEADLINE_DOC,
    Background,
    OutputFormat,
    Quality,
    StrictModel,
    SvgOptions,
)


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
