"""How the batch runner runs one line: the same validation, service calls and response body as a direct
request to the line's endpoint (`routers/images.py`, `routers/responses.py`), in the engine's batch lane at
the batch price.

It lives in the API layer because a line's body is wire JSON: turning it into service parameters, and the
result back into OpenAI's response body, is what the routers do. The service's runner only sees a
`LineExecutor`."""

from __future__ import annotations

from typing import Any

from fastapi.encoders import jsonable_encoder

from gouache.api.protocol.responses import ResponseCreateRequest, ResponseObject
from gouache.api.routers.images import generation_params, json_edit_params, to_response, validate_body
from gouache.api.routers.responses import image_tool
from gouache.service.access import Caller
from gouache.service.batches import LineResult, RetryLater, Stopping
from gouache.service.container import Services
from gouache.service.errors import InvalidRequest, ServiceError
from gouache.service.images import GenerateParams


def line_executor(svc: Services) -> Any:
    async def execute(endpoint: str, body: dict[str, Any], caller: Caller, batch_id: str) -> LineResult:
        try:
            if endpoint == "/v1/responses":
                return await _response_line(svc, body, caller, batch_id)
            return await _image_line(svc, endpoint, body, caller, batch_id)
        except ServiceError as exc:
            if exc.status == 503:
                raise Stopping() from exc
            if exc.status == 429 and exc.code == "rate_limit_exceeded":
                raise RetryLater(float(exc.headers.get("retry-after", "1"))) from exc
            return LineResult(exc.status, {"error": exc.to_error()})

    return execute


async def _image_line(
    svc: Services, endpoint: str, body: dict[str, Any], caller: Caller, batch_id: str
) -> LineResult:
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
    response = to_response(result, "b64_json", None, svc)
    return LineResult(
        200, response.model_dump(mode="json", exclude_none=True), result.request_id, result.usage
    )


async def _response_line(svc: Services, body: dict[str, Any], caller: Caller, batch_id: str) -> LineResult:
    """A Responses API turn, as `POST /v1/responses` runs it; the body is the response object it answers
    (the image in its `image_generation_call`), the usage its text tokens, as OpenAI counts a batch's."""
    request: ResponseCreateRequest = validate_body(ResponseCreateRequest, body)
    if request.stream:
        raise InvalidRequest("Batch requests cannot stream.", param="stream")
    tool = image_tool(request)
    turn = await svc.responses.start(request.model_dump(exclude_none=True), tool, caller, batch_id=batch_id)
    answer: dict[str, Any] = jsonable_encoder(ResponseObject.of(await svc.responses.run(turn)))
    usage = answer.get("usage")
    return LineResult(200, answer, turn.response_id, usage if isinstance(usage, dict) else None)
