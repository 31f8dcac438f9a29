"""The image service's pure steps, in process and in milliseconds: model names, OpenAI's rule tables, the
engine job a request builds, the fallback job, the result-cache key, and how engine exceptions reach the
client. No server, no store, no model load: the shipped catalog and plain data only."""

from __future__ import annotations

import io
import os
from dataclasses import replace
from pathlib import Path

import pytest
from PIL import Image

from gouache.engine.catalog import Catalog, ModelSpec, SamplingPlan
from gouache.engine.pipelines import ModelLoadError
from gouache.engine.queue import QueueFull, ShuttingDown
from gouache.engine.runner import Cancelled, DeadlineExceeded
from gouache.service.container import build_catalog
from gouache.service.errors import (
    DeadlineExceededError,
    EngineFailure,
    InvalidRequest,
    ModelNotFound,
    Overloaded,
    QueueFullError,
    ServiceError,
)
from gouache.service.images import EditParams, GenerateParams
from gouache.service.images.dispatch import engine_error
from gouache.service.images.result_cache import (
    cache_key,
    file_fingerprint,
    model_fingerprint,
    result_cache_key,
)
from gouache.service.images.rules import (
    MAX_SEED,
    build_job,
    edit_image_tokens,
    endpoint_of,
    fallback_job,
    resolve_model,
)
from gouache.service.usage import input_image_tokens
from gouache.settings import GPT_IMAGE_MODEL_NAMES, Settings


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    """The server's catalog: the shipped one, the GPT image names served by gouache-mini."""
    settings = Settings(
        catalog_file=None, default_model="gouache-mini", model_aliases=list(GPT_IMAGE_MODEL_NAMES)
    )
    return build_catalog(settings)[0]


