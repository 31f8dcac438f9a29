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
