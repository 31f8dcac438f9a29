"""Bounded queue (429 + Retry-After), queue position in the record, cancellation of plain requests when the
client goes away, deadlines, fallback models and the model memory budget, on a live server (queue depth 2)
with tiny models."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gouache.engine.catalog import spec_for_directory
from gouache.engine.pipelines import ModelCache, ModelTooLarge, estimate_model_bytes
from gouache.store import RequestView, Store
from tests.live import LiveServer, start_server

#: Takes many seconds on a tiny model (1,500 denoising steps), so it is still running when we look.
LONG_JOB = {"model": "tiny-sd1", "n": 10, "steps": 150, "size": "1024x1024", "quality": "low"}


def wait_for(what: Callable[[], Any], timeout: float = 60.0, message: str = "") -> Any:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = what()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting: {message}")


def assert_openai_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) >= {"message", "type", "param", "code"}
    assert error["code"] == code and error["message"]
    return dict(error)


@pytest.fixture(scope="module")
def faulty_catalog(catalog_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny catalog plus `broken` (a model directory that cannot load) falling back to tiny-sd1."""
    root = tmp_path_factory.mktemp("faulty")
    broken = root / "broken"
    broken.mkdir()
    (broken / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))
    extra = f'\n[models.broken]\npath = "{broken}"\nfamily = "sd1"\nresolution = 64\nfallback = "tiny-sd1"\n'
    path = root / "catalog.toml"
    path.write_text(catalog_file.read_text() + extra)
    return path


@pytest.fixture(scope="module")
def small_queue(tmp_path_factory: pytest.TempPathFactory, faulty_catalog: Path) -> Iterator[LiveServer]:
    live = start_server(
        tmp_path_factory.mktemp("small-queue"),
        {
            "GOUACHE_CATALOG_FILE": str(faulty_catalog),
            "GOUACHE_QUEUE_DEPTH": "2",
            # One image per pipeline call, so that LONG_JOB's ten images take long enough to hang up on.
            "GOUACHE_MAX_BATCH_IMAGES": "1",
            "GOUACHE_DEFAULT_MODEL": "tiny-sd1",
        },
    )
    yield live
    live.stop()


@pytest.fixture()
def store(small_queue: LiveServer) -> Iterator[Store]:
    db = Store(f"sqlite:///{small_queue.data_dir / 'gouache.db'}", small_queue.data_dir / "blobs")
    yield db
    db.close()


def records(store: Store, prompt: str) -> list[RequestView]:
    return [r for r in store.list_requests(limit=200) if r.params.get("prompt") == prompt]


def health(server: LiveServer) -> dict[str, Any]:
    return dict(httpx.get(f"{server.url}/health", timeout=10).json())


def post_and_hang_up(server: LiveServer, body: dict[str, Any], after: float) -> threading.Thread:
    """Send a plain (non-streamed) request and close the connection after `after` seconds."""

    def run() -> None:
        with contextlib.suppress(httpx.TimeoutException):
            httpx.post(f"{server.base_url}/images/generations", json=body, timeout=after)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_full_queue_429_then_disconnects_cancel_queued_and_running_jobs(
    small_queue: LiveServer, store: Store
) -> None:
    first = post_and_hang_up(small_queue, {**LONG_JOB, "prompt": "queue-a"}, after=4)
    wait_for(lambda: health(small_queue)["queue"]["running"] == 1, message="first job running")
    second = post_and_hang_up(small_queue, {**LONG_JOB, "prompt": "queue-b"}, after=3)
    wait_for(lambda: health(small_queue)["queue_depth"] == 2, message="second job queued")

    # The queue is full: a third request is refused at once, in OpenAI's rate-limit shape, with Retry-After.
    refused = httpx.post(
        f"{small_queue.base_url}/images/generations", json={**LONG_JOB, "prompt": "queue-c"}, timeout=10
    )
    error = assert_openai_error(refused, 429, "rate_limit_exceeded")
    assert error["type"] == "requests"
    assert int(refused.headers["retry-after"]) >= 1
    assert int(refused.headers["retry-after-ms"]) == 1000 * int(refused.headers["retry-after"])

    # Queue position and state are in the request records.
    running = wait_for(lambda: [r for r in records(store, "queue-a") if r.status == "running"])[0]
    queued = wait_for(lambda: [r for r in records(store, "queue-b") if r.queue_position == 1])[0]
    assert running.queue_position == 0 and running.started_at is not None
    assert queued.status == "queued" and queued.started_at is None
    # Recorded in the background (created, then finished): wait for the finished row.
    refusal = wait_for(lambda: [r for r in records(store, "queue-c") if r.finished], message="refusal")[0]
    assert refusal.status == "failed" and refusal.error["code"] == "rate_limit_exceeded"

    # Both clients hang up: the queued job never runs, the running one stops; the worker is free again.
    first.join()
    second.join()
    wait_for(lambda: health(small_queue)["queue_depth"] == 0, message="queue drained after disconnects")
    for prompt in ("queue-a", "queue-b"):
        record = wait_for(lambda p=prompt: [r for r in records(store, p) if r.finished], message=prompt)[0]
        assert record.status == "cancelled", record
        assert record.images == ()
    assert records(store, "queue-b")[0].started_at is None  # cancelled while waiting
    ok = httpx.post(
        f"{small_queue.base_url}/images/generations",
        json={"prompt": "after", "model": "tiny-sd1", "size": "1024x1024"},
        timeout=60,
    )
    assert ok.status_code == 200