def png(size: tuple[int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (200, 40, 40)).save(buf, format="PNG")
    return buf.getvalue()


def refusal(catalog: Catalog, params: GenerateParams, memory: int | None = None) -> ServiceError:
    with pytest.raises(ServiceError) as info:
        build_job(catalog, params, memory)
    return info.value


# --- model names ------------------------------------------------------------------------------------------


def test_gpt_image_names_resolve_to_the_default_model(catalog: Catalog) -> None:
    for name in ("gpt-image-2", "gpt-image-1-mini", "gouache-mini"):
        assert resolve_model(catalog, name).name == "gouache-mini"


def test_retired_and_unknown_models_are_404_with_the_way_out(catalog: Catalog) -> None:
    with pytest.raises(ModelNotFound) as info:
        resolve_model(catalog, "dall-e-3")
    assert info.value.status == 404 and info.value.code == "model_not_found" and info.value.param == "model"
    assert info.value.message == "The model 'dall-e-3' was retired on 2026-05-12. Use 'gpt-image-2' instead."
    with pytest.raises(ModelNotFound) as info:
        resolve_model(catalog, "sdxl-turbo")
    assert info.value.message == (
        f"The model 'sdxl-turbo' does not exist. Available models: {', '.join(catalog.names())}."
    )
    assert "gouache-mini, gpt-image-2" in info.value.message


def test_endpoint_of_each_request_kind() -> None:
    assert endpoint_of(GenerateParams(prompt="x")) == "images.generations"
    assert endpoint_of(EditParams(prompt="x")) == "images.edits"
    assert endpoint_of(EditParams(prompt="", variation=True)) == "images.variations"


# --- the engine job ---------------------------------------------------------------------------------------


def test_a_generation_builds_its_job(catalog: Catalog) -> None:
    params = GenerateParams(prompt="a red circle", size="1536x1024", quality="low", n=3, seed=7)
    job, quality = build_job(catalog, params)
    spec = catalog.resolve("gouache-mini")
    assert spec is not None
    assert quality == "low"
    assert job.model is spec and job.plan == spec.plan("low")
    assert (job.width, job.height, job.seeds) == (1536, 1024, (7, 8, 9))
    assert (job.output_format, job.output_compression, job.edit, job.previews) == ("png", 100, None, 0)
    assert edit_image_tokens(job) == 0


def test_overrides_seeds_and_auto_quality(catalog: Catalog) -> None:
    job, _ = build_job(
        catalog, GenerateParams(prompt="x", quality="medium", steps=3, guidance_scale=1.5, seed=MAX_SEED, n=2)
    )
    assert job.plan == SamplingPlan(steps=3, guidance=1.5, scheduler="dpm++")
    assert job.seeds == (MAX_SEED, 0)  # consecutive, wrapping at 2**63
    # `auto`: lettering or detail asks for high, anything else is medium; auto size is square.
    job, quality = build_job(catalog, GenerateParams(prompt="a poster that says HELLO", seed=1))
    assert (quality, job.width, job.height) == ("high", 1024, 1024)
    assert build_job(catalog, GenerateParams(prompt="a fox", seed=1))[1] == "medium"
    assert build_job(catalog, GenerateParams(prompt="a fox", seed=1, size="3840x2160"))[1] == "medium"
    # No seed: a random one below 2**31, the others following it.
    seeds = build_job(catalog, GenerateParams(prompt="x", n=2))[0].seeds
    assert 0 <= seeds[0] < 2**31 and seeds[1] == seeds[0] + 1


def test_output_rules(catalog: Catalog) -> None:
    error = refusal(catalog, GenerateParams(prompt="x", background="transparent", output_format="jpeg"))
    assert (error.param, error.code) == ("background", "invalid_value")
    assert error.message == (
        "Transparent backgrounds need output_format 'png' or 'webp' (or 'gif', 'svg'), not 'jpeg'."
    )
    job, _ = build_job(catalog, GenerateParams(prompt="a sticker of a red star", background="auto"))
    assert job.outputs.background == "transparent" and job.prompt == "a red star"
    job, _ = build_job(catalog, GenerateParams(prompt="a red star", background="auto"))
    assert job.outputs.background == "opaque"
    error = refusal(catalog, GenerateParams(prompt="x", output_compression=50))
    assert (error.status, error.param, error.code) == (400, "output_compression", "invalid_value")
    job, _ = build_job(catalog, GenerateParams(prompt="x", output_format="webp", output_compression=50))
    assert (job.output_format, job.output_compression) == ("webp", 50)
    assert build_job(catalog, GenerateParams(prompt="x", output_compression=100))[0].output_compression == 100


def test_quality_tiers_the_model_lacks_are_refused(catalog: Catalog) -> None:
    error = refusal(catalog, GenerateParams(prompt="x", quality="xhigh"))
    assert (error.param, error.code) == ("quality", "invalid_value")
    assert error.message == (
        "Invalid value: 'xhigh'. Quality 'xhigh' is not supported by model 'gouache-mini'. "
        "Supported values are: low, medium, high, auto."
    )


def test_the_first_problem_is_the_one_reported(catalog: Catalog) -> None:
    """Prompt, then model, then size, then render memory, then output encoding."""
    everything_wrong = GenerateParams(
        prompt="bad\x00", model="nope", size="10x10", n=10, background="transparent", output_format="jpeg"
    )
    assert refusal(catalog, everything_wrong).param == "prompt"
    assert refusal(catalog, replace(everything_wrong, prompt="ok")).param == "model"
    assert refusal(catalog, replace(everything_wrong, prompt="ok", model="gpt-image-2")).param == "size"
    fits_no_memory = replace(everything_wrong, prompt="ok", model="gpt-image-2", size="1024x1024")
    error = refusal(catalog, fits_no_memory, memory=64 * 2**20)
    assert (error.param, error.code) == ("n", "request_too_large")
    assert "ask for at most n=6 at this size" in error.message
    assert refusal(catalog, fits_no_memory).param == "background"  # no memory limit


def test_render_memory_names_size_for_a_single_image(catalog: Catalog) -> None:
    error = refusal(catalog, GenerateParams(prompt="x", size="3840x2160"), memory=2**20)
    assert (error.status, error.param, error.code) == (400, "size", "request_too_large")
    assert error.message.endswith("(GOUACHE_RENDER_MEMORY_MB); ask for a smaller size.")


# --- edits and variations ---------------------------------------------------------------------------------


def test_an_edit_builds_its_inputs(catalog: Catalog) -> None:
    params = EditParams(prompt="make it blue", model="gpt-image-1", images=(png((300, 200)),), seed=3)
    job, _ = build_job(catalog, params)
    assert job.edit is not None
    assert (job.width, job.height) == (1536, 1024)  # `auto` follows the upload's aspect
    assert (job.edit.strength, job.edit.input_fidelity, job.edit.mask) == (0.6, "low", None)
    assert [im.size for im in job.edit.images] == [(300, 200)]
    assert edit_image_tokens(job) == input_image_tokens(300, 200) == 255


def test_edit_upload_rules(catalog: Catalog) -> None:
    error = refusal(catalog, EditParams(prompt="x"))
    assert (error.param, error.code) == ("image", "missing_required_parameter")
    error = refusal(catalog, EditParams(prompt="x", images=(b"",) * 17))
    assert (error.param, error.code) == ("image", "too_many_images")
    assert error.message == "At most 16 images can be edited together; got 17."
    error = refusal(catalog, EditParams(prompt="x", images=(png((64, 64)), b"")))
    assert (error.param, error.code) == ("image[1]", "empty_image_file")


@pytest.mark.parametrize(
    ("model", "asked", "fidelity", "code"),
    [
        ("gpt-image-2", None, "high", None),
        ("gpt-image-2", "low", None, "unsupported_parameter"),
        ("gpt-image-2-2026-04-21", "high", None, "unsupported_parameter"),
        ("gpt-image-1-mini", None, "low", None),
        ("gpt-image-1-mini", "high", None, "invalid_value"),
        ("gpt-image-1", "high", "high", None),
        ("gouache-mini", None, "low", None),
    ],
)
def test_input_fidelity_by_model(
    catalog: Catalog, model: str, asked: str | None, fidelity: str | None, code: str | None
) -> None:
    params = EditParams(prompt="x", model=model, images=(png((64, 64)),), input_fidelity=asked)
    if code is None:
        job, _ = build_job(catalog, params)
        assert job.edit is not None and job.edit.input_fidelity == fidelity
    else:
        error = refusal(catalog, params)
        assert (error.param, error.code) == ("input_fidelity", code)


def test_variation_sizes(catalog: Catalog) -> None:
    image = (png((64, 64)),)
    job, _ = build_job(catalog, EditParams(prompt="", images=image, variation=True))
    assert (job.width, job.height) == (1024, 1024)
    job, _ = build_job(catalog, EditParams(prompt="", images=image, variation=True, size="256x256"))
    assert (job.width, job.height) == (256, 256)
    error = refusal(catalog, EditParams(prompt="", images=image, variation=True, size="1536x1024"))
    assert error.param == "size"
    assert error.message == "Invalid value: '1536x1024'. Supported values are: 256x256, 512x512, 1024x1024."


# --- the fallback job -------------------------------------------------------------------------------------


def test_fallback_job_keeps_explicit_overrides() -> None:
    mini = Catalog.load().resolve("gouache-mini")
    assert mini is not None
    primary = replace(
        mini,
        name="primary",
        fallback="gouache-mini",
        plans={"low": SamplingPlan(4, 7.0, "euler"), "medium": SamplingPlan(9, 7.0, "euler")},
    )
    catalog = Catalog([mini, primary])
    job, _ = build_job(catalog, GenerateParams(prompt="x", model="primary", quality="low", seed=1))
    fallback = fallback_job(catalog, job, "low")
    assert fallback is not None
    assert fallback.model is mini and fallback.plan == mini.plan("low")
    assert (fallback.seeds, fallback.width, fallback.prompt) == (job.seeds, job.width, job.prompt)
    overridden, _ = build_job(catalog, GenerateParams(prompt="x", model="primary", quality="low", steps=2))
    fallback = fallback_job(catalog, overridden, "low")
    assert fallback is not None and fallback.plan == replace(mini.plan("low"), steps=2)
    assert fallback_job(catalog, fallback, "low") is None  # gouache-mini names no fallback
    self_fallback: ModelSpec = replace(mini, fallback="gouache-mini")
    assert fallback_job(Catalog([self_fallback]), replace(job, model=self_fallback), "low") is None


# --- the result-cache key ---------------------------------------------------------------------------------


def test_only_seeded_requests_that_allow_it_are_cacheable(catalog: Catalog) -> None:
    seeded = GenerateParams(prompt="x", seed=5)
    job, _ = build_job(catalog, seeded)
    key = cache_key(True, "images.generations", seeded, job)
    assert key is not None and len(key) == 64 and int(key, 16) >= 0
    assert key == result_cache_key("images.generations", seeded, job)
    assert cache_key(False, "images.generations", seeded, job) is None  # GOUACHE_RESULT_CACHE=false
    assert cache_key(True, "images.generations", replace(seeded, cache=False), job) is None
    unseeded = GenerateParams(prompt="x")
    assert cache_key(True, "images.generations", unseeded, build_job(catalog, unseeded)[0]) is None


def test_every_pixel_deciding_input_changes_the_key(catalog: Catalog) -> None:
    base = GenerateParams(prompt="x", seed=5, quality="low")

    def key(params: GenerateParams, endpoint: str = "images.generations") -> str:
        return result_cache_key(endpoint, params, build_job(catalog, params)[0])

    assert key(base) == key(base) == key(replace(base, user="someone else", deadline_s=9))
    variants = [
        replace(base, seed=6),
        replace(base, steps=3),
        replace(base, prompt="y"),
        replace(base, negative_prompt="blur"),
        replace(base, size="1536x1024"),
        replace(base, output_format="jpeg"),
        replace(base, quality="medium"),
    ]
    keys = {key(v) for v in variants} | {key(base), key(base, "images.edits")}
    assert len(keys) == len(variants) + 2
    red, green = png((64, 64)), png((65, 64))
    edit = EditParams(prompt="x", seed=5, images=(red,))
    assert key(edit, "images.edits") == key(replace(edit), "images.edits")
    assert key(edit, "images.edits") != key(replace(edit, images=(green,)), "images.edits")
    assert key(edit, "images.edits") != key(replace(edit, strength=0.9), "images.edits")


def test_the_device_and_dtype_are_part_of_the_key(catalog: Catalog) -> None:
    """An image rendered on the CPU in float32 must not answer the same request once the model runs on a GPU
    or in another dtype: the pixels differ."""
    params = GenerateParams(prompt="x", seed=5, quality="low")
    job = build_job(catalog, params)[0]
    on_cpu = result_cache_key("images.generations", params, job, ("cpu", "float32"))
    assert on_cpu == result_cache_key("images.generations", params, job)  # the CPU in float32 by default
    others = {
        result_cache_key("images.generations", params, job, placement)
        for placement in [
            ("cuda:0", "float16"),
            ("cuda:0", "float32"),
            ("cpu", "bfloat16"),
            ("mps", "float16"),
        ]
    }
    assert len(others) == 4 and on_cpu not in others


def test_the_model_fingerprint_follows_the_folders_files(tmp_path: Path) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "weights.bin").write_bytes(b"12345")
    first = model_fingerprint(str(folder))
    assert len(first) == 64
    (folder / "weights.bin").write_bytes(b"123456")
    assert model_fingerprint(str(folder)) == first  # once per process and folder
    model_fingerprint.cache_clear()
    changed = model_fingerprint(str(folder))
    assert changed != first
    os.utime(folder / "weights.bin", ns=(1, 1))
    model_fingerprint.cache_clear()
    assert model_fingerprint(str(folder)) not in (first, changed)
    assert model_fingerprint(str(tmp_path / "missing")) == ""


