"""Reading what the client sent in a Responses turn: the `input` (a string, or messages with input_text and
input_image parts, or references to earlier images) becomes the user's text, the images in context, and the
items stored with the turn.

The input arrives as loose JSON, read here item by item so that each error names the exact place
(`input[1].content[0].image_url`) and errors come in the order the items do. Images are only ever base64
data URLs or ids of this owner's images: nothing is fetched from the network. Everything here reads the
store, so it runs off the event loop.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
import secrets
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from gouache.service.errors import InvalidRequest
from gouache.store import Owner, Store

_DATA_URL = re.compile(r"^data:image/[\w.+-]+;base64,(.*)$", re.S)


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(24)}"


@dataclass
class TurnContext:
    """What a turn can see: the user's text, images they sent, and the last image of the chain."""

    text: str = ""
    images: list[bytes] = field(default_factory=list)
    previous_image: bytes | None = None
    previous_prompt: str | None = None
    previous_seed: int | None = None


def read_input(raw: Any, context: TurnContext, store: Store, owner: Owner) -> list[dict[str, Any]]:
    """Normalise `input` into stored items, collecting the user's text and images into `context`."""
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
            items.append(_read_message(item, f"input[{i}]", texts, context, store, owner))
        elif kind in ("image_generation_call", "item_reference"):
            data = image_by_reference(str(item.get("id", "")), f"input[{i}].id", store, owner)
            context.images.append(data)
            items.append({"type": kind, "id": item.get("id")})
        else:
            raise InvalidRequest(f"Input items of type '{kind}' are not supported.", param=f"input[{i}].type")
    context.text = " ".join(t for t in texts if t)
    return items


def _read_message(
    item: dict[str, Any], where: str, texts: list[str], context: TurnContext, store: Store, owner: Owner
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
            data = input_image(part, f"{where}.content[{j}]", store, owner)
            context.images.append(data)
            key = store.blobs.put(data, "bin")
            stored.append({"type": "input_image", "blob": key, "detail": part.get("detail", "auto")})
        else:
            raise InvalidRequest(
                f"Content parts of type '{ptype}' are not supported.", param=f"{where}.content[{j}].type"
            )
    return {"type": "message", "id": new_id("msg"), "role": role, "content": stored}


def input_image(part: dict[str, Any], where: str, store: Store, owner: Owner) -> bytes:
    """The bytes of an input_image part (or of the tool's input_image_mask): a data URL or a file_id."""
    if part.get("file_id"):
        return image_by_reference(str(part["file_id"]), f"{where}.file_id", store, owner)
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
    return verified_image(
        data, "The input_image is not a valid image.", f"{where}.image_url", "invalid_image"
    )


def image_by_reference(ref: str, where: str, store: Store, owner: Owner) -> bytes:
    """An uploaded file (`file-...`, Files API), an image id (`img_...`) or an earlier image_generation_call
    id (`ig_...`) of this owner."""
    if ref.startswith("file-"):
        return _image_file(ref, where, store, owner)
    if ref.startswith("img_") and store.get_image(ref, owner) is not None:
        return store.read_image_bytes(ref, owner)
    image_id = store.find_call_image(ref, owner) if ref.startswith("ig_") else None
    if image_id is None or store.get_image(image_id, owner) is None:  # unknown, or deleted since
        raise InvalidRequest(f"No image with id '{ref}'.", param=where, code="image_file_not_found")
    return store.read_image_bytes(image_id)


def _image_file(file_id: str, where: str, store: Store, owner: Owner) -> bytes:
    """The bytes of an uploaded file that must be an image (unknown, expired, deleted or another key's
    files are all "no such file")."""
    file = store.get_file(file_id, owner)
    try:
        data = None if file is None else store.read_file_bytes(file)
    except Exception:
        data = None
    if data is None:
        raise InvalidRequest(f"No such File object: {file_id}.", param=where, code="image_file_not_found")
    return verified_image(
        data, f"File {file_id} is not an image (PNG, JPEG or WEBP).", where, "invalid_image_file"
    )


def verified_image(data: bytes, message: str, param: str, code: str) -> bytes:
    """`data` if Pillow reads it as an image, else a 400 with `message` naming `param`."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.verify()
    except Exception as exc:
        raise InvalidRequest(message, param=param, code=code) from exc
    return data
