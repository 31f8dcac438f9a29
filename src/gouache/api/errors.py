"""Every non-2xx answer in OpenAI's shape: `{"error": {"message", "type", "param", "code"}}`."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from gouache.service.errors import ServiceError

log = logging.getLogger(__name__)

_TYPE_NAMES = {
    "int": "an integer",
    "float": "a number",
    "string": "a string",
    "bool": "a boolean",
    "dict": "an object",
    "model": "an object",
    "list": "an array",
}


def error_body(
    message: str, type: str, param: str | None = None, code: str | None = None, **extra: Any
) -> dict:
    return {"error": {"message": message, "type": type, "param": param, "code": code, **extra}}


def error_response(
    status: int,
    message: str,
    type: str,
    param: str | None = None,
    code: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    return JSONResponse(error_body(message, type, param, code, **extra), status_code=status, headers=headers)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, bytes | bytearray):
        return "non-JSON data (send Content-Type: application/json)"
    return type(value).__name__


def _param(loc: tuple[Any, ...]) -> str | None:
    parts = [p for p in loc if p not in ("body", "query", "path", "form")]
    if not parts:
        return None
    out = str(parts[0])
    for part in parts[1:]:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def validation_error(err: dict[str, Any]) -> tuple[str, str | None, str]:
    """One pydantic error -> (message, param, code) in OpenAI's words."""
    kind = err.get("type", "")
    param = _param(tuple(err.get("loc", ())))
    value = err.get("input")
    ctx = err.get("ctx") or {}
    if kind == "json_invalid":
        return (
            "We could not parse the JSON body of your request. The API expects a JSON payload "
            f"({ctx.get('error', 'invalid JSON')}).",
            None,
            "invalid_json",
        )
    if kind == "missing":
        return f"Missing required parameter: '{param}'.", param, "missing_required_parameter"
    if kind == "extra_forbidden":
        return f"Unknown parameter: '{param}'.", param, "unknown_parameter"
    if kind == "literal_error":
        expected = ctx.get("expected", "")
        return f"Invalid value: '{value}'. Supported values are: {expected}.", param, "invalid_value"
    if kind in ("greater_than_equal", "greater_than"):
        bound = ctx.get("ge", ctx.get("gt"))
        return (
            f"Invalid '{param}': value below minimum. Expected a value >= {bound}, but got {value} instead.",
            param,
            "integer_below_min_value",
        )
    if kind in ("less_than_equal", "less_than"):
        bound = ctx.get("le", ctx.get("lt"))
        return (
            f"Invalid '{param}': value above maximum. Expected a value <= {bound}, but got {value} instead.",
            param,
            "integer_above_max_value",
        )
    if kind == "string_too_short":
        return (
            f"Invalid '{param}': empty string. Expected a string with minimum length "
            f"{ctx.get('min_length', 1)}, but got an empty string instead.",
            param,
            "empty_string",
        )
    if kind == "string_too_long":
        return (
            f"Invalid '{param}': string too long. Expected a string with maximum length "
            f"{ctx.get('max_length')}, but got a string with length {len(value or '')} instead.",
            param,
            "string_above_max_length",
        )
    for prefix, name in _TYPE_NAMES.items():
        if kind.startswith(prefix) or kind == f"{prefix}_type":
            if param is None:
                return f"The request body must be {name}, but got {_json_type(value)}.", None, "invalid_type"
            return (
                f"Invalid type for '{param}': expected {name}, but got {_json_type(value)} instead.",
                param,
                "invalid_type",
            )
    return f"Invalid value for '{param}': {err.get('msg', 'invalid')}.", param, "invalid_value"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def _service(request: Request, exc: ServiceError) -> JSONResponse:
        return JSONResponse({"error": exc.to_error()}, status_code=exc.status, headers=exc.headers or None)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = list(exc.errors())
        message, param, code = validation_error(errors[0]) if errors else ("Invalid request.", None, None)
        return error_response(400, message, "invalid_request_error", param, code)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            message = f"Invalid URL ({request.method} {request.url.path})."
            code = "unknown_url"
        elif exc.status_code == 405:
            message = f"Method {request.method} is not allowed on {request.url.path}."
            code = "method_not_allowed"
        else:
            message, code = str(exc.detail), None
        return error_response(
            exc.status_code,
            message,
            "invalid_request_error",
            None,
            code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(
            500,
            "The server had an error while processing your request.",
            "server_error",
            None,
            "server_error",
        )
