"""Wire types of OpenAI's Responses API with the `image_generation` tool: the request and its tool (validated
strictly), and the answer: the response object, its output items (`image_generation_call`, the assistant's
`message`), and the stored input items. Fields are declared in the order OpenAI sends them, which is the
order clients see in the JSON."""

from __future__ import annotations

import base64
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, model_serializer

from gouache.api.protocol.common import (
    DEADLINE_DOC,
    LORAS_DOC,
    Background,
    OutputFormat,
    Quality,
    StrictModel,
    SvgOptions,
)
from gouache.api.protocol.images import ImagesUsage, SvgUsage
from gouache.service.response_items import (
    AssistantMessage,
    ImageCall,
    InputItem,
    InputMessage,
    TextPart,
    TextUsage,
    TurnSnapshot,
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
    loras: list[Any] | None = Field(default=None, description=LORAS_DOC)


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


# --- the answer --------------------------------------------------------------------------------------------


class ResponseError(BaseModel):
    """OpenAI's error object; extra fields (a moderation refusal's details) follow the four it always has."""

    model_config = ConfigDict(extra="allow")

    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ImageGenerationCall(BaseModel):
    """The `image_generation_call` output item. `image_id` and `seed` (extensions) appear once the image is
    rendered, `error` only on a failed call."""

    id: str
    type: Literal["image_generation_call"] = "image_generation_call"
    status: str
    result: str | None = Field(default=None, description="The image, base64-encoded.")
    action: str
    revised_prompt: str
    size: str
    quality: str
    background: str
    output_format: str
    image_id: str | None = None
    seed: int | None = None
    error: ResponseError | None = None
    svg_usage: SvgUsage | None = None

    @model_serializer(mode="wrap")
    def _omit_absent(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        if self.image_id is None:
            del data["image_id"], data["seed"]
        if self.error is None:
            del data["error"]
        if self.svg_usage is None:
            del data["svg_usage"]
        return data

    @classmethod
    def of(cls, call: ImageCall) -> ImageGenerationCall:
        return cls(
            id=call.id,
            status=call.status,
            result=None if call.image is None else base64.b64encode(call.image).decode("ascii"),
            action=call.action,
            revised_prompt=call.revised_prompt,
            size=call.size,
            quality=call.quality,
            background=call.background,
            output_format=call.output_format,
            image_id=call.image_id,
            seed=call.seed,
            error=None if call.error is None else ResponseError.model_validate(call.error),
            svg_usage=SvgUsage.traced() if call.output_format == "svg" and call.image_id else None,
        )


class OutputText(BaseModel):
    type: Literal["output_text"] = "output_text"
    text: str
    annotations: list[Any] = Field(default_factory=list)


class OutputMessage(BaseModel):
    """The assistant's `message` output item."""

    id: str
    type: Literal["message"] = "message"
    role: Literal["assistant"] = "assistant"
    status: str
    content: list[OutputText]

    @classmethod
    def of(cls, message: AssistantMessage) -> OutputMessage:
        return cls(id=message.id, status=message.status, content=[OutputText(text=message.text)])


OutputItem = Annotated[ImageGenerationCall | OutputMessage, Field(discriminator="type")]


def output_item(item: ImageCall | AssistantMessage) -> ImageGenerationCall | OutputMessage:
    return ImageGenerationCall.of(item) if isinstance(item, ImageCall) else OutputMessage.of(item)


class CachedTokensDetails(BaseModel):
    """The current SDK's `InputTokensDetails` requires both counts (Gouache caches no text tokens)."""

    cached_tokens: int = 0
    cache_write_tokens: int = 0


class ReasoningTokensDetails(BaseModel):
    reasoning_tokens: int = 0


class ResponseUsage(BaseModel):
    input_tokens: int
    input_tokens_details: CachedTokensDetails = Field(default_factory=CachedTokensDetails)
    output_tokens: int
    output_tokens_details: ReasoningTokensDetails = Field(default_factory=ReasoningTokensDetails)
    total_tokens: int

    @classmethod
    def of(cls, usage: TextUsage) -> ResponseUsage:
        return cls(
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            total_tokens=usage.total_tokens,
        )


class WebSearchUsage(BaseModel):
    num_requests: int = 0


class ToolUsage(BaseModel):
    image_gen: ImagesUsage
    web_search: WebSearchUsage = Field(default_factory=WebSearchUsage)


class ResponseObject(BaseModel):
    """The response object: the turn, with the request's options echoed back (OpenAI's defaults filled in).
    `tool_usage` appears once the image is done."""

    id: str
    object: Literal["response"] = "response"
    created_at: int
    status: str
    model: str | None
    output: list[OutputItem]
    usage: ResponseUsage | None
    error: ResponseError | None
    incomplete_details: dict[str, Any] | None = None
    instructions: str | None
    previous_response_id: str | None
    tools: list[dict[str, Any]]
    tool_choice: str | dict[str, Any]
    parallel_tool_calls: bool
    store: bool
    metadata: dict[str, str]
    temperature: float
    top_p: float
    max_output_tokens: int | None
    text: dict[str, Any]
    truncation: str
    reasoning: dict[str, Any]
    user: str | None
    safety_identifier: str | None
    tool_usage: ToolUsage | None = None

    @model_serializer(mode="wrap")
    def _omit_absent(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        if self.tool_usage is None:
            del data["tool_usage"]
        return data

    @classmethod
    def of(cls, turn: TurnSnapshot) -> ResponseObject:
        body = turn.request
        return cls(
            id=turn.id,
            created_at=turn.created_at,
            status=turn.status,
            model=body.get("model"),
            output=[output_item(item) for item in turn.output],
            usage=None if turn.usage is None else ResponseUsage.of(turn.usage),
            error=None if turn.error is None else ResponseError.model_validate(turn.error),
            instructions=body.get("instructions"),
            previous_response_id=body.get("previous_response_id"),
            tools=turn.tools,
            tool_choice=body.get("tool_choice") or "auto",
            parallel_tool_calls=body.get("parallel_tool_calls", True),
            store=body.get("store", True) is not False,
            metadata=body.get("metadata") or {},
            temperature=body.get("temperature", 1.0),
            top_p=body.get("top_p", 1.0),
            max_output_tokens=body.get("max_output_tokens"),
            text=body.get("text") or {"format": {"type": "text"}},
            truncation=body.get("truncation") or "disabled",
            reasoning=body.get("reasoning") or {"effort": None, "summary": None},
            user=body.get("user"),
            safety_identifier=body.get("safety_identifier"),
            tool_usage=None
            if turn.image_usage is None
            else ToolUsage(image_gen=ImagesUsage.model_validate(turn.image_usage)),
        )


class ResponseDeleted(BaseModel):
    id: str
    object: Literal["response.deleted"] = "response.deleted"
    deleted: bool = True


# --- input items, read back ----------------------------------------------------------------------------


class InputTextContent(BaseModel):
    type: Literal["input_text", "output_text", "text"]
    text: str


class InputImageContent(BaseModel):
    """An input image, given back as a data URL (the store keeps its bytes, not the client's URL)."""

    type: Literal["input_image"] = "input_image"
    image_url: str
    detail: Any
    file_id: str | None = None


class InputMessageItem(BaseModel):
    type: Literal["message"] = "message"
    id: str
    role: str
    content: list[InputTextContent | InputImageContent]
    status: Literal["completed"] = "completed"

    @classmethod
    def of(cls, message: InputMessage) -> InputMessageItem:
        content: list[InputTextContent | InputImageContent] = [
            InputTextContent.model_validate({"type": part.type, "text": part.text})
            if isinstance(part, TextPart)
            else InputImageContent(
                image_url="data:image/png;base64," + base64.b64encode(part.data).decode("ascii"),
                detail=part.detail,
            )
            for part in message.content
        ]
        return cls(id=message.id, role=message.role, content=content)


class InputReferenceItem(BaseModel):
    """An earlier image named in the input (`image_generation_call` or `item_reference`)."""

    type: Literal["image_generation_call", "item_reference"]
    id: str


class InputItemList(BaseModel):
    object: Literal["list"] = "list"
    data: list[InputMessageItem | InputReferenceItem]
    first_id: str | None
    last_id: str | None
    has_more: bool = False

    @classmethod
    def of(cls, items: list[InputItem]) -> InputItemList:
        data: list[InputMessageItem | InputReferenceItem] = [
            InputMessageItem.of(item)
            if isinstance(item, InputMessage)
            else InputReferenceItem.model_validate({"type": item.type, "id": item.id})
            for item in items
        ]
        return cls(
            data=data,
            first_id=data[0].id if data else None,
            last_id=data[-1].id if data else None,
        )
