"""Limits on what a request body may be, enforced before any route sees it, each with a 4xx in OpenAI's
shape naming the problem:

* the body size (413 `request_too_large`): by `Content-Length` at once, else while it is read;
* JSON bodies: valid UTF-8, nesting no deeper than the limit, no unpaired surrogate escapes (`\\ud800`
  alone cannot be stored or echoed back as UTF-8), all 400.

Multipart bodies are streamed through (Starlette spools their files to disk) and counted as they go; other
bodies are read here, checked, and replayed to the app."""

from __future__ import annotations

import json
import re

import numpy as np
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.S)
_SURROGATE_PAIR = re.compile(r"\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}")
_LONE_SURROGATE = re.compile(r"(?<!\\)(?:\\\\)*\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
_OPEN = np.frombuffer(b"[{", dtype=np.uint8)
_CLOSE = np.frombuffer(b"]}", dtype=np.uint8)


class _BodyTooLarge(Exception):
    pass


def json_depth(body: bytes) -> int:
    """Deepest nesting of arrays and objects in a JSON text (strings skipped), in C-speed passes."""
    structure = np.frombuffer(_STRING.sub(b'""', body), dtype=np.uint8)
    steps = np.isin(structure, _OPEN).astype(np.int32) - np.isin(structure, _CLOSE).astype(np.int32)
    return int(np.cumsum(steps).max()) if steps.size else 0


def _error(status: int, message: str, code: str) -> tuple[Message, Message]:
    body = json.dumps(
        {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}}
    ).encode()
    start: Message = {
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
    }
    return start, {"type": "http.response.body", "body": body}


class BodyLimitsMiddleware:
    def __init__(self, app: ASGIApp, max_body_bytes: int, max_json_depth: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_json_depth = max_json_depth

    def _too_large(self) -> tuple[Message, Message]:
        return _error(
            413,
            f"The request body is larger than this server's limit of {self.max_body_bytes / 2**20:,.1f} MB "
            "(GOUACHE_MAX_BODY_MB).",
            "request_too_large",
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None and (not length.strip().isdigit() or int(length) > self.max_body_bytes):
            await self._send(send, *self._too_large())
            return
        content_type = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        if content_type.startswith(b"multipart/"):
            await self._stream(scope, receive, send)
        else:
            await self._buffered(scope, receive, send)

    @staticmethod
    async def _send(send: Send, start: Message, body: Message) -> None:
        await send(start)
        await send(body)

    async def _stream(self, scope: Scope, receive: Receive, send: Send) -> None:
        seen = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body_bytes:
                    raise _BodyTooLarge()
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _BodyTooLarge:
            if not started:
                await self._send(send, *self._too_large())

    async def _buffered(self, scope: Scope, receive: Receive, send: Send) -> None:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away before sending its body
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                await self._send(send, *self._too_large())
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        problem = self._json_problem(body)
        if problem is not None:
            await self._send(send, *_error(400, problem, "invalid_json"))
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    def _json_problem(self, body: bytes) -> str | None:
        """Why a JSON-looking body must be refused before it is parsed, or None."""
        head = body.lstrip()[:1]
        if head not in (b"{", b"["):
            return None
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            return f"The request body is not valid UTF-8 (byte {exc.start}); JSON must be UTF-8."
        depth = json_depth(body)
        if depth > self.max_json_depth:
            return (
                f"The JSON body is nested {depth} levels deep; at most {self.max_json_depth} levels are "
                "accepted."
            )
        if "\\u" in text:
            lone = _LONE_SURROGATE.search(_SURROGATE_PAIR.sub("", text))
            if lone is not None:
                escape = lone.group().lstrip("\\")
                return (
                    f"The JSON body contains an unpaired surrogate escape (\\{escape}), which is not a valid "
                    "Unicode character."
                )
        return None
