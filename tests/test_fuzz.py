"""Schemathesis against our OpenAPI schema, every operation, valid and invalid data, on a live server with a
tiny default model: no response >= 500, every status and header documented, every body matching its schema
(error bodies: OpenAI's `{"error": {"message", "type", "param", "code"}}`), invalid data refused.

`positive_data_acceptance` is the one check left out: JSON Schema cannot say everything a valid request
must be (gpt-image-2's size arithmetic, image bytes inside multipart fields), so a schema-valid request can
rightly get a 400. Renders are kept short by a 1.5 s server deadline (a longer one ends in a documented 408)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck, given
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from gouache.api.app import create_app
from gouache.settings import Settings
from tests.live import LiveServer, start_server

#: Examples per operation and generation mode (operations with few possible inputs stop earlier).
EXAMPLES = 40
MIN_CASES = 500

SCHEMA = schemathesis.openapi.from_dict(create_app(Settings()).openapi())


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory, catalog_file: Path) -> Iterator[LiveServer]:
    env = {
        "GOUACHE_CATALOG_FILE": str(catalog_file),
        "GOUACHE_DEFAULT_MODEL": "tiny-sd1",
        "GOUACHE_REQUEST_TIMEOUT_S": "1.5",
        "GOUACHE_LOG_LEVEL": "warning",
    }
    live = start_server(tmp_path_factory.mktemp("fuzz"), env)
    yield live
    live.stop()


def test_fuzz_every_operation(fuzz_server: LiveServer) -> None:
    cases: Counter[str] = Counter()
    statuses: Counter[int] = Counter()
    operations = [result.ok() for result in SCHEMA.get_all_operations()]
    assert len(operations) >= 11

    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @hypothesis.settings(
                max_examples=EXAMPLES,
                deadline=None,
                database=None,
                derandomize=True,
                suppress_health_check=list(HealthCheck),
                phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
            )
            def fuzz(case: schemathesis.Case) -> None:
                response = case.call_and_validate(
                    base_url=fuzz_server.url, excluded_checks=[positive_data_acceptance], timeout=60
                )
                cases[case.operation.label] += 1
                statuses[response.status_code] += 1
                assert response.status_code < 500, response.text
                if response.status_code >= 400 and response.status_code != 499:
                    error = response.json()["error"]
                    assert {"message", "type", "param", "code"} <= set(error)

            try:
                fuzz()
            except hypothesis.errors.Unsatisfiable:
                assert mode is GenerationMode.NEGATIVE  # nothing can be invalid (no parameters, no body)

    summary = f"{sum(cases.values())} cases; by operation {dict(cases)}; by status {dict(statuses)}"
    print(summary)
    assert sum(cases.values()) >= MIN_CASES, summary
    assert set(cases) == {op.label for op in operations}, summary
    assert not [s for s in statuses if s >= 500], summary


def test_successful_answers_match_the_schema(server: LiveServer) -> None:
    """Generated cases mostly end in 4xx (or the fuzz server's deadline); check the 200s of every operation
    against the schema too, with hand-written requests on the shared server."""
    import io

    import httpx
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (64, 64), "teal").save(buf, format="PNG")
    png = buf.getvalue()
    base = {"model": "tiny-sd1", "prompt": "a teal square", "quality": "low", "size": "1024x1024"}

    def check(
        method: str, path: str, template: str | None = None, ids: dict[str, str] | None = None, **request: Any
    ) -> httpx.Response:
        operation = SCHEMA[template or path][method]
        response = httpx.request(method, f"{server.url}{path}", timeout=120, **request)
        assert response.status_code == 200, response.text
        response.request.read()  # multipart bodies are streams: make them readable for the report
        case = operation.Case(
            path_parameters=ids or None, media_type="application/json" if "json" in request else None
        )
        case.validate_response(response, excluded_checks=[positive_data_acceptance])
        return response

    check("POST", "/v1/images/generations", json={**base, "n": 2})
    url = check("POST", "/v1/images/generations", json={**base, "response_format": "url"}).json()["data"][0][
        "url"
    ]
    check("POST", "/v1/images/generations", json={**base, "stream": True, "partial_images": 1})
    files = {"image": ("a.png", png, "image/png")}
    check("POST", "/v1/images/edits", data={k: v for k, v in base.items() if k != "size"}, files=files)
    check("POST", "/v1/images/variations", data={"model": "tiny-sd1", "size": "256x256"}, files=files)
    image_path = url.removeprefix(server.url)
    check(
        "GET",
        image_path,
        "/v1/images/files/{image_id}",
        {"image_id": image_path.split("/")[-1].split("?")[0]},
    )
    tool = {"type": "image_generation", "quality": "low", "model": "tiny-sd1"}
    turn = check("POST", "/v1/responses", json={"model": "gpt-5", "input": "a fox", "tools": [tool]}).json()
    check("POST", "/v1/responses", json={"model": "gpt-5", "input": "a fox", "tools": [tool], "stream": True})
    ids = {"response_id": turn["id"]}
    check("GET", f"/v1/responses/{turn['id']}", "/v1/responses/{response_id}", ids)
    check("GET", f"/v1/responses/{turn['id']}/input_items", "/v1/responses/{response_id}/input_items", ids)
    check("DELETE", f"/v1/responses/{turn['id']}", "/v1/responses/{response_id}", ids)
    check("GET", "/v1/models")
    check("GET", "/v1/models/gpt-image-2", "/v1/models/{model_id}", {"model_id": "gpt-image-2"})
    # Files and batches (and a JSON edit that references an uploaded file)
    image = check(
        "POST", "/v1/files", data={"purpose": "vision"}, files={"file": ("a.png", png, "image/png")}
    )
    ref = {"images": [{"file_id": image.json()["id"]}], **{k: v for k, v in base.items() if k != "size"}}
    check("POST", "/v1/images/edits", json=ref)
    line = b'{"custom_id": "a", "method": "POST", "url": "/v1/images/generations", "body": {"prompt": "x"}}\n'
    upload = check("POST", "/v1/files", data={"purpose": "batch"}, files={"file": ("in.jsonl", line)}).json()
    file_ids = {"file_id": upload["id"]}
    check("GET", "/v1/files")
    check("GET", f"/v1/files/{upload['id']}", "/v1/files/{file_id}", file_ids)
    check("GET", f"/v1/files/{upload['id']}/content", "/v1/files/{file_id}/content", file_ids)
    body = {"input_file_id": upload["id"], "endpoint": "/v1/images/generations", "completion_window": "24h"}
    batch = check("POST", "/v1/batches", json=body).json()
    batch_ids = {"batch_id": batch["id"]}
    check("GET", "/v1/batches")
    check("GET", f"/v1/batches/{batch['id']}", "/v1/batches/{batch_id}", batch_ids)
    check("POST", f"/v1/batches/{batch['id']}/cancel", "/v1/batches/{batch_id}/cancel", batch_ids)
    check("DELETE", f"/v1/files/{upload['id']}", "/v1/files/{file_id}", file_ids)
    check("GET", "/health")
