"""The Responses API with the `image_generation` tool, as a use case: one turn = read the chain and the input
-> decide (generate or edit, revised prompt, which image, which mask) -> render through the image service ->
record the turn and its text tokens.

Answers are plain data (`service/response_items.py`); `api/` shapes them as OpenAI's JSON and SSE events.
Turns are stored (request, input items, output items with image ids rather than base64) so that chains
through `previous_response_id` continue after a restart. Store calls run off the event loop."""

from __future__ import annotations

import asyncio
import functools
import io
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from PIL import Image

from gouache.service.access import ANONYMOUS, Caller
from gouache.service.chat_turns import ChatPromptWriter
from gouache.service.errors import InvalidRequest, NotFound, ServiceError
from gouache.service.images import (
    EditParams,
    GenerateParams,
    GenerateResult,
    ImageService,
    PartialImage,
    PreparedRequest,
)
from gouache.service.policies.pricing import text_cost
from gouache.service.response_items import (
    AssistantMessage,
    ImageCall,
    ImagePart,
    InputItem,
    InputMessage,
    InputReference,
    OutputItem,
    TextPart,
    TextUsage,
    TurnCompleted,
    TurnEvent,
    TurnFailed,
    TurnPreview,
    TurnRendered,
    TurnSnapshot,
    TurnStarted,
    output_from_stored,
    stored_usage,
)
from gouache.service.turn_input import TurnContext, image_by_reference, input_image, new_id, read_input
from gouache.service.turns import TurnDecision, decide_turn
from gouache.service.usage import count_text_tokens
from gouache.store import Owner, ResponseView, Store

#: The tool's options echoed back with OpenAI's defaults filled in.
TOOL_DEFAULTS: dict[str, Any] = {
    "type": "image_generation",
    "action": "auto",
    "background": "auto",
    "model": "gpt-image-2",
    "moderation": "auto",
    "n": 1,
    "output_compression": 100,
    "output_format": "png",
    "partial_images": 0,
    "quality": "auto",
    "size": "auto",
}


@dataclass
class Turn:
    """A validated, decided turn, ready to run or stream."""

    response_id: str
    #: The request's set fields, recorded with the turn and echoed back.
    body: dict[str, Any]
    #: The image_generation tool with OpenAI's defaults filled in.
    tool: dict[str, Any]
    decision: TurnDecision
    prepared: PreparedRequest
    #: The input as stored (image ids and blob keys rather than bytes).
    input_items: list[dict[str, Any]]
    caller: Caller = ANONYMOUS
    call_id: str = field(default_factory=lambda: new_id("ig"))
    message_id: str = field(default_factory=lambda: new_id("msg"))
    created_at: int = field(default_factory=lambda: int(time.time()))


