"""The Responses API with the `image_generation` tool: one turn = a decision (generate or edit, revised
prompt), render through the image service, answer with an `image_generation_call` item
and an assistant message.

Turns are stored (request, input items, output items with image ids rather than base64) so that chains
through `previous_response_id` continue after a restart."""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
import re
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
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
    Planned,
)
from gouache.service.pricing import text_cost
from gouache.service.turns import TurnDecision, decide_turn
from gouache.service.usage import count_text_tokens
from gouache.store import Owner, Store

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
_DATA_URL = re.compile(r"^data:image/[\w.+-]+;base64,(.*)$", re.S)


def _new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(24)}"


@dataclass
class Turn:
    """A validated, planned turn, ready to run or stream."""

    response_id: str
    body: dict[str, Any]
    tool: dict[str, Any]
    decision: TurnDecision
    planned: Planned
    input_items: list[dict[str, Any]]
    caller: Caller = ANONYMOUS
    call_id: str = field(default_factory=lambda: _new_id("ig"))
    message_id: str = field(default_factory=lambda: _new_id("msg"))
    created_at: int = field(default_factory=lambda: int(time.time()))


@dataclass
class _Context:
    """What a turn can see: the user's text, images they sent, and the last image of the chain."""

    text: str = ""
    images: list[bytes] = field(default_factory=list)
    previous_image: bytes | None = None
    previous_prompt: str | None = None
    previous_seed: int | None = None