def test_the_model_fingerprint_follows_a_single_file_checkpoint(tmp_path: Path) -> None:
    checkpoint = tmp_path / "model.safetensors"
    checkpoint.write_bytes(b"12345")
    first = model_fingerprint(str(checkpoint))
    assert len(first) == 64
    checkpoint.write_bytes(b"123456")
    model_fingerprint.cache_clear()
    file_fingerprint.cache_clear()
    assert model_fingerprint(str(checkpoint)) != first


# --- engine errors ----------------------------------------------------------------------------------------


def test_engine_exceptions_map_to_service_errors() -> None:
    full = engine_error(QueueFull("The queue is full (2 jobs waiting or running); retry shortly.", 3))
    assert isinstance(full, QueueFullError)
    assert (full.status, full.type, full.code) == (429, "requests", "rate_limit_exceeded")
    assert full.headers == {"retry-after": "3", "retry-after-ms": "3000"}
    assert full.message == "The queue is full (2 jobs waiting or running); retry shortly."
    stopping = engine_error(ShuttingDown("The server is shutting down."))
    assert isinstance(stopping, Overloaded)
    assert (stopping.status, stopping.code, stopping.message) == (
        503,
        "shutting_down",
        "The server is shutting down.",
    )
    late = engine_error(DeadlineExceeded())
    assert isinstance(late, DeadlineExceededError) and isinstance(DeadlineExceeded(), Cancelled)
    assert (late.status, late.type, late.code, late.param) == (
        408,
        "timeout_error",
        "deadline_exceeded",
        "deadline_s",
    )
    assert late.headers == {"x-should-retry": "false"}
    unloadable = engine_error(ModelLoadError("Cannot load /models/x: missing unet"))
    assert isinstance(unloadable, EngineFailure)
    assert (unloadable.status, unloadable.code, unloadable.message) == (
        500,
        "model_unavailable",
        "Cannot load /models/x: missing unet",
    )
    broken = engine_error(RuntimeError("out of memory"))
    assert isinstance(broken, EngineFailure) and not isinstance(broken, InvalidRequest)
    assert (broken.status, broken.type, broken.code) == (500, "server_error", "server_error")
    assert broken.message == "The engine failed while rendering: out of memory"
