"""Warm start: the engine worker loads and renders the default model before `/health` says "ok"; requests that
arrive meanwhile wait behind the warm-up; a broken model folder still fails start-up with one line."""

from __future__ import annotations

import asyncio
import base64
import io
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from openai import OpenAI
from PIL import Image

from gouache.api.app import create_app
from gouache.engine.catalog import Catalog, SamplingPlan, spec_for_directory
from gouache.engine.jobs import RenderJob, RenderResult
from gouache.engine.outputs import ProvenanceKeys
from gouache.engine.pipelines import ModelLoadError
from gouache.engine.queue import JobQueue
from gouache.engine.runner import DeadlineExceeded
from gouache.engine.warmup import WARM_PROMPT, WARM_SIZE, WARM_STEPS, check_model, warm_jobs
from gouache.service.container import Services, build_services
from gouache.service.images.dispatch import _wait
from gouache.settings import Settings
from tests.live import LiveServer


def _broken_model(root: Path) -> Path:
    """A folder whose model_index.json names a UNet that is not there."""
    broken = root / "broken"
    (broken / "unet").mkdir(parents=True)
    (broken / "model_index.json").write_text(
        '{"_class_name": "StableDiffusionPipeline", "unet": ["diffusers", "UNet2DConditionModel"]}'
    )
    return broken


def test_check_model_names_a_missing_component_without_loading(tmp_path: Path, tiny_models: dict) -> None:
    broken = _broken_model(tmp_path)
    spec = spec_for_directory(tiny_models["sd1"])
    check_model(spec)  # a complete folder passes
    with pytest.raises(ModelLoadError) as info:
        check_model(spec.__class__(**{**spec.__dict__, "path": broken}))
    assert str(broken / "unet") in str(info.value) and "'unet'" in str(info.value)
    with pytest.raises(ModelLoadError, match="does not exist or cannot be read"):
        check_model(spec.__class__(**{**spec.__dict__, "path": tmp_path / "gone.safetensors"}))


def test_warm_jobs_cover_each_working_size_and_guidance_once(catalog_file: Path) -> None:
    spec = Catalog.load(catalog_file).resolve("gouache-mini")
    assert spec is not None
    jobs = warm_jobs(spec)
    # gouache-mini's three tiers share one working size and guidance: one compiled shape, one warm-up render.
    assert len(jobs) == 1
    job = jobs[0]
    assert (job.width, job.height) == (WARM_SIZE, WARM_SIZE) and job.plan.steps == WARM_STEPS
    assert job.plan.guidance == spec.plan("low").guidance and job.plan.scheduler == spec.plan("low").scheduler
    # Unsigned and without parameters unless the server signs and writes them (then the warm-up does too).
    assert job.outputs.provenance is None and job.outputs.metadata is None
    keys = ProvenanceKeys(b"chain", b"key")
    signed = warm_jobs(spec, provenance=keys, metadata=True)[0]
    assert signed.outputs.provenance == keys
    assert signed.outputs.metadata is not None and signed.outputs.metadata.prompt == WARM_PROMPT


def test_the_warm_prompt_reads_without_gouache_minis_minilm_matcher() -> None:
    """Every word of the warm-up's caption is in the phrase table: reading it never runs MiniLM (whose
    layer weights would otherwise become resident at start-up)."""
    from gouache.mini.reading import read_caption

    def matcher(word: str, kind: str) -> None:
        raise AssertionError(f"the warm prompt asked MiniLM about {word!r} ({kind})")

    scene = read_caption(WARM_PROMPT, matcher)
    assert scene is not None


