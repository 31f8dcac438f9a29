"""How the batch runner runs one line: the same validation, service calls and response body as a direct
request to the line's endpoint (`routers/images.py`), in the engine's batch lane at the batch price.

It lives in the API layer because a line's body is wire JSON: turning it into service parameters, and the
result back into OpenAI's response body, is what the routers do. The service's runner only sees a
`LineExecutor`."""

from __future__ import annotations

from typing import Any

from gouache.api.routers.images import generation_params, json_edit_params, to_response
from gouache.service.access import Caller
from gouache.service.batches import LineResult, RetryLater, Stopping
from gouache.service.container import Services
from gouache.service.errors import InvalidRequest, ServiceError
from gouache.service.images import GenerateParams


def line_executor(svc: Services) -> Any:
    async def execute(endpoint: str, body: dict[str, Any], caller: Caller, batch_id: str) -> LineResult:
        try:
            params: GenerateParams
            if endpoint == "/v1/images/edits":
                params, wire = await json_edit_params(body, svc, caller)
            else:
                params, wire = generation_params(body)  # type: ignore[assignment]
            if wire.stream:
                raise InvalidRequest("Batch requests cannot stream.", param="stream")
            if wire.response_format == "url":
                raise InvalidRequest(
                    "Batch results carry images as b64_json; response_format 'url' is not available.",
                    param="response_format",
                )
            prepared = await svc.images.prepare(params, caller=caller, batch_id=batch_id)
            result = await svc.images.run(prepared)
        except ServiceError as exc:
            if exc.status == 503:
                raise Stopping() from exc
            if exc.status == 429 and exc.code == "rate_limit_exceeded":
                raise RetryLater(float(exc.headers.get("retry-after", "1"))) from exc
            return LineResult(exc.status, {"error": exc.to_error()})
        response = to_response(result, "b64_json", None, svc)
        return LineResult(
            200, response.model_dump(mode="json", exclude_none=True), result.request_id, result.usage
        )

    return execute