def test_deadline_ends_the_job_with_408(small_queue: LiveServer, store: Store) -> None:
    response = httpx.post(
        f"{small_queue.base_url}/images/generations",
        json={**LONG_JOB, "prompt": "too-slow", "deadline_s": 1.0},
        timeout=60,
    )
    error = assert_openai_error(response, 408, "deadline_exceeded")
    assert error["param"] == "deadline_s" and error["type"] == "timeout_error"
    assert response.headers["x-should-retry"] == "false"
    record = records(store, "too-slow")[0]
    assert record.status == "failed" and record.error["code"] == "deadline_exceeded"
    wait_for(lambda: health(small_queue)["queue_depth"] == 0, message="worker freed after the deadline")


def test_invalid_deadline_is_a_400(small_queue: LiveServer) -> None:
    response = httpx.post(
        f"{small_queue.base_url}/images/generations", json={"prompt": "x", "deadline_s": 0}, timeout=10
    )
    assert assert_openai_error(response, 400, "integer_below_min_value")["param"] == "deadline_s"


def test_engine_failure_is_retried_on_the_fallback_model(small_queue: LiveServer, store: Store) -> None:
    response = httpx.post(
        f"{small_queue.base_url}/images/generations",
        json={"prompt": "fallback please", "model": "broken", "size": "1024x1024", "quality": "low"},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    assert len(response.json()["data"]) == 1
    record = records(store, "fallback please")[0]
    assert record.status == "succeeded" and record.resolved_model == "tiny-sd1"
    assert record.fallback is not None
    assert record.fallback["from"] == "broken" and record.fallback["to"] == "tiny-sd1"
    assert "broken" in record.fallback["reason"]


def test_model_cache_stays_under_its_memory_budget(tiny_models: dict[str, Path]) -> None:
    sd1, sd2 = spec_for_directory(tiny_models["sd1"], "a"), spec_for_directory(tiny_models["sd2"], "b")
    one = max(estimate_model_bytes(tiny_models["sd1"]), estimate_model_bytes(tiny_models["sd2"]))
    cache = ModelCache(budget_bytes=int(one * 1.5))
    cache.get(sd1)
    assert cache.loaded() == ["a"]
    cache.get(sd2)  # does not fit beside the first: the least recently used is unloaded
    assert cache.loaded() == ["b"]
    assert cache.used_bytes <= cache.budget_bytes
    roomy = ModelCache(budget_bytes=one * 4)
    roomy.get(sd1), roomy.get(sd2), roomy.get(sd1)
    assert roomy.loaded() == ["b", "a"]  # most recently used last
    with pytest.raises(ModelTooLarge, match="GOUACHE_MODEL_MEMORY_MB"):
        ModelCache(budget_bytes=one // 10).get(sd1)


def test_catalog_fallback_must_name_a_catalog_model(tmp_path: Path, tiny_models: dict[str, Path]) -> None:
    from gouache.engine.catalog import Catalog, CatalogError

    path = tmp_path / "catalog.toml"
    path.write_text(f'[models.a]\npath = "{tiny_models["sd1"]}"\nfallback = "nowhere"\n')
    with pytest.raises(CatalogError, match="fallback 'nowhere' is not a model of the catalog"):
        Catalog.load(path)
    path.write_text(f'[models.a]\npath = "{tiny_models["sd1"]}"\nfallback = "gouache-mini"\n')
    spec = Catalog.load(path).resolve("a")
    assert spec is not None and spec.fallback == "gouache-mini"