class ResponsesService:
    def __init__(self, images: ImageService, store: Store, writer: ChatPromptWriter | None = None) -> None:
        self.images = images
        self.store = store
        self.writer = writer

    # --- creating a turn -------------------------------------------------------------------------------

    async def start(self, body: dict[str, Any], tool: dict[str, Any], caller: Caller = ANONYMOUS) -> Turn:
        """Validate and decide a turn (raising `ServiceError` before anything runs)."""
        context = _Context()
        owner = caller.owner
        previous = body.get("previous_response_id")
        if previous:
            chain = self.store.response_chain(previous, owner=owner)
            if not chain or chain[-1].id != previous:
                raise NotFound(
                    f"Previous response with id '{previous}' not found.", param="previous_response_id"
                )
            self._read_chain(chain, context)
        input_items = self._read_input(body.get("input"), context, owner)
        self._screen(body, tool, context.text, caller)
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
        params = self._image_params(decision, tool, context, body, owner)
        planned = await self.images.prepare(
            self.images.endpoint_of(params), params, tool.get("partial_images") or 0, caller
        )
        return Turn(_new_id("resp"), body, {**TOOL_DEFAULTS, **tool}, decision, planned, input_items, caller)

    def _screen(self, body: dict[str, Any], tool: dict[str, Any], text: str, caller: Caller) -> None:
        """The moderation pre-filter on what the user wrote (the image prompt is screened again later)."""
        try:
            self.images.ops.moderation.screen(
                f"{text}\n{body.get('instructions') or ''}", tool.get("moderation") or "auto"
            )
        except ServiceError as exc:
            self.images.ops.metrics.refusals.labels(exc.code or exc.type).inc()
            request_id = self.store.create_request(
                "responses",
                str(body.get("model")),
                {"input_text": text},
                _user(body),
                api_key_id=caller.key_id,
            )
            self.store.finish_request(request_id, "failed", error=exc.to_error())
            raise

    def _read_chain(self, chain: list[Any], context: _Context) -> None:
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
                    context.previous_prompt = item.get("revised_prompt")
                    context.previous_seed = item.get("seed")

    def _read_input(self, raw: Any, context: _Context, owner: Owner) -> list[dict[str, Any]]:
        """Normalise `input` into stored items, collecting the user's text and images."""
        if raw is None:
            raise InvalidRequest(
                "Missing required parameter: 'input'.", param="input", code="missing_required_parameter"
            )
        if isinstance(raw, str):
            raw = [{"type": "message", "role": "user", "content": raw}]
        items: list[dict[str, Any]] = []
        texts: list[str] = []
        for i, item in enumerate(raw):
            kind = item.get("type", "message")
            if kind == "message":
                items.append(self._read_message(item, f"input[{i}]", texts, context, owner))
            elif kind in ("image_generation_call", "item_reference"):
                data = self._image_by_reference(str(item.get("id", "")), f"input[{i}].id", owner)
                context.images.append(data)
                items.append({"type": kind, "id": item.get("id")})
            else:
                raise InvalidRequest(
                    f"Input items of type '{kind}' are not supported.", param=f"input[{i}].type"
                )
        context.text = " ".join(t for t in texts if t)
        return items

    def _read_message(
        self, item: dict[str, Any], where: str, texts: list[str], context: _Context, owner: Owner
    ) -> dict[str, Any]:
        role = item.get("role", "user")
        if role not in ("user", "system", "developer", "assistant"):
            raise InvalidRequest(
                f"Invalid value: '{role}'. Supported values are: user, system, developer, assistant.",
                param=f"{where}.role",
            )
        content = item.get("content", "")
        parts = [{"type": "input_text", "text": content}] if isinstance(content, str) else content
        if not isinstance(parts, list):
            raise InvalidRequest(
                "Message content must be a string or a list of parts.",
                param=f"{where}.content",
                code="invalid_type",
            )
        stored: list[dict[str, Any]] = []
        for j, part in enumerate(parts):
            ptype = part.get("type") if isinstance(part, dict) else None
            if ptype in ("input_text", "output_text", "text"):
                if role == "user":
                    texts.append(str(part.get("text", "")))
                stored.append({"type": ptype, "text": str(part.get("text", ""))})
            elif ptype == "input_image":
                data = self._input_image(part, f"{where}.content[{j}]", owner)
                context.images.append(data)
                key = self.store.blobs.put(data, "bin")
                stored.append({"type": "input_image", "blob": key, "detail": part.get("detail", "auto")})
            else:
                raise InvalidRequest(
                    f"Content parts of type '{ptype}' are not supported.", param=f"{where}.content[{j}].type"
                )
        return {"type": "message", "id": _new_id("msg"), "role": role, "content": stored}

    def _input_image(self, part: dict[str, Any], where: str, owner: Owner) -> bytes:
        if part.get("file_id"):
            return self._image_by_reference(str(part["file_id"]), f"{where}.file_id", owner)
        url = part.get("image_url")
        if not isinstance(url, str) or not url:
            raise InvalidRequest(
                "input_image needs an image_url (a data URL) or a file_id.",
                param=where,
                code="invalid_image_url",
            )
        match = _DATA_URL.match(url)
        if not match:
            raise InvalidRequest(
                "Only base64 data URLs can be used here (Gouache fetches nothing from the network).",
                param=f"{where}.image_url",
                code="invalid_image_url",
            )
        try:
            data = base64.b64decode(match.group(1), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise InvalidRequest(
                "The data URL is not valid base64.", param=f"{where}.image_url", code="invalid_base64_image"
            ) from exc
        try:
            with Image.open(io.BytesIO(data)) as image:
                image.verify()
        except Exception as exc:
            raise InvalidRequest(
                "The input_image is not a valid image.", param=f"{where}.image_url", code="invalid_image"
            ) from exc
        return data

    def _image_by_reference(self, ref: str, where: str, owner: Owner) -> bytes:
        """An image id (`img_...`) or an earlier image_generation_call id (`ig_...`) of this owner."""
        if ref.startswith("img_") and self.store.get_image(ref, owner) is not None:
            return self.store.read_image_bytes(ref, owner)
        image_id = self.store.find_call_image(ref, owner) if ref.startswith("ig_") else None
        if image_id is None or self.store.get_image(image_id, owner) is None:  # unknown, or deleted since
            raise InvalidRequest(f"No image with id '{ref}'.", param=where, code="image_file_not_found")
        return self.store.read_image_bytes(image_id)

    def _image_params(
        self,
        decision: TurnDecision,
        tool: dict[str, Any],
        context: _Context,
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
            "deadline_s": body.get("deadline_s"),
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
        explicit = tool.get("input_image_mask")
        if explicit:
            if explicit.get("file_id"):
                return self._image_by_reference(
                    str(explicit["file_id"]), "tools[0].input_image_mask.file_id", owner
                )
            return self._input_image(
                {"image_url": explicit.get("image_url")}, "tools[0].input_image_mask", owner
            )
        if decision.region is None:
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

    # --- running a turn --------------------------------------------------------------------------------

    async def run(self, turn: Turn) -> dict[str, Any]:
        self._save(turn, "in_progress", [])
        try:
            result = await self.images.run(turn.planned)
        except ServiceError as exc:
            self._save(turn, "failed", [self._call_item(turn, None, "failed", exc)], error=exc.to_error())
            raise
        except asyncio.CancelledError:  # the client went away or the server is stopping
            self._save(turn, "cancelled", [self._call_item(turn, None, "failed")])
            raise
        return self._finish(turn, result)

    async def stream(self, turn: Turn, stop: asyncio.Event | None = None) -> AsyncIterator[dict[str, Any]]:
        """The Responses event sequence for one turn."""
        seq = 0

        def event(kind: str, **fields: Any) -> dict[str, Any]:
            nonlocal seq
            seq += 1
            return {"type": kind, "sequence_number": seq - 1, **fields}

        self._save(turn, "in_progress", [])
        shell = self.response_object(turn, "in_progress", [], None)
        yield event("response.created", response=shell)
        yield event("response.in_progress", response=shell)
        call = self._call_item(turn, None, "in_progress")
        yield event("response.output_item.added", output_index=0, item=call)
        yield event("response.image_generation_call.in_progress", output_index=0, item_id=turn.call_id)
        yield event("response.image_generation_call.generating", output_index=0, item_id=turn.call_id)
        result: GenerateResult | None = None
        try:
            async for update in self.images.stream(turn.planned, stop):
                if isinstance(update, PartialImage):
                    yield event(
                        "response.image_generation_call.partial_image",
                        output_index=0,
                        item_id=turn.call_id,
                        partial_image_b64=base64.b64encode(update.data).decode("ascii"),
                        partial_image_index=update.index,
                        **self._echo(turn),
                    )
                else:
                    result = update
        except ServiceError as exc:
            failed = self._call_item(turn, None, "failed", exc)
            self._save(turn, "failed", [failed], error=exc.to_error())
            yield event("error", code=exc.code, message=exc.message, param=exc.param)
            yield event("response.failed", response=self.response_object(turn, "failed", [failed], None, exc))
            return
        if result is None:  # stopped: the client went away
            self._save(turn, "cancelled", [self._call_item(turn, None, "failed")])
            return
        yield event("response.image_generation_call.completed", output_index=0, item_id=turn.call_id)
        final = self._finish(turn, result)
        call_done, message = final["output"]
        yield event("response.output_item.done", output_index=0, item=call_done)
        text = message["content"][0]["text"]
        yield event(
            "response.output_item.added",
            output_index=1,
            item={**message, "status": "in_progress", "content": []},
        )
        part = {"type": "output_text", "text": "", "annotations": []}
        yield event(
            "response.content_part.added", output_index=1, item_id=turn.message_id, content_index=0, part=part
        )
        yield event(
            "response.output_text.delta",
            output_index=1,
            item_id=turn.message_id,
            content_index=0,
            delta=text,
            logprobs=[],
        )
        yield event(
            "response.output_text.done",
            output_index=1,
            item_id=turn.message_id,
            content_index=0,
            text=text,
            logprobs=[],
        )
        yield event(
            "response.content_part.done",
            output_index=1,
            item_id=turn.message_id,
            content_index=0,
            part={**part, "text": text},
        )
        yield event("response.output_item.done", output_index=1, item=message)
        yield event("response.completed", response=final)

    def _finish(self, turn: Turn, result: GenerateResult) -> dict[str, Any]:
        image = result.images[0]
        stored = [self._call_item(turn, image.image_id, "completed", seed=image.seed), self._message(turn)]
        usage = self._usage(turn)
        tool_usage = self._tool_usage(result)
        self._save(turn, "completed", stored, usage={**usage, "tool_usage": tool_usage})
        self._record_text(turn, usage, result.request_id)
        output = [
            {**stored[0], "result": base64.b64encode(image.data).decode("ascii")},
            stored[1],
        ]
        return self.response_object(turn, "completed", output, usage, tool_usage=tool_usage)

    # --- shapes ----------------------------------------------------------------------------------------

    def _echo(self, turn: Turn) -> dict[str, Any]:
        job = turn.planned.job
        return {
            "size": f"{job.width}x{job.height}",
            "quality": turn.planned.quality,
            "background": "opaque",
            "output_format": job.output_format,
        }

    def _call_item(
        self,
        turn: Turn,
        image_id: str | None,
        status: str,
        error: ServiceError | None = None,
        seed: int | None = None,
    ) -> dict[str, Any]:
        item: dict[str, Any] = {
            "id": turn.call_id,
            "type": "image_generation_call",
            "status": status,
            "result": None,
            "action": turn.decision.action,
            "revised_prompt": turn.decision.revised_prompt,
            **self._echo(turn),
        }
        if image_id is not None:
            item["image_id"] = image_id
            item["seed"] = seed
        if error is not None:
            item["error"] = error.to_error()
        return item

    def _message(self, turn: Turn) -> dict[str, Any]:
        return {
            "id": turn.message_id,
            "type": "message",
            "role": "assistant",
            "status": "completed",
            "content": [{"type": "output_text", "text": turn.decision.reply, "annotations": []}],
        }

    def _usage(self, turn: Turn) -> dict[str, Any]:
        prompt_text = " ".join(
            part.get("text", "")
            for item in turn.input_items
            for part in item.get("content", [])
            if "text" in part
        )
        inp = count_text_tokens(prompt_text + " " + (turn.body.get("instructions") or ""))
        out = count_text_tokens(turn.decision.reply)
        return {
            "input_tokens": inp,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": out,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": inp + out,
        }

    def _record_text(self, turn: Turn, usage: dict[str, Any], image_request_id: str) -> None:
        """The turn's own ledger row: the mainline text model's tokens, priced as text (its image has its
        own row, written by the image service)."""
        ops = self.images.ops
        cost = text_cost(ops.prices, usage["input_tokens"], usage["output_tokens"])
        request_id = self.store.create_request(
            "responses",
            str(turn.body.get("model")),
            {"response_id": turn.response_id, "image_request_id": image_request_id},
            _user(turn.body),
            api_key_id=turn.caller.key_id,
            cost_usd=cost,
        )
        self.store.finish_request(request_id, "succeeded", usage=usage, wall_s=0.0, cpu_s=0.0)
        ops.metrics.observe_tokens(usage)
        ops.metrics.hosted_usd.labels(str(turn.body.get("model"))).inc(cost)

    @staticmethod
    def _tool_usage(result: GenerateResult) -> dict[str, Any]:
        return {"image_gen": result.usage, "web_search": {"num_requests": 0}}

    def response_object(
        self,
        turn: Turn,
        status: str,
        output: list[dict[str, Any]],
        usage: dict[str, Any] | None,
        error: ServiceError | None = None,
        tool_usage: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        body = turn.body
        return _response_shape(
            response_id=turn.response_id,
            created_at=turn.created_at,
            status=status,
            body=body,
            tools=[turn.tool],
            output=output,
            usage=usage,
            error=error.to_error() if error else None,
            tool_usage=tool_usage,
        )

    def _save(
        self,
        turn: Turn,
        status: str,
        output: list[dict[str, Any]],
        *,
        usage: dict[str, Any] | None = None,
        error: dict[str, Any] | None = None,
    ) -> None:
        if turn.body.get("store") is False:
            return
        self.store.save_response(
            turn.response_id,
            model=turn.body["model"],
            status=status,
            previous_response_id=turn.body.get("previous_response_id"),
            request={**turn.body, "tools": [turn.tool], "created_at": turn.created_at},
            input_items=turn.input_items,
            output=output,
            usage=usage,
            error=error,
            user=_user(turn.body),
            api_key_id=turn.caller.key_id,
        )

    # --- stored turns ----------------------------------------------------------------------------------

    def get(self, response_id: str, owner: Owner) -> dict[str, Any]:
        view = self.store.get_response(response_id, owner)
        if view is None:
            raise NotFound(f"Response with id '{response_id}' not found.", param="response_id")
        output = []
        for item in view.output:
            item = dict(item)
            if item.get("type") == "image_generation_call" and item.get("image_id"):
                # None when the image was deleted from the history since.
                image = self.store.get_image(item["image_id"])
                if image is not None:
                    item["result"] = base64.b64encode(self.store.read_image_bytes(image.id)).decode("ascii")
            output.append(item)
        usage = dict(view.usage) if view.usage else None
        tool_usage = usage.pop("tool_usage", None) if usage else None
        request = dict(view.request)
        return _response_shape(
            response_id=view.id,
            created_at=int(request.pop("created_at", view.created_at.timestamp())),
            status=view.status,
            body=request,
            tools=request.get("tools") or [],
            output=output,
            usage=usage,
            error=view.error,
            tool_usage=tool_usage,
        )

    def delete(self, response_id: str, owner: Owner) -> dict[str, Any]:
        if not self.store.delete_response(response_id, owner):
            raise NotFound(f"Response with id '{response_id}' not found.", param="response_id")
        return {"id": response_id, "object": "response.deleted", "deleted": True}

    def input_items(self, response_id: str, owner: Owner, order: str = "desc") -> dict[str, Any]:
        view = self.store.get_response(response_id, owner)
        if view is None:
            raise NotFound(f"Response with id '{response_id}' not found.", param="response_id")
        items = []
        for item in view.input_items:
            item = dict(item)
            if item.get("type") == "message":
                content = []
                for part in item["content"]:
                    if part.get("type") == "input_image" and part.get("blob"):
                        data = base64.b64encode(self.store.blobs.get(part["blob"])).decode("ascii")
                        part = {
                            "type": "input_image",
                            "image_url": f"data:image/png;base64,{data}",
                            "detail": part.get("detail", "auto"),
                            "file_id": None,
                        }
                    content.append(part)
                item = {**item, "status": "completed", "content": content}
            items.append(item)
        if order == "desc":
            items.reverse()
        return {
            "object": "list",
            "data": items,
            "first_id": items[0].get("id") if items else None,
            "last_id": items[-1].get("id") if items else None,
            "has_more": False,
        }


def _user(body: dict[str, Any]) -> str | None:
    return body.get("safety_identifier") or body.get("user")


def _response_shape(
    *,
    response_id: str,
    created_at: int,
    status: str,
    body: dict[str, Any],
    tools: list[dict[str, Any]],
    output: list[dict[str, Any]],
    usage: dict[str, Any] | None,
    error: dict[str, Any] | None,
    tool_usage: dict[str, Any] | None,
) -> dict[str, Any]:
    response: dict[str, Any] = {
        "id": response_id,
        "object": "response",
        "created_at": created_at,
        "status": status,
        "model": body.get("model"),
        "output": output,
        "usage": usage,
        "error": error,
        "incomplete_details": None,
        "instructions": body.get("instructions"),
        "previous_response_id": body.get("previous_response_id"),
        "tools": tools,
        "tool_choice": body.get("tool_choice") or "auto",
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "store": body.get("store", True) is not False,
        "metadata": body.get("metadata") or {},
        "temperature": body.get("temperature", 1.0),
        "top_p": body.get("top_p", 1.0),
        "max_output_tokens": body.get("max_output_tokens"),
        "text": body.get("text") or {"format": {"type": "text"}},
        "truncation": body.get("truncation") or "disabled",
        "reasoning": body.get("reasoning") or {"effort": None, "summary": None},
        "user": body.get("user"),
        "safety_identifier": body.get("safety_identifier"),
    }
    if tool_usage is not None:
        response["tool_usage"] = tool_usage
    return response
