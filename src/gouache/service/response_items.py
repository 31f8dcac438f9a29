"""A Responses turn as plain data: its output items (the `image_generation_call` and the assistant's message),
its text usage, the turn at one moment (`TurnSnapshot`), the events of a streamed turn, and the input items
read back for listing.

The service returns these; `api/protocol/responses.py` shapes them for the wire. The `stored()` and
`from_stored()` pairs are the JSON kept in the store's turn rows: image ids rather than image bytes, so that
a chain through `previous_response_id` continues after a restart. That stored form predates this module and
must keep reading rows written by earlier versions, so it is spelled out field by field here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gouache.service.errors import ServiceError


@dataclass(frozen=True)
class ImageCall:
    """The turn's `image_generation_call`: what was asked of the image service, and what came back."""

    id: str
    status: str  # "in_progress" | "completed" | "failed"
    action: str  # "generate" | "edit"
    revised_prompt: str
    size: str
    quality: str
    background: str
    output_format: str
    #: Set once the image is rendered and stored (with the seed that reproduces it).
    image_id: str | None = None
    seed: int | None = None
    #: The failure, as `ServiceError.to_error()` gives it.
    error: dict[str, Any] | None = None
    #: The image's bytes where the answer carries them (never stored: the row keeps `image_id`).
    image: bytes | None = None
    #: The prompt the image was made from, kept for the next turn, when `revised_prompt` says instead what the
    #: model understood (gouache-mini); None when they are the same.
    prompt: str | None = None

    def stored(self) -> dict[str, Any]:
        item: dict[str, Any] = {
            "id": self.id,
            "type": "image_generation_call",
            "status": self.status,
            "result": None,
            "action": self.action,
            "revised_prompt": self.revised_prompt,
            "size": self.size,
            "quality": self.quality,
            "background": self.background,
            "output_format": self.output_format,
        }
        if self.image_id is not None:
            item["image_id"] = self.image_id
            item["seed"] = self.seed
        if self.error is not None:
            item["error"] = self.error
        if self.prompt is not None:
            item["prompt"] = self.prompt
        return item

    @classmethod
    def from_stored(cls, item: Mapping[str, Any], image: bytes | None = None) -> ImageCall:
        return cls(
            id=item["id"],
            status=item["status"],
            action=item["action"],
            revised_prompt=item["revised_prompt"],
            size=item["size"],
            quality=item["quality"],
            background=item["background"],
            output_format=item["output_format"],
            image_id=item.get("image_id"),
            seed=item.get("seed"),
            error=item.get("error"),
            image=image,
            prompt=item.get("prompt"),
        )


@dataclass(frozen=True)
class AssistantMessage:
    """The assistant's reply that follows the image: one output text."""

    id: str
    text: str
    status: str = "completed"

    def stored(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "status": self.status,
            "content": [{"type": "output_text", "text": self.text, "annotations": []}],
        }

    @classmethod
    def from_stored(cls, item: Mapping[str, Any]) -> AssistantMessage:
        return cls(id=item["id"], text=item["content"][0]["text"], status=item["status"])


OutputItem = ImageCall | AssistantMessage


def output_from_stored(item: Mapping[str, Any], image: bytes | None = None) -> OutputItem:
    if item["type"] == "image_generation_call":
        return ImageCall.from_stored(item, image)
    return AssistantMessage.from_stored(item)


@dataclass(frozen=True)
class TextUsage:
    """The tokens of the text model the turn stands in for (no cached or reasoning tokens: there is none)."""

    input_tokens: int
    output_tokens: int

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def stored(self) -> dict[str, Any]:
        """OpenAI's usage shape: kept in the turn row and in the turn's ledger row (which budgets read)."""
        return {
            "input_tokens": self.input_tokens,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": self.output_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": self.total_tokens,
        }

    @classmethod
    def from_stored(cls, usage: Mapping[str, Any]) -> TextUsage:
        return cls(input_tokens=usage["input_tokens"], output_tokens=usage["output_tokens"])


def stored_usage(usage: TextUsage, image_usage: dict[str, Any]) -> dict[str, Any]:
    """A completed turn's stored usage: the text usage, with the image request's usage as `tool_usage`."""
    return {**usage.stored(), "tool_usage": {"image_gen": image_usage, "web_search": {"num_requests": 0}}}


@dataclass(frozen=True)
class TurnSnapshot:
    """A turn at one moment: just started, failed, completed, or read back from the store."""

    id: str
    created_at: int
    status: str  # "in_progress" | "completed" | "failed" | "cancelled"
    #: The request as the client sent it (the fields it set), echoed back in the answer.
    request: Mapping[str, Any]
    #: The image_generation tool with OpenAI's defaults filled in.
    tools: list[dict[str, Any]]
    output: tuple[OutputItem, ...] = ()
    usage: TextUsage | None = None
    #: The image request's usage (the answer's `tool_usage.image_gen`); None before the image is done.
    image_usage: dict[str, Any] | None = None
    error: dict[str, Any] | None = None


# --- the events of a streamed turn ---------------------------------------------------------------------


@dataclass(frozen=True)
class TurnStarted:
    """The turn is recorded as in progress and its image is being generated."""

    snapshot: TurnSnapshot
    call: ImageCall


@dataclass(frozen=True)
class TurnPreview:
    """A partial image; `index` counts from 0 over the turn."""

    call: ImageCall
    index: int
    data: bytes


@dataclass(frozen=True)
class TurnRendered:
    """The image is done; the turn is recorded next."""

    call: ImageCall


@dataclass(frozen=True)
class TurnCompleted:
    snapshot: TurnSnapshot


@dataclass(frozen=True)
class TurnFailed:
    snapshot: TurnSnapshot
    error: ServiceError


TurnEvent = TurnStarted | TurnPreview | TurnRendered | TurnCompleted | TurnFailed


# --- input items read back -----------------------------------------------------------------------------


@dataclass(frozen=True)
class TextPart:
    type: str  # "input_text" | "output_text" | "text", as the client sent it
    text: str


@dataclass(frozen=True)
class ImagePart:
    data: bytes
    detail: Any


@dataclass(frozen=True)
class InputMessage:
    id: str
    role: str
    content: tuple[TextPart | ImagePart, ...]


@dataclass(frozen=True)
class InputReference:
    """An input item that names an earlier image (`image_generation_call` or `item_reference`)."""

    type: str
    id: str


InputItem = InputMessage | InputReference
