"""multipart/form-data as the openai SDK sends it: files under `image`, `image[]`, `mask`; scalars as text;
nested objects with brackets (`svg[model]`, `svg[reasoning][effort]`)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException

from gouache.service.errors import InvalidRequest

MAX_FILES = 20
MAX_FIELDS = 64
MAX_FILE_BYTES = 50 * 1024 * 1024
_BRACKETS = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")


@dataclass
class ParsedForm:
    fields: dict[str, Any] = field(default_factory=dict)
    files: dict[str, list[bytes]] = field(default_factory=dict)


def _set_nested(target: dict[str, Any], key: str, value: str) -> None:
    match = _BRACKETS.match(key)
    if not match:
        raise InvalidRequest(f"Unknown parameter: '{key}'.", param=key, code="unknown_parameter")
    name, rest = match.group(1), match.group(2)
    parts = [p for p in re.findall(r"\[([^\[\]]*)\]", rest)]
    if not parts:
        if name in target:
            raise InvalidRequest(f"Parameter '{name}' was given more than once.", param=name)
        target[name] = value
        return
    node = target.setdefault(name, {})
    if not isinstance(node, dict):
        raise InvalidRequest(
            f"Invalid type for '{name}': expected an object.", param=name, code="invalid_type"
        )
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value


async def read_form(request: Request, max_file_bytes: int = MAX_FILE_BYTES) -> ParsedForm:
    """The form's fields and files; at most `MAX_FILES` files of `max_file_bytes` each."""
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        raise InvalidRequest(
            "This endpoint takes multipart/form-data (files in 'image', 'image[]' and 'mask').",
            code="invalid_content_type",
        )
    try:
        form = await request.form(max_files=MAX_FILES, max_fields=MAX_FIELDS, max_part_size=1024 * 1024)
    except MultiPartException as exc:
        raise InvalidRequest(
            f"Could not read the multipart body: {exc.message}", code="invalid_multipart"
        ) from exc
    except HTTPException as exc:  # Starlette wraps the parser's errors when it runs inside an app
        raise InvalidRequest(
            f"Could not read the multipart body: {exc.detail}", code="invalid_multipart"
        ) from exc
    parsed = ParsedForm()
    try:
        for key, value in form.multi_items():
            if isinstance(value, UploadFile):
                name = "image" if key == "image[]" else key
                data = await value.read(max_file_bytes + 1)
                if len(data) > max_file_bytes:
                    raise InvalidRequest(
                        f"The file for '{key}' is larger than {max_file_bytes / 2**20:g} MB, this server's "
                        "limit per file (GOUACHE_MAX_UPLOAD_MB).",
                        param=key,
                        code="image_file_too_large",
                    )
                parsed.files.setdefault(name, []).append(data)
            else:
                _set_nested(parsed.fields, key, value)
    finally:
        await form.close()
    return parsed