class ResponsesService:
    def __init__(self, images: ImageService, store: Store, writer: ChatPromptWriter | None = None) -> None:
        self.images = images
        self.store = store
        self.writer = writer

    # --- 1. reading the turn: the chain, then the input ------------------------------------------------

    async def start(
        self,
        body: dict[str, Any],
        tool: dict[str, Any],
        caller: Caller = ANONYMOUS,
        batch_id: str | None = None,
    ) -> Turn:
        """Validate and decide a turn (raising `ServiceError` before anything runs). A Batch API line
        (`batch_id`) renders in the batch lane and is billed at the batch price, its image and its text."""
        owner = caller.owner
        context, input_items = await asyncio.to_thread(self._read_turn, body, owner)
        await self._screen(body, tool, context.text, caller)
        choice = body.get("tool_choice") or "auto"
        action = tool.get("action") or "auto"
        if choice == "none":
            raise InvalidRequest(
                "tool_choice 'none' leaves nothing to do: Gouache answers every turn with an image.",
                param="tool_choice",
            )
        has_image = bool(context.images) or context.previous_image is not None
        if action == "edit" and not has_image:
            raise InvalidRequest(
                "action 'edit' needs an image in context: send an input_image or continue a conversation "
                "that has one (previous_response_id).",
                param="tools[0].action",
            )
        # 2. deciding: generate or edit, the revised prompt (optionally rewritten by a chat model)
        decision = decide_turn(
            context.text,
            previous_prompt=context.previous_prompt,
            has_image=has_image,
            action=action,
            instructions=body.get("instructions"),
        )
        if self.writer is not None:
            decision = await asyncio.to_thread(
                self.writer.revise, decision, context.text, context.previous_prompt
            )
        params = await asyncio.to_thread(self._image_params, decision, tool, context, body, owner)
        prepared = await self.images.prepare(
            params, tool.get("partial_images") or 0, caller, batch_id=batch_id
        )
        return Turn(new_id("resp"), body, {**TOOL_DEFAULTS, **tool}, decision, prepared, input_items, caller)

    def _read_turn(self, body: dict[str, Any], owner: Owner) -> tuple[TurnContext, list[dict[str, Any]]]:
        context = TurnContext()
        previous = body.get("previous_response_id")
        if previous:
            chain = self.store.response_chain(previous, owner=owner)
            if not chain or chain[-1].id != previous:
                raise NotFound(
                    f"Previous response with id '{previous}' not found.", param="previous_response_id"
                )
            self._read_chain(chain, context)
        return context, read_input(body.get("input"), context, self.store, owner)

    def _read_chain(self, chain: list[ResponseView], context: TurnContext) -> None:
        """The last image of the chain, with the prompt and seed that made it."""
        for turn in chain:
            for item in turn.output:
                if item.get("type") == "image_generation_call" and item.get("image_id"):
                    if self.store.get_image(item["image_id"]) is None:
                        raise InvalidRequest(
                            f"The image of response '{turn.id}' was deleted from the history; start a new "
                            "conversation or send the image again as an input_image.",
                            param="previous_response_id",
                            code="image_deleted",
                        )
                    context.previous_image = self.store.read_image_bytes(item["image_id"])
                    context.previous_prompt = item.get("prompt") or item.get("revised_prompt")
                    context.previous_seed = item.get("seed")

    async def _screen(self, body: dict[str, Any], tool: dict[str, Any], text: str, caller: Caller) -> None:
        """The moderation pre-filter on what the user wrote (the image prompt is screened again later)."""
        try:
            self.images.ops.moderation.screen(
                f"{text}\n{body.get('instructions') or ''}", tool.get("moderation") or "auto"
            )
        except ServiceError as exc:
            self.images.ops.metrics.refusals.labels(exc.code or exc.type).inc()
            await asyncio.to_thread(self._record_refusal, body, text, caller, exc)
            raise

    def _record_refusal(self, body: dict[str, Any], text: str, caller: Caller, exc: ServiceError) -> None:
        request_id = self.store.create_request(
            "responses", str(body.get("model")), {"input_text": text}, _user(body), api_key_id=caller.key_id
        )
        self.store.finish_request(request_id, "failed", error=exc.to_error())

    # --- 3. the image request: which image, which mask -------------------------------------------------

    def _image_params(
        self,
        decision: TurnDecision,
        tool: dict[str, Any],
        context: TurnContext,
        body: dict[str, Any],
        owner: Owner,
    ) -> GenerateParams:
        common: dict[str, Any] = {
            "prompt": decision.revised_prompt,
            "model": tool.get("model") or TOOL_DEFAULTS["model"],
            "size": tool.get("size") or "auto",
            "quality": tool.get("quality") or "auto",
            "output_format": tool.get("output_format") or "png",
            "output_compression": tool.get("output_compression"),
            "background": tool.get("background") or "auto",
            "moderation": tool.get("moderation") or "auto",
            "user": body.get("user"),
            "safety_identifier": body.get("safety_identifier"),
            "seed": tool.get("seed", context.previous_seed),
            "steps": tool.get("steps"),
            "loras": tool.get("loras"),
            "deadline_s": body.get("deadline_s"),
            "frame_count": tool.get("frame_count"),
            "frame_duration_ms": tool.get("frame_duration_ms"),
            "svg": tool.get("svg"),
        }
        if decision.action == "generate":
            return GenerateParams(**common)
        source = context.images[0] if context.images else context.previous_image
        assert source is not None
        references = tuple(context.images[1:]) if context.images else ()
        mask = self._mask_bytes(tool, decision, source, owner)
        return EditParams(
            **{k: v for k, v in common.items() if k != "moderation"},
            images=(source, *references),
            mask=mask,
            strength=decision.strength,
            input_fidelity=tool.get("input_fidelity"),
        )

    def _mask_bytes(
        self, tool: dict[str, Any], decision: TurnDecision, source: bytes, owner: Owner
    ) -> bytes | None:
        """The tool's explicit mask, else one that keeps all but the decided region, else none."""
        explicit = tool.get("input_image_mask")
        if explicit:
            if explicit.get("file_id"):
                return image_by_reference(
                    str(explicit["file_id"]), "tools[0].input_image_mask.file_id", self.store, owner
                )
            return input_image(
                {"image_url": explicit.get("image_url")}, "tools[0].input_image_mask", self.store, owner
            )
        # A GIF or an SVG takes no mask (OpenAI's rule): a regional follow-up repaints the whole image.
        if decision.region is None or tool.get("output_format") in ("gif", "svg"):
            return None
        with Image.open(io.BytesIO(source)) as image:
            width, height = image.size
        boxes = {
            "left": (0, 0, int(width * 0.45), height),
            "right": (int(width * 0.55), 0, width, height),
            "top": (0, 0, width, int(height * 0.45)),
            "bottom": (0, int(height * 0.55), width, height),
        }
        mask = Image.new("RGBA", (width, height), (0, 0, 0, 255))
        mask.paste((0, 0, 0, 0), boxes[decision.region])
        buf = io.BytesIO()
        mask.save(buf, format="PNG")
        return buf.getvalue()

    # --- 4. running the turn ---------------------------------------------------------------------------

    async def run(self, turn: Turn) -> TurnSnapshot:
        await self._save(turn, "in_progress", [])
        try:
            result = await self.images.run(turn.prepared)
        except ServiceError as exc:
            await self._save(turn, "failed", [self._call(turn, "failed", exc)], error=exc.to_error())
            raise
        except asyncio.CancelledError:  # the client went away or the server is stopping
            # Shielded: a second cancellation must not stop the record of the first.
            await asyncio.shield(self._save(turn, "cancelled", [self._call(turn, "failed")]))
            raise
        return await self._finish(turn, result)

    async def stream(self, turn: Turn, stop: asyncio.Event | None = None) -> AsyncIterator[TurnEvent]:
        """The turn as events: started, partial images, rendered, then completed or failed. A turn stopped by
        `stop` (the client went away) is recorded as cancelled and ends without an event."""
        await self._save(turn, "in_progress", [])
        call = self._call(turn, "in_progress")
        yield TurnStarted(self._snapshot(turn, "in_progress"), call)
        result: GenerateResult | None = None
        try:
            async for update in self.images.stream(turn.prepared, stop):
                if isinstance(update, PartialImage):
                    yield TurnPreview(call, update.index, update.data)
                else:
                    result = update
        except ServiceError as exc:
            failed = self._call(turn, "failed", exc)
            await self._save(turn, "failed", [failed], error=exc.to_error())
            yield TurnFailed(self._snapshot(turn, "failed", (failed,), error=exc.to_error()), exc)
            return
        if result is None:  # stopped: the client went away
            await self._save(turn, "cancelled", [self._call(turn, "failed")])
            return
        yield TurnRendered(call)
        yield TurnCompleted(await self._finish(turn, result))

    # --- 5. recording the turn -------------------------------------------------------------------------

    async def _finish(self, turn: Turn, result: GenerateResult) -> TurnSnapshot:
        image = result.images[0]
        call = self._call(turn, "completed", image_id=image.image_id, seed=image.seed)
        if image.revised_prompt is not None:  # the prompt written, and what the model understood of it
            understood = f"{call.revised_prompt} (understood as: {image.revised_prompt})"
            call = replace(call, revised_prompt=understood, prompt=call.revised_prompt)
        message = AssistantMessage(turn.message_id, turn.decision.reply)
        usage = self._usage(turn)
        await self._save(turn, "completed", [call, message], usage=stored_usage(usage, result.usage))
        await asyncio.to_thread(self._record_text, turn, usage, result.request_id)
        return self._snapshot(
            turn, "completed", (replace(call, image=image.data), message), usage, result.usage
        )

    def _call(
        self,
        turn: Turn,
        status: str,
        error: ServiceError | None = None,
        *,
        image_id: str | None = None,
        seed: int | None = None,
    ) -> ImageCall:
        """The turn's image_generation_call, as the image service has it now."""
        job = turn.prepared.job
        return ImageCall(
            id=turn.call_id,
            status=status,
            action=turn.decision.action,
            revised_prompt=turn.decision.revised_prompt,
            size=f"{job.width}x{job.height}",
            quality=turn.prepared.quality,
            background=job.outputs.background,
            output_format=job.output_format,
            image_id=image_id,
            seed=seed,
            error=error.to_error() if error is not None else None,
        )

    def _usage(self, turn: Turn) -> TextUsage:
        prompt_text = " ".join(
            part.get("text", "")
            for item in turn.input_items
            for part in item.get("content", [])
            if "text" in part
        )
        return TextUsage(
            input_tokens=count_text_tokens(prompt_text + " " + (turn.body.get("instructions") or "")),
            output_tokens=count_text_tokens(turn.decision.reply),
        )

    def _record_text(self, turn: Turn, usage: TextUsage, image_request_id: str) -> None:
        """The turn's own ledger row: the mainline text model's tokens, priced as text (its image has its
        own row, written by the image service)."""
        ops = self.images.ops
        cost = text_cost(ops.prices, usage.input_tokens, usage.output_tokens)
        batch_id = turn.prepared.batch_id
        if batch_id is not None:
            cost = round(cost * ops.prices.batch_discount, 8)
        request_id = self.store.create_request(
            "responses",
            str(turn.body.get("model")),
            {"response_id": turn.response_id, "image_request_id": image_request_id},
            _user(turn.body),
            api_key_id=turn.caller.key_id,
            cost_usd=cost,
            batch_id=batch_id,
        )
        self.store.finish_request(request_id, "succeeded", usage=usage.stored(), wall_s=0.0, cpu_s=0.0)
        ops.metrics.observe_tokens(usage.stored())
        ops.metrics.hosted_usd.labels(str(turn.body.get("model"))).inc(cost)

    def _snapshot(
        self,
        turn: Turn,
        status: str,
        output: tuple[OutputItem, ...] = (),
        usage: TextUsage | None = None,
        image_usage: dict[str, Any] | None = None,
        *,
        error: dict[str, Any] | None = None,
    ) -> TurnSnapshot:
        return TurnSnapshot(
            id=turn.response_id,
            created_at=turn.created_at,
            status=status,
            request=turn.body,
            tools=[turn.tool],
            output=output,
            usage=usage,
            image_usage=image_usage,
            error=error,
        )

    async def _save(
        self,
        turn: Turn,
        status: str,
        output: list[OutputItem],
        *,
        usage: dict[str, Any] | None = None,
        error: dict[str, Any] | None = None,
    ) -> None:
        if turn.body.get("store") is False:
            return
        save = functools.partial(
            self.store.save_response,
            turn.response_id,
            model=turn.body["model"],
            status=status,
            previous_response_id=turn.body.get("previous_response_id"),
            request={**turn.body, "tools": [turn.tool], "created_at": turn.created_at},
            input_items=turn.input_items,
            output=[item.stored() for item in output],
            usage=usage,
            error=error,
            user=_user(turn.body),
            api_key_id=turn.caller.key_id,
        )
        await asyncio.to_thread(save)

    # --- stored turns ----------------------------------------------------------------------------------

    async def get(self, response_id: str, owner: Owner) -> TurnSnapshot:
        return await asyncio.to_thread(self._read_stored, response_id, owner)

    def _read_stored(self, response_id: str, owner: Owner) -> TurnSnapshot:
        view = self.store.get_response(response_id, owner)
        if view is None:
            raise NotFound(f"Response with id '{response_id}' not found.", param="response_id")
        output = []
        for item in view.output:
            data = None
            if item.get("type") == "image_generation_call" and item.get("image_id"):
                # None when the image was deleted from the history since.
                image = self.store.get_image(item["image_id"])
                if image is not None:
                    data = self.store.read_image_bytes(image.id)
            output.append(output_from_stored(item, data))
        usage = dict(view.usage) if view.usage else None
        tool_usage: Mapping[str, Any] | None = usage.pop("tool_usage", None) if usage else None
        request = dict(view.request)
        return TurnSnapshot(
            id=view.id,
            created_at=int(request.pop("created_at", view.created_at.timestamp())),
            status=view.status,
            request=request,
            tools=request.get("tools") or [],
            output=tuple(output),
            usage=TextUsage.from_stored(usage) if usage else None,
            image_usage=tool_usage["image_gen"] if tool_usage else None,
            error=view.error,
        )

    async def delete(self, response_id: str, owner: Owner) -> None:
        if not await asyncio.to_thread(self.store.delete_response, response_id, owner):
            raise NotFound(f"Response with id '{response_id}' not found.", param="response_id")

    async def input_items(self, response_id: str, owner: Owner, order: str = "desc") -> list[InputItem]:
        """The turn's input items, in `order` ("asc" or "desc"), input images with their bytes."""
        items = await asyncio.to_thread(self._read_input_items, response_id, owner)
        if order == "desc":
            items.reverse()
        return items

    def _read_input_items(self, response_id: str, owner: Owner) -> list[InputItem]:
        view = self.store.get_response(response_id, owner)
        if view is None:
            raise NotFound(f"Response with id '{response_id}' not found.", param="response_id")
        items: list[InputItem] = []
        for item in view.input_items:
            if item.get("type") != "message":
                items.append(InputReference(type=item["type"], id=item["id"]))
                continue
            parts: list[TextPart | ImagePart] = []
            for part in item["content"]:
                if part.get("type") == "input_image" and part.get("blob"):
                    parts.append(ImagePart(self.store.blobs.get(part["blob"]), part.get("detail", "auto")))
                else:
                    parts.append(TextPart(type=part["type"], text=part["text"]))
            items.append(InputMessage(id=item["id"], role=item["role"], content=tuple(parts)))
        return items


def _user(body: Mapping[str, Any]) -> str | None:
    return body.get("safety_identifier") or body.get("user")
