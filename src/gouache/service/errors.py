"""Errors the service raises. They carry OpenAI's error fields but know nothing about HTTP;
the API layer maps `status` onto the response."""

from __future__ import annotations

from typing import Any


class ServiceError(Exception):
    """A failure with OpenAI's error fields: message, type, param, code."""

    status = 400
    type = "invalid_request_error"
    code: str | None = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        type: str | None = None,
        status: int | None = None,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        if type is not None:
            self.type = type
        if status is not None:
            self.status = status
        self.extra = extra or {}
        #: Response headers that belong to this error (e.g. `Retry-After` on a 429).
        self.headers = headers or {}

    def to_error(self) -> dict[str, Any]:
        """The `error` object of OpenAI's error body."""
        return {
            "message": self.message,
            "type": self.type,
            "param": self.param,
            "code": self.code,
            **self.extra,
        }


class InvalidRequest(ServiceError):
    """A value the client sent is not acceptable (400)."""

    code = "invalid_value"


class UnsupportedParameter(InvalidRequest):
    """A parameter OpenAI knows that Gouache does not serve yet (400); never silently ignored."""

    code = "unsupported_parameter"


class ModelNotFound(ServiceError):
    status = 404
    code = "model_not_found"


class NotFound(ServiceError):
    status = 404
    code = "not_found"


class EngineFailure(ServiceError):
    """The engine could not run a valid request (model missing or broken, out of memory...)."""

    status = 500
    type = "server_error"
    code = "server_error"


class Overloaded(ServiceError):
    status = 503
    type = "server_error"
    code = "overloaded"


class QueueFullError(ServiceError):
    """The engine's queue is full: 429 at once, with `retry-after`, in OpenAI's rate-limit shape."""

    status = 429
    type = "requests"
    code = "rate_limit_exceeded"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(
            message,
            headers={"retry-after": str(retry_after), "retry-after-ms": str(retry_after * 1000)},
        )


class DeadlineExceededError(ServiceError):
    """The request's deadline passed before its images were ready (408; the SDK is told not to retry, as
    the same request would likely run out of time again)."""

    status = 408
    type = "timeout_error"
    code = "deadline_exceeded"

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message, param=param, headers={"x-should-retry": "false"})


class RequestTooLarge(ServiceError):
    """The request body is over the server's limit (413)."""

    status = 413
    code = "request_too_large"