class _WarmingRunner:
    """Stands in for the engine's runner: the warm-up render waits for a gate; requests return at once."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.warming = threading.Event()

    def render(self, job: RenderJob, on_progress: Any = None, should_stop: Any = None) -> RenderResult:
        if job.prompt == WARM_PROMPT:
            self.warming.set()
            self.gate.wait(30)
        elif should_stop is not None:
            should_stop()  # raises DeadlineExceeded past the job's deadline, as between denoising steps
        return RenderResult(images=[], working_size=(64, 64))


def test_time_spent_waiting_for_the_warm_up_does_not_count_against_a_deadline(
    tiny_models: dict[str, Path],
) -> None:
    spec = spec_for_directory(tiny_models["sd1"])
    runner = _WarmingRunner()
    queue = JobQueue(runner, workers=1, batch_window_s=0.0)  # type: ignore[arg-type]
    queue.start()
    try:
        queue.warm_up(
            spec.name, [RenderJob(spec, WARM_PROMPT, SamplingPlan(steps=2, guidance=2.0), 64, 64, (0,))]
        )
        assert runner.warming.wait(10)
        job = RenderJob(spec, "a red circle", SamplingPlan(steps=2, guidance=2.0), 64, 64, (1,))
        deadline = time.monotonic() + 0.5
        held = queue.submit(job, deadline=deadline)

        async def waited() -> RenderResult:
            waiter = asyncio.ensure_future(_wait(held, deadline))
            await asyncio.sleep(1.0)  # the warm-up outlasts the request's whole deadline
            runner.gate.set()
            return await waiter

        # On a thread of its own: a session fixture (Playwright's sync API) may hold this thread's event loop.
        with ThreadPoolExecutor(1) as pool:
            result = pool.submit(asyncio.run, waited()).result()
        assert result.working_size == (64, 64)
        assert held.deadline is not None and held.deadline >= deadline + 0.9
        # Once warm, a deadline is the request's own again: a job queued now expires on time.
        late = queue.submit(job, deadline=time.monotonic() - 1)
        with pytest.raises(DeadlineExceeded):
            late.future.result(10)
    finally:
        runner.gate.set()
        queue.stop(5)


@pytest.fixture()
def warming_services(tmp_path: Path, catalog_file: Path) -> Iterator[Services]:
    settings = Settings(
        data_dir=tmp_path,
        catalog_file=catalog_file,
        default_model="tiny-sd1",
        backend="pytorch",
        playground=False,
    )
    svc = build_services(settings)
    yield svc
    svc.close()


def test_preload_loads_the_usage_tokenizer_so_the_first_request_does_not(warming_services: Services) -> None:
    from gouache.service import usage

    usage._encoding.cache_clear()
    warming_services.preload(warm=False)  # lazy: nothing loaded ahead
    assert usage._encoding.cache_info().currsize == 0
    warming_services.preload()
    assert usage._encoding.cache_info().currsize == 1


def test_health_says_warming_until_the_worker_has_rendered_and_requests_wait(
    warming_services: Services,
) -> None:
    svc = warming_services
    # Hold the model cache so that the worker's warm-up is stuck loading: the state a slow model is in.
    svc.cache._lock.acquire()
    try:
        svc.preload()
        client = TestClient(
            create_app(svc.settings, svc),
            base_url=f"http://127.0.0.1:{svc.settings.port}",  # a Host the server answers to
            client=("127.0.0.1", 50000),  # loopback: no key needed
        )
        with client:
            health = client.get("/health")
            assert health.status_code == 503 and health.headers["retry-after"] == "1"
            assert health.json()["status"] == "warming" and health.json()["models_loaded"] == []
            # A request that arrives now waits behind the warm-up instead of failing.
            answers: list[httpx.Response] = []
            request = threading.Thread(
                target=lambda: answers.append(
                    client.post(
                        "/v1/images/generations",
                        json={"model": "tiny-sd1", "prompt": "a red circle", "size": "1024x1024", "seed": 3},
                    )
                )
            )
            request.start()
            request.join(1.0)
            assert request.is_alive(), answers[0].text
            assert client.get("/health").json()["queue"]["waiting"] == 1
            svc.cache._lock.release()
            request.join(120)
            assert not request.is_alive()
            answer = answers[0]
            assert answer.status_code == 200, answer.text
            image = Image.open(io.BytesIO(base64.b64decode(answer.json()["data"][0]["b64_json"])))
            assert image.size == (1024, 1024)
            health = client.get("/health")
            assert health.status_code == 200 and health.json()["status"] == "ok"
            assert list(health.json()["warm_up"]["warmed"]["tiny-sd1"]) == ["0"]
            assert health.json()["models_loaded"] == ["tiny-sd1"]
    finally:
        if svc.cache._lock.locked():
            svc.cache._lock.release()


def test_live_server_warmed_its_default_model_so_a_request_pays_no_load(
    server: LiveServer, client: OpenAI
) -> None:
    health = httpx.get(f"{server.url}/health", timeout=30)
    assert health.status_code == 200 and health.json()["status"] == "ok"
    default = health.json()["default_model"]
    assert "0" in health.json()["warm_up"]["warmed"][default]
    client.images.generate(prompt="a blue square", size="1024x1024", extra_body={"seed": 11, "cache": False})
    history = httpx.get(f"{server.url}/v1/gouache/history", headers={"Authorization": "Bearer test-key"})
    assert history.status_code == 200, history.text
    latest = next(entry for entry in history.json()["data"] if entry["prompt"] == "a blue square")
    # The model came from the cache (a dictionary look-up), not from disk.
    assert latest["timings"]["load_s"] < 0.05


def test_a_broken_model_folder_still_fails_start_up_with_one_line(tmp_path: Path) -> None:
    broken = _broken_model(tmp_path)
    env = {
        "GOUACHE_DATA_DIR": str(tmp_path / "data"),
        "GOUACHE_DEFAULT_MODEL": str(broken),
        "GOUACHE_LOG_LEVEL": "warning",
        "HF_HUB_OFFLINE": "1",
        "PATH": "/usr/bin:/bin",
        **{k: v for k, v in os.environ.items() if k.startswith(("PYTHON", "GOUACHE_BACKEND"))},
    }
    done = subprocess.run(
        [sys.executable, "-m", "gouache.cli", "serve"], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr + done.stdout
    lines = [line for line in done.stderr.splitlines() if "Cannot start" in line]
    assert len(lines) == 1 and str(broken / "unet") in done.stderr
