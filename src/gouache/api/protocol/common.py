"""Wire types every API shares: the strict base model, the enums of image options, OpenAI's error body, and
the OpenAPI declarations of the errors and server-sent events an endpoint may answer."""

from __future__ import annotations

from typing import Any, Generic, Literal, Self, TypeVar

from pydantic import BaseModel, ConfigDict

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


class Identified(BaseModel):
    """An object a list can page through: it has an id, the cursor of `after`."""

    id: str


ItemT = TypeVar("ItemT", bound=Identified)


class CursorPage(BaseModel, Generic[ItemT]):
    """OpenAI's cursor-paginated list page (`after` takes `last_id` to read the next page)."""

    object: Literal["list"] = "list"
    data: list[ItemT]
    first_id: str | None = None
    last_id: str | None = None
    has_more: bool = False

    @classmethod
    def of(cls, data: list[ItemT], has_more: bool) -> Self:
        return cls(
            data=data,
            first_id=data[0].id if data else None,
            last_id=data[-1].id if data else None,
            has_more=has_more,
        )


class ErrorObject(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorObject


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

LORAS_DOC = (
    'Extension: the catalog LoRA adapters to apply, e.g. [{"name": "ink", "scale": 0.8}] (scale -4..4, '
    "default the catalog's). Left out: the model's default adapters; []: none. In a multipart edit, a JSON "
    "string."
)
