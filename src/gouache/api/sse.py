"""Server-sent events for streamed requests, as OpenAI sends them: `event: <type>` lines matching the JSON
`type`, one `data:` line of JSON, a blank line. Two streams are framed here: the Images API's
(`image_generation.partial_image` ... `.completed`) and the Responses API's (`response.created` ...
`response.completed`, numbered by `sequence_number`). A failure after the stream started becomes an `error`
event (the SDK raises it as `APIError`)."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import Request
from fastapi.responses import StreamingResponse

from gouache.api.disconnect import watch_disconnect
from gouache.api.protocol.responses import ImageGenerationCall, OutputMessage, OutputText, ResponseObject
from gouache.service.errors import ServiceError
from gouache.service.images import GenerateResult, PartialImage, PreparedRequest
from gouache.service.response_items import (
    AssistantMessage,
    TurnCompleted,
    TurnEvent,
    TurnFailed,
    TurnPreview,
    TurnRendered,
    TurnStarted,
)

log = logging.getLogger(__name__)


def sse_frame(event: dict[str, Any]) -> bytes:
    return f"event: {event['type']}\ndata: {json.dumps(event, separators=(',', ':'))}\n\n".encode()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _split_usage(usage: dict[str, Any], n: int, index: int) -> dict[str, Any]:
    """The request's usage shared over its `n` completed events, so that they add up to the whole: input
    tokens and partial-image tokens on the first, image output tokens divided evenly."""
    per_image = usage["output_tokens_details"]["image_tokens"]
    partials = per_image - (per_image // n) * n if n > 1 else 0
    out = per_image // n + (partials if index == 0 else 0) if n > 1 else per_image
    inp = usage["input_tokens"] if index == 0 else 0
    details = usage["input_tokens_details"] if index == 0 else {"text_tokens": 0, "image_tokens": 0}
    return {
        "input_tokens": inp,
        "input_tokens_details": details,
        "output_tokens": out,
        "total_tokens": inp + out,
        "output_tokens_details": {"image_tokens": out, "text_tokens": 0},
    }


async def image_events(
    prefix: str, prepared: PreparedRequest, events: AsyncIterator[PartialImage | GenerateResult]
) -> AsyncIterator[bytes]:
    """`<prefix>.partial_image` events, then one `<prefix>.completed` event per image."""
    params = prepared.params
    requested = {
        "size": params.size,
        "quality": params.quality,
        "background": params.background,
        "output_format": params.output_format,
    }
    try:
        async for event in events:
            if isinstance(event, PartialImage):
                yield sse_frame(
                    {
                        "type": f"{prefix}.partial_image",
                        "b64_json": _b64(event.data),
                        "partial_image_index": event.index,
                        "created_at": int(time.time()),
                        **requested,
                    }
                )
                continue
            n = len(event.images)
            for index, image in enumerate(event.images):
                completed: dict[str, Any] = {
                    "type": f"{prefix}.completed",
                    "b64_json": _b64(image.data),
                    "created_at": event.created,
                    "size": event.size,
                    "quality": event.quality,
                    "background": event.background,
                    "output_format": event.output_format,
                    "usage": _split_usage(event.usage, n, index),
                    "seed": image.seed,
                }
                if event.safety_identifier:
                    completed["safety_identifier"] = event.safety_identifier
                yield sse_frame(completed)
    except ServiceError as exc:
        yield sse_frame({"type": "error", "error": exc.to_error()})
    except Exception:
        log.exception("stream failed")
        error = {"message": "The server had an error while streaming.", "type": "server_error", "param": None,
                 "code": "server_error"}  # fmt: skip
        yield sse_frame({"type": "error", "error": error})


async def response_events(events: AsyncIterator[TurnEvent]) -> AsyncIterator[bytes]:
    """The Responses event sequence of one turn: the response and its image_generation_call in progress,
    partial images, the call completed, the assistant's message as text events, `response.completed`; or
    `error` and `response.failed`."""
    seq = 0

    def frame(kind: str, **fields: Any) -> bytes:
        nonlocal seq
        seq += 1
        return sse_frame({"type": kind, "sequence_number": seq - 1, **fields})

    async for event in events:
        if isinstance(event, TurnStarted):
            shell = ResponseObject.of(event.snapshot).model_dump(mode="json")
            call_id = event.call.id
            yield frame("response.created", response=shell)
            yield frame("response.in_progress", response=shell)
            item = ImageGenerationCall.of(event.call).model_dump(mode="json")
            yield frame("response.output_item.added", output_index=0, item=item)
            yield frame("response.image_generation_call.in_progress", output_index=0, item_id=call_id)
            yield frame("response.image_generation_call.generating", output_index=0, item_id=call_id)
        elif isinstance(event, TurnPreview):
            call = event.call
            yield frame(
                "response.image_generation_call.partial_image",
                output_index=0,
                item_id=call.id,
                partial_image_b64=_b64(event.data),
                partial_image_index=event.index,
                size=call.size,
                quality=call.quality,
                background=call.background,
                output_format=call.output_format,
            )
        elif isinstance(event, TurnRendered):
            yield frame("response.image_generation_call.completed", output_index=0, item_id=event.call.id)
        elif isinstance(event, TurnFailed):
            exc = event.error
            yield frame("error", code=exc.code, message=exc.message, param=exc.param)
            yield frame("response.failed", response=ResponseObject.of(event.snapshot).model_dump(mode="json"))
        elif isinstance(event, TurnCompleted):
            for part in _completed_frames(event, frame):
                yield part


def _completed_frames(event: TurnCompleted, frame: Callable[..., bytes]) -> list[bytes]:
    """The image_generation_call done, then the assistant's message streamed as one text delta."""
    final = ResponseObject.of(event.snapshot)
    call, message = final.output
    assert isinstance(message, OutputMessage)
    reply = event.snapshot.output[1]
    assert isinstance(reply, AssistantMessage)
    text, message_id = reply.text, reply.id
    empty = OutputText(text="").model_dump(mode="json")
    where = {"output_index": 1, "item_id": message_id, "content_index": 0}
    in_progress = message.model_copy(update={"status": "in_progress", "content": []})
    return [
        frame("response.output_item.done", output_index=0, item=call.model_dump(mode="json")),
        frame("response.output_item.added", output_index=1, item=in_progress.model_dump(mode="json")),
        frame("response.content_part.added", **where, part=empty),
        frame("response.output_text.delta", **where, delta=text, logprobs=[]),
        frame("response.output_text.done", **where, text=text, logprobs=[]),
        frame("response.content_part.done", **where, part={**empty, "text": text}),
        frame("response.output_item.done", output_index=1, item=message.model_dump(mode="json")),
        frame("response.completed", response=final.model_dump(mode="json")),
    ]


def event_stream(
    request: Request, make_body: Callable[[asyncio.Event], AsyncIterator[bytes]]
) -> StreamingResponse:
    """An SSE response whose producer is told (through the event it is given) when the client goes away."""

    async def body() -> AsyncIterator[bytes]:
        stop = asyncio.Event()
        watcher = asyncio.ensure_future(watch_disconnect(request, stop))
        try:
            async for frame in make_body(stop):
                yield frame
        finally:
            stop.set()
            watcher.cancel()

    return StreamingResponse(
        body(),
        media_type="text/event-stream",
        headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
    )
